"""Does diffusion's 0 on Prog+1 Size come from its decoding order? Re-completes the CPU study's completion test sets
(saved in each diffusion run folder) with the answer panel filled object by object, left to right (blocks of 3
tokens, one token per network call), beside the study's own infilling (one block, 27 calls), greedy and sampled.
Run from the repository root after `python recipes/rules_study.py`:
    python docs/results/rules/completion_order.py [outputs/rules_study_cpu] [samples_per_rule ...]"""
import sys
from pathlib import Path

import numpy as np

from hf_diffusion_lm import MaskedDiffusionForLM
from hf_diffusion_lm.rules import RuleTokenizer
from hf_diffusion_lm.rules.checker import completion_correct
from hf_diffusion_lm.rules.model_metrics import complete_last_panels, empty_panel_rate, sampled_completion
from hf_diffusion_lm.stats import wilson_interval

study = Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/rules_study_cpu")
sizes = [int(n) for n in sys.argv[2:]] or [400, 4000]
ORDERS = {"one block (study)": {}, "blocks of 3, left to right": {"block_length": 3}}
counts = {}
for size in sizes:
    for run_dir in sorted((study / "runs").glob(f"diffusion_{size}_seed*")):
        model = MaskedDiffusionForLM.from_pretrained(run_dir).eval()
        tokenizer = RuleTokenizer.from_pretrained(run_dir)
        test, rules = np.load(run_dir / "completion_test.npy"), np.load(run_dir / "completion_test_rules.npy")
        for order, options in ORDERS.items():
            for decoding in ("greedy", "sampled"):
                if decoding == "greedy":
                    completed = complete_last_panels(model, tokenizer, test, 250, **options)
                else:
                    completed = sampled_completion(model, tokenizer, test, 250, 0, **options)
                correct = completion_correct(completed)
                for rule in [None, *np.unique(rules).tolist()]:
                    part = correct if rule is None else correct[rules == rule]
                    key = (size, order, decoding, rule)
                    k, n = counts.get(key, (0, 0))
                    counts[key] = (k + int(part.sum()), n + len(part))
                empty = counts.get((size, order, decoding, "empty"), [])
                counts[(size, order, decoding, "empty")] = [*empty, empty_panel_rate(completed)]
        print(f"[done] {run_dir.name}", flush=True)

rule_ids = sorted({key[3] for key in counts if isinstance(key[3], int)})
print("| samples/rule | order | decoding | all | " + " | ".join(f"rule {r}" for r in rule_ids) + " | empty panels |")
print("|---|---|---|---|" + "---|" * len(rule_ids) + "---|")
for size in sizes:
    for order in ORDERS:
        for decoding in ("greedy", "sampled"):
            cells = []
            for rule in [None, *rule_ids]:
                k, n = counts[(size, order, decoding, rule)]
                low, high = wilson_interval(k, n)
                cells.append(f"{k / n:.3f} [{low:.3f}, {high:.3f}]")
            empty = ", ".join(f"{x:.3f}" for x in counts[(size, order, decoding, "empty")])
            print(f"| {size} | {order} | {decoding} | " + " | ".join(cells) + f" | {empty} |")
