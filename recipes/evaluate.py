"""Evaluate a checkpoint of either family (or any transformers causal LM) with lm-evaluation-harness.

    python recipes/evaluate.py --model outputs/default                       # the paper's nine 0-shot tasks
    python recipes/evaluate.py --model outputs/default --tasks my_task --include_path my_tasks/ --limit 100
    accelerate launch --num_processes 2 recipes/evaluate.py --model outputs/default --mc_samples 32

Writes lm-eval's results JSON and a Markdown table with standard errors under `<model>/lm_eval` (or
`--output_path`). The paper's tasks download their datasets from the Hub the first time; offline, use local task
YAMLs through `--include_path`.
"""

import sys
from pathlib import Path

# This file shares its name with Hugging Face's `evaluate` library, which lm-eval's tasks import: keep the recipes
# folder (sys.path[0] when this runs as a script) out of the import path, so `import evaluate` finds the library.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

from transformers import HfArgumentParser  # noqa: E402

from hf_diffusion_lm.evaluation.harness import EvaluationArguments, evaluate_checkpoint  # noqa: E402


def main(argv: list[str] | None = None) -> dict | None:
    (args,) = HfArgumentParser(EvaluationArguments).parse_args_into_dataclasses(
        args=sys.argv[1:] if argv is None else argv)
    results = evaluate_checkpoint(args)
    if results is not None:
        print(results["results_table"])
        print(f"[evaluate] lm-eval results: {results['results_file']}", flush=True)
    return results


if __name__ == "__main__":
    main()
