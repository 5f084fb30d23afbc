"""Likelihood estimators with standard errors, for both model families and any transformers causal LM.

Every function takes a batch of requests whose token sequences may differ in length, runs the model on `model.device`
(in eval mode, without gradients) in forward passes of at most `batch_size` right-padded rows, and returns one
`Estimate` per request: a log-likelihood in nats with its standard error. `DatasetLikelihood.from_estimates` turns
per-sequence estimates into nats/token, bits/token and perplexity.

Methods, by family (the first is the default):

| family | `sequence_log_likelihood` | `continuation_log_likelihood` |
|---|---|---|
| `MaskedDiffusionForLM` | `"elbo"` | `"stratified"`, `"antithetic"`, `"chain_rule"` |
| `PermutedCausalLM` | `"exact"` (order 0), `"order_mean"` | `"exact"` (order 0) |
| any other causal LM | `"exact"` | `"exact"` |

Causal models score a token given the ones before it, so a sequence's first token is never scored (prepend a BOS
token to score it); the diffusion ELBO scores every token.

Reproducibility: request i draws all its noise from its own CPU generator seeded by `(seed, keys[i])`, `keys`
defaulting to the request's index in the call (`stats.keyed_generator`, as the trainer). A re-run gives the same
draws whatever the batch size, the padding, the other requests or the device; numbers then agree up to
floating-point rounding of the kernels. Pass global keys (a document index, a hash of the tokens) when requests are
split across processes or calls.

A PEFT-wrapped model is scored with its adapters.
"""

import math
import statistics
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Sequence

import torch

from ..families import family_of
from ..modeling_backbone import check_token_ids
from ..schedules import sample_times
from ..stats import keyed_generator


# The first method of each family is its default.
SEQUENCE_METHODS = {"diffusion": ("elbo",), "permuted": ("exact", "order_mean"), "causal": ("exact",)}
CONTINUATION_METHODS = {
    "diffusion": ("stratified", "antithetic", "chain_rule"),
    "permuted": ("exact",),
    "causal": ("exact",),
}
GREEDY_CRITERIA = {"diffusion": ("generate", "chain_rule"), "permuted": ("argmax",), "causal": ("argmax",)}
MONTE_CARLO_METHODS = ("elbo", "antithetic", "stratified")


@dataclass(frozen=True)
class Estimate:
    """A log-likelihood in nats, summed over `num_tokens` scored tokens, and its standard error.

    Attributes:
        value: the estimate of log p (so <= 0). Monte Carlo methods and `"order_mean"`: the mean of `samples`;
            exact methods: their sum.
        standard_error: of `value`: the Monte Carlo error (the draws treated as independent; the antithetic or
            stratified draws are negatively correlated, which this ignores), 0 for exact methods, the spread over
            orders for `"order_mean"`, NaN for a single Monte Carlo draw. Caveat for `"elbo"` and `"antithetic"`:
            the 1/t weight makes draws heavy-tailed (a token masked at t near eps counts ~1/eps times), and with
            few draws the sample variance tends to miss those rare draws, so the error is then understated;
            `"stratified"` weighs by at most T and has no such tail.
        num_samples: rows behind the value: Monte Carlo draws, chain-rule steps or orders (1 for exact causal).
        num_tokens: the tokens scored.
        method: the method that produced it.
        is_bound: `value` is a lower bound on log p in expectation (the diffusion ELBO methods).
        samples: the per-row values: draws, per-step log-probabilities (chain rule) or per-order log-likelihoods.
    """

    value: float
    standard_error: float
    num_samples: int
    num_tokens: int
    method: str
    is_bound: bool = False
    samples: tuple[float, ...] = ()


