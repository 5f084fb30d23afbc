"""Intervals for the rates the library reports."""

import math


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
