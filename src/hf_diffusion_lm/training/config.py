"""The training configuration (a `TrainingArguments` extension, as TRL's `SFTConfig`) and the model arguments."""

import json
from dataclasses import dataclass, field

from transformers import TrainingArguments

from ..schedules import check_choice


# (width d, heads, layers) of the data-constrained paper's model sizes (its setup table).
PAPER_SIZES = {
    "7M": (128, 4, 3), "14M": (224, 7, 4), "35M": (448, 7, 6), "57M": (576, 9, 9), "117M": (768, 12, 12),
    "140M": (768, 12, 15), "217M": (896, 14, 18), "306M": (1024, 16, 20), "425M": (1280, 10, 18),
    "552M": (1280, 10, 24), "724M": (1536, 12, 22), "1018M": (1792, 14, 23), "1429M": (2048, 16, 25),
    "2283M": (2304, 18, 32), "2639M": (2560, 20, 30),
}


@dataclass
class ModelArguments:
    """Which model to train. Its configuration takes any field of the family's config class (`MaskedDiffusionConfig`,
    `PermutedCausalConfig`, or the transformers config of another model type), with that class's defaults: pass them
    in `model_config`, or, in a recipe, as top-level YAML keys or `--field value` flags (`recipes/train.py` collects
    those into `model_config`). The vocabulary and special token ids come from the tokenizer, and
    `max_position_embeddings` defaults to the block size."""

    model: str = field(
        default="masked_diffusion",
        metadata={"help": "masked_diffusion, permuted_causal, or any transformers causal-LM model type (gpt2, llama, "
                          "mamba, ...) as an extra AR baseline."},
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Start from these weights (a local folder or Hub id) instead of from scratch."}
    )
    size: str | None = field(
        default=None,
        metadata={"help": f"One of the paper's sizes {list(PAPER_SIZES)}: sets hidden_size, num_attention_heads and "
                          "num_hidden_layers."},
    )
    model_config: dict | str | None = field(
        default=None,
        metadata={"help": "Fields of the family's config as JSON, e.g. '{\"hidden_size\": 128, \"num_orders\": 4}'."},
    )
    attn_implementation: str | None = field(default=None, metadata={"help": "eager, sdpa, flash_attention_2, ..."})
    pad_vocab_to_multiple_of: int = field(default=1, metadata={"help": "Round the vocabulary up (paper: 128)."})
    # LoRA through peft, with TRL's ModelConfig names.
    use_peft: bool = field(
        default=False,
        metadata={"help": "Train LoRA adapters on the weights of model_name_or_path instead of all the weights."},
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (the update is alpha / r * B A)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "Module names to adapt, e.g. q_proj v_proj (default: every linear layer but the output "
                          "head, peft's 'all-linear')."},
    )
    lora_modules_to_save: list[str] | None = field(
        default=None, metadata={"help": "Modules trained in full and saved with the adapter, e.g. embed_tokens."}
    )

    def __post_init__(self):
        if isinstance(self.model_config, str):
            self.model_config = json.loads(self.model_config)
        self.model_config = dict(self.model_config or {})
        if self.use_peft and self.model_name_or_path is None:
            raise ValueError("use_peft=True adapts pretrained weights: pass --model_name_or_path <checkpoint> (LoRA on "
                             "a randomly initialised model trains a low-rank update of noise).")
        if self.use_peft and (self.lora_r < 1 or self.lora_alpha <= 0 or not 0 <= self.lora_dropout < 1):
            raise ValueError(f"LoRA needs lora_r >= 1, lora_alpha > 0 and 0 <= lora_dropout < 1; got lora_r="
                             f"{self.lora_r}, lora_alpha={self.lora_alpha}, lora_dropout={self.lora_dropout}.")
        if self.size is not None and self.size not in PAPER_SIZES:
            raise ValueError(f"size={self.size!r} is not one of the paper's sizes {list(PAPER_SIZES)}.")

    def config_fields(self) -> dict:
        """`model_config` with the shape of `size` filled in."""
        if self.size is None:
            return dict(self.model_config)
        shape = dict(zip(("hidden_size", "num_attention_heads", "num_hidden_layers"), PAPER_SIZES[self.size]))
        clashes = {key: self.model_config[key] for key in shape if self.model_config.get(key, shape[key]) != shape[key]}
        if clashes:
            raise ValueError(f"size={self.size!r} sets {shape}, but the model config also sets {clashes}; give one.")
        return {**self.model_config, **shape}


