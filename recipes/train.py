"""Train a masked diffusion LM, a permuted-order AR model, or any transformers causal LM.

    accelerate launch recipes/train.py                                   # embedded default: configs/default.yaml
    accelerate launch recipes/train.py --model permuted_causal --num_orders 4
    accelerate launch --config_file recipes/accelerate_configs/zero2.yaml recipes/train.py recipes/configs/X.yaml

A YAML config sets any field of `ModelArguments` or `LMTrainingConfig` (TrainingArguments); command-line flags
override it.
"""

import json
import sys
from dataclasses import fields
from pathlib import Path

import yaml
from transformers import HfArgumentParser, set_seed

from hf_diffusion_lm.training import LMTrainer, LMTrainingConfig, ModelArguments, build_datasets, build_model
from hf_diffusion_lm.training.report import write_run_report


DEFAULT_CONFIG = Path(__file__).parent / "configs" / "default.yaml"


def yaml_to_flags(path: Path) -> list[str]:
    """The YAML's keys as command-line flags, refusing keys that no dataclass field has."""
    values = yaml.safe_load(path.read_text()) or {}
    known = {f.name for dataclass in (ModelArguments, LMTrainingConfig) for f in fields(dataclass)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path}: unknown config key(s) {unknown}; see `python recipes/train.py --help`.")
    flags = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, list):
            if not value:
                raise ValueError(f"{path}: {key} is an empty list; leave the key out instead.")
            flags += [f"--{key}", *map(str, value)]
        elif isinstance(value, dict):
            flags += [f"--{key}", json.dumps(value)]
        else:
            flags += [f"--{key}", str(value)]
    return flags


def parse_config(argv: list[str]) -> tuple[ModelArguments, LMTrainingConfig]:
    if argv and argv[0].endswith((".yaml", ".yml")):
        config_path, overrides = Path(argv[0]), argv[1:]
    else:
        config_path, overrides = DEFAULT_CONFIG, argv
    parser = HfArgumentParser((ModelArguments, LMTrainingConfig))
    return parser.parse_args_into_dataclasses(args=yaml_to_flags(config_path) + overrides)


def main(argv: list[str] | None = None):
    model_args, config = parse_config(sys.argv[1:] if argv is None else argv)
    set_seed(config.seed)
    tokenizer, datasets, unique_tokens = build_datasets(config)
    block_size = len(datasets["train"][0]["input_ids"])
    model = build_model(model_args, tokenizer, block_size)
    trainer = LMTrainer(
        model=model,
        args=config,
        train_dataset=datasets["train"],
        eval_dataset=datasets["validation"],
        processing_class=tokenizer,
        unique_tokens=unique_tokens,
    )
    initial = trainer.evaluate(metric_key_prefix="initial")
    trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    trainer.save_model()
    final = trainer.evaluate()
    trainer.save_metrics("eval", {**initial, **final})
    trainer.save_state()
    if trainer.is_world_process_zero():
        write_run_report(trainer, model_args, config, initial, final, datasets)


if __name__ == "__main__":
    main()
