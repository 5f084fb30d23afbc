"""Sampling from `MaskedDiffusionForLM`: a `GenerationConfig` subclass, the sampler's small pieces and the `generate`
loop (the canvas, output class, generators and token sampling shared with `PermutedCausalLM` are in
`generation_canvas.py`).

The canvas is the prompt followed by `max_new_tokens` MASK ids (any MASK id already in the prompt is a hole to fill).
Each step runs the network once on the canvas, proposes a token for every MASK position of the current block, and
commits some of them: *how many* comes from `tokens_per_step`, *which* from `remasking` (the positions with the best
score). Committed tokens are never changed again, so prompt and known tokens are returned untouched.

Randomness is drawn per sequence, from a generator seeded by (seed, the sequence's own tokens, its index among
`num_return_sequences`), and only for that sequence's own MASK positions: a sequence's sample therefore does not
depend on the batch it shares, nor on its left padding.
"""

import torch
from transformers.cache_utils import DynamicCache
from transformers.generation import GenerationConfig, LogitsProcessorList
from transformers.generation.streamers import BaseStreamer

from .generation_canvas import (
    CanvasGenerationOutput,
    as_id_list,
    build_logits_processors,
    check_position_range,
    initial_canvas,
    prepare_generation_config,
    row_generators,
    sample_tokens,
)
from .schedules import NOISE_SCHEDULES, check_choice, get_noise_schedule


REMASKING = ("random", "low_confidence", "margin", "entropy")
TOKENS_PER_STEP = ("equal", "schedule", "binomial")
BLOCK_CACHES = ("none", "prefix", "dual")