@dataclass(frozen=True)
class DatasetLikelihood:
    """Per-token negative log-likelihood of a set of sequences (for diffusion: the negative ELBO, an upper bound).

    Attributes:
        nats_per_token: -(sum of the sequences' log-likelihoods) / (tokens scored).
        standard_error: the Monte Carlo error of `nats_per_token` for this fixed set of sequences (0 when exact;
            for `"order_mean"` the spread of the per-order figures over the N orders).
        dataset_standard_error: the error as an estimate over the population the sequences were drawn from (ratio
            estimator over sequences; includes the Monte Carlo noise); NaN for a single sequence.
    """

    nats_per_token: float
    standard_error: float
    dataset_standard_error: float
    num_tokens: int
    num_sequences: int
    method: str
    is_bound: bool

    @property
    def bits_per_token(self) -> float:
        return self.nats_per_token / math.log(2)

    @property
    def bits_standard_error(self) -> float:
        return self.standard_error / math.log(2)

    @property
    def perplexity(self) -> float:
        """exp(nats/token): an upper bound on the perplexity for diffusion models."""
        return math.exp(min(self.nats_per_token, 700.0))

    def perplexity_interval(self, z: float = 1.96) -> tuple[float, float]:
        """exp(nats/token -/+ z standard errors): a 95% Monte Carlo interval for z = 1.96."""
        low, high = (self.nats_per_token + sign * z * self.standard_error for sign in (-1, 1))
        return math.exp(min(low, 700.0)), math.exp(min(high, 700.0))

    @classmethod
    def from_estimates(cls, estimates: Sequence[Estimate]) -> "DatasetLikelihood":
        """Pool per-sequence estimates (all from one method), weighting each sequence by its scored tokens."""
        if not estimates:
            raise ValueError("estimates is empty: there is no sequence to pool.")
        num_tokens = sum(estimate.num_tokens for estimate in estimates)
        if num_tokens == 0:
            raise ValueError("The estimates score no token (causal models never score a sequence's first token).")
        totals = [-estimate.value for estimate in estimates]
        nats = sum(totals) / num_tokens
        if estimates[0].method == "order_mean":
            # One figure per order over the whole set; the orders are what varies.
            per_order = [-sum(column) / num_tokens for column in zip(*(estimate.samples for estimate in estimates))]
            error = statistics.stdev(per_order) / math.sqrt(len(per_order)) if len(per_order) > 1 else 0.0
        else:
            # Sequences draw from independent generators: their Monte Carlo errors add in quadrature.
            error = math.sqrt(sum(estimate.standard_error**2 for estimate in estimates)) / num_tokens
        count = len(estimates)
        residuals = sum((total - nats * estimate.num_tokens) ** 2 for total, estimate in zip(totals, estimates))
        dataset_error = math.sqrt(count / (count - 1) * residuals) / num_tokens if count > 1 else math.nan
        return cls(nats, error, dataset_error, num_tokens, count, estimates[0].method, estimates[0].is_bound)


# ----------------------------------------------------------------------------------------------------------------------
# Public entry points.


