"""Evaluate a checkpoint of either family (or any transformers causal LM) with lm-evaluation-harness.

    python recipes/evaluate.py --model outputs/default                       # the paper's nine 0-shot tasks
    python recipes/evaluate.py --model outputs/default --tasks my_task --include_path my_tasks/ --limit 100
    accelerate launch --num_processes 2 recipes/evaluate.py --model outputs/default --mc_samples 32

Writes lm-eval's results JSON and a Markdown table with standard errors under `<model>/lm_eval` (or
`--output_path`). The paper's tasks download their datasets from the Hub the first time; offline, use local task
YAMLs through `--include_path`.
"""

import sys

from transformers import HfArgumentParser

from hf_diffusion_lm.evaluation.harness import EvaluationArguments, evaluate_checkpoint


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
