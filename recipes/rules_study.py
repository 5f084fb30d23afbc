"""The rule-learning study: train every (model class, samples per rule) run, measure it, and write the report.

    python recipes/rules_study.py                                   # recipes/rules/cpu.yaml: ~1.5 h on 2 CPU cores
    python recipes/rules_study.py recipes/rules/paper.yaml          # 35 rules, 400 / 4000 per rule, 384 x 12 (GPU)
    python recipes/rules_study.py recipes/rules/cpu.yaml --output_dir outputs/x --runs diffusion_400_seed0
    python recipes/rules_study.py --train_only --runs ar_400_seed1    # train now, measure in a later call
    python recipes/rules_study.py --report_only                         # the report of what is measured so far

Each run trains with `accelerate launch recipes/train.py` (the study's `accelerate_config` picks DDP, DeepSpeed, ...)
and is then evaluated in this process. Run the same command again to resume: runs with a results.json are kept,
a trained model is evaluated without retraining, and a half-trained run resumes from its last checkpoint.
Outputs: <output_dir>/results.{md,json}, *.png plots, samples/*.png, runs/<run>/ (model, samples as .npy).
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from hf_diffusion_lm.training import launch

from hf_diffusion_lm.rules.study import (EXACT_SAMPLER_FILE, RESULTS_FILE, StudyConfig, best_diffusion_run, curve,
                                         curve_point, evaluate_run, exact_sampler_check, write_json,
                                         write_study_report)

DEFAULT_CONFIG = Path(__file__).parent / "rules" / "cpu.yaml"
TRAIN_SCRIPT = Path(__file__).parent / "train.py"


def parse_config(argv: list[str]) -> tuple[StudyConfig, list[str] | None, str | None]:
    """A YAML config (default recipes/rules/cpu.yaml), then `--field value` overrides (values read as YAML, so
    `--samples_per_rule [100,1000]` works); `--runs a b` restricts the study to some runs; the mode is "train_only",
    "report_only" or None (train and measure)."""
    config_path = argv[0] if argv and argv[0].endswith((".yaml", ".yml")) else str(DEFAULT_CONFIG)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     usage="%(prog)s [config.yaml] [--field value ...] [--runs NAME ...]")
    parser.add_argument("--runs", nargs="+", default=None, help="Only these runs (e.g. diffusion_400_seed0).")
    parser.add_argument("--train_only", action="store_true",
                        help="Train the runs and stop; a later call without the flag measures them.")
    parser.add_argument("--report_only", action="store_true",
                        help="Train and measure nothing new: the report (and the exact-sampler check) of the runs "
                             "measured so far.")
    args, overrides = parser.parse_known_args(argv[1:] if argv and argv[0] == config_path else argv)
    values = yaml.safe_load(Path(config_path).read_text()) or {}
    if len(overrides) % 2 or not all(flag.startswith("--") for flag in overrides[::2]):
        raise ValueError(f"Overrides must come as `--field value` pairs, got {overrides}.")
    values |= {flag[2:]: yaml.safe_load(value) for flag, value in zip(overrides[::2], overrides[1::2])}
    known = StudyConfig.__dataclass_fields__
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{config_path}: unknown study field(s) {unknown}; known fields: {sorted(known)}.")
    if args.train_only and args.report_only:
        raise ValueError("--train_only and --report_only exclude each other.")
    return StudyConfig(**values), args.runs, "train_only" if args.train_only else "report_only" if args.report_only \
        else None


def train_command(config: StudyConfig, run_dir: Path) -> list[str]:
    return launch.train_command(TRAIN_SCRIPT, run_dir, config.accelerate_config)


def train(config: StudyConfig, run: dict, run_dir: Path, stop_after_seconds: float | None = None) -> None:
    """Train one run (resuming from its last checkpoint); with `stop_after_seconds` it may stop early with a
    checkpoint, and then leaves no eval_results.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fields = config.training_fields(run, run_dir)
    if stop_after_seconds is not None:
        fields["stop_after_seconds"] = stop_after_seconds
    (run_dir / "train_config.yaml").write_text(yaml.safe_dump(fields, sort_keys=False))
    command = train_command(config, run_dir)
    print(f"[study] training {run['name']}: {' '.join(command)}", flush=True)
    subprocess.run(command, check=True)  # recipes/train.py gives itself the cores (training/threads.py)