class MaskedDiffusionGenerationConfig(GenerationConfig):
    r"""
    `GenerationConfig` of `MaskedDiffusionForLM.generate`, saved as `generation_config.json` next to the weights.

    The usual fields keep their meaning: `max_new_tokens` (MASK positions appended to the prompt), `do_sample` (False:
    greedy), `temperature`, `top_k`, `top_p`, `min_p`, `suppress_tokens`, `num_return_sequences`, `eos_token_id`,
    `pad_token_id`, `return_dict_in_generate`. Unset sampling fields are off (no implicit `top_k=50`). Fields of the
    diffusion sampler:

    Args:
        steps (`int`, *optional*):
            Number of network calls (denoising steps) over the whole generation, split evenly across blocks. Defaults
            to one token per step. At most the number of tokens to generate; fewer steps commit several tokens per
            step (faster, usually worse).
        block_length (`int`, *optional*):
            Semi-autoregressive blocks (LLaDA): the `max_new_tokens` generated positions are filled block by block,
            left to right (MASK ids inside the prompt go with the first block). Must divide `max_new_tokens` (without
            it: the number of positions from the first MASK to the end). Defaults to a single block.
        tokens_per_step (`str`, *optional*, defaults to `"equal"`):
            How many tokens a step commits: `"equal"` (the block's MASK count split evenly over its steps),
            `"schedule"` (n_left * (alpha(s) - alpha(t)) / (1 - alpha(t)) for the step from t to s, at least one),
            or `"binomial"` (that fraction drawn per token: the exact ancestral sampler; a step that commits nothing
            reuses the previous logits instead of calling the network).
        noise_schedule (`str`, *optional*):
            alpha(t) used by `"schedule"` and `"binomial"`; defaults to the model's training schedule.
        remasking (`str`, *optional*, defaults to `"low_confidence"`):
            Which proposed tokens are committed: `"random"` positions (ancestral), `"low_confidence"` (highest
            probability of the proposed token first; the rest stay masked), `"margin"` (largest top-1 minus top-2
            probability), `"entropy"` (lowest entropy).
        position_temperature (`float`, *optional*, defaults to 0.0):
            Dream's `alg_temp`: with a value > 0 positions are drawn without replacement from
            softmax(score / position_temperature) instead of taking the best scores.
        confidence_threshold (`float`, *optional*):
            Parallel decoding (Fast-dLLM): also commit every proposed token whose probability is at least this, so a
            block may finish in fewer network calls than `steps`.
        block_cache (`str`, *optional*, defaults to `"none"`):
            `"none"`: exact, the whole canvas every step. `"prefix"`: the keys and values of everything left of the
            block are computed once per block and reused (Fast-dLLM prefix cache). `"dual"`: those right of the block
            too, so a step only runs the block. Cached modes are approximate: the cached keys do not see tokens
            committed later in the block.
        compile_config (`CompileConfig`, *optional*):
            transformers' own field: when set (and `disable_compile` is False) the backbone's call is compiled with
            `torch.compile(**compile_config.to_dict())`, kept on the model across calls. Every step of a block sees
            the same shapes, so nothing recompiles per step: without a block cache there is one canvas shape; with
            one, a block's first (whole-canvas) call and its later calls are two ("prefix" grows per block, and a
            first block that also holds the prompt's holes is wider). Compilation takes seconds to a minute, so it
            pays off for many samples. Opt-in, unlike transformers' static-cache auto-compile; `mode="default"` on
            a CPU.
        suppress_eos (`bool`, *optional*, defaults to `False`):
            Never propose EOS (LLaDA's `logits_eos_inf`).
        seed (`int`, *optional*):
            Base seed of the per-sequence generators; drawn from torch's global generator when unset, so
            `torch.manual_seed` also makes `generate` reproducible.

    A sequence stops at its first generated EOS: every MASK after it becomes `pad_token_id` (EOS when unset) once its
    block is done, and later blocks skip it.
    """

    def __init__(self, **kwargs):
        self.steps = kwargs.pop("steps", None)
        self.block_length = kwargs.pop("block_length", None)
        self.tokens_per_step = kwargs.pop("tokens_per_step", "equal")
        self.noise_schedule = kwargs.pop("noise_schedule", None)
        self.remasking = kwargs.pop("remasking", "low_confidence")
        self.position_temperature = kwargs.pop("position_temperature", 0.0)
        self.confidence_threshold = kwargs.pop("confidence_threshold", None)
        self.block_cache = kwargs.pop("block_cache", "none")
        self.suppress_eos = kwargs.pop("suppress_eos", False)
        self.seed = kwargs.pop("seed", None)
        super().__init__(**kwargs)

    def validate(self, strict=False, user_set_attributes=None):
        for name in ("steps", "block_length"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name}={value!r} must be an integer >= 1 (or None for the default).")
        check_choice("tokens_per_step", self.tokens_per_step, TOKENS_PER_STEP)
        check_choice("remasking", self.remasking, REMASKING)
        check_choice("block_cache", self.block_cache, BLOCK_CACHES)
        if self.noise_schedule is not None:
            check_choice("noise_schedule", self.noise_schedule, NOISE_SCHEDULES)
        if self.position_temperature < 0:
            raise ValueError(f"position_temperature={self.position_temperature} must be >= 0 (0: best scores first).")
        if self.confidence_threshold is not None and not 0 < self.confidence_threshold <= 1:
            raise ValueError(f"confidence_threshold={self.confidence_threshold} must lie in (0, 1], or be None.")
        super().validate(strict=strict, user_set_attributes=user_set_attributes)

    @classmethod
    def from_model_config(cls, model_config) -> "MaskedDiffusionGenerationConfig":
        # The base version copies every model-config key it also has, and compares fields with a plain
        # GenerationConfig, which lacks ours; only the special token ids belong here.
        config_dict = model_config if isinstance(model_config, dict) else model_config.to_dict()
        token_ids = ("bos_token_id", "eos_token_id", "pad_token_id")
        config = cls(**{key: config_dict[key] for key in token_ids if config_dict.get(key) is not None})
        config._original_object_hash = hash(config)
        return config


# ----------------------------------------------------------------------------------------------------------------------
# The sampler's pieces. Each works on the N MASK positions of a step, flattened row by row.


def exponential_per_row(generators, counts, *shape, device) -> torch.Tensor:
    """Exp(1) draws in float64, `[sum(counts), *shape]`: row b's generator fills its `counts[b]` entries."""
    draws = [
        torch.empty(count, *shape, dtype=torch.float64, device=device).exponential_(generator=generator)
        for generator, count in zip(generators, counts)
    ]
    return torch.cat(draws)


def margin_scores(probs):
    top2 = probs.topk(2, dim=-1).values
    return top2[:, 0] - top2[:, 1]


def entropy_scores(probs):
    return (probs * probs.clamp(min=1e-12).log()).sum(-1)  # -entropy: lowest entropy first