@dataclass
class LMTrainingConfig(TrainingArguments):
    """`TrainingArguments` plus the data and validation settings of a data-constrained run."""

    dataset: str = field(
        default="rules",
        metadata={"help": "'rules' (the abstract-rule data, generated here), 'python_stdlib' (the interpreter's own "
                          "standard-library sources, one document per file), a Hub dataset name, or a local file "
                          "format (text, json, parquet, csv) with data_files (files or folders)."},
    )
    data_files: list[str] | None = field(default=None, metadata={"help": "Local files for text/json/parquet."})
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    dataset_split: str = field(default="train", metadata={"help": "Split holding the training documents."})
    text_column: str = field(default="text", metadata={"help": "Column with the documents' text."})
    sample_by: str = field(
        default="line", metadata={"help": "dataset=text: one document per line, paragraph or file ('document')."}
    )
    tokenizer_name: str | None = field(
        default=None,
        metadata={"help": "Text data: a tokenizer folder or Hub id, or bpe:<vocabulary size> to train a byte-level BPE "
                          "on the corpus's first documents."},
    )
    block_size: int = field(default=256, metadata={"help": "Tokens per packed training sequence."})
    unique_tokens: int | None = field(
        default=None, metadata={"help": "U: train on exactly the first U tokens of the corpus (default: all)."}
    )
    validation_tokens: int = field(
        default=65536, metadata={"help": "Tokens of held-out documents (after the training ones) for validation."}
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenization."})
    rules: list[int] | None = field(default=None, metadata={"help": "rules data: the rule ids to use (default: all)."})
    heldout_rules: list[int] | None = field(
        default=None,
        metadata={"help": "rules data: rule ids never trained on. Default: the paper's [1, 16, 20, 34, 37] when `rules` "
                          "is not set, none when it is."},
    )
    samples_per_rule: int = field(default=400, metadata={"help": "rules data: training samples per rule."})
    validation_samples_per_rule: int = field(default=50, metadata={"help": "rules data: fresh validation samples."})
    rule_scheme: str = field(default="attribute", metadata={"help": "rules data: attribute or object tokens."})
    rule_metric_samples: int = field(
        default=64,
        metadata={"help": "rules data: unconditional samples generated for the end-of-run rule metrics (0: no rule "
                          "metrics)."},
    )
    validation_repeats: int = field(
        default=4, metadata={"help": "Monte Carlo repetitions K of the diffusion validation ELBO (paper: 32)."}
    )
    validation_seed: int = field(default=1234, metadata={"help": "Seed of the validation masks and times."})
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Stop after this many evaluations without a better validation loss."}
    )
    stop_after_seconds: float | None = field(
        default=None,
        metadata={"help": "Save a checkpoint and stop once this call has trained this many wall-clock seconds; the "
                          "same command with --resume_from_checkpoint continues. For short device windows."},
    )
    include_num_input_tokens_seen: str = field(
        default="non_padding", metadata={"help": "Count training tokens (needed for tokens seen and epochs)."}
    )
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep every collated column."})

    def __post_init__(self):
        if self.unique_tokens is not None and self.unique_tokens < 1:
            raise ValueError(f"unique_tokens={self.unique_tokens} must be a positive number of tokens (or left out: "
                             "all the training data).")
        check_choice("sample_by", self.sample_by, ("line", "paragraph", "document"))
        if self.stop_after_seconds is not None and not self.stop_after_seconds > 0:
            raise ValueError(f"stop_after_seconds={self.stop_after_seconds} must be a positive number of seconds (or "
                             "left out: train to max_steps).")
        super().__post_init__()
