"""Chance baselines: what a model that learned no rule scores. A model is "above chance" only above these.

Spec figures (fresh samples, 35 trained rules x 4000): random training panel 0.073 trained / 0.052
held-out, copy the middle panel 0.141 / 0.228; rows assembled from panels of different training rows
give AnyValid 0.37 and C3 0.00.
"""

import numpy as np

from .checker import check_samples, completion_correct, consistency, with_last_panel


def random_panel_completion(samples, train_samples, seed: int = 0) -> np.ndarray:
    """bool [N]: completion correctness when the answer is a random panel of a random training sample."""
    samples = check_samples(samples, "samples")
    panels = check_samples(train_samples, "train_samples").reshape(-1, 9, 3)
    if not len(panels):
        raise ValueError("train_samples is empty")
    answer = panels[np.random.default_rng(seed).integers(len(panels), size=len(samples))]
    return completion_correct(with_last_panel(samples, answer))


def copy_middle_completion(samples) -> np.ndarray:
    """bool [N]: completion correctness when the answer copies the middle panel of the last row."""
    samples = check_samples(samples, "samples")
    return completion_correct(with_last_panel(samples, samples[:, 2, 1]))


def shuffled_panel_samples(train_samples, n: int, seed: int = 0) -> np.ndarray:
    """[n, 3, 3, 9, 3] unconditional chance samples: panel p of every row is panel p of a random training row."""
    rows = check_samples(train_samples, "train_samples").reshape(-1, 3, 9, 3)
    if not len(rows):
        raise ValueError("train_samples is empty")
    source = np.random.default_rng(seed).integers(len(rows), size=(n, 3, 3))  # [sample, row, panel]
    return rows[source, np.arange(3)]


def chance_baselines(test, train_samples, heldout=(), seed: int = 0) -> dict[str, float]:
    """All chance baselines for a test split (RuleSplit) against training samples [M, 3, 3, 9, 3].

    Completion baselines are reported separately on trained and held-out rules (keys *_trained,
    *_heldout; NaN where the split has no such sample); unconditional ones on len(test) samples.
    """
    heldout_mask = np.isin(test.rule_ids, list(heldout))
    out = {}
    for name, correct in (("random_panel", random_panel_completion(test.samples, train_samples, seed)),
                          ("copy_middle", copy_middle_completion(test.samples))):
        for part, mask in (("trained", ~heldout_mask), ("heldout", heldout_mask)):
            out[f"{name}_{part}"] = float(correct[mask].mean()) if mask.any() else float("nan")
    shuffled = consistency(shuffled_panel_samples(train_samples, len(test), seed))
    out |= {f"shuffled_panels_{k}": float(v) for k, v in shuffled.items()}
    return out
