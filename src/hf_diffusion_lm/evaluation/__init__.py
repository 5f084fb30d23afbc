"""Evaluation: likelihood estimators with standard errors for both families and any transformers causal LM."""

from .likelihood import (
    CONTINUATION_METHODS,
    GREEDY_CRITERIA,
    SEQUENCE_METHODS,
    DatasetLikelihood,
    Estimate,
    continuation_log_likelihood,
    dataset_likelihood,
    is_greedy,
    keyed_generator,
    sequence_log_likelihood,
)


__all__ = [
    "CONTINUATION_METHODS",
    "DatasetLikelihood",
    "Estimate",
    "GREEDY_CRITERIA",
    "SEQUENCE_METHODS",
    "continuation_log_likelihood",
    "dataset_likelihood",
    "is_greedy",
    "keyed_generator",
    "sequence_log_likelihood",
]