def device() -> str:
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True  # sampling thousands of sequences; TF32 is ample for that
    return "cuda"


def evaluate(config: StudyConfig, run: dict, run_dir: Path) -> dict:
    from hf_diffusion_lm import FAMILIES
    from hf_diffusion_lm.rules import RuleTokenizer

    print(f"[study] evaluating {run['name']}", flush=True)
    model_class = FAMILIES[run["model"]].model_class
    tokenizer = RuleTokenizer.from_pretrained(run_dir)
    result = evaluate_run(model_class.from_pretrained(run_dir).to(device()), tokenizer, config, run, run_dir)
    points = []
    for step in config.curve_steps:
        if step != result["steps"]:
            print(f"[study] {run['name']}: curve point at step {step}", flush=True)
            model = model_class.from_pretrained(run_dir / f"checkpoint-{step}").to(device())
            points.append(curve_point(model, tokenizer, config, run, step))
    result["curve"] = curve(result, points)
    return result


def exact_sampler(config: StudyConfig, result: dict, run_dir: Path, measured: list[str]) -> dict:
    from hf_diffusion_lm import MaskedDiffusionForLM
    from hf_diffusion_lm.rules import RuleTokenizer

    print(f"[study] exact ancestral sampler on {result['name']}", flush=True)
    model = MaskedDiffusionForLM.from_pretrained(run_dir).to(device())
    return exact_sampler_check(model, RuleTokenizer.from_pretrained(run_dir), config, result, measured)


def main(argv: list[str] | None = None) -> list[dict]:
    config, only, mode = parse_config(sys.argv[1:] if argv is None else argv)
    output_dir = Path(config.output_dir)
    runs = config.runs()
    unknown = sorted(set(only or ()) - {run["name"] for run in runs})
    if unknown:
        raise ValueError(f"--runs {unknown} are not runs of this study; its runs are {[r['name'] for r in runs]}.")
    results, study_started, out_of_time = [], time.perf_counter(), False
    for run in runs:
        run_dir = output_dir / "runs" / run["name"]
        if (run_dir / RESULTS_FILE).exists():
            print(f"[study] {run['name']}: finished, kept", flush=True)
            results.append(json.loads((run_dir / RESULTS_FILE).read_text()))
            continue
        if only is not None and run["name"] not in only or out_of_time or mode == "report_only":
            continue
        remaining = None if config.time_limit_seconds is None else \
            config.time_limit_seconds - (time.perf_counter() - study_started)
        if remaining is not None and remaining <= 0:
            print(f"[study] time_limit_seconds={config.time_limit_seconds} used up before {run['name']}; run the same "
                  "command again to continue.", flush=True)
            out_of_time = True
            continue
        # eval_results.json is written after the final model: its presence means training finished.
        started = time.perf_counter()
        if not (run_dir / "eval_results.json").exists():
            train(config, run, run_dir, stop_after_seconds=remaining)
            if not (run_dir / "eval_results.json").exists():
                print(f"[study] {run['name']} stopped at the time limit with a checkpoint; run the same command "
                      "again to continue.", flush=True)
                out_of_time = True
                continue
        if mode == "train_only":
            continue
        trained = time.perf_counter()
        result = evaluate(config, run, run_dir)
        result["wall_seconds"] = {"train": round(trained - started, 1), "evaluate": round(time.perf_counter() - trained, 1)}
        write_json(run_dir / RESULTS_FILE, result)
        if not config.keep_checkpoints:
            for checkpoint in run_dir.glob("checkpoint-*"):
                shutil.rmtree(checkpoint)
        results.append(result)
    exact_path = output_dir / EXACT_SAMPLER_FILE
    # A call of the whole study (not --runs) checks the exact sampler once, on the best diffusion run measured so far.
    if config.exact_sampler_samples and only is None and results and not exact_path.exists():
        best = best_diffusion_run(results)
        if best is not None:
            measured = [r["name"] for r in results]
            write_json(exact_path, exact_sampler(config, best, output_dir / "runs" / best["name"], measured))
    if results:
        paths = write_study_report(results, output_dir)
        print(f"[study] {len(results)}/{len(runs)} runs done; table: {paths['markdown']}", flush=True)
    return results


if __name__ == "__main__":
    main()
