"""Quality against speed of the samplers on trained rule models: C3 (and AnyValid) against samples per second, for the
diffusion samplers (network calls, confidence-threshold decoding, block caches, the compiled denoiser) and for the
causal model with its KV cache, all timed in one run on the same machine.

Reads the trained runs of a rule study (default: the CPU study, `python recipes/rules_study.py`), draws `--samples`
unconditional samples per setting and model seed, and prints one table: samples/s, network calls per sample batch,
AnyValid and C3 with 95% Wilson intervals pooled over the seeds, and the chance baseline (shuffled training panels).
Then the frontier: the best C3 diffusion reaches at AR's speed or faster, against AR's.

    python benchmarks/bench_rules_sampler_speed.py
    python benchmarks/bench_rules_sampler_speed.py --samples_per_rule 4000 --seeds 0 --samples 100
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from transformers.generation import CompileConfig

from hf_diffusion_lm import MaskedDiffusionForLM, PermutedCausalLM
from hf_diffusion_lm.rules import RuleTokenizer
from hf_diffusion_lm.rules.baselines import shuffled_panel_samples
from hf_diffusion_lm.rules.checker import consistency
from hf_diffusion_lm.rules.model_metrics import consistency_report, sample_unconditionally
from hf_diffusion_lm.rules.study import StudyConfig, training_samples
from hf_diffusion_lm.stats import wilson_interval


def diffusion_settings(sample_length: int) -> dict[str, dict]:
    """Name -> generate options. Random-order (ancestral) unmasking over the whole canvas; semi-autoregressive blocks
    of one panel (27 tokens) and of one object (3 tokens), exact and with the dual cache; confidence-first unmasking
    only with a threshold (parallel decoding), since without one it collapsed to empty panels in the first study."""
    ancestral = dict(remasking="random", do_sample=True)
    settings = {f"ancestral, {steps} calls": dict(ancestral, steps=steps) for steps in (sample_length, 48, 9)}
    settings["ancestral, 48 calls, compiled"] = dict(ancestral, steps=48, compile_config=CompileConfig(mode="default"))
    for block_length, caches, calls_per_block in ((27, ("none", "dual"), (1, 3, 27)), (3, ("dual",), (1, 3))):
        blocks = sample_length // block_length
        for cache in caches:
            for per_block in calls_per_block:
                if cache == "none" and per_block != block_length:
                    continue  # the exact reference of the cached settings only
                steps = blocks * per_block
                label = "no cache" if cache == "none" else f"{cache} cache"
                settings[f"blocks of {block_length}, {label}, {steps} calls"] = dict(
                    ancestral, steps=steps, block_length=block_length, block_cache=cache
                )
    settings["low-confidence, threshold 0.7"] = dict(
        remasking="low_confidence", do_sample=True, steps=sample_length, confidence_threshold=0.7
    )
    return settings


class CallCounter:
    def __init__(self, module):
        self.calls = 0
        self.handle = module.register_forward_hook(lambda *args: setattr(self, "calls", self.calls + 1))


def measure(model, tokenizer, train, samples, batch, seed, options) -> dict:
    counter = CallCounter(model.model)
    start = time.perf_counter()
    generated = sample_unconditionally(model, tokenizer, samples, batch, seed, **options)
    seconds = time.perf_counter() - start
    counter.handle.remove()
    report = consistency_report(generated, train)
    return {"seconds": seconds, "calls_per_batch": counter.calls / -(-samples // batch),
            "c3": (round(report["c3"] * samples), samples),
            "anyvalid": (round(report["anyvalid"] * report["anyvalid_trials"]), report["anyvalid_trials"])}


def pooled(parts: list[dict]) -> dict:
    samples = sum(x["c3"][1] for x in parts)
    out = {"samples_per_second": samples / sum(x["seconds"] for x in parts),
           "calls_per_batch": float(np.mean([x["calls_per_batch"] for x in parts]))}
    for name in ("c3", "anyvalid"):
        successes, trials = sum(x[name][0] for x in parts), sum(x[name][1] for x in parts)
        out[name], out[f"{name}_interval"] = successes / trials, wilson_interval(successes, trials)
    return out


def row(name: str, figures: dict) -> str:
    def rate(key):
        low, high = figures[f"{key}_interval"]
        return f"{figures[key]:.3f} [{low:.3f}, {high:.3f}]"

    return (f"| {name} | {figures['samples_per_second']:.1f} | {figures['calls_per_batch']:.0f} | {rate('anyvalid')} "
            f"| {rate('c3')} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="recipes/rules/cpu.yaml", help="the study whose trained runs are read")
    parser.add_argument("--samples_per_rule", type=int, default=400)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--samples", type=int, default=100, help="unconditional samples per setting and seed")
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    config = StudyConfig(**yaml.safe_load(Path(args.config).read_text()))
    runs = Path(config.output_dir) / "runs"

    results: dict[str, list[dict]] = {}
    chance = []
    for seed in args.seeds:
        train = training_samples(config, args.samples_per_rule, seed)
        chance.append(consistency(shuffled_panel_samples(train, args.samples, seed))["c3"])
        ar_dir, diffusion_dir = (runs / f"{family}_{args.samples_per_rule}_seed{seed}" for family in ("ar", "diffusion"))
        for run_dir in (ar_dir, diffusion_dir):
            if not (run_dir / "model.safetensors").exists():
                raise FileNotFoundError(f"{run_dir} holds no trained model; train it with `python recipes/rules_study.py "
                                        f"{args.config}` first.")
        tokenizer = RuleTokenizer.from_pretrained(diffusion_dir)
        ar = PermutedCausalLM.from_pretrained(ar_dir).eval()
        results.setdefault("AR, KV cache, 243 calls", []).append(measure(ar, tokenizer, train, args.samples,
                                                                           args.batch, seed, {}))
        diffusion = MaskedDiffusionForLM.from_pretrained(diffusion_dir).eval()
        for name, options in diffusion_settings(tokenizer.sample_length).items():
            if "compile_config" in options:  # compile outside the clock: one batch of the same shape first
                start = time.perf_counter()
                sample_unconditionally(diffusion, tokenizer, args.batch, args.batch, seed + 10**6, **options)
                print(f"[bench] {name}: first call (compiling) {time.perf_counter() - start:.1f} s", flush=True)
            results.setdefault(name, []).append(measure(diffusion, tokenizer, train, args.samples, args.batch, seed,
                                                        options))
            print(f"[bench] seed {seed} {name}: {results[name][-1]}", flush=True)

    print(f"\n{args.samples} samples per setting and seed, seeds {args.seeds}, {args.samples_per_rule} per rule, "
          f"batch {args.batch}, threads {torch.get_num_threads()}; chance C3 (shuffled training panels) "
          f"{np.mean(chance):.3f}")
    print("| sampler | samples/s | network calls | AnyValid | C3 |")
    print("|---|---|---|---|---|")
    figures = {name: pooled(parts) for name, parts in results.items()}
    for name, values in figures.items():
        print(row(name, values))
    ar_name = next(iter(figures))
    ar_speed, ar_c3 = figures[ar_name]["samples_per_second"], figures[ar_name]["c3"]
    diffusion = {name: values for name, values in figures.items() if name != ar_name}
    fast = {name: values for name, values in diffusion.items() if values["samples_per_second"] >= ar_speed}
    best = max(diffusion, key=lambda name: (diffusion[name]["c3"], diffusion[name]["samples_per_second"]))
    print(f"\nAR: {ar_speed:.1f} samples/s at C3 {ar_c3:.3f}. Best diffusion C3 at any speed: {best} "
          f"({diffusion[best]['c3']:.3f}, {diffusion[best]['samples_per_second']:.1f} samples/s).")
    if fast:
        best_fast = max(fast, key=lambda name: fast[name]["c3"])
        print(f"Best diffusion C3 at AR's speed or faster: {best_fast} ({fast[best_fast]['c3']:.3f}, "
              f"{fast[best_fast]['samples_per_second']:.1f} samples/s).")
    else:
        print("No diffusion setting reaches AR's speed.")


if __name__ == "__main__":
    main()
