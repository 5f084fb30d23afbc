"""Building the model a run trains: one of ours, or any transformers causal LM as an extra AR baseline."""

import dataclasses

from transformers import AutoConfig, PretrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from ..families import CAUSAL_LM, FAMILIES, family_of
from .config import ModelArguments


def config_class_of(model: str):
    """The config class of a `--model` value: one of our families or a transformers model type."""
    if model in FAMILIES:
        return FAMILIES[model].config_class
    if model not in CONFIG_MAPPING:
        raise ValueError(
            f"model={model!r} is unknown: use one of {list(FAMILIES)}, or a transformers causal-LM model type such as "
            "gpt2, llama or mamba."
        )
    return CONFIG_MAPPING[model]


def config_field_names(model: str) -> set[str]:
    """Every field a recipe may set on the model's config (its dataclass fields and their aliases)."""
    config_class = config_class_of(model)
    return {f.name for f in dataclasses.fields(config_class)} | set(getattr(config_class, "attribute_map", {}))


def build_model(arguments: ModelArguments, tokenizer, block_size: int):
    """A freshly initialised model configured by `arguments.model_config`, with the tokenizer's vocabulary (plus MASK
    for diffusion) and special token ids, or the weights of `model_name_or_path` with embeddings resized to the
    tokenizer; wrapped with LoRA adapters (a `peft.PeftModel`) when `use_peft`."""
    family = family_of(arguments.model)
    if arguments.model_name_or_path is not None:
        if family.is_diffusion and source_model_type(arguments.model_name_or_path) != family.name:
            model = adapt_causal_lm(arguments, tokenizer)
        else:
            model = family.auto_class.from_pretrained(arguments.model_name_or_path)
        if model.get_input_embeddings().num_embeddings < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=arguments.pad_vocab_to_multiple_of)
        return with_lora(model, arguments) if arguments.use_peft else model

    fields = arguments.config_fields()
    unknown = sorted(set(fields) - config_field_names(arguments.model))
    if unknown:
        raise ValueError(f"model={arguments.model!r}: its config has no field(s) {unknown}.")
    owned = {"vocab_size", "bos_token_id", "eos_token_id", "pad_token_id", "mask_token_id"} & set(fields)
    if owned:
        raise ValueError(f"{sorted(owned)} come from the tokenizer; do not set them in the model config.")
    positions = fields.setdefault("max_position_embeddings", block_size)
    if block_size > positions:
        raise ValueError(
            f"block_size={block_size} exceeds max_position_embeddings={positions}; shorten the blocks or raise "
            "max_position_embeddings."
        )
    multiple = arguments.pad_vocab_to_multiple_of
    fields.update(vocab_size=-(-len(tokenizer) // multiple) * multiple, bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    if family.is_diffusion:
        fields["mask_token_id"] = tokenizer.mask_token_id
    if arguments.attn_implementation:
        fields["attn_implementation"] = arguments.attn_implementation
    if family is CAUSAL_LM:
        return family.auto_class.from_config(AutoConfig.for_model(arguments.model, **fields))
    return family.model_class(family.config_class(**fields))


def with_lora(model, arguments: ModelArguments):
    """The model with peft's LoRA adapters on `lora_target_modules` (default: every linear layer but the head); only
    the adapters (and `lora_modules_to_save`) train."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=arguments.lora_r, lora_alpha=arguments.lora_alpha, lora_dropout=arguments.lora_dropout,
                        target_modules=arguments.lora_target_modules or "all-linear",
                        modules_to_save=arguments.lora_modules_to_save)
    return get_peft_model(model, config)


# Causal LMs whose decoder blocks are ours, parameter for parameter (same names and shapes).
ADAPTABLE_CAUSAL_LMS = ("llama",)


def source_model_type(model_name_or_path: str) -> str | None:
    return PretrainedConfig.get_config_dict(model_name_or_path)[0].get("model_type")


def adapt_causal_lm(arguments: ModelArguments, tokenizer):
    """A `MaskedDiffusionForLM` initialised from a Llama-family causal LM (the DiffuLLaMA / Dream recipe): the same
    blocks with the same weights, attention made bidirectional, the tokenizer's MASK id set (`build_model` adds its
    embedding when the vocabulary has no room for it). `model_config` fields the source has not got (e.g. `shift_logits:
    true`, Dream's choice of keeping the AR head's next-token habit; `noise_schedule`) are added; the source's own
    fields (its shape) always win."""
    source = AutoConfig.from_pretrained(arguments.model_name_or_path).to_dict()
    if source["model_type"] not in ADAPTABLE_CAUSAL_LMS:
        raise ValueError(f"model_name_or_path={arguments.model_name_or_path!r} is a {source['model_type']!r} model; a "
                         f"masked diffusion model can be adapted from {list(ADAPTABLE_CAUSAL_LMS)} checkpoints (same "
                         "blocks, weights one to one), or loaded from one of ours.")
    family = family_of(arguments.model)
    names = config_field_names(arguments.model)
    # The source's own fields (its shape) win; model_config supplies the diffusion fields a causal LM has not got.
    fields = arguments.config_fields() | {key: value for key, value in source.items()
                                          if key in names and key not in ("architectures", "auto_map")}
    mask_token_id, vocab_size = tokenizer.mask_token_id, source["vocab_size"]
    # Loaded at the source's vocabulary size (MASK parked on its last id while it lies beyond).
    fields |= dict(vocab_size=vocab_size, mask_token_id=mask_token_id if mask_token_id < vocab_size else vocab_size - 1,
                   bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id)
    fields.pop("model_type", None)
    model = family.model_class.from_pretrained(arguments.model_name_or_path, config=family.config_class(**fields))
    model.config.mask_token_id = mask_token_id  # build_model then grows the embeddings to the tokenizer
    return model