def sequence_log_likelihood(
    model,
    input_ids,
    *,
    attention_mask: torch.Tensor | None = None,
    method: str | None = None,
    mc_samples: int = 32,
    batch_size: int = 32,
    seed: int = 0,
    keys: Sequence[int] | None = None,
) -> list[Estimate]:
    """The log-likelihood of each sequence (nats, summed over its scored tokens), with its standard error.

    Args:
        model: a `MaskedDiffusionForLM`, a `PermutedCausalLM` or any transformers causal LM.
        input_ids: a list of 1-D token sequences (lists or tensors, any lengths), or a `[batch, seq]` tensor whose
            padding `attention_mask` marks with 0.
        method: diffusion `"elbo"`: the continuous-time ELBO with `mc_samples` antithetic times per sequence
            (t_k = eps + (1 - eps) ((u + k / K) mod 1), drawn as the model's `draw_training_randomness` draws them
            under its default `time_sampling="antithetic"`, so with the trainer's `validation_seed` and
            `validation_repeats` this reproduces its validation loss on the same rows); a lower bound on
            log p in expectation, up to the O(eps) effect of drawing t in [eps, 1]. `PermutedCausalLM`: `"exact"`
            (left to right, order 0, what eval mode computes) or `"order_mean"`: for each of the N training orders
            the exact log-likelihood of the sequence read in that order; the value is the mean over orders (by
            Jensen, a lower bound on the log-likelihood of the uniform mixture of the N orders), its standard error
            the spread over orders. Causal LMs: `"exact"`.
        mc_samples: K, Monte Carlo draws per sequence (diffusion).
        batch_size: rows per forward pass (a diffusion sequence takes `mc_samples` rows, `"order_mean"` N rows).
        seed, keys: see the module docstring.
    Returns:
        one `Estimate` per sequence; `DatasetLikelihood.from_estimates` pools them.
    """
    model = _unwrap(model)
    kind = _kind(model)
    method = _check_choice("method", method, SEQUENCE_METHODS[kind], kind)
    _check_batching(mc_samples, batch_size)
    sequences = _as_sequences("input_ids", input_ids, attention_mask)
    keys = _check_keys(keys, len(sequences))
    for index, tokens in enumerate(sequences):
        if len(tokens) == 0:
            raise ValueError(f"input_ids[{index}] is empty: there is nothing to score.")
        _check_tokens(model, kind, "input_ids", index, tokens, scored=tokens)

    if kind == "diffusion":
        def rows_of(index, tokens):
            return _elbo_rows(model, tokens, 0, mc_samples, keyed_generator(seed, keys[index]), False)
    elif method == "order_mean":
        def rows_of(index, tokens):
            return _order_rows(model, tokens)
    else:
        def rows_of(index, tokens):
            return _causal_rows(tokens[None], first_scored=1)

    with _inference(model):
        values, _ = _score_requests(model, kind, sequences, rows_of, batch_size)
    scored = [len(tokens) if kind == "diffusion" else len(tokens) - 1 for tokens in sequences]
    return [_estimate(values[index].tolist(), method, scored[index]) for index in range(len(sequences))]


def dataset_likelihood(model, input_ids, **kwargs) -> DatasetLikelihood:
    """nats/token, bits/token and perplexity (a bound for diffusion) of a set of sequences, with standard errors:
    `sequence_log_likelihood` (same arguments) pooled by `DatasetLikelihood.from_estimates`."""
    return DatasetLikelihood.from_estimates(sequence_log_likelihood(model, input_ids, **kwargs))


