"""An lm-evaluation-harness (0.4.12+) model for both families and any transformers causal LM: `hf_diffusion_lm`.

Importing this module imports lm-eval and registers the model under the name `hf_diffusion_lm` (lm-eval has no
plugin discovery: import it before calling lm-eval's CLI entry, or pass an `HFDiffusionLM` instance to
`lm_eval.simple_evaluate`). `hf_diffusion_lm.evaluation` does not import it, so the package works without lm-eval.

What each request type computes (all through `hf_diffusion_lm.evaluation.likelihood`, which the adapter only feeds):

- `loglikelihood`: `continuation_log_likelihood` (diffusion: `method`, default the stratified ELBO estimator, a lower
  bound on log p in expectation; causal models: exact) and `is_greedy` (computed, with the family's default
  criterion unless `greedy_criterion` says otherwise).
- `loglikelihood_rolling`: lm-eval's rolling windows (`lm_eval.utils.get_rolling_token_windows` with
  `make_disjoint_window`, windows of `max_length - 1` predicted tokens, so a window plus its context fits the model's
  positions). Causal models: the exact log-likelihood of the document (first token scored after the prefix
  token, as lm-eval's HF model does). Diffusion: the sum over windows of the continuation estimator of each window
  given its disjoint context (the first window has no context: a diffusion model scores every token without a
  prefix token). With the ELBO methods (`"stratified"`, `"antithetic"`) that is, in expectation, a lower bound on
  sum_w log p(window_w | context_w), so the perplexity lm-eval reports from it is an UPPER BOUND on the model's
  perplexity over those windows; with `"chain_rule"` it is the exact log-likelihood of the left-to-right
  factorisation of the model's conditionals.
- `generate_until`: the model's own `generate` (diffusion: `MaskedDiffusionForLM.generate(max_new_tokens=...)`, one
  token per step by default; causal: `GenerationMixin.generate`), batched `batch_size` prompts at a time with left
  padding; `max_gen_toks` and `until` are taken from `gen_kwargs`, every other `gen_kwargs` field overrides the
  checkpoint's generation config; the decoded text is cut at the first `until` string (default: the EOS text).

Reproducibility: every Monte Carlo estimate draws its noise from a generator keyed by (`seed`, a hash of the
request's tokens), so a request gets the same number whatever the batch size, the order of requests, the other
requests or the process it lands on. Diffusion generation is seeded per prompt by its tokens (`seed`); sampling
with a causal model re-seeds torch with `seed` before each batch (then batch composition matters).

Multi-process (`torchrun` / `accelerate launch` with torch.distributed initialised before the model is built): the
rank and world size come from torch.distributed; `all_gather`, `gather_object` and `barrier` implement the API the
0.4.12+ evaluator calls. One process: they are identities.

Truncation (documented, never silent crashes): a context longer than the model's positions allow is cut from the
left (its start dropped); a continuation that cannot fit with at least one context token (causal) or on its own
(diffusion) raises `ValueError`. Generation prompts are cut from the left to leave room for `max_gen_toks`, which is
capped at `max_length - 1`.
"""

import hashlib
import logging
from collections import defaultdict

import torch
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tqdm.auto import tqdm

import hf_diffusion_lm  # noqa: F401  (registers the families with the Auto classes)

from ..families import family_of
from .likelihood import CONTINUATION_METHODS, GREEDY_CRITERIA, continuation_log_likelihood, is_greedy


logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_GEN_TOKS = 256


def request_key(*token_lists) -> int:
    """A 63-bit key from token sequences: the same request gets the same Monte Carlo draws wherever it is scored."""
    digest = hashlib.blake2b(repr([list(map(int, tokens)) for tokens in token_lists]).encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "little") >> 1