def position_scorer(remasking):
    """`score(probs [N, V], confidence [N]) -> [N]` for `remasking`, where confidence is the probability of each
    proposed token: the best-scored proposals are committed first."""
    return {
        "random": lambda probs, confidence: torch.zeros_like(confidence),  # the Gumbel noise of `propose` decides
        "low_confidence": lambda probs, confidence: confidence,  # the surest first (LLaDA's remasking, MaskGIT)
        "margin": lambda probs, confidence: margin_scores(probs),
        "entropy": lambda probs, confidence: entropy_scores(probs),
    }[remasking]


def equal_split(step, steps, num_at_start):
    """LLaDA's split: the block's MASK count over its steps, the remainder on the first steps."""
    return num_at_start // steps + (step < num_at_start % steps).long()


def unmasking_fraction(step, steps, schedule) -> float:
    """Probability that a token still masked at t = 1 - step/steps is unmasked at s = t - 1/steps."""
    t, s = torch.tensor([1 - step / steps, 1 - (step + 1) / steps], dtype=torch.float64)
    return float((schedule.alpha(s) - schedule.alpha(t)) / (1 - schedule.alpha(t)))


def schedule_counts(num_left, fraction):
    return (num_left * fraction).round().long().clamp(min=1)  # at least one, so each network call commits


def binomial_counts(num_left, fraction, generators):
    draws = [torch.rand(int(n), generator=g, device=num_left.device) for g, n in zip(generators, num_left)]
    return torch.stack([(draw < fraction).sum() for draw in draws])


def commit_counter(tokens_per_step, steps, schedule, generators):
    """`count(step, num_left [B], num_at_start [B]) -> [B]` for `tokens_per_step`: how many MASK positions of each
    row the step commits, in a block of `steps` steps."""

    def fraction(step):
        return unmasking_fraction(step, steps, schedule)

    return {
        "equal": lambda step, num_left, num_at_start: equal_split(step, steps, num_at_start),
        "schedule": lambda step, num_left, num_at_start: schedule_counts(num_left, fraction(step)),
        "binomial": lambda step, num_left, num_at_start: binomial_counts(num_left, fraction(step), generators),
    }[tokens_per_step]


def propose(position_logits, masked, canvas, processors, do_sample, score_positions, position_temperature, generators):
    """Proposals for the MASK positions of a block: tokens `[B, W]`, their probabilities `[B, W]` and the position
    scores `[B, W]` (-inf where nothing is masked). position_logits: `[N, V]` for the N True entries of masked
    `[B, W]`, row by row. With a position_temperature > 0 the scores get Gumbel noise (Gumbel-top-k: the best k of
    score / T + Gumbel noise are k positions drawn without replacement from softmax(score / T))."""
    counts = masked.sum(-1).tolist()
    if processors:
        position_logits = processors(canvas[masked.nonzero()[:, 0]], position_logits)
    tokens, probs = sample_tokens(position_logits, do_sample, generators, counts)
    confidence = probs.gather(-1, tokens[:, None])[:, 0]
    scores = score_positions(probs, confidence).double()
    if position_temperature > 0:
        scores = scores / position_temperature - exponential_per_row(generators, counts, device=scores.device).log()

    def unflatten(values, fill):  # [N] -> [B, W]
        return torch.full(masked.shape, fill, dtype=values.dtype, device=masked.device).masked_scatter_(masked, values)

    return unflatten(tokens, 0), unflatten(confidence, 0.0), unflatten(scores, float("-inf"))


def select_positions(scores, counts, confidence, threshold) -> torch.BoolTensor:
    """The `counts[b]` best-scored positions of each row `[B, W]` (scores are -inf where nothing is masked), plus,
    with a threshold, every position whose proposal has at least that probability."""
    rank = scores.argsort(dim=-1, descending=True, stable=True).argsort(dim=-1)
    chosen = (rank < counts[:, None]) & (scores > float("-inf"))
    if threshold is not None:
        chosen |= (confidence >= threshold) & (scores > float("-inf"))
    return chosen


def pad_after_eos(canvas, holes, eos_ids, pad_token_id) -> torch.BoolTensor:
    """Fill every hole after a sequence's first generated EOS with pad, in place; returns the positions filled."""
    is_eos = holes & torch.isin(canvas, eos_ids)
    after = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
    filled = after & holes & (canvas != pad_token_id)
    canvas[filled] = pad_token_id
    return filled