def continuation_log_likelihood(
    model,
    context_ids,
    continuation_ids,
    *,
    method: str | None = None,
    mc_samples: int = 128,
    batch_size: int = 32,
    seed: int = 0,
    keys: Sequence[int] | None = None,
    guidance_scale: float = 0.0,
) -> list[Estimate]:
    """log p(continuation | context) of each request, with its standard error.

    Args:
        model: a `MaskedDiffusionForLM`, a `PermutedCausalLM` (scored left to right, order 0) or any causal LM.
        context_ids, continuation_ids: equally long lists of 1-D token sequences (or `[batch, seq]` tensors without
            padding). Continuations must not be empty; causal models need a non-empty context (prepend BOS).
        method: for `MaskedDiffusionForLM`, all three score the continuation only (the context is never masked):
            - `"stratified"` (LLaDA's estimator): row j of M masks exactly l_j of the T continuation tokens,
              chosen uniformly, and weighs the log-probabilities of the masked ones by T / l_j, with
              l_j = ((k - 1 + round(j T / M)) mod T) + 1, k ~ U{1..T}. Each l_j is uniform on 1..T, so the mean is
              sum_l (1/l) E[log-probs of l masked tokens], the ELBO. In the reference formula `round` (torch's,
              numpy's) rounds half to even, which makes l_j non-uniform at a tie (j T / M ending in .5, e.g.
              T = 3, M = 128, j = 64); we round half up, which keeps every l_j uniform. With T = 1 every row is the
              same exact value, so one row is used.
            - `"antithetic"`: the continuous-time ELBO at M antithetic times, continuation tokens masked with
              probability 1 - alpha(t_j), weighted by w(t_j) (times in [eps, 1], as in training).
            - `"chain_rule"`: exact left-to-right scoring: step s masks continuation tokens s..T-1 and scores token
              s (T rows, no variance). It is the exact log-likelihood of the left-to-right factorisation of the
              model's conditionals, not of the model (the ELBO methods bound that one).
            "stratified" and "antithetic" estimate the same ELBO, a lower bound on log p in expectation.
            Causal models: `"exact"`.
        mc_samples: M, Monte Carlo draws per request (ignored by exact methods, but still checked).
        batch_size: rows per forward pass; with guidance every row also takes an unconditional pass.
        seed, keys: see the module docstring.
        guidance_scale: w, unsupervised classifier-free guidance (diffusion only): at every scored position the
            logits are (1 + w) * logits(input) - w * logits(input with the context replaced by MASK), then MASK is
            excluded and the result normalised. w = 0 is the plain model (and costs no extra pass). Applies to all
            three methods; with w != 0 they score the guided conditionals, which are no longer the model's, so the
            ELBO methods bound nothing in particular, and "chain_rule" is the exact log-likelihood of the
            left-to-right factorisation of the guided conditionals.
    Returns:
        one `Estimate` per request.
    """
    model = _unwrap(model)
    kind = _kind(model)
    method = _check_choice("method", method, CONTINUATION_METHODS[kind], kind)
    _check_batching(mc_samples, batch_size)
    if guidance_scale and kind != "diffusion":
        raise ValueError(f"guidance_scale={guidance_scale} needs a masked-diffusion model (the prompt is replaced by "
                         "MASK); causal models have no MASK token.")
    contexts, continuations, keys = _check_requests(model, kind, context_ids, continuation_ids, keys)
    guided = bool(guidance_scale)

    def rows_of(index, tokens):
        prefix = len(contexts[index])
        generator = keyed_generator(seed, keys[index])
        if method == "stratified":
            return _stratified_rows(model, tokens, prefix, mc_samples, generator, guided)
        if method == "antithetic":
            return _elbo_rows(model, tokens, prefix, mc_samples, generator, guided)
        if method == "chain_rule":
            return _chain_rule_rows(model, tokens, prefix, guided)
        return _causal_rows(tokens[None], first_scored=prefix)

    joined = [torch.cat([context, continuation]) for context, continuation in zip(contexts, continuations)]
    with _inference(model):
        values, _ = _score_requests(model, kind, joined, rows_of, batch_size, guidance_scale)
    estimates = [_estimate(values[index].tolist(), method, len(continuations[index])) for index in range(len(joined))]
    if method == "stratified":  # a one-token continuation is scored exactly by its single row
        estimates = [replace(estimate, standard_error=0.0) if estimate.num_tokens == 1 else estimate
                     for estimate in estimates]
    return estimates


def is_greedy(
    model,
    context_ids,
    continuation_ids,
    *,
    criterion: str | None = None,
    batch_size: int = 32,
) -> list[bool]:
    """Whether greedy decoding from each context produces its continuation (lm-eval's `is_greedy`).

    Criteria (the first is the default):
        diffusion `"generate"`: the model's own `generate` with `do_sample=False`, `max_new_tokens = steps = T`, one
            block, one token per step, `remasking="low_confidence"` (the surest position first), no cache or
            parallel commits; token-level settings (suppressed tokens, EOS padding) come from the model's
            generation config. Runs T steps per request; requests with equally long continuations share a call,
            with left padding. Guidance is not applied.
        diffusion `"chain_rule"`: every continuation token is the argmax at its step of left-to-right chain-rule
            scoring (cheaper to reason about, but not what `generate` does).
        causal `"argmax"`: every continuation token is the argmax given everything before it (one pass).
    Ties count as greedy for the argmax criteria.
    """
    model = _unwrap(model)
    kind = _kind(model)
    criterion = _check_choice("criterion", criterion, GREEDY_CRITERIA[kind], kind)
    _check_batching(1, batch_size)
    contexts, continuations, _ = _check_requests(model, kind, context_ids, continuation_ids, None)
    with _inference(model):
        if criterion == "generate":
            return _greedy_by_generate(model, contexts, continuations, batch_size)

        def rows_of(index, tokens):
            prefix = len(contexts[index])
            if kind == "diffusion":
                return _chain_rule_rows(model, tokens, prefix, False)
            return _causal_rows(tokens[None], first_scored=prefix)

        joined = [torch.cat([context, continuation]) for context, continuation in zip(contexts, continuations)]
        _, greedy = _score_requests(model, kind, joined, rows_of, batch_size)
    return [greedy[index] for index in range(len(joined))]


