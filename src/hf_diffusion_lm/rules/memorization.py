"""Memorization: how many generated samples, rows and panels appear exactly in the training set.

Compare with a control set of fresh samples of the same size: fresh panels match training panels
often by chance (about 0.33-0.45 in the spec), so panel-level rates mean little on their own.
"""

import numpy as np

from .checker import check_samples
from .generator import sample_keys

LEVELS = {"sample": (3, 3, 9, 3), "row": (3, 9, 3), "panel": (9, 3)}  # 243, 81 and 27 ints


def memorization_rates(samples, train_samples) -> dict[str, float]:
    """Fraction of the samples, rows and panels of samples [N, 3, 3, 9, 3] found exactly in train_samples."""
    samples = check_samples(samples, "samples")
    train = check_samples(train_samples, "train_samples")
    rates = {}
    for level, shape in LEVELS.items():
        seen = set(sample_keys(train.reshape(-1, *shape)).tolist())
        keys = sample_keys(samples.reshape(-1, *shape)).tolist()
        rates[level] = float(np.mean([key in seen for key in keys])) if keys else float("nan")
    return rates


def memorization_report(generated, train_samples, control) -> dict[str, dict[str, float]]:
    """{"generated": rates, "control": rates}; control is a fresh draw, ideally as large as generated."""
    return {"generated": memorization_rates(generated, train_samples),
            "control": memorization_rates(control, train_samples)}
