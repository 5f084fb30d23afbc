"""`PermutedCausalLM`: a causal transformer trained on N fixed token orderings (N = 1: plain left-to-right AR)."""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.modeling_utils import slice_logits_to_keep
from transformers.utils.deprecation import deprecate_kwarg

from .configuration_permuted_causal import PermutedCausalConfig
from .generation_permuted_causal import PermutedCausalGenerationMixin
from .modeling_backbone import BackboneModel, BackbonePreTrainedModel, check_labels_shape, check_token_ids


def build_token_orders(num_orders: int, order_length: int, seed: int) -> torch.LongTensor:
    """The N orderings, `[num_orders, order_length]`: row k lists the original positions in the order they are read.

    Order 0 is the identity; the others keep position 0 first and permute the rest with a seeded generator, so the
    same config always gives the same orders.
    """
    generator = torch.Generator().manual_seed(seed)
    orders = [torch.arange(order_length)]
    for _ in range(num_orders - 1):
        orders.append(torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(order_length - 1, generator=generator)]))
    return torch.stack(orders)


class TargetPositionEmbedding(nn.Embedding):
    """Embedding of the position predicted next, added to each input (zero at init: starts as plain AR)."""


@dataclass
class PermutedCausalLMOutput(CausalLMOutputWithPast):
    """`CausalLMOutputWithPast` plus `order_index` (`[batch]`), the ordering each sequence was read in (logits and
    loss are in that order)."""

    order_index: torch.LongTensor | None = None