# ----------------------------------------------------------------------------------------------------------------------
# Rows: the forward-pass inputs of a request, with the tokens each one scores. Built as one `[R, L]` block per request
# (vectorised: a request may have hundreds of rows).


@dataclass
class _Rows:
    """The R forward-pass rows of one request. Row r's value is `weights[r]` times the summed log-probabilities of
    its `targets`."""

    input_ids: torch.LongTensor  # [R, L]
    targets: torch.LongTensor  # [R, L], the id scored at each position (causal: the next token), -100 where none
    weights: torch.Tensor  # [R], float64
    position_ids: torch.LongTensor | None = None  # [R, L], RoPE positions of permuted orders
    unconditional_ids: torch.LongTensor | None = None  # [R, L], the input with the context masked (guidance)


def _diffusion_rows(model, tokens, prefix, masked, scored, weights, guided) -> _Rows:
    """tokens `[L]` repeated per row, with the continuation positions `masked` `[R, T]` (T = L - prefix) set to
    MASK, scoring the positions `scored` `[R, T]`; the context is never masked."""
    mask_id = model.config.mask_token_id
    in_context = torch.zeros(len(masked), prefix, dtype=torch.bool)
    input_ids = tokens.expand(len(masked), -1).masked_fill(torch.cat([in_context, masked], 1), mask_id)
    targets = torch.where(torch.cat([in_context, scored], 1), tokens, -100)
    unconditional = input_ids.clone().index_fill_(1, torch.arange(prefix), mask_id) if guided else None
    return _Rows(input_ids, targets, weights.double(), unconditional_ids=unconditional)


def _antithetic_noise(model, num_samples, length, generator) -> tuple[torch.Tensor, torch.BoolTensor]:
    """`num_samples` antithetic times `[M]` (shuffled) and masks `[M, length]`, drawn exactly as the model's
    `draw_training_randomness` draws them under the default `time_sampling="antithetic"`, whatever the config says."""
    times = sample_times(num_samples, "antithetic", model.config.time_epsilon, generator=generator)
    times = times[torch.randperm(num_samples, generator=generator)]
    return times, model.draw_noise_mask(times, length, generator)


def _elbo_rows(model, tokens, prefix, num_samples, generator, guided) -> _Rows:
    """The continuous-time ELBO of tokens[prefix:] given tokens[:prefix]: row j masks each of those tokens with
    probability 1 - alpha(t_j) and weighs the log-probabilities of the masked ones by w(t_j)."""
    times, masks = _antithetic_noise(model, num_samples, len(tokens) - prefix, generator)
    weights = model.noise_schedule.elbo_weight(times.double())
    return _diffusion_rows(model, tokens, prefix, masks, masks, weights, guided)


def _stratified_rows(model, tokens, prefix, num_samples, generator, guided) -> _Rows:
    """LLaDA's estimator (see `continuation_log_likelihood`): row j masks exactly l_j tokens, weight T / l_j."""
    length = len(tokens) - prefix
    num_samples = 1 if length == 1 else num_samples
    start = int(torch.randint(1, length + 1, (1,), generator=generator))
    offsets = (2 * torch.arange(num_samples) * length + num_samples) // (2 * num_samples)  # round(j T / M), half up
    counts = (start - 1 + offsets) % length + 1
    ranks = torch.rand(num_samples, length, generator=generator).argsort(-1).argsort(-1)
    masks = ranks < counts[:, None]  # a uniform subset of counts[j] positions
    return _diffusion_rows(model, tokens, prefix, masks, masks, length / counts.double(), guided)


