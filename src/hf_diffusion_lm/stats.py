"""Intervals for the rates the library reports, and reproducible random draws."""

import math

import torch


def keyed_generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded by a tuple of non-negative integers: what it draws depends on those keys only (the
    trainer keys by (seed, step) and by (validation seed, sample index); the likelihood estimators by (seed, request))."""
    seed = 0
    for key in keys:
        seed = seed * 1_000_003 + int(key)
    return torch.Generator().manual_seed(seed % 2**63)


def wilson_interval(successes: float, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial rate (95% for z = 1.96); (0, 1) when there are no trials.

    Unlike the normal approximation it stays inside [0, 1] and is not empty at a rate of 0 or 1.
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"successes={successes} must lie in [0, trials={trials}].")
    if trials == 0:
        return 0.0, 1.0
    rate = successes / trials
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half_width = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half_width), min(1.0, centre + half_width)