# ----------------------------------------------------------------------------------------------------------------------
# Denoisers: hidden states of one block's positions for the current canvas, exactly or with a cache.


class ExactDenoiser:
    """Runs the whole canvas each call; returns the hidden states `[B, W, hidden]` of the block's W positions (the
    sampler applies the LM head only where a MASK is left: with a large vocabulary the head costs more than the
    backbone). `backbone` is `model.model` or its compiled call: every call of a block sees the same shapes, so a
    compiled backbone is traced once per shape, not once per step."""

    def __init__(self, model, backbone, attention_mask, position_ids, start, end):
        self.model, self.backbone = model, backbone
        self.attention_mask, self.position_ids = attention_mask, position_ids
        self.block = slice(start, end)

    def __call__(self, canvas):
        hidden = self.backbone(
            input_ids=canvas, attention_mask=self.attention_mask, position_ids=self.position_ids
        ).last_hidden_state
        return self.model.prediction_states(hidden)[:, self.block]


class CachedDenoiser(ExactDenoiser):
    """Fast-dLLM's block cache. The first call of a block runs the whole canvas and keeps the keys and values of
    the prefix (and, for "dual", of the suffix); later calls run only the block (and the suffix for "prefix")
    against them. Attention is bidirectional and RoPE is applied before caching, so the cached keys need not be in
    sequence order: the block's new keys are appended after them."""

    def __init__(self, model, backbone, attention_mask, position_ids, start, end, mode):
        super().__init__(model, backbone, attention_mask, position_ids, start, end)
        length = position_ids.shape[-1]
        kept = torch.arange(start) if mode == "prefix" else torch.cat([torch.arange(start), torch.arange(end, length)])
        self.kept = kept.to(position_ids.device)
        self.fed = slice(start, length if mode == "prefix" else end)
        self.cache = None

    def __call__(self, canvas):
        if self.cache is None:
            cache = DynamicCache(config=self.model.config)
            hidden = self.backbone(
                input_ids=canvas,
                attention_mask=self.attention_mask,
                position_ids=self.position_ids,
                cache=cache,
                use_cache=True,
            ).last_hidden_state
            self.cache = DynamicCache(config=self.model.config)
            for layer_idx, (keys, values, *_) in enumerate(cache):
                self.cache.update(keys[:, :, self.kept], values[:, :, self.kept], layer_idx)
            self.kept_states = [(layer.keys, layer.values) for layer in self.cache.layers]
            return hidden[:, self.block]
        attention_mask = self.attention_mask
        if attention_mask is not None:  # same key order as the cache: kept positions, then the fed ones
            attention_mask = torch.cat([attention_mask[:, self.kept], attention_mask[:, self.fed]], dim=1)
        hidden = self.backbone(
            input_ids=canvas[:, self.fed],
            attention_mask=attention_mask,
            position_ids=self.position_ids[:, self.fed],
            cache=self.cache,
            use_cache=True,
        ).last_hidden_state
        # Drop the block's keys again (they change every step) by restoring the kept tensors themselves: a cropped
        # view would have other strides at every later step, and a compiled backbone would recompile for them.
        for layer, (keys, values) in zip(self.cache.layers, self.kept_states):
            layer.keys, layer.values = keys, values
        return hidden[:, : self.block.stop - self.block.start]