def _chain_rule_rows(model, tokens, prefix, guided) -> _Rows:
    """Step s masks continuation tokens s..T-1 and scores token s."""
    steps = torch.arange(len(tokens) - prefix)
    masked, scored = steps[None] >= steps[:, None], steps[None] == steps[:, None]
    return _diffusion_rows(model, tokens, prefix, masked, scored, torch.ones(len(steps)), guided)


def _causal_rows(tokens, first_scored, position_ids=None) -> _Rows:
    """tokens `[R, L]`; position p predicts token p + 1 (the usual shift): scores tokens[:, first_scored:]."""
    targets = torch.full_like(tokens, -100)
    targets[:, first_scored - 1 : -1] = tokens[:, first_scored:]
    return _Rows(tokens, targets, torch.ones(len(tokens), dtype=torch.float64), position_ids=position_ids)


def _order_rows(model, tokens) -> _Rows:
    """One row per training order: the sequence read in that order, RoPE given the original positions (what
    `forward(order_index=k)` does; permuting here, by the sequence's own length, lets padded rows share a batch)."""
    orders = model.orders_for_length(len(tokens)).cpu()  # [N, L]
    return _causal_rows(tokens[orders], first_scored=1, position_ids=orders)


# ----------------------------------------------------------------------------------------------------------------------
# Scoring rows in batches.


def _score_requests(model, kind, sequences, rows_of, batch_size, guidance_scale=0.0):
    """Run every request's rows through the model, `batch_size` rows per forward pass (rows from several requests
    share a pass). Returns, per request, its row values `[R]` (float64) and whether every target of every row was the
    argmax. Rows that score nothing (a draw that masked no token) are worth 0 and cost no pass."""
    values, greedy, pending = {}, {}, []

    def flush():
        batch_values, batch_argmax = _score_batch(model, kind, pending, guidance_scale)
        for (owner, _, taken), row_values, argmax in zip(pending, batch_values, batch_argmax):
            values[owner][taken] = row_values
            greedy[owner] &= bool(argmax.all())
        pending.clear()

    for owner, tokens in enumerate(sequences):
        rows = rows_of(owner, tokens)
        values[owner], greedy[owner] = torch.zeros(len(rows.weights), dtype=torch.float64), True
        live = (rows.targets != -100).any(-1).nonzero()[:, 0]
        while len(live):
            room = batch_size - sum(len(taken) for _, _, taken in pending)
            pending.append((owner, rows, live[:room]))
            live = live[room:]
            if room <= len(pending[-1][2]):
                flush()
    if pending:
        flush()
    return values, greedy


