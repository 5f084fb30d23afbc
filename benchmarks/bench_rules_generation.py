"""Speed of the rule benchmark's data pipeline: generation, checking and tokenization.

    python benchmarks/bench_rules_generation.py [--samples-per-rule 4000]

Builds samples_per_rule samples for each of the 40 rules (the paper's 4000 by default, all in this
process, i.e. on one core), then checks and tokenizes every row, and prints rows/s for each step.
"""

import argparse
import platform
import time

import numpy as np

from hf_diffusion_lm.rules import NUM_RULES, RuleTokenizer, generate_samples, row_rule_matrix
from hf_diffusion_lm.rules.instances import family_relations


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples-per-rule", type=int, default=4000)
    args = parser.parse_args()

    _, setup = timed(lambda: [family_relations(f) for f in range(5)])  # instance lists, built once per process
    samples, gen = timed(lambda: np.concatenate(
        [generate_samples(r, args.samples_per_rule, np.random.default_rng([0, r])) for r in range(NUM_RULES)]))
    rows = len(samples) * 3
    rules, check = timed(lambda: row_rule_matrix(samples))
    ids, encode = timed(lambda: RuleTokenizer("object").encode_samples(samples))
    assert rules.sum(-1).max() == 1 and ids.shape == (len(samples), 82)

    print(f"machine: {platform.processor() or platform.machine()}, numpy {np.__version__}")
    print(f"instance lists: {setup:.2f} s (once per process)")
    print(f"generate {len(samples)} samples ({args.samples_per_rule} x {NUM_RULES} rules, {rows} rows): "
          f"{gen:.1f} s, {rows / gen:,.0f} rows/s")
    print(f"check {rows} rows: {check:.1f} s, {rows / check:,.0f} rows/s")
    print(f"tokenize {len(samples)} samples: {encode:.2f} s, {rows / encode:,.0f} rows/s")


if __name__ == "__main__":
    main()