class MaskedDiffusionGenerationMixin:
    """`generate` for `MaskedDiffusionForLM` (the model's `generation_config_class` is the config above)."""

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        generation_config: MaskedDiffusionGenerationConfig | None = None,
        logits_processor: LogitsProcessorList | None = None,
        streamer: BaseStreamer | None = None,
        mask_token_id: int | None = None,
        **kwargs,
    ) -> torch.LongTensor | CanvasGenerationOutput:
        """Fill every MASK of `input_ids` plus `max_new_tokens` appended ones.

        Args:
            input_ids: `[batch, prompt]`, left-padded when prompts differ in length; MASK ids anywhere are holes.
                None: unconditional generation of `max_new_tokens` tokens.
            attention_mask: `[batch, prompt]`, 0 on (left) padding.
            generation_config: defaults to `self.generation_config`; keyword arguments override its fields.
            logits_processor: extra processors, applied before the standard ones to the logits of each MASK
                position `[N, vocab]`, with that position's canvas `[N, seq]` as `input_ids`.
            streamer: batch size 1 only. Receives the prompt, then `put_draft(canvas from the block on)` after every
                step when it has `put_draft` (e.g. `TextDiffusionStreamer`), and `put(block)` when a block is done.
            mask_token_id: accepted for the same call shape as `PermutedCausalLM`; must equal the config's.
        Returns:
            `[batch * num_return_sequences, prompt + max_new_tokens]` token ids, or a `CanvasGenerationOutput` with
            `return_dict_in_generate=True`.
        """
        mask_id = self.config.mask_token_id
        if mask_token_id is not None and mask_token_id != mask_id:
            raise ValueError(f"mask_token_id={mask_token_id} differs from the model's config.mask_token_id={mask_id}.")
        config = prepare_generation_config(
            self.generation_config, generation_config, MaskedDiffusionGenerationConfig, kwargs
        )
        num_return_sequences = config.num_return_sequences or 1
        canvas, attention_mask = initial_canvas(
            input_ids, attention_mask, mask_id, config.max_new_tokens, num_return_sequences, self.config.vocab_size,
            self.device,
        )
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # left padding: real tokens start at 0
        prompt_length = canvas.shape[1] - (config.max_new_tokens or 0)
        check_position_range(position_ids, self.config.max_position_embeddings, prompt_length, config.max_new_tokens)
        holes = (canvas == mask_id) & attention_mask.bool()
        blocks, steps_per_block = plan_blocks(holes, config)
        if streamer is not None and canvas.shape[0] > 1:
            raise ValueError("A streamer takes a single sequence; use batch size 1 and num_return_sequences=1.")

        generators = row_generators(canvas, attention_mask, config.seed, num_return_sequences)
        processors = build_logits_processors(config, logits_processor, canvas.device)
        schedule = get_noise_schedule(config.noise_schedule or self.config.noise_schedule, self.config.time_epsilon)
        count_commits = commit_counter(config.tokens_per_step, steps_per_block, schedule, generators)
        score_positions = position_scorer(config.remasking)
        # "random" scores are all equal: Gumbel noise at temperature 1 alone draws the positions.
        position_temperature = config.position_temperature or (1.0 if config.remasking == "random" else 0.0)
        eos_ids = torch.tensor(as_id_list(config.eos_token_id), dtype=torch.long, device=canvas.device)
        pad_id = config.pad_token_id if config.pad_token_id is not None else (eos_ids[0] if len(eos_ids) else None)
        padding_mask = None if bool(attention_mask.all()) else attention_mask

        if config.block_cache != "none" and self.config.shift_logits:
            raise ValueError(f"block_cache={config.block_cache!r} is not supported with shift_logits=True (a block's "
                             "first position is predicted from the cached position before it); use "
                             "block_cache='none'.")
        commit_step = torch.full_like(canvas, -1)
        history = [canvas.clone()]
        num_forward_passes = step_index = 0
        if streamer is not None:
            streamer.put(canvas[:, : blocks[0][0]].cpu())
        backbone = self.model
        if config.compile_config is not None and not config.disable_compile:
            backbone = self.compiled_backbone(config.compile_config)
        for start, end in blocks:
            if config.block_cache == "none":
                denoiser = ExactDenoiser(self, backbone, padding_mask, position_ids, start, end)
            else:
                denoiser = CachedDenoiser(self, backbone, padding_mask, position_ids, start, end, config.block_cache)
            block, block_commits = canvas[:, start:end], commit_step[:, start:end]  # views: updated in place
            num_at_start = (block == mask_id).sum(-1)
            canvas_changed = True
            for step in range(steps_per_block):
                masked = block == mask_id  # [B, W]
                num_left = masked.sum(-1)
                if not bool(num_left.any()):
                    break
                if canvas_changed:  # after a step that committed nothing the network would say the same again
                    hidden = denoiser(canvas)  # [B, W, hidden]
                    num_forward_passes += 1

                # Propose a token for every MASK position, then commit the best-scored proposals; the rest stay masked.
                logits = self.output_logits(hidden[masked])  # [N, V], row by row
                tokens, confidence, scores = propose(
                    logits, masked, canvas, processors, config.do_sample, score_positions, position_temperature,
                    generators,
                )
                num_commits = count_commits(step, num_left, num_at_start)
                committed = select_positions(scores, num_commits, confidence, config.confidence_threshold)
                block.copy_(torch.where(committed, tokens, block))
                block_commits.masked_fill_(committed, step_index)
                canvas_changed = bool(committed.any())
                step_index += 1
                if config.return_dict_in_generate:
                    history.append(canvas.clone())
                if streamer is not None and hasattr(streamer, "put_draft"):
                    streamer.put_draft(canvas[:, start:].cpu())

            if len(eos_ids):
                commit_step.masked_fill_(pad_after_eos(canvas, holes, eos_ids, pad_id), step_index - 1)
            if streamer is not None:
                streamer.put(block.cpu())
        if streamer is not None:
            streamer.end()

        if not config.return_dict_in_generate:
            return canvas
        return CanvasGenerationOutput(
            sequences=canvas,
            history=torch.stack(history),
            commit_step=commit_step,
            num_forward_passes=num_forward_passes,
        )

    def compiled_backbone(self, compile_config):
        """`torch.compile` of the backbone's call, kept across `generate` calls until the config changes (as
        `PreTrainedModel.get_compiled_call` does for the whole model; the sampler runs only the backbone, then the head
        on the positions still masked)."""
        # A tuple, so that the compiled wrapper is not registered as a submodule (nor saved in the state dict).
        kept_config, compiled = getattr(self, "_compiled_backbone", (None, None))
        if kept_config != compile_config:
            compiled = torch.compile(self.model.__call__, **compile_config.to_dict())
            self._compiled_backbone = (compile_config, compiled)
        return compiled

    def adjust_generation_fn(
        self, generation_config, from_auto_class, from_pipeline, pretrained_model_name_or_path, **loading_kwargs
    ):
        # `GenerationMixin`'s version reloads a plain `GenerationConfig`; this one reloads `generation_config_class`.
        loading_kwargs.pop("trust_remote_code", None)
        if generation_config is not None:
            self.generation_config = self.generation_config_class.from_dict(generation_config.to_dict())
        elif pretrained_model_name_or_path is not None:
            try:
                self.generation_config = self.generation_config_class.from_pretrained(
                    pretrained_model_name_or_path, _from_auto=from_auto_class, _from_pipeline=from_pipeline,
                    **loading_kwargs,
                )
            except OSError:
                pass  # no generation_config.json: keep the one built from the model config


