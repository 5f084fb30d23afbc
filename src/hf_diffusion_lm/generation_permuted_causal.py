"""Any-order generation and infilling for `PermutedCausalLM` with `order_conditioning="target"`.

Left to right, `generate` is transformers' own. Given MASK ids in `input_ids` (the same call shape as
`MaskedDiffusionForLM.generate`) or a `decoding_order`, the model reads the known tokens left to right, then predicts
the holes one at a time in a random (or given) order, each conditioned through the target-position embedding on the
position it must fill, and feeds every prediction back through the KV cache: one network call per hole.
"""

import torch
from transformers.cache_utils import DynamicCache
from transformers.generation import GenerationConfig, GenerationMixin, LogitsProcessorList

from .generation_canvas import (
    CanvasGenerationOutput,
    build_logits_processors,
    check_position_range,
    initial_canvas,
    prepare_generation_config,
    row_generators,
    sample_tokens,
)


DECODING_ORDERS = ("random", "left-to-right")


class PermutedCausalGenerationMixin(GenerationMixin):
    """transformers' `generate`, plus any-order infilling when holes or a `decoding_order` are given."""

    def generate(
        self,
        inputs: torch.LongTensor | None = None,
        generation_config: GenerationConfig | None = None,
        mask_token_id: int | None = None,
        decoding_order: str | torch.Tensor | None = None,
        **kwargs,
    ):
        """`GenerationMixin.generate`, unless `input_ids` hold `mask_token_id` or `decoding_order` is set: then
        `generate_any_order` (see there). `mask_token_id` may also come from `generation_config.mask_token_id`."""
        input_ids = kwargs.pop("input_ids", inputs)
        if mask_token_id is None:
            mask_token_id = getattr(generation_config or self.generation_config, "mask_token_id", None)
        has_holes = mask_token_id is not None and input_ids is not None and bool((input_ids == mask_token_id).any())
        if decoding_order is None and not has_holes:
            return super().generate(input_ids, generation_config=generation_config, **kwargs)
        return self.generate_any_order(
            input_ids, generation_config=generation_config, mask_token_id=mask_token_id,
            decoding_order="random" if decoding_order is None else decoding_order, **kwargs,
        )

    @torch.no_grad()
    def generate_any_order(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        logits_processor: LogitsProcessorList | None = None,
        mask_token_id: int | None = None,
        decoding_order: str | torch.Tensor = "random",
        seed: int | None = None,
        **kwargs,
    ) -> torch.LongTensor | CanvasGenerationOutput:
        """Fill the MASK positions of `input_ids` (and `max_new_tokens` appended ones) in any order.

        Args:
            input_ids: `[batch, seq]`, left-padded if needed; the first real token of each row must be known (the
                model always reads position 0 first).
            mask_token_id: the id marking holes; any id the model never needs to read (it is never fed).
            decoding_order: `"random"` (a fresh order per sequence), `"left-to-right"`, or a `[batch, seq]` tensor
                of ranks: holes are filled in increasing rank.
            seed: base seed of the per-sequence generators (see `generation_canvas.row_generators`).
            kwargs: generation-config fields (`max_new_tokens`, `do_sample`, `temperature`, `top_k`, `top_p`,
                `num_return_sequences`, `return_dict_in_generate`, ...).
        Returns:
            `[batch * num_return_sequences, seq + max_new_tokens]` ids, or a `CanvasGenerationOutput` whose
            `commit_step` is the step at which each hole was filled.
        """
        if self.config.order_conditioning != "target":
            raise ValueError(
                f"Any-order generation and infilling need order_conditioning='target' (this model has "
                f"{self.config.order_conditioning!r}): without the target-position embedding the model cannot be told "
                "which position to predict. Train a model with PermutedCausalConfig(order_conditioning='target')."
            )
        if mask_token_id is None:
            raise ValueError("Pass mask_token_id (or set generation_config.mask_token_id): it marks the holes.")
        config = prepare_generation_config(self.generation_config, generation_config, GenerationConfig, kwargs)
        num_return_sequences = config.num_return_sequences or 1
        canvas, attention_mask = initial_canvas(
            input_ids, attention_mask, mask_token_id, config.max_new_tokens, num_return_sequences,
            self.config.vocab_size, self.device,
        )
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        check_position_range(
            positions, self.config.max_position_embeddings, canvas.shape[1] - (config.max_new_tokens or 0),
            config.max_new_tokens,
        )
        real = attention_mask.bool()
        holes = (canvas == mask_token_id) & real
        if bool((holes & (positions == 0)).any()):
            raise ValueError(
                "The first token of a sequence is a hole; the model reads position 0 first in every order, so it "
                "must be given (start prompts with a BOS token)."
            )
        if not bool(holes.any()):
            raise ValueError(f"Nothing to fill: no mask_token_id={mask_token_id} in input_ids and max_new_tokens is 0.")
        generators = row_generators(canvas, attention_mask, seed, num_return_sequences)
        rank = self.decoding_ranks(decoding_order, holes, positions, generators)

        # The reading order: known tokens left to right (right-aligned so that all rows end them in one column),
        # then the holes by rank. known_index: [B, K] and hole_index: [B, H] hold canvas columns.
        num_known, num_holes = int((real & ~holes).sum(-1).max()), int(holes.sum(-1).max())
        known_key = torch.where(real & ~holes, positions, -1).double()
        known_index = known_key.argsort(dim=-1, stable=True)[:, canvas.shape[1] - num_known :]
        known_valid = known_key.gather(1, known_index) >= 0
        hole_key = torch.where(holes, rank, float("inf"))
        hole_index = hole_key.argsort(dim=-1, stable=True)[:, :num_holes]
        hole_valid = holes.gather(1, hole_index)
        read_index = torch.cat([known_index, hole_index], dim=1)
        read_valid = torch.cat([known_valid, hole_valid], dim=1)
        read_positions = positions.gather(1, read_index)  # RoPE positions; the next one is each input's target

        # The causal model has no MASK output; the id may be an ordinary token of its vocabulary: never propose it.
        processors = build_logits_processors(config, logits_processor, canvas.device, never=[mask_token_id])
        commit_step = torch.full_like(canvas, -1)
        history = [canvas.clone()]
        cache = DynamicCache(config=self.config)
        first, last = 0, num_known  # the slice of the reading order fed next: all known tokens, then one hole
        for step in range(num_holes):
            outputs = self(
                input_ids=canvas.gather(1, read_index[:, first:last]),
                attention_mask=read_valid[:, :last].long(),
                position_ids=read_positions[:, first:last],
                target_position_ids=read_positions[:, first + 1 : last + 1],
                cache=cache,
                use_cache=True,
            )
            filling = hole_valid[:, step]  # rows that still have a hole to fill
            logits = outputs.logits[filling, -1]
            if processors:
                logits = processors(canvas[filling], logits)
            active = [generator for generator, fills in zip(generators, filling.tolist()) if fills]
            tokens, _ = sample_tokens(logits, config.do_sample, active, [1] * len(active))
            rows, columns = filling.nonzero()[:, 0], hole_index[filling, step]
            canvas[rows, columns] = tokens
            commit_step[rows, columns] = step
            if config.return_dict_in_generate:
                history.append(canvas.clone())
            first, last = last, last + 1

        if not config.return_dict_in_generate:
            return canvas
        return CanvasGenerationOutput(
            sequences=canvas, history=torch.stack(history), commit_step=commit_step, num_forward_passes=num_holes
        )

    @staticmethod
    def decoding_ranks(decoding_order, holes, positions, generators) -> torch.Tensor:
        """`[B, seq]` float ranks; holes are filled in increasing rank."""
        if isinstance(decoding_order, torch.Tensor):
            if decoding_order.shape != holes.shape:
                raise ValueError(
                    f"decoding_order has shape {tuple(decoding_order.shape)}; expected one rank per canvas position, "
                    f"{tuple(holes.shape)} (prompt plus max_new_tokens, times num_return_sequences)."
                )
            return decoding_order.to(holes.device).double()
        if decoding_order == "left-to-right":
            return positions.double()
        if decoding_order == "random":
            draws = [torch.rand(int(n), generator=g, device=holes.device) for g, n in zip(generators, holes.sum(-1))]
            return torch.zeros(holes.shape, dtype=torch.double, device=holes.device).masked_scatter_(
                holes, torch.cat(draws).double()
            )
        raise ValueError(f"decoding_order={decoding_order!r} is not one of {DECODING_ORDERS} or a tensor of ranks.")


__all__ = ["PermutedCausalGenerationMixin"]