def _score_batch(model, kind, pieces, guidance_scale) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """For pieces `(owner, rows, taken)` (the rows `taken` of a request), right-padded into one batch: per piece,
    the weighted log-likelihood of each row `[n]` (float64, CPU) and whether each row's targets are all argmax `[n]`."""
    device = model.device
    length = max(rows.input_ids.shape[1] for _, rows, _ in pieces)

    def stacked(name, fill=0):
        parts = [torch.nn.functional.pad(getattr(rows, name)[taken], (0, length - getattr(rows, name).shape[1]),
                                         value=fill) for _, rows, taken in pieces]
        return torch.cat(parts).to(device)

    input_ids, targets = stacked("input_ids"), stacked("targets", fill=-100)
    counts = [len(taken) for _, _, taken in pieces]
    lengths = torch.cat([torch.full((len(taken),), rows.input_ids.shape[1]) for _, rows, taken in pieces])
    attention_mask = (torch.arange(length)[None] < lengths[:, None]).long().to(device)
    attention_mask = None if bool(attention_mask.all()) else attention_mask  # the mask-free kernels when unpadded
    position_ids = None if pieces[0][1].position_ids is None else stacked("position_ids")
    scored = targets != -100
    logits = _scored_logits(model, kind, input_ids, attention_mask, position_ids, scored)
    if guidance_scale:
        unconditional = _scored_logits(model, kind, stacked("unconditional_ids"), attention_mask, None, scored)
        logits = (1 + guidance_scale) * logits - guidance_scale * unconditional
    if kind == "diffusion":
        logits[:, model.config.mask_token_id] = float("-inf")  # clean text never holds MASK, as in the model's loss
    log_probs = logits.log_softmax(-1)  # [N, vocab]
    picked = log_probs.gather(-1, targets[scored][:, None])[:, 0]
    row_of = scored.nonzero()[:, 0]
    sums = torch.zeros(len(input_ids), dtype=torch.float64, device=device).index_add_(0, row_of, picked.double())
    misses = torch.zeros(len(input_ids), dtype=torch.long, device=device)
    misses.index_add_(0, row_of, (picked < log_probs.max(-1).values).long())
    weights = torch.cat([rows.weights[taken] for _, rows, taken in pieces])
    return (weights * sums.cpu()).split(counts), (misses.cpu() == 0).split(counts)


def _scored_logits(model, kind, input_ids, attention_mask, position_ids, scored) -> torch.Tensor:
    """Float32 logits `[N, vocab]` at the N True positions of `scored` `[B, L]`, row by row."""
    if kind == "diffusion":
        # The head only where something is scored: with a large vocabulary it costs more than the backbone.
        hidden = model.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return model.lm_head(model.prediction_states(hidden)[scored]).float()
    extra = {} if position_ids is None else {"position_ids": position_ids}
    return model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits[scored].float()


def _greedy_by_generate(model, contexts, continuations, batch_size) -> list[bool]:
    results = [False] * len(contexts)
    by_length = defaultdict(list)
    for index, continuation in enumerate(continuations):
        by_length[len(continuation)].append(index)
    for length, indices in sorted(by_length.items()):
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            input_ids, attention_mask = _left_pad([contexts[index] for index in chunk], model.device)
            output = model.generate(
                input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=length, steps=length,
                do_sample=False, remasking="low_confidence", tokens_per_step="equal", block_length=None,
                block_cache="none", confidence_threshold=None, position_temperature=0.0, num_return_sequences=1,
            )
            for row, index in enumerate(chunk):
                results[index] = torch.equal(output[row, -length:].cpu(), continuations[index])
    return results


