"""Data-constrained scaling laws (Muennighoff et al. 2023) and the diffusion-vs-AR comparison built on them.

Pure numpy / scipy / torch: nothing here imports the models, so it can be used on logged runs anywhere.

Notation (one run): N parameters, D tokens seen, U unique tokens, C = 6 N D FLOPs, L validation loss (nats/token).

    R_D = max(D / U - 1, 0)                     repetitions of the data (epochs - 1)
    U_N = min(N, N_opt for U tokens seen once)  parameters the unique data can use
    R_N = max(N / U_N - 1, 0)                   excess parameters, in units of U_N
    D'  = U   + U   R_D* (1 - exp(-R_D / R_D*))  effective data
    N'  = U_N + U_N R_N* (1 - exp(-R_N / R_N*))  effective parameters
    L   = E + A / N'^alpha + B / D'^beta

R_D* and R_N* are the decay constants ("half-lives") of repeated data and of excess parameters: a repeated token is
worth 1 - 1/e of a fresh one after about R_D* repetitions, and D' can never exceed U (1 + R_D*).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import brentq, minimize_scalar


__all__ = [
    "AR_DECAY_PRABHUDESAI",
    "DIFFUSION_DECAY_PRABHUDESAI",
    "MUENNIGHOFF_C4",
    "Allocation",
    "CriticalCompute",
    "DataConstrainedLaw",
    "DecayConstants",
    "FitGrid",
    "FitResult",
    "Run",
    "critical_compute",
    "fit_data_constrained",
    "paper_critical_compute",
    "parameter_count",
    "training_flops",
]


# ---- compute accounting ----------------------------------------------------------------------------------------
def parameter_count(hidden_size: int, num_layers: int, vocab_size: int, intermediate_size: int | None = None) -> int:
    """N = 4 L d^2 + 3 L d f + 6 L d + V d, the count the data-constrained papers fit their laws with.

    L layers, width d, SwiGLU inner size f (default: the papers' rule f = int(8 d / 3 / 64) * 64), vocabulary V
    (tied embeddings, counted once). It assumes full multi-head attention, so it over-counts grouped-query models;
    use it to compare with the papers, not to size memory.
    """
    for name, value in (("hidden_size", hidden_size), ("num_layers", num_layers), ("vocab_size", vocab_size)):
        if int(value) != value or value <= 0:
            raise ValueError(f"{name}={value!r} must be a positive integer.")
    d, layers = int(hidden_size), int(num_layers)
    inner = int(8 * d / 3 / 64) * 64 if intermediate_size is None else intermediate_size
    if int(inner) != inner or inner < 0:
        raise ValueError(f"intermediate_size={intermediate_size!r} must be a non-negative integer.")
    return 4 * layers * d**2 + 3 * layers * d * int(inner) + 6 * layers * d + int(vocab_size) * d


def training_flops(num_parameters, num_tokens):
    """C = 6 N D: forward (2 N D) plus backward (4 N D) multiply-adds counted as two FLOPs each. Broadcasts."""
    return 6.0 * num_parameters * num_tokens


# ---- the law ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Allocation:
    """One point on the iso-FLOP line C = 6 N D and the law's loss there; epochs = D / U."""

    parameters: float
    tokens: float
    unique_tokens: float
    loss: float

    @property
    def epochs(self) -> float:
        return self.tokens / self.unique_tokens

    @property
    def flops(self) -> float:
        return 6.0 * self.parameters * self.tokens


def _positive(name: str, value) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"{name}={value!r} must be finite and > 0.")
    return array


