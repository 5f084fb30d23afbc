"""Train a masked diffusion LM, a permuted-order AR model, or any transformers causal LM.

    accelerate launch recipes/train.py                                   # embedded default: configs/default.yaml
    accelerate launch recipes/train.py --model permuted_causal --num_orders 4
    accelerate launch --config_file recipes/accelerate_configs/zero2.yaml recipes/train.py recipes/configs/X.yaml

A YAML config sets any field of `ModelArguments`, `LMTrainingConfig` (TrainingArguments) or of the model family's
config (`hidden_size`, `num_orders`, `time_epsilon`, ...); command-line flags override it.
"""

import json
import sys
from dataclasses import fields
from pathlib import Path

import yaml
from transformers import HfArgumentParser, set_seed

from hf_diffusion_lm.training import LMTrainer, LMTrainingConfig, ModelArguments, build_datasets, build_model
from hf_diffusion_lm.training.modeling import config_field_names
from hf_diffusion_lm.training.report import write_run_report
from hf_diffusion_lm.training.threads import use_the_cores


DEFAULT_CONFIG = Path(__file__).parent / "configs" / "default.yaml"


def to_flags(values: dict, source) -> list[str]:
    """Config values as command-line flags for `HfArgumentParser`."""
    flags = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, list):
            if not value:
                raise ValueError(f"{source}: {key} is an empty list; leave the key out instead.")
            flags += [f"--{key}", *map(str, value)]
        elif isinstance(value, dict):
            flags += [f"--{key}", json.dumps(value)]
        else:
            flags += [f"--{key}", str(value)]
    return flags


def flags_to_values(flags: list[str]) -> dict:
    """`--field value [value ...]` pairs left over by `HfArgumentParser` (model config fields), typed as YAML reads
    them (`4` -> 4, `0.1` -> 0.1, `true` -> True)."""
    values, key = {}, None
    for flag in flags:
        if flag.startswith("--"):
            key = flag[2:].replace("-", "_")
            values[key] = []
        elif key is None:
            raise ValueError(f"Unexpected argument {flag!r}; model config fields are given as --field value.")
        else:
            values[key].append(yaml.safe_load(flag))
    return {key: items[0] if len(items) == 1 else items for key, items in values.items()}


def parse_config(argv: list[str]) -> tuple[ModelArguments, LMTrainingConfig]:
    """The run's arguments from a YAML config (default: the embedded one) and command-line overrides. Keys and flags
    that are not fields of `ModelArguments` or `LMTrainingConfig` are fields of the model's config."""
    if argv and argv[0].endswith((".yaml", ".yml")):
        config_path, overrides = Path(argv[0]), argv[1:]
    else:
        config_path, overrides = DEFAULT_CONFIG, argv
    values = yaml.safe_load(config_path.read_text()) or {}
    argument_fields = {f.name for dataclass in (ModelArguments, LMTrainingConfig) for f in fields(dataclass)}
    model_fields = {key: value for key, value in values.items() if key not in argument_fields}
    parser = HfArgumentParser((ModelArguments, LMTrainingConfig))
    flags = to_flags({key: value for key, value in values.items() if key in argument_fields}, config_path)
    model_args, config, rest = parser.parse_args_into_dataclasses(args=flags + overrides, return_remaining_strings=True)
    from_command_line = flags_to_values(rest)
    model_field_names = config_field_names(model_args.model)
    unknown = sorted(set(model_fields) - model_field_names)
    if unknown:
        raise ValueError(f"{config_path}: unknown config key(s) {unknown}; they are neither training arguments nor "
                         f"fields of the {model_args.model} config (see `python recipes/train.py --help`).")
    unknown = sorted(set(from_command_line) - model_field_names)
    if unknown:
        raise ValueError(f"unknown flag(s) {['--' + key for key in unknown]}; they are neither training arguments "
                         f"nor fields of the {model_args.model} config (see `python recipes/train.py --help`).")
    model_args.model_config = {**model_fields, **model_args.model_config, **from_command_line}
    model_args.config_fields()  # a clash between size and explicit fields fails here, before any work
    return model_args, config


def main(argv: list[str] | None = None):
    model_args, config = parse_config(sys.argv[1:] if argv is None else argv)
    threads = use_the_cores()
    if config.use_cpu and config.process_index == 0:
        print(f"[train] {threads} CPU thread(s) per process", flush=True)
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
    if trainer.stopped_at_time_limit:  # no final model or results: their presence means the run is finished
        if trainer.is_world_process_zero():
            print(f"[train] stop_after_seconds={config.stop_after_seconds} reached at step {trainer.state.global_step} "
                  f"of {trainer.state.max_steps}; checkpoint saved. Run again with --resume_from_checkpoint "
                  f"{config.output_dir}/checkpoint-{trainer.state.global_step} to continue.", flush=True)
        return
    trainer.save_model()
    final = trainer.evaluate()
    trainer.save_metrics("eval", {**initial, **final})
    trainer.save_state()
    if trainer.is_world_process_zero():
        write_run_report(trainer, model_args, config, initial, final, datasets)
    if config.push_to_hub:  # the Trainer's own upload of output_dir, with our card (LMTrainer.create_model_card)
        trainer.push_to_hub(commit_message="End of training")


if __name__ == "__main__":
    main()