def plan_blocks(holes, config) -> tuple[list[tuple[int, int]], int]:
    """The blocks `[(start, end)]` and the steps each block gets.

    Blocks of `block_length` tile the generated tail (`max_new_tokens` columns; without it, the columns from the first
    MASK on); MASK ids inside the prompt belong to the first block.
    """
    max_holes = int(holes.sum(-1).max())
    if max_holes == 0:
        raise ValueError("Nothing to generate: input_ids hold no MASK id and max_new_tokens is 0.")
    length, first_hole = holes.shape[1], int(holes.any(0).nonzero()[0])
    generated = config.max_new_tokens or length - first_hole
    block_length = config.block_length or generated
    if generated % block_length:
        raise ValueError(
            f"block_length={block_length} does not divide the {generated} tokens to generate; choose a divisor of "
            "max_new_tokens (or change max_new_tokens)."
        )
    blocks = [(start, start + block_length) for start in range(length - generated, length, block_length)]
    blocks[0] = (min(first_hole, blocks[0][0]), blocks[0][1])
    if config.steps is None:
        return blocks, max(int(holes[:, start:end].sum(-1).max()) for start, end in blocks)
    if config.steps > max_holes:
        raise ValueError(
            f"steps={config.steps} is more than the {max_holes} tokens to generate: every step commits at least one "
            f"token, so the extra steps would have nothing to do. Use steps <= {max_holes}."
        )
    if config.steps % len(blocks):
        raise ValueError(
            f"steps={config.steps} is not a multiple of the {len(blocks)} blocks (block_length={block_length}); "
            "every block gets steps / num_blocks steps."
        )
    return blocks, config.steps // len(blocks)


__all__ = [
    "CanvasGenerationOutput",
    "MaskedDiffusionGenerationConfig",
    "MaskedDiffusionGenerationMixin",
    "position_scorer",
    "commit_counter",
]