class PermutedCausalLM(BackbonePreTrainedModel, PermutedCausalGenerationMixin):
    """Causal LM that reads each training sequence in one of `config.num_orders` fixed orderings.

    Permuting a sequence moves its tokens; RoPE still receives each token's original position. In eval mode (and
    whenever `order_index` is 0) it is an ordinary left-to-right LM, so validation loss is the usual NLL and
    `generate` is transformers' own, with the KV cache. With `order_conditioning="target"`, `generate` also fills
    MASK holes in any order (see `generation_permuted_causal.py`).
    """

    config: PermutedCausalConfig
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    remote_code_auto_classes = ("AutoModel", "AutoModelForCausalLM")

    def __init__(self, config: PermutedCausalConfig):
        super().__init__(config)
        self.model = BackboneModel(config, is_causal=True)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.target_position_embeddings = (
            TargetPositionEmbedding(config.max_position_embeddings, config.hidden_size)
            if config.order_conditioning == "target"
            else None
        )
        orders = build_token_orders(config.num_orders, config.order_length, config.order_seed)
        self.register_buffer("token_orders", orders, persistent=False)
        self.loss_type = "ForCausalLM"
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, TargetPositionEmbedding):
            init.zeros_(module.weight)
        elif isinstance(module, PermutedCausalLM):
            init.copy_(
                module.token_orders,
                build_token_orders(self.config.num_orders, self.config.order_length, self.config.order_seed),
            )
        else:
            super()._init_weights(module)

    def draw_training_randomness(
        self, num_sequences: int, seq_length: int, generator: torch.Generator | None = None, device=None
    ) -> dict[str, torch.Tensor]:
        """The random inputs of a training batch, drawn from `generator`: `order_index` `[num_sequences]`, one of the
        N orderings per sequence (nothing when N = 1: left to right is the only order). `forward` uses this in
        training; a trainer calls it once for the global batch with a keyed generator and slices the rows."""
        if self.config.num_orders == 1:
            return {}
        orders = torch.randint(self.config.num_orders, (num_sequences,), generator=generator, device=device)
        return {"order_index": orders}

    def orders_for_length(self, seq_length: int) -> torch.LongTensor:
        """The orderings restricted to a sequence of `seq_length` tokens, `[num_orders, seq_length]`."""
        if seq_length > self.config.order_length:
            raise ValueError(
                f"The sequence has {seq_length} tokens but the orders cover order_length={self.config.order_length}; "
                "use shorter sequences or a config with a longer order_length."
            )
        orders = self.token_orders
        # Drop the positions >= seq_length, keeping the others' relative order: a stable sort moves them to the end.
        # (A boolean-mask selection would give the same but with a data-dependent shape, which torch.compile cannot
        # keep in one graph.)
        kept_first = torch.sort((orders >= seq_length).int(), dim=1, stable=True).indices[:, :seq_length]
        return orders.gather(1, kept_first)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        order_index: torch.LongTensor | int | None = None,
        target_position_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> PermutedCausalLMOutput:
        """
        Args:
            input_ids: `[batch, seq]` tokens in their original (left-to-right) order.
            attention_mask: `[batch, past + seq]`, 0 on padding.
            labels: `[batch, seq]` targets in the original order (usually `input_ids`, -100 where not scored); they
                are permuted with the inputs and shifted inside, as in every transformers causal LM.
            order_index: `[batch]` (or an int) choosing one of the N orderings per sequence. Defaults to a uniform
                draw in training mode without a cache, and to order 0 (left to right) otherwise.
            target_position_ids: `[batch, seq]` the position each input predicts next (only with
                `order_conditioning="target"`); derived from the order (or `position_ids + 1`) when not given.
        Returns:
            `PermutedCausalLMOutput`: logits `[batch, seq, vocab]` and loss (mean next-token CE in nats) in the
            order used.
        """
        if input_ids is not None:
            check_token_ids("input_ids", input_ids, self.config.vocab_size)
        if labels is not None:
            check_labels_shape(labels, input_ids if input_ids is not None else inputs_embeds[..., 0])
            check_token_ids("labels", labels, self.config.vocab_size, ignore_index=-100)
        reference = input_ids if input_ids is not None else inputs_embeds[..., 0]
        batch_size, seq_length = reference.shape

        if order_index is None and self.training and cache is None:
            order_index = self.draw_training_randomness(batch_size, seq_length, device=reference.device).get("order_index")
        if order_index is not None:
            input_ids, inputs_embeds, attention_mask, labels, position_ids = self.permute(
                order_index, input_ids, inputs_embeds, attention_mask, labels, position_ids, cache
            )

        if inputs_embeds is None:
            inputs_embeds = self.model.embed_tokens(input_ids)
        if self.target_position_embeddings is not None:
            if target_position_ids is None:
                target_position_ids = self.next_positions(position_ids, attention_mask, cache, seq_length)
            inputs_embeds = inputs_embeds + self.target_position_embeddings(target_position_ids)

        outputs = self.model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            **kwargs,
        )
        logits = self.lm_head(slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep))
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return PermutedCausalLMOutput(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            order_index=order_index,
        )

    def permute(self, order_index, input_ids, inputs_embeds, attention_mask, labels, position_ids, cache):
        """Reorder every per-position input by the chosen orderings; RoPE gets the original positions."""
        if cache is not None:
            raise ValueError("order_index cannot be combined with a KV cache; permute the prompt yourself instead.")
        if position_ids is not None:
            raise ValueError("Pass either order_index or position_ids, not both: the order defines the positions.")
        reference = input_ids if input_ids is not None else inputs_embeds[..., 0]
        batch_size, seq_length = reference.shape
        order_index = torch.as_tensor(order_index, device=reference.device).expand(batch_size)
        out_of_range = (order_index < 0) | (order_index >= self.config.num_orders)
        if not torch.compiler.is_compiling() and bool(out_of_range.any()):
            raise ValueError(f"order_index {order_index.tolist()} must lie in [0, num_orders={self.config.num_orders}).")
        order = self.orders_for_length(seq_length)[order_index]
        if input_ids is not None:
            input_ids = input_ids.gather(1, order)
        else:
            inputs_embeds = inputs_embeds.gather(1, order[..., None].expand_as(inputs_embeds))
        if attention_mask is not None:
            attention_mask = attention_mask.gather(1, order)
        if labels is not None:
            labels = labels.gather(1, order)
        return input_ids, inputs_embeds, attention_mask, labels, order

    def next_positions(self, position_ids, attention_mask, cache, seq_length):
        """Target positions `[batch, seq]`: the next entry of each row of `position_ids` (the last one + 1)."""
        if position_ids is None:
            past_length = cache.get_seq_length() if cache is not None else 0
            position_ids = torch.arange(past_length, past_length + seq_length, device=self.device)[None]
        targets = torch.cat([position_ids[:, 1:], position_ids[:, -1:] + 1], dim=1)
        # Left to right the next position is simply +1; permuted rows already hold their successor in column j+1.
        return targets.clamp(max=self.config.max_position_embeddings - 1)


__all__ = ["PermutedCausalLM", "PermutedCausalLMOutput", "build_token_orders"]