@dataclass(frozen=True)
class DataConstrainedLaw:
    """L(N, D, U) = E + A / N'^alpha + B / D'^beta with data and parameter decay (see the module docstring).

    Fields:
        A, B, E: scale of the parameter term, scale of the data term, irreducible loss (nats/token).
        alpha, beta: exponents of the parameter and data terms.
        R_D_star: decay constant of repeated data (in repetitions, R_D = epochs - 1).
        R_N_star: decay constant of excess parameters (in multiples of U_N beyond U_N).

    Example (Muennighoff's Figure 1 models, both at about 9.3e21 FLOPs with 25B unique tokens):

    ```python
    >>> round(MUENNIGHOFF_C4.loss(6.34e9, 242e9, 25e9), 6)
    2.225644
    ```"""

    A: float
    B: float
    E: float
    alpha: float
    beta: float
    R_D_star: float
    R_N_star: float

    def __post_init__(self):
        for name in ("A", "B", "E", "alpha", "beta", "R_D_star", "R_N_star"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value!r} must be a finite number > 0.")
            object.__setattr__(self, name, float(value))

    @classmethod
    def from_log_parameters(cls, a, b, e, alpha, beta, R_D_star, R_N_star) -> "DataConstrainedLaw":
        """The fitting parameterisation: A = exp(a), B = exp(b), E = exp(e)."""
        return cls(math.exp(a), math.exp(b), math.exp(e), alpha, beta, R_D_star, R_N_star)

    @property
    def log_parameters(self) -> tuple[float, ...]:
        """(a, b, e, alpha, beta, R_D*, R_N*), the inverse of `from_log_parameters`."""
        return (math.log(self.A), math.log(self.B), math.log(self.E), self.alpha, self.beta, self.R_D_star,
                self.R_N_star)

    # -- Chinchilla helpers (single epoch, no decay) --
    @property
    def G(self) -> float:
        """G = (alpha A / (beta B))^(1 / (alpha + beta)): N_opt(C) = G (C/6)^(beta/(alpha+beta))."""
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    def chinchilla_optimal(self, flops):
        """(N_opt, D_opt) minimising E + A/N^alpha + B/D^beta on 6 N D = C; broadcasts over C."""
        flops = _positive("flops", flops)
        share = flops / 6.0
        n_opt = self.G * share ** (self.beta / (self.alpha + self.beta))
        d_opt = share ** (self.alpha / (self.alpha + self.beta)) / self.G
        return _scalar_or_array(n_opt), _scalar_or_array(d_opt)

    def tokens_to_parameters(self, tokens):
        """N whose compute-optimal data is `tokens` seen once: (D G)^(beta/alpha) G (datablations' D_to_N)."""
        return (np.asarray(tokens, dtype=np.float64) * self.G) ** (self.beta / self.alpha) * self.G

    def single_epoch_loss(self, parameters, tokens):
        """E + A / N^alpha + B / D^beta (no repetition, no excess parameters)."""
        n, d = _positive("parameters", parameters), _positive("tokens", tokens)
        return _scalar_or_array(self.E + self.A / n**self.alpha + self.B / d**self.beta)

    # -- the data-constrained law --
    def loss(self, parameters, tokens, unique_tokens):
        """L(N, D, U) as datablations defines it; numpy-broadcast over N, D, U (float for scalar inputs).

        datablations requires U <= D; here a run that sees fewer tokens than the pool holds (D < U) is scored with
        U = D, the unique tokens it actually saw (datablations' own `optimal_allocation` clamps U the same way), so
        the values for U <= D are datablations' exactly.
        """
        n = _positive("parameters", parameters)
        d = _positive("tokens", tokens)
        u = np.minimum(_positive("unique_tokens", unique_tokens), d)
        repeats = np.maximum(d / u - 1.0, 0.0)
        unique_parameters = np.minimum(n, self.tokens_to_parameters(u))
        excess = np.maximum(n / unique_parameters - 1.0, 0.0)
        effective_parameters = unique_parameters + unique_parameters * self.R_N_star * (
            1.0 - np.exp(-excess / self.R_N_star))
        effective_data = u + u * self.R_D_star * (1.0 - np.exp(-repeats / self.R_D_star))
        return _scalar_or_array(self.E + self.A / effective_parameters**self.alpha + self.B / effective_data**self.beta)

    def optimal_allocation(self, flops: float, unique_tokens: float, factors=None) -> Allocation:
        """datablations' grid search for the best (N, D) at C FLOPs and U unique tokens.

        Starts from the Chinchilla optimum (N_opt, D_opt) of C and scores, for each factor f of a 500-point grid in
        [1.0001, 3], both (N_opt / f, D_opt f) (fewer parameters, more epochs) and (N_opt f, D_opt / f), with
        U = min(U, D); the first lowest loss wins. All points keep 6 N D = C. The grid spans only a factor 3 either
        side of Chinchilla; `best_allocation` searches the whole iso-FLOP line.
        """
        flops, unique = float(_positive("flops", flops)), float(_positive("unique_tokens", unique_tokens))
        factors = np.linspace(1.0001, 3.0, 500) if factors is None else _positive("factors", factors).ravel()
        n_opt, d_opt = self.chinchilla_optimal(flops)
        # Interleaved as datablations scans them (more data first, then more parameters, per factor), so that
        # argmin's first-minimum rule breaks ties the same way as its strict `<`.
        tokens = np.stack([d_opt * factors, d_opt / factors], axis=1).ravel()
        params = np.stack([n_opt / factors, n_opt * factors], axis=1).ravel()
        losses = self.loss(params, tokens, np.minimum(unique, tokens))
        best = int(np.argmin(losses))
        return Allocation(float(params[best]), float(tokens[best]), unique, float(losses[best]))

    def best_allocation(self, flops: float, unique_tokens: float, span: float = 1e6,
                        grid_points: int = 2001) -> Allocation:
        """The (N, D) with 6 N D = C that minimises L(N, D, U), found numerically.

        A log grid of N over [N_opt / span, N_opt span] (N_opt: Chinchilla's), then a bounded scalar minimisation in
        log N between the best grid point's neighbours (the law has kinks at D = U and N = U_N, so a grid first).
        """
        flops, unique = float(_positive("flops", flops)), float(_positive("unique_tokens", unique_tokens))
        n_opt, _ = self.chinchilla_optimal(flops)
        log_n = np.linspace(math.log(n_opt / span), math.log(n_opt * span), grid_points)

        def loss_at(log_parameters):
            n = np.exp(log_parameters)
            return self.loss(n, flops / (6.0 * n), unique)

        losses = loss_at(log_n)
        i = int(np.argmin(losses))
        lo, hi = log_n[max(i - 1, 0)], log_n[min(i + 1, grid_points - 1)]
        refined = minimize_scalar(loss_at, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
        log_best = refined.x if refined.fun <= losses[i] else log_n[i]
        n = math.exp(log_best)
        return Allocation(n, flops / (6.0 * n), unique, float(loss_at(log_best)))


def _scalar_or_array(array):
    array = np.asarray(array, dtype=np.float64)
    return float(array) if array.ndim == 0 else array


MUENNIGHOFF_C4 = DataConstrainedLaw.from_log_parameters(
    a=6.255414, b=7.3049974, e=0.6254804, alpha=0.3526596, beta=0.3526596, R_D_star=15.387756, R_N_star=5.309743)
"""Muennighoff et al.'s fit on C4 (182 runs, GPT-2 tokens): A = 520.8, B = 1487.7, E = 1.869, alpha = beta = 0.353,
R_D* = 15.39, R_N* = 5.31. Its test vectors: L(6.34e9, 242e9, 25e9) = 2.2256440889984477 and
L(8.67e9, 178e9, 25e9) = 2.2269634075087867."""


@dataclass(frozen=True)
class DecayConstants:
    """Second-stage decay constants of a data-constrained fit, without the first-stage A, B, E, alpha, beta.

    `apply(law)` puts them on a law whose first stage you have (it only makes sense for a law fitted on the same
    data, tokenizer and model family as the decay constants).
    """

    R_D_star: float
    R_N_star: float
    r_squared: float | None = None
    source: str = ""

    def apply(self, law: DataConstrainedLaw) -> DataConstrainedLaw:
        return dataclasses.replace(law, R_D_star=self.R_D_star, R_N_star=self.R_N_star)


DIFFUSION_DECAY_PRABHUDESAI = DecayConstants(
    493.89, 1265.65, 0.9784, "Prabhudesai et al., masked diffusion, second-stage fit (slides/blog)")
"""Masked diffusion's decay constants from Prabhudesai et al. (R^2 0.9784). Their first-stage A, B, E, alpha, beta
are not published with them, so no full law is given here."""

AR_DECAY_PRABHUDESAI = DecayConstants(
    31.19, 55.16, 0.7628, "Prabhudesai et al., autoregressive, second-stage fit (slides/blog)")
"""Autoregressive decay constants from the same fit (R^2 0.7628). Their blog quotes R_D* ~ 15 for AR instead, which
is Muennighoff's value (`MUENNIGHOFF_C4`): the two figures come from different versions of their analysis."""


# ---- fitting ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """One training run: N parameters, D tokens seen, U unique tokens, final validation loss (nats/token)."""

    parameters: float
    tokens_seen: float
    unique_tokens: float
    loss: float


@dataclass(frozen=True)
class FitGrid:
    """Initialisation grids of the two-stage fit (datablations' `utils/parametric_fit.ipynb`).

    Stage 1 starts from every (a, b, e, alpha) with beta = alpha; stage 2 from every (R_D*, R_N*) in `decay`.
    The notebook's decay grid starts at 0, where R* (1 - exp(-R / R*)) is 0/0 for single-epoch runs (its fit from
    there returns NaN and is skipped); `decay_floor` replaces values below it so that the start is usable.
    """

    a: tuple[float, ...] = tuple(np.linspace(0, 25, 5))
    b: tuple[float, ...] = tuple(np.linspace(0, 25, 5))
    e: tuple[float, ...] = tuple(np.linspace(-1, 1, 4))
    exponent: tuple[float, ...] = tuple(np.linspace(0, 2, 4))
    decay: tuple[float, ...] = tuple(np.linspace(0, 20, 4))
    decay_floor: float = 0.1

    def stage1(self) -> np.ndarray:
        """(K, 5) starts (a, b, e, alpha, beta = alpha)."""
        a, b, e, x = np.meshgrid(self.a, self.b, self.e, self.exponent, indexing="ij")
        return np.stack([a.ravel(), b.ravel(), e.ravel(), x.ravel(), x.ravel()], axis=1)

    def stage2(self) -> np.ndarray:
        """(K, 2) starts (R_D*, R_N*)."""
        decay = np.maximum(np.asarray(self.decay, dtype=np.float64), self.decay_floor)
        rd, rn = np.meshgrid(decay, decay, indexing="ij")
        return np.stack([rd.ravel(), rn.ravel()], axis=1)


@dataclass(frozen=True)
class FitResult:
    """Outcome of `fit_data_constrained`.

    law: the fitted law. objective: stage 2's final sum of Huber losses on log L (all runs); stage1_objective:
    stage 1's (single-epoch runs). r_squared: 1 - SS_res / SS_tot of L itself over all runs. num_single_epoch_runs
    (D <= U, used in stage 1), num_runs (all, used in stage 2), num_repeated_runs (D > U, which pin R_D*),
    num_excess_parameter_runs (N > U_N under the stage-1 law, which pin R_N*; 0 means R_N* is not determined).
    """

    law: DataConstrainedLaw
    objective: float
    stage1_objective: float
    r_squared: float
    num_single_epoch_runs: int
    num_runs: int
    num_repeated_runs: int
    num_excess_parameter_runs: int


_RUN_FIELDS = ("parameters", "tokens_seen", "unique_tokens", "loss")


def _runs_array(runs) -> np.ndarray:
    """(n, 4) float64 array of (N, D, U, L) from Run / mapping / 4-sequence records, validated."""
    rows = []
    for i, run in enumerate(runs):
        if isinstance(run, Run):
            row = [getattr(run, name) for name in _RUN_FIELDS]
        elif isinstance(run, Mapping):
            missing = [name for name in _RUN_FIELDS if name not in run]
            if missing:
                raise ValueError(f"run {i} lacks {missing}; a run needs the keys {list(_RUN_FIELDS)}.")
            row = [run[name] for name in _RUN_FIELDS]
        elif isinstance(run, Sequence) and len(run) == 4:
            row = list(run)
        else:
            raise ValueError(f"run {i} ({run!r}) is not a Run, a mapping or a 4-sequence {_RUN_FIELDS}.")
        for name, value in zip(_RUN_FIELDS, row):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"run {i}: {name}={value!r} is not a number.") from None
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"run {i}: {name}={value!r} must be finite and > 0.")
        rows.append([float(value) for value in row])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def _huber_objective(log_prediction: torch.Tensor, log_loss: torch.Tensor, delta: float) -> torch.Tensor:
    """Sum over runs (last axis) of Huber(delta) between predicted and observed log L; inf where not finite."""
    per_run = torch.nn.functional.huber_loss(log_prediction, log_loss.expand_as(log_prediction), delta=delta,
                                             reduction="none")
    total = per_run.sum(-1)
    return torch.where(torch.isfinite(total), total, torch.full_like(total, math.inf))