def _parse_batch_size(batch_size) -> int:
    if isinstance(batch_size, str):
        if batch_size.startswith("auto"):
            return DEFAULT_BATCH_SIZE  # no automatic search: a fixed default
        batch_size = int(batch_size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be an integer >= 1.")
    return batch_size


@register_model("hf_diffusion_lm")
class HFDiffusionLM(LM):
    """lm-eval model for `MaskedDiffusionForLM`, `PermutedCausalLM` and any transformers causal LM.

    Args:
        pretrained: a checkpoint path or Hub id (loaded with the family's Auto class), or a model instance.
        tokenizer: a tokenizer, a path/id to load one from, or None (the checkpoint's; required with an instance).
        batch_size: rows per forward pass when scoring (a diffusion request takes `mc_samples` rows, shared across
            requests) and prompts per `generate` call. `"auto"` means 32.
        mc_samples: Monte Carlo draws per diffusion request (`continuation_log_likelihood`'s `mc_samples`).
        method: the diffusion continuation estimator, one of `CONTINUATION_METHODS["diffusion"]`; ignored by
            causal models (exact).
        seed: base seed of every Monte Carlo estimate and of generation.
        guidance_scale: unsupervised classifier-free guidance for diffusion scoring (0: off).
        greedy_criterion: `is_greedy`'s criterion (default: the family's first, see `GREEDY_CRITERIA`).
        device: where to run (default: the instance's device, else `cuda:<local rank>` when CUDA is available,
            else CPU).
        dtype: torch dtype name for loading a checkpoint (default: the checkpoint's).
        max_length: positions a request may use (default: the config's `max_position_embeddings`).
        add_bos_token: prepend the tokenizer's BOS token to every context.
        trust_remote_code: passed to `from_pretrained`.
    """

    def __init__(
        self,
        pretrained="",
        tokenizer=None,
        batch_size=DEFAULT_BATCH_SIZE,
        mc_samples: int = 128,
        method: str | None = None,
        seed: int = 0,
        guidance_scale: float = 0.0,
        greedy_criterion: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        max_length: int | None = None,
        add_bos_token: bool = False,
        trust_remote_code: bool = False,
        max_batch_size=None,  # accepted from lm-eval's CLI; no automatic batch search
        **kwargs,
    ) -> None:
        super().__init__()
        if kwargs:
            logger.warning("HFDiffusionLM ignores unknown arguments %s", sorted(kwargs))
        from transformers import AutoConfig, AutoTokenizer

        if torch.distributed.is_available() and torch.distributed.is_initialized():
            self._rank, self._world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()

        if isinstance(pretrained, str):
            if not pretrained:
                raise ValueError("pretrained is empty: give a checkpoint path or a model instance.")
            kind_config = AutoConfig.from_pretrained(pretrained, trust_remote_code=trust_remote_code)
            load_kwargs = {"trust_remote_code": trust_remote_code}
            if dtype not in (None, "auto"):
                load_kwargs["torch_dtype"] = getattr(torch, dtype)
            model = family_of(kind_config).auto_class.from_pretrained(pretrained, **load_kwargs)
            if tokenizer is None:
                tokenizer = pretrained
        else:
            model = pretrained
            if tokenizer is None:
                name = getattr(model, "name_or_path", "") or getattr(model.config, "_name_or_path", "")
                if not name:
                    raise ValueError("pretrained is a model instance without a path: pass its tokenizer.")
                tokenizer = name
        if isinstance(tokenizer, str):
            tokenizer = AutoTokenizer.from_pretrained(tokenizer, trust_remote_code=trust_remote_code)
        if device is None and isinstance(pretrained, str):
            if torch.cuda.is_available():
                local_rank = int(__import__("os").environ.get("LOCAL_RANK", 0))
                device = f"cuda:{local_rank}"
            else:
                device = "cpu"
        if device is not None:
            model = model.to(device)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.family = family_of(model)
        self.is_diffusion = self.family.is_diffusion
        kind = "diffusion" if self.is_diffusion else ("permuted" if self.family.name == "permuted_causal" else "causal")
        allowed = CONTINUATION_METHODS[kind]
        if self.is_diffusion:
            if method is not None and method not in allowed:
                raise ValueError(f"method={method!r} is not one of {allowed} for a diffusion model.")
            self.method = method or allowed[0]
        else:
            self.method = allowed[0]  # causal models are scored exactly
        if greedy_criterion is not None and greedy_criterion not in GREEDY_CRITERIA[kind]:
            raise ValueError(f"greedy_criterion={greedy_criterion!r} is not one of {GREEDY_CRITERIA[kind]}.")
        self.greedy_criterion = greedy_criterion
        self.batch_size = _parse_batch_size(batch_size)
        if isinstance(mc_samples, bool) or int(mc_samples) != mc_samples or int(mc_samples) < 1:
            raise ValueError(f"mc_samples={mc_samples!r} must be an integer >= 1.")
        self.mc_samples = int(mc_samples)
        self.seed = int(seed)
        self.guidance_scale = float(guidance_scale)
        if self.guidance_scale and not self.is_diffusion:
            raise ValueError("guidance_scale needs a masked-diffusion model.")
        self._max_length = int(max_length or getattr(model.config, "max_position_embeddings", None) or 2048)
        if self._max_length < 2:
            raise ValueError(f"max_length={self._max_length} leaves no room for a context and a continuation.")
        self.add_bos_token = bool(add_bos_token)

    # ------------------------------------------------------------------------------------------------------------------
    # lm-eval plumbing.

    @property
    def device(self):
        return self.model.device

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", "") or type(self.tokenizer).__name__).replace("/", "__")

    @property
    def prefix_token_id(self) -> int:
        """The token a causal model conditions the first token of a document (or an empty context) on."""
        for token_id in (self.tokenizer.bos_token_id, self.tokenizer.eos_token_id):
            if token_id is not None:
                return token_id
        raise ValueError("The tokenizer has neither a BOS nor an EOS token to start a causal context with.")

    def _distributed(self) -> bool:
        return self.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()

    def all_gather(self, tensor):
        """The tensors of all ranks concatenated along dim 0 (a 0-dim tensor counts as one element)."""
        if not self._distributed():
            return tensor
        tensor = tensor.reshape(1) if tensor.dim() == 0 else tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        torch.distributed.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    def gather_object(self, obj, dst=0):
        """The objects of all ranks, in rank order, on `dst` (None on the others)."""
        if not self._distributed():
            return [obj]
        result = [None] * self.world_size if self.rank == dst else None
        torch.distributed.gather_object(obj, result, dst=dst)
        return result

    def barrier(self) -> None:
        if self._distributed():
            torch.distributed.barrier()

    def tok_encode(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        return ([self.tokenizer.bos_token_id] if self.add_bos_token and self.tokenizer.bos_token_id is not None
                else []) + list(ids)

    def tok_decode(self, ids) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # ------------------------------------------------------------------------------------------------------------------
    # Scoring.

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """lm-eval's convention: trailing spaces of the context move to the continuation; the continuation's tokens
        are those of context + continuation after the context's (so merges across the boundary stay right)."""
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        if not context:
            return [], self.tok_encode(continuation)
        whole = self.tok_encode(context + continuation)
        context_ids = self.tok_encode(context)
        return whole[: len(context_ids)], whole[len(context_ids) :]

    def _fit(self, context: list[int], continuation: list[int]) -> tuple[list[int], list[int]]:
        """An empty causal context gets the prefix token; a context too long for the positions loses its start."""
        if not continuation:
            raise ValueError("A request's continuation is empty (after tokenization): there is nothing to score.")
        if not self.is_diffusion and not context:
            context = [self.prefix_token_id]
        room = self.max_length - len(continuation)
        needed = 0 if self.is_diffusion else 1
        if room < needed:
            raise ValueError(f"A continuation of {len(continuation)} tokens does not fit the model's max_length="
                             f"{self.max_length} (with {needed} context token(s)).")
        return (context[-room:] if room else []) if len(context) > room else context, continuation

    def _score(self, pairs, method=None, with_greedy=True, progress: str | None = None):
        """Estimates (and greedy flags) for token pairs, sorted by length for tighter padding, in input order. Scored
        in chunks of a few forward passes each so `progress` (a tqdm description; None: silent) moves; a request's
        draws are keyed by its tokens, so chunking does not change any value."""
        if not pairs:
            return [], []
        keys = [request_key(context, continuation) for context, continuation in pairs]
        order = sorted(range(len(pairs)), key=lambda index: -(len(pairs[index][0]) + len(pairs[index][1])))
        rows_per_request = self.mc_samples if self.is_diffusion else 1
        chunk = max(1, 4 * self.batch_size // rows_per_request)
        values, flags = [None] * len(pairs), [None] * len(pairs)
        bar = tqdm(total=len(pairs), desc=progress, disable=progress is None or self.rank != 0)
        for start in range(0, len(order), chunk):
            indices = order[start : start + chunk]
            contexts = [pairs[index][0] for index in indices]
            continuations = [pairs[index][1] for index in indices]
            estimates = continuation_log_likelihood(
                self.model, contexts, continuations, method=method or self.method, mc_samples=self.mc_samples,
                batch_size=self.batch_size, seed=self.seed, keys=[keys[index] for index in indices],
                guidance_scale=self.guidance_scale,
            )
            greedy = (is_greedy(self.model, contexts, continuations, criterion=self.greedy_criterion,
                                batch_size=self.batch_size) if with_greedy else [False] * len(indices))
            for position, index in enumerate(indices):
                values[index], flags[index] = estimates[position], greedy[position]
            bar.update(len(indices))
        bar.close()
        return values, flags

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        pairs = [self._fit(*self._encode_pair(*request.args)) for request in requests]
        estimates, greedy = self._score(pairs, progress=None if disable_tqdm else "loglikelihood requests")
        results = []
        for request, estimate, flag in zip(requests, estimates, greedy):
            result = (float(estimate.value), bool(flag))
            self.cache_hook.add_partial("loglikelihood", request.args, result)
            results.append(result)
        return results

    def rolling_windows(self, text: str) -> list[tuple[list[int], list[int]]]:
        """The disjoint (context, continuation) windows `loglikelihood_rolling` scores for one document."""
        tokens = self.tok_encode(text)
        windows = [make_disjoint_window(window) for window in get_rolling_token_windows(
            token_list=tokens, prefix_token=self.prefix_token_id if not self.is_diffusion else -1,
            max_seq_len=self.max_length - 1, context_len=1)]
        if self.is_diffusion and windows:
            windows[0] = ([], windows[0][1])  # no prefix token: a diffusion model scores every token
        return windows

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        windows, owners = [], []
        for index, request in enumerate(requests):
            for context, continuation in self.rolling_windows(request.args[0]):
                windows.append((list(context), list(continuation)))
                owners.append(index)
        estimates, _ = self._score(windows, with_greedy=False,
                                   progress=None if disable_tqdm else "loglikelihood_rolling windows")
        totals = [0.0] * len(requests)
        for owner, estimate in zip(owners, estimates):
            totals[owner] += float(estimate.value)
        for request, total in zip(requests, totals):
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, total)
        return totals

    # ------------------------------------------------------------------------------------------------------------------
    # Generation.

    def _generation_options(self, gen_kwargs: dict) -> tuple[list[str], int, dict]:
        options = dict(gen_kwargs)
        until = options.pop("until", None)
        if until is None:
            until = [self.tokenizer.decode([self.tokenizer.eos_token_id])] if self.tokenizer.eos_token_id is not None \
                else []
        elif isinstance(until, str):
            until = [until]
        elif not isinstance(until, (list, tuple)):
            raise ValueError(f"gen_kwargs['until'] must be a string or a list of strings, not {until!r}.")
        max_gen_toks = int(options.pop("max_gen_toks", DEFAULT_MAX_GEN_TOKS))
        if max_gen_toks < 1:
            raise ValueError(f"max_gen_toks={max_gen_toks} must be >= 1.")
        if max_gen_toks >= self.max_length:
            logger.warning("max_gen_toks=%d capped at max_length - 1 = %d", max_gen_toks, self.max_length - 1)
            max_gen_toks = self.max_length - 1
        if options.get("temperature", None) == 0.0 and not options.get("do_sample", False):
            options.pop("temperature")  # lm-eval's way of saying greedy
            options["do_sample"] = False
        return [text for text in until if text], max_gen_toks, options

    def _generate_batch(self, prompts: list[list[int]], max_gen_toks: int, options: dict) -> list[list[int]]:
        length = max(len(prompt) for prompt in prompts)
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        input_ids = torch.full((len(prompts), length), pad_id, dtype=torch.long)
        attention_mask = torch.zeros(len(prompts), length, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, length - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            attention_mask[row, length - len(prompt) :] = 1
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        options = dict(options)
        if self.is_diffusion:
            options.setdefault("seed", self.seed)
        else:
            options.setdefault("pad_token_id", pad_id)
            if options.get("do_sample"):
                torch.manual_seed(self.seed)
        with torch.no_grad():
            output = self.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                         max_new_tokens=max_gen_toks, **options)
        if not isinstance(output, torch.Tensor):
            output = output.sequences
        return output[:, length:].tolist()

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        results = [None] * len(requests)
        bar = tqdm(total=len(requests), desc="generate_until requests", disable=disable_tqdm or self.rank != 0)
        groups = defaultdict(list)  # requests with equal gen_kwargs share generate calls
        for index, request in enumerate(requests):
            context, gen_kwargs = request.args
            groups[repr(sorted((gen_kwargs or {}).items(), key=lambda item: item[0]))].append(index)
        for indices in groups.values():
            until, max_gen_toks, options = self._generation_options(requests[indices[0]].args[1] or {})
            room = self.max_length - max_gen_toks
            prompts = {}
            for index in indices:
                prompt = self.tok_encode(requests[index].args[0])
                if not prompt and not self.is_diffusion:
                    prompt = [self.prefix_token_id]
                prompts[index] = prompt[-room:]
            ordered = sorted(indices, key=lambda index: -len(prompts[index]))
            for start in range(0, len(ordered), self.batch_size):
                chunk = ordered[start : start + self.batch_size]
                for index, tokens in zip(chunk, self._generate_batch([prompts[i] for i in chunk], max_gen_toks,
                                                                     options)):
                    text = self.tok_decode(tokens)
                    for stop in until:
                        text = text.split(stop)[0]
                    results[index] = text
                    self.cache_hook.add_partial("generate_until", requests[index].args, text)
                bar.update(len(chunk))
        bar.close()
        return results


__all__ = ["HFDiffusionLM", "request_key"]
