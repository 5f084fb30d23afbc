"""Noise schedules, loss weights and time sampling of the masked-diffusion forward process.

A schedule gives alpha(t), the probability that a token is still clean at time t in [0, 1] (alpha(0) = 1: clean;
alpha(1) = 0: all MASK). Every token is replaced by MASK independently with probability 1 - alpha(t). The
continuous-time ELBO weights the cross-entropy of the masked tokens by w(t) = -alpha'(t) / (1 - alpha(t)); under
that weight the expected loss does not depend on the schedule.
"""

import math

import torch


NOISE_SCHEDULES = ("linear", "cosine", "log-linear")
LOSS_WEIGHTINGS = ("elbo", "uniform")
TIME_SAMPLINGS = ("antithetic", "iid")


class NoiseSchedule:
    """Base class: subclasses define `alpha` and `alpha_derivative` for t of any shape."""

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def alpha_derivative(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def masking_probability(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 - self.alpha(t)

    def elbo_weight(self, t: torch.Tensor) -> torch.Tensor:
        return -self.alpha_derivative(t) / self.masking_probability(t)


class LinearSchedule(NoiseSchedule):
    """alpha(t) = 1 - t, so w(t) = 1/t (LLaDA, SMDM and the data-constrained paper)."""

    def alpha(self, t):
        return 1.0 - t

    def alpha_derivative(self, t):
        return -torch.ones_like(t)


class CosineSchedule(NoiseSchedule):
    """alpha(t) = 1 - cos(pi/2 (1 - t)): few tokens are masked early, w(t) = pi/2 tan(pi/2 (1 - t))."""

    def alpha(self, t):
        return 1.0 - torch.cos(0.5 * math.pi * (1.0 - t))

    def alpha_derivative(self, t):
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * (1.0 - t))


class LogLinearSchedule(NoiseSchedule):
    """MDLM's default: total noise sigma(t) = -log(1 - (1 - eps) t), i.e. alpha(t) = 1 - (1 - eps) t, w(t) = 1/t."""

    def __init__(self, eps: float = 1e-3):
        self.eps = eps

    def alpha(self, t):
        return 1.0 - (1.0 - self.eps) * t

    def alpha_derivative(self, t):
        return torch.full_like(t, -(1.0 - self.eps))


def check_choice(name: str, value, allowed) -> None:
    """Raise a `ValueError` naming `value` when it is not one of `allowed`."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {tuple(allowed)}.")


def get_noise_schedule(name: str, eps: float = 1e-3) -> NoiseSchedule:
    """The schedule called `name` (one of `NOISE_SCHEDULES`)."""
    if name == "linear":
        return LinearSchedule()
    if name == "cosine":
        return CosineSchedule()
    if name == "log-linear":
        return LogLinearSchedule(eps)
    raise ValueError(f"noise_schedule={name!r} is not one of {NOISE_SCHEDULES}.")


def sample_times(
    num_times: int,
    method: str = "antithetic",
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Diffusion times in [eps, 1], shape `[num_times]`.

    `"antithetic"` draws one u ~ U(0, 1) and spreads the batch evenly, t_i = (u + i / n) mod 1, so every batch covers
    the whole time range (lower-variance loss). A trainer draws the times of its *global* batch with one call and
    hands each process its slice. `"iid"` draws every time independently.
    """
    if num_times < 1:
        raise ValueError(f"num_times={num_times} must be >= 1.")
    if method == "antithetic":
        offset = torch.rand(1, generator=generator, device=device)
        u = (offset + torch.arange(num_times, device=device) / num_times) % 1.0
    elif method == "iid":
        u = torch.rand(num_times, generator=generator, device=device)
    else:
        raise ValueError(f"time_sampling={method!r} is not one of {TIME_SAMPLINGS}.")
    return eps + (1.0 - eps) * u
