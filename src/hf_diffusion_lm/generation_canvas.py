"""The canvas pieces shared by `MaskedDiffusionForLM.generate` and `PermutedCausalLM`'s any-order generation: the
output class, the generation config and the canvas (prompt plus MASK ids), per-sequence generators, logits
processors and token sampling.
"""

import copy
import hashlib
from dataclasses import dataclass

import torch
from transformers.generation import (
    GenerationConfig,
    LogitsProcessorList,
    MinPLogitsWarper,
    SuppressTokensLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.utils import ModelOutput

from .modeling_backbone import check_token_ids


@dataclass
class CanvasGenerationOutput(ModelOutput):
    """
    Output of `MaskedDiffusionForLM.generate` and of `PermutedCausalLM`'s any-order generation with
    `return_dict_in_generate=True`.

    Args:
        sequences: `[batch * num_return_sequences, seq]` the filled canvases (prompt, left padding included).
        history: `[steps + 1, batch * num_return_sequences, seq]` the canvas before the first step and after each.
        commit_step: `[batch * num_return_sequences, seq]` the step at which each position was committed, -1 for
            the tokens that were given.
        num_forward_passes: network calls made.
    """

    sequences: torch.LongTensor | None = None
    history: torch.LongTensor | None = None
    commit_step: torch.LongTensor | None = None
    num_forward_passes: int | None = None


# ----------------------------------------------------------------------------------------------------------------------
# Input preparation.


def as_id_list(token_ids) -> list[int]:
    if token_ids is None:
        return []
    return [token_ids] if isinstance(token_ids, int) else list(token_ids)


def prepare_generation_config(default, generation_config, config_class, kwargs):
    """A copy of `generation_config` (or the model's) updated with the keyword arguments; unknown ones raise."""
    config = copy.deepcopy(generation_config if generation_config is not None else default)
    if not isinstance(config, config_class):
        config = config_class.from_dict(config.to_dict())
    unknown = config.update(**kwargs)
    if unknown:
        raise ValueError(f"generate() got arguments it does not know: {sorted(unknown)}.")
    return config


def initial_canvas(input_ids, attention_mask, mask_token_id, max_new_tokens, num_return_sequences, vocab_size, device):
    """The prompt followed by `max_new_tokens` MASK ids, each row repeated `num_return_sequences` times.

    Returns `(canvas, attention_mask)`, both `[batch * num_return_sequences, prompt + max_new_tokens]`.
    """
    if input_ids is None:
        input_ids = torch.empty(1, 0, dtype=torch.long, device=device)
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids have shape {tuple(input_ids.shape)}; expected [batch, seq].")
    check_token_ids("input_ids", input_ids, vocab_size)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids {tuple(input_ids.shape)}."
        )
    if max_new_tokens is None:
        if not bool((input_ids == mask_token_id).any()):
            raise ValueError(
                "Nothing to generate: pass max_new_tokens (MASK positions appended to the prompt) or put "
                f"mask_token_id={mask_token_id} in input_ids where tokens should be filled in."
            )
        max_new_tokens = 0
    tail = torch.full((input_ids.shape[0], max_new_tokens), mask_token_id, dtype=torch.long, device=input_ids.device)
    canvas = torch.cat([input_ids, tail], dim=1)
    attention_mask = torch.cat([attention_mask.long(), torch.ones_like(tail)], dim=1)
    return (
        canvas.repeat_interleave(num_return_sequences, dim=0),
        attention_mask.repeat_interleave(num_return_sequences, dim=0),
    )


def check_position_range(position_ids, max_position_embeddings, prompt_length, max_new_tokens):
    needed = int(position_ids.max()) + 1 if position_ids.numel() else 0
    if needed > max_position_embeddings:
        raise ValueError(
            f"The prompt ({prompt_length} positions) plus max_new_tokens={max_new_tokens} needs {needed} positions, "
            f"more than max_position_embeddings={max_position_embeddings}; shorten the prompt or generate fewer "
            "tokens."
        )


# ----------------------------------------------------------------------------------------------------------------------
# Randomness: one generator per sequence, so that a sequence's sample does not depend on the batch it shares.


def row_generators(canvas, attention_mask, seed, num_return_sequences) -> list[torch.Generator]:
    """One generator per row, seeded by (seed, the row's unpadded tokens, its index among its prompt's copies)."""
    if seed is None:
        seed = int(torch.randint(2**62, ()))
    generators = []
    for row, (tokens, keep) in enumerate(zip(canvas.tolist(), attention_mask.bool().tolist())):
        content = [seed, row % num_return_sequences] + [token for token, kept in zip(tokens, keep) if kept]
        digest = hashlib.blake2b(repr(content).encode(), digest_size=8).digest()
        generator = torch.Generator(device=canvas.device)
        generator.manual_seed(int.from_bytes(digest, "little") >> 1)
        generators.append(generator)
    return generators


# ----------------------------------------------------------------------------------------------------------------------
# Tokens for N positions, flattened row by row.


def build_logits_processors(
    config: GenerationConfig, extra: LogitsProcessorList | None, device, never: list[int] = ()
) -> LogitsProcessorList:
    """The user's processors first, then token suppression (`suppress_tokens`, EOS with `suppress_eos`, and the ids
    in `never`), then, when sampling, the standard warpers."""
    processors = LogitsProcessorList(extra or [])
    eos_ids = as_id_list(config.eos_token_id)
    suppressed = list(config.suppress_tokens or []) + list(never)
    suppressed += eos_ids if getattr(config, "suppress_eos", False) else []
    if suppressed:
        processors.append(SuppressTokensLogitsProcessor(suppressed, device=device))
    if config.do_sample:
        if config.temperature is not None and config.temperature != 1.0:
            processors.append(TemperatureLogitsWarper(config.temperature))
        if config.top_k:
            processors.append(TopKLogitsWarper(config.top_k))
        if config.top_p is not None and config.top_p < 1.0:
            processors.append(TopPLogitsWarper(config.top_p))
        if config.min_p:
            processors.append(MinPLogitsWarper(config.min_p))
    return processors


def sample_tokens(logits, do_sample, generators, counts) -> tuple[torch.LongTensor, torch.Tensor]:
    """Tokens `[N]` and their probabilities `[N, V]` (float32) from processed logits `[N, V]`; row b's generator
    draws for its `counts[b]` positions.

    Sampling is exact in float64, as LLaDA's Gumbel-max in float64 (float32 noise visibly lowers the quality of
    diffusion samples), but by inverse CDF: one uniform per position instead of one Gumbel draw per vocabulary
    entry, which on a CPU cost more than the network step. The first token whose cumulative probability exceeds
    u is drawn with exactly its probability; zero-probability tokens are never drawn.
    """
    if not do_sample:
        return logits.argmax(-1), logits.float().softmax(-1)
    cumulative = logits.double().softmax(-1).cumsum(-1)
    uniforms = torch.cat([torch.rand(n, dtype=torch.float64, generator=g, device=logits.device)
                          for g, n in zip(generators, counts)])
    tokens = torch.searchsorted(cumulative, (uniforms * cumulative[:, -1])[:, None], right=True)[:, 0]
    return tokens.clamp(max=logits.shape[-1] - 1), logits.float().softmax(-1)


__all__ = ["CanvasGenerationOutput"]