def _left_pad(sequences, device) -> tuple[torch.LongTensor, torch.LongTensor]:
    length = max(len(sequence) for sequence in sequences)
    padded = torch.zeros(len(sequences), length, dtype=torch.long)
    attention_mask = torch.zeros(len(sequences), length, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        padded[row, length - len(sequence) :] = sequence
        attention_mask[row, length - len(sequence) :] = 1
    return padded.to(device), attention_mask.to(device)


def _estimate(values: list[float], method: str, num_tokens: int) -> Estimate:
    if method not in MONTE_CARLO_METHODS and method != "order_mean":  # exact: the rows are the terms of a sum
        return Estimate(math.fsum(values), 0.0, len(values), num_tokens, method, False, tuple(values))
    mean = math.fsum(values) / len(values)
    if len(values) > 1:
        error = statistics.stdev(values) / math.sqrt(len(values))
    else:
        error = math.nan if method in MONTE_CARLO_METHODS else 0.0
    return Estimate(mean, error, len(values), num_tokens, method, method in MONTE_CARLO_METHODS, tuple(values))


# ----------------------------------------------------------------------------------------------------------------------
# Input checks.


def _unwrap(model):
    """The model inside a PEFT wrapper: the adapters sit in its modules, so its parts (backbone, head, orders,
    `generate`) run with them."""
    get_base_model = getattr(model, "get_base_model", None)
    return get_base_model() if callable(get_base_model) else model


def _kind(model) -> str:
    family = family_of(model)
    if family.is_diffusion:
        return "diffusion"
    return "permuted" if family.name == "permuted_causal" else "causal"


@contextmanager
def _inference(model):
    """Eval mode (no dropout; `PermutedCausalLM` reads left to right) and no gradients; the mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _check_choice(name, value, allowed, kind):
    if value is None:
        return allowed[0]
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {allowed} (the choices for a {kind} model).")
    return value


def _check_batching(mc_samples, batch_size):
    for name, value in (("mc_samples", mc_samples), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be an integer >= 1.")


def _as_sequences(name, ids, attention_mask=None) -> list[torch.LongTensor]:
    """1-D CPU long tensors from a list of sequences or a `[batch, seq]` tensor (keeping positions where
    `attention_mask` is 1)."""
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 2:
            raise ValueError(f"{name} has shape {tuple(ids.shape)}; expected [batch, seq] or a list of sequences.")
        if attention_mask is None:
            return list(ids.long().cpu())
        if attention_mask.shape != ids.shape:
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)} but {name} {tuple(ids.shape)}.")
        return [row[keep.bool()] for row, keep in zip(ids.long().cpu(), attention_mask.cpu())]
    if attention_mask is not None:
        raise ValueError(f"attention_mask only goes with a [batch, seq] tensor of {name}, not a list of sequences.")
    sequences = [torch.as_tensor(sequence, dtype=torch.long).cpu() for sequence in ids]
    for index, sequence in enumerate(sequences):
        if sequence.dim() != 1:
            raise ValueError(f"{name}[{index}] has shape {tuple(sequence.shape)}; expected a 1-D token sequence.")
    return sequences


def _check_keys(keys, count) -> list[int]:
    if keys is None:
        return list(range(count))
    keys = [int(key) for key in keys]
    if len(keys) != count:
        raise ValueError(f"keys has {len(keys)} entries for {count} requests; give one key per request.")
    return keys


def _check_tokens(model, kind, name, index, tokens, scored):
    check_token_ids(f"{name}[{index}]", tokens, model.config.vocab_size)
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and len(tokens) > limit:
        raise ValueError(f"{name}[{index}] has {len(tokens)} tokens, more than the model's "
                         f"max_position_embeddings={limit}; truncate it (keep the end of the context).")
    if kind == "diffusion" and bool((scored == model.config.mask_token_id).any()):
        raise ValueError(f"{name}[{index}] holds mask_token_id={model.config.mask_token_id}; clean text never does, "
                         "so it cannot be scored.")


def _check_requests(model, kind, context_ids, continuation_ids, keys):
    contexts = _as_sequences("context_ids", context_ids)
    continuations = _as_sequences("continuation_ids", continuation_ids)
    if len(contexts) != len(continuations):
        raise ValueError(f"{len(contexts)} contexts but {len(continuations)} continuations; give one of each per "
                         "request.")
    for index, (context, continuation) in enumerate(zip(contexts, continuations)):
        if len(continuation) == 0:
            raise ValueError(f"continuation_ids[{index}] is empty: there is nothing to score.")
        if kind != "diffusion" and len(context) == 0:
            raise ValueError(f"context_ids[{index}] is empty: a causal model cannot score the first token without "
                             "context; prepend a BOS (or EOS) token.")
        _check_tokens(model, kind, "context_ids + continuation_ids", index, torch.cat([context, continuation]),
                      scored=continuation)
    return contexts, continuations, _check_keys(keys, len(contexts))


__all__ = [
    "CONTINUATION_METHODS",
    "DatasetLikelihood",
    "Estimate",
    "GREEDY_CRITERIA",
    "SEQUENCE_METHODS",
    "continuation_log_likelihood",
    "dataset_likelihood",
    "is_greedy",
    "sequence_log_likelihood",
]