def _stage1_log_loss(theta: torch.Tensor, log_n: torch.Tensor, log_d: torch.Tensor) -> torch.Tensor:
    """log(E + A / N^alpha + B / D^beta) for theta (..., 5) = (a, b, e, alpha, beta): shape (..., n)."""
    a, b, e, alpha, beta = (theta[..., i:i + 1] for i in range(5))
    return torch.logsumexp(torch.stack([a - alpha * log_n, b - beta * log_d, e.expand(*e.shape[:-1], log_n.shape[-1])
                                        ]), dim=0)


def _decayed(unique: torch.Tensor, repeats: torch.Tensor, star: torch.Tensor) -> torch.Tensor:
    """log(U + U R* (1 - exp(-R / R*))), written with expm1 so that R = 0 gives exactly log U."""
    return torch.log(unique) + torch.log1p(-star * torch.expm1(-repeats / star))


def _law_log_loss(params: torch.Tensor, n: torch.Tensor, d: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """log L(N, D, U) for params (..., 7) = (a, b, e, alpha, beta, R_D*, R_N*): shape (..., n).

    U_N is computed from the parameters given (through G), so it follows the stage-1 law it belongs to.
    """
    a, b, e, alpha, beta, rd, rn = (params[..., i:i + 1] for i in range(7))
    u = torch.minimum(u, d)
    repeats = torch.clamp(d / u - 1.0, min=0.0)
    log_g = (torch.log(alpha) + a - torch.log(beta) - b) / (alpha + beta)
    log_unique_parameters = torch.minimum(torch.log(n), beta / alpha * (torch.log(u) + log_g) + log_g)
    excess = torch.clamp(n / torch.exp(log_unique_parameters) - 1.0, min=0.0)
    log_effective_n = _decayed(torch.exp(log_unique_parameters), excess, rn)
    log_effective_d = _decayed(u, repeats, rd)
    return torch.logsumexp(torch.stack([a - alpha * log_effective_n, b - beta * log_effective_d,
                                        e.expand(*e.shape[:-1], n.shape[-1])]), dim=0)


def _batched_lbfgs(objective, x0: torch.Tensor, *, iterations: int, history: int = 10, lr: float = 0.1,
                   tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise K independent problems at once: objective maps (M, p) -> (M,), x0 is (K, p).

    Per problem: L-BFGS directions (two-loop recursion over its own last `history` pairs) and a line search that
    scores a ladder of 8 step sizes, t_prev * 2^(3..-4), in one batched call and takes the lowest value meeting
    Armijo's condition. A problem stops when its gradient is below tolerance_grad, when its loss has changed less
    than tolerance_change for 5 accepted steps in a row, or when 4 line searches in a row found no decrease.
    Returns (x, f) with f = inf where the objective never became finite.
    """
    k, p = x0.shape
    ladder = 2.0 ** torch.arange(3, -5, -1, dtype=x0.dtype)
    x = x0.clone()

    def value_and_grad(points):
        points = points.detach().requires_grad_(True)
        values = objective(points)
        finite = torch.isfinite(values)
        grad, = torch.autograd.grad(torch.where(finite, values, torch.zeros_like(values)).sum(), points)
        return values.detach(), grad.detach()

    f, g = value_and_grad(x)
    s_hist = torch.zeros(k, history, p, dtype=x.dtype)
    y_hist = torch.zeros_like(s_hist)
    rho = torch.zeros(k, history, dtype=x.dtype)
    step = lr * torch.clamp(1.0 / g.abs().sum(-1).clamp_min(1e-300), max=1.0)  # torch.optim.LBFGS's first step
    failures = torch.zeros(k, dtype=torch.long)
    flat = torch.zeros(k, dtype=torch.long)
    active = torch.isfinite(f) & torch.isfinite(g).all(-1) & (g.abs().amax(-1) > tolerance_grad)

    for _ in range(iterations):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        gi, s, y, r = g[idx], s_hist[idx], y_hist[idx], rho[idx]
        q, coefficients = gi.clone(), []
        for j in reversed(range(history)):
            coefficient = r[:, j] * (s[:, j] * q).sum(-1)
            q = q - coefficient[:, None] * y[:, j]
            coefficients.append(coefficient)
        sy, yy = (s[:, -1] * y[:, -1]).sum(-1), (y[:, -1] ** 2).sum(-1)
        q = q * torch.where(yy > 0, sy / yy.clamp_min(1e-300), torch.ones_like(yy))[:, None]
        for j in range(history):
            q = q + s[:, j] * (coefficients[history - 1 - j] - r[:, j] * (y[:, j] * q).sum(-1))[:, None]
        direction = -q
        slope = (gi * direction).sum(-1)
        # A non-descent direction (stale curvature pairs): fall back to steepest descent.
        uphill = ~(slope < 0)
        direction = torch.where(uphill[:, None], -gi, direction)
        slope = torch.where(uphill, -(gi * gi).sum(-1), slope)

        steps = step[idx, None] * ladder[None, :]
        trial = x[idx, None, :] + steps[..., None] * direction[:, None, :]
        values = objective(trial.reshape(-1, p)).reshape(len(idx), -1)
        values = torch.where(values <= f[idx, None] + 1e-4 * steps * slope[:, None], values,
                             torch.full_like(values, math.inf))
        best_value, best = values.min(-1)
        ok = torch.isfinite(best_value)

        # No acceptable step: try smaller steps next time, and give up after four such searches.
        failed = idx[~ok]
        failures[failed] += 1
        step[failed] = step[failed] * ladder[-1] / 2.0
        active[failed[failures[failed] >= 4]] = False

        moved = idx[ok]
        if moved.numel() == 0:
            continue
        failures[moved] = 0
        chosen = steps[ok].gather(1, best[ok, None]).squeeze(1)
        new_x = x[moved] + chosen[:, None] * direction[ok]
        new_f, new_g = value_and_grad(new_x)
        s_new, y_new = new_x - x[moved], new_g - g[moved]
        curvature = (s_new * y_new).sum(-1)
        keep = curvature > 1e-10  # only pairs with positive curvature keep the inverse Hessian positive definite
        rows = moved[keep]
        s_hist[rows] = torch.cat([s_hist[rows, 1:], s_new[keep, None]], dim=1)
        y_hist[rows] = torch.cat([y_hist[rows, 1:], y_new[keep, None]], dim=1)
        rho[rows] = torch.cat([rho[rows, 1:], 1.0 / curvature[keep, None]], dim=1)
        small = (f[moved] - new_f).abs() < tolerance_change
        flat[moved] = torch.where(small, flat[moved] + 1, torch.zeros_like(flat[moved]))
        x[moved], f[moved], g[moved], step[moved] = new_x, new_f, new_g, chosen
        done = (flat[moved] >= 5) | (new_g.abs().amax(-1) <= tolerance_grad) | ~torch.isfinite(new_g).all(-1)
        active[moved[done]] = False
    return x, torch.where(torch.isfinite(f), f, torch.full_like(f, math.inf))


def _torch_lbfgs(objective, x0: torch.Tensor, *, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference procedure verbatim in its settings: one torch.optim.LBFGS run per start (slow: ~1 s each)."""
    xs, fs = [], []
    for start in x0:
        params = torch.nn.Parameter(start[None].clone())
        optimizer = torch.optim.LBFGS([params], lr=0.1, history_size=10, max_iter=20, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            value = objective(params).sum()
            value.backward()
            return value

        for _ in range(steps):
            optimizer.step(closure)
        with torch.no_grad():
            xs.append(params.detach()[0].clone())
            fs.append(objective(params.detach()).reshape(()))
    f = torch.stack(fs)
    return torch.stack(xs), torch.where(torch.isfinite(f), f, torch.full_like(f, math.inf))


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread and restore the setting after.

    The fit's tensors are small (a few MB); splitting each op over threads only adds synchronisation, and on a busy
    2-core machine it made the fit 15x slower (35 s instead of 2 s).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fit_data_constrained(runs, *, grid: FitGrid | None = None, steps: int = 50, huber_delta: float = 1e-3,
                         tie_exponents: bool = False, optimizer: str = "batched",
                         min_single_epoch_runs: int = 6) -> FitResult:
    """Two-stage fit of `DataConstrainedLaw` to runs, as datablations' `utils/parametric_fit.ipynb`.

    runs: `Run`s, mappings with the keys parameters / tokens_seen / unique_tokens / loss, or 4-sequences.
    Both stages minimise sum_i Huber_delta(log L_pred_i - log L_i) with
    log L_pred = logsumexp(a - alpha log N', b - beta log D', e), A = e^a, B = e^b, E = e^e, from every start of
    the grid, and keep the best.

    Stage 1: (a, b, e, alpha, beta) on single-epoch runs (D <= U) with N' = N, D' = D (plain Chinchilla, as the
    notebook). `tie_exponents=True` keeps beta = alpha throughout, which is how Muennighoff's C4 constants (alpha =
    beta) were fitted; the default only ties them at the start. Stage 2: stage 1 frozen (so U_N and the Chinchilla
    helpers come from it), (R_D*, R_N*) on all runs.

    optimizer: "batched" (default) runs all starts at once with a vectorised L-BFGS (history 10, up to
    steps x 20 iterations per start, see `_batched_lbfgs`); "torch" runs torch.optim.LBFGS(lr=0.1, history_size=10,
    max_iter=20, line_search_fn="strong_wolfe") for `steps` steps per start exactly as the notebook, which takes
    minutes for the full 400-start grid on a CPU. Computation is in float64.
    """
    if optimizer not in ("batched", "torch"):
        raise ValueError(f"optimizer={optimizer!r} must be 'batched' or 'torch'.")
    if not (isinstance(steps, int) and steps > 0):
        raise ValueError(f"steps={steps!r} must be a positive integer.")
    if not huber_delta > 0:
        raise ValueError(f"huber_delta={huber_delta!r} must be > 0.")
    grid = grid or FitGrid()
    data = _runs_array(runs)
    single = data[:, 1] <= data[:, 2]
    needed = max(min_single_epoch_runs, 6 if not tie_exponents else 5)
    if single.sum() < needed:
        raise ValueError(f"{int(single.sum())} single-epoch runs (tokens_seen <= unique_tokens) of {len(data)}; "
                         f"stage 1 needs at least {needed} to fit (a, b, e, alpha, beta).")
    if single.all():
        raise ValueError("no run repeats data (every run has tokens_seen <= unique_tokens): R_D* cannot be fitted; "
                         "add multi-epoch runs.")

    tensor = torch.as_tensor(data, dtype=torch.float64)
    n, d, u, observed = tensor.unbind(1)
    log_observed = torch.log(observed)
    minimise = _batched_lbfgs if optimizer == "batched" else _torch_lbfgs
    budget = {"iterations": steps * 20} if optimizer == "batched" else {"steps": steps}

    # Stage 1: Chinchilla on single-epoch runs.
    log_n1, log_d1, log_l1 = torch.log(n[single]), torch.log(d[single]), log_observed[single]
    starts = torch.as_tensor(grid.stage1(), dtype=torch.float64)
    if tie_exponents:
        def expand(theta):
            return torch.cat([theta, theta[..., 3:4]], dim=-1)
        starts = starts[:, :4]
    else:
        def expand(theta):
            return theta

    def stage1_objective(theta):
        return _huber_objective(_stage1_log_loss(expand(theta), log_n1, log_d1), log_l1, huber_delta)

    with _one_thread():
        x1, f1 = minimise(stage1_objective, starts, **budget)
    best1 = int(torch.argmin(f1))
    if not math.isfinite(float(f1[best1])):
        raise ValueError("stage 1 found no finite fit from any start; check the runs' values.")
    first = expand(x1[best1])
    a, b, e, alpha, beta = (float(v) for v in first)
    if alpha <= 0 or beta <= 0:
        raise ValueError(f"stage 1 fitted alpha={alpha:.4g}, beta={beta:.4g}: an exponent <= 0 means the runs do not "
                         "show loss falling with parameters and data; add runs spanning more N and D.")

    # Stage 2: decay constants on all runs, stage 1 frozen.
    def stage2_objective(decay):
        params = torch.cat([first.expand(*decay.shape[:-1], 5), decay], dim=-1)
        return _huber_objective(_law_log_loss(params, n, d, u), log_observed, huber_delta)

    with _one_thread():
        x2, f2 = minimise(stage2_objective, torch.as_tensor(grid.stage2(), dtype=torch.float64), **budget)
    best2 = int(torch.argmin(f2))
    rd, rn = (float(v) for v in x2[best2])
    if not math.isfinite(float(f2[best2])) or rd <= 0 or rn <= 0:
        raise ValueError(f"stage 2 fitted R_D*={rd:.4g}, R_N*={rn:.4g}: decay constants must be > 0; the repeated "
                         "runs do not determine them (add runs with more epochs or more excess parameters).")
    law = DataConstrainedLaw.from_log_parameters(a, b, e, alpha, beta, rd, rn)

    predicted = law.loss(data[:, 0], data[:, 1], data[:, 2])
    residual = np.sum((data[:, 3] - predicted) ** 2)
    total = np.sum((data[:, 3] - data[:, 3].mean()) ** 2)
    excess = data[:, 0] > law.tokens_to_parameters(np.minimum(data[:, 2], data[:, 1]))
    return FitResult(law=law, objective=float(f2[best2]), stage1_objective=float(f1[best1]),
                     r_squared=float(1.0 - residual / total) if total > 0 else float("nan"),
                     num_single_epoch_runs=int(single.sum()), num_runs=len(data),
                     num_repeated_runs=int((~single).sum()), num_excess_parameter_runs=int(excess.sum()))


# ---- diffusion vs AR -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CriticalCompute:
    """Outcome of `critical_compute`.

    flops: the C above which law_b's best loss is below law_a's, or None when the two do not cross that way in the
    searched range (`reason` says which way they stand). crossings: sign changes found on the grid.
    """

    flops: float | None
    reason: str
    flops_range: tuple[float, float]
    crossings: int = 0


def critical_compute(law_a: DataConstrainedLaw, law_b: DataConstrainedLaw, unique_tokens: float, *,
                     flops_range: tuple[float, float] = (1e15, 1e28), grid_points: int = 131,
                     span: float = 1e6) -> CriticalCompute:
    """The FLOPs C* above which law_b (e.g. diffusion) beats law_a (e.g. AR) at U unique tokens.

    Each law's loss at C is its best over the iso-FLOP line (`DataConstrainedLaw.best_allocation`). The difference
    gap(C) = best_b(C) - best_a(C) is evaluated on a log grid of `grid_points` values of C in `flops_range`; the last
    change of sign from gap >= 0 to gap < 0 is refined with Brent's method in log C. Returns flops=None with the
    reason when law_b never gets ahead, is ahead everywhere, or falls behind again at the top of the range.
    """
    unique = float(_positive("unique_tokens", unique_tokens))
    low, high = (float(v) for v in _positive("flops_range", flops_range))
    if not low < high:
        raise ValueError(f"flops_range={flops_range!r} must be (low, high) with low < high.")

    def gap(log_flops):
        c = 10.0 ** log_flops
        return (law_b.best_allocation(c, unique, span=span).loss
                - law_a.best_allocation(c, unique, span=span).loss)

    log_c = np.linspace(math.log10(low), math.log10(high), grid_points)
    gaps = np.array([gap(v) for v in log_c])
    b_ahead = gaps < 0
    changes = int(np.count_nonzero(b_ahead[1:] != b_ahead[:-1]))
    searched = (low, high)
    if not b_ahead.any():
        return CriticalCompute(None, f"never crosses: law_a's best loss is at or below law_b's across C in "
                                     f"[{low:.3g}, {high:.3g}] at U={unique:.3g}", searched, changes)
    if b_ahead.all():
        return CriticalCompute(None, f"never crosses: law_b is already ahead at C={low:.3g} (the lowest C searched) "
                                     f"and stays ahead up to {high:.3g} at U={unique:.3g}", searched, changes)
    if not b_ahead[-1]:
        return CriticalCompute(None, f"law_b is ahead only inside the range and behind again at C={high:.3g}: no C "
                                     f"above which it stays ahead (U={unique:.3g})", searched, changes)
    i = int(np.nonzero(~b_ahead)[0][-1])  # last grid point where law_a is still at least as good
    root = brentq(gap, log_c[i], log_c[i + 1], xtol=1e-10, rtol=1e-12)
    reason = "crosses" if changes == 1 else f"crosses {changes} times on the grid; this is the last crossing"
    return CriticalCompute(10.0 ** root, reason, searched, changes)


def paper_critical_compute(unique_tokens_millions):
    """Prabhudesai et al.'s fitted critical compute: C_crit(U) = 2.12e15 * U^2.174 FLOPs (broadcasts).

    U is in *millions* of unique tokens. That unit is inferred, not stated by the authors: their line
    log10(U) = 0.460 log10(C) - 7.052 gives plausible magnitudes only in millions (U = 100, i.e. 100M tokens ->
    4.7e19 FLOPs; with raw token counts it would give ~5e32). Inverting the rounded coefficients gives a prefactor
    of 2.14e15 rather than the slide's 2.12e15; the slide's is used.
    """
    u = _positive("unique_tokens_millions", unique_tokens_millions)
    return _scalar_or_array(2.12e15 * u**2.174)
