"""Training both model families with the `Trainer`: configuration, data pipeline and the `LMTrainer` subclass."""

from .config import LMTrainingConfig, ModelArguments
from .data import build_datasets, build_rule_datasets, build_text_datasets, ensure_mask_token, load_text_dataset
from .modeling import build_model
from .trainer import LMTrainer, global_batch_noise


__all__ = [
    "LMTrainer",
    "LMTrainingConfig",
    "ModelArguments",
    "build_datasets",
    "build_model",
    "build_rule_datasets",
    "build_text_datasets",
    "ensure_mask_token",
    "global_batch_noise",
    "load_text_dataset",
]
