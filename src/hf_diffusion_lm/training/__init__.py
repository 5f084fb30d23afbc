"""Training both model families with the `Trainer`: configuration, data pipeline and the `LMTrainer` subclass."""

from .config import LMTrainingConfig, ModelArguments
from .data import build_datasets, build_rule_datasets, build_text_datasets, ensure_mask_token, load_text_dataset
from .modeling import build_model
from ..stats import keyed_generator
from .trainer import LMTrainer


__all__ = [
    "LMTrainer",
    "LMTrainingConfig",
    "ModelArguments",
    "build_datasets",
    "build_model",
    "build_rule_datasets",
    "build_text_datasets",
    "ensure_mask_token",
    "keyed_generator",
    "load_text_dataset",
]
