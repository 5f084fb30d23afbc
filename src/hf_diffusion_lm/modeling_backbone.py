"""The decoder stack shared by `MaskedDiffusionForLM` and `PermutedCausalLM`.

Built from transformers' Llama blocks (RMSNorm, RoPE, SwiGLU MLP, grouped-query attention through the attention
interface), so `attn_implementation` switches between eager, sdpa, flash and flex kernels. The same weight names as
`LlamaForCausalLM` (`model.embed_tokens`, `model.layers.*`, `model.norm`, `lm_head`) are used by both families, so an
AR and a diffusion model of one size have exactly the same parameters.
"""

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.models.llama.modeling_llama import (
    LlamaAttention,
    LlamaDecoderLayer,
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
)
from transformers.utils.output_capturing import capture_outputs

from .configuration_backbone import BackboneConfig


class BackboneDecoderLayer(LlamaDecoderLayer):
    """A Llama block whose attention is causal or bidirectional, with dropout on each sub-layer's output."""

    def __init__(self, config: BackboneConfig, layer_idx: int, is_causal: bool):
        super().__init__(config, layer_idx)
        # sdpa and flash read this flag when no mask tensor is given (e.g. no padding): it must match the model.
        self.self_attn.is_causal = is_causal
        self.residual_dropout = nn.Dropout(config.hidden_dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """hidden_states: `[batch, seq, hidden]` -> `[batch, seq, hidden]`; `cache` receives this layer's keys and
        values when given."""
        attention_output, _ = self.self_attn(
            hidden_states=self.input_layernorm(hidden_states),
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            position_embeddings=position_embeddings,
            **kwargs,
        )
        hidden_states = hidden_states + self.residual_dropout(attention_output)
        mlp_output = self.mlp(self.post_attention_layernorm(hidden_states))
        return hidden_states + self.residual_dropout(mlp_output)


class BackbonePreTrainedModel(PreTrainedModel):
    """Capabilities and weight initialisation shared by both model families."""

    config: BackboneConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["BackboneDecoderLayer"]
    _skip_keys_device_placement = ["cache"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_record_outputs = {"hidden_states": BackboneDecoderLayer, "attentions": LlamaAttention}
    # The Auto classes a saved folder lists in `auto_map` for remote-code loading (see `save_pretrained`).
    remote_code_auto_classes: tuple[str, ...] = ()

    def post_init(self):
        # A tied head is not saved. The Trainer reloads its best checkpoint with `load_state_dict` and reports the head
        # as a missing key unless it is listed here, in which case it re-ties the weights quietly.
        if self.config.tie_word_embeddings and self._tied_weights_keys:
            self._keys_to_ignore_on_save = set(self._tied_weights_keys)
        super().post_init()

    def save_pretrained(self, save_directory, *args, **kwargs):
        # A class holds a single `_auto_class`; list the others too so that users without this package can load
        # the folder through every Auto class we register locally.
        if self._auto_class is not None:
            module = type(self).__module__.rsplit(".", 1)[-1]
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            auto_map.update({key: f"{module}.{type(self).__name__}" for key in self.remote_code_auto_classes})
            self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)


class BackboneModel(BackbonePreTrainedModel):
    """Token embedding, a stack of `BackboneDecoderLayer`s and a final RMSNorm; causal or bidirectional."""

    def __init__(self, config: BackboneConfig, is_causal: bool = True):
        super().__init__(config)
        self.is_causal = is_causal
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.embedding_dropout = nn.Dropout(config.hidden_dropout)
        self.layers = nn.ModuleList(
            [BackboneDecoderLayer(config, layer_idx, is_causal) for layer_idx in range(config.num_hidden_layers)]
        )
        self.norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(config=config)
        self.gradient_checkpointing = False
        self.post_init()

    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """
        Args:
            input_ids: `[batch, seq]` token ids (or `inputs_embeds`: `[batch, seq, hidden]`).
            attention_mask: `[batch, past + seq]`, 1 for real tokens and 0 for padding.
            position_ids: `[batch, seq]` positions given to RoPE (permuted for `PermutedCausalLM`). Defaults to
                `past + arange(seq)`.
            cache: a key/value `Cache` to read and extend (generation).
            use_cache: build a `DynamicCache` when no `cache` is given. Only an explicit `True` does: unlike
                transformers' Llama, `config.use_cache` is not a default here, so training, evaluation and the
                diffusion sampler never fill a cache that nobody reads.
        Returns:
            `BaseModelOutputWithPast` with `last_hidden_state` `[batch, seq, hidden]` and the `cache`.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids and inputs_embeds.")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        if position_ids is None:
            past_length = cache.get_seq_length() if cache is not None else 0
            position_ids = (torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past_length)[None]

        if self.is_causal:
            # Position ids are left out on purpose: given non-increasing ids without a padding mask, the mask builder
            # would read them as packed documents, but here they are the permuted positions of one sequence.
            mask = create_causal_mask(
                config=self.config,
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                cache=cache,
            )
        else:
            mask = create_bidirectional_mask(
                config=self.config,
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                cache=cache,
            )

        hidden_states = self.embedding_dropout(inputs_embeds)
        position_embeddings = self.rotary_emb(hidden_states, position_ids=position_ids)
        for decoder_layer in self.layers:
            hidden_states = decoder_layer(
                hidden_states,
                attention_mask=mask,
                position_embeddings=position_embeddings,
                position_ids=position_ids,
                cache=cache,
                **kwargs,
            )
        return BaseModelOutputWithPast(last_hidden_state=self.norm(hidden_states), cache=cache)


def check_token_ids(name: str, ids: torch.Tensor, vocab_size: int, ignore_index: int | None = None) -> None:
    """Raise a `ValueError` naming the offending value when `ids` holds an id outside `[0, vocab_size)`.

    On a GPU an out-of-range id would otherwise surface as an opaque device-side assert. Skipped inside
    `torch.compile`: reading the verdict back is a data-dependent branch that would split the compiled graph at every
    call. Eager forwards and `generate` still check; compiled, an out-of-range id fails in the embedding lookup.
    """
    if torch.compiler.is_compiling():
        return
    valid = (ids >= 0) & (ids < vocab_size)
    if ignore_index is not None:
        valid |= ids == ignore_index
    if not bool(valid.all()):
        bad = ids[~valid][0].item()
        allowed = f"[0, {vocab_size})" + (f" or {ignore_index}" if ignore_index is not None else "")
        raise ValueError(
            f"{name} contains the id {bad}, outside {allowed}; the tokenizer and the model's vocab_size disagree "
            "(resize the embeddings with model.resize_token_embeddings(len(tokenizer)))."
        )


def check_labels_shape(labels: torch.Tensor, input_ids: torch.Tensor) -> None:
    if labels.shape != input_ids.shape:
        raise ValueError(
            f"labels have shape {tuple(labels.shape)} but input_ids have shape {tuple(input_ids.shape)}; "
            "labels must give one target id (or -100) per input position."
        )


__all__ = ["BackboneDecoderLayer", "BackboneModel", "BackbonePreTrainedModel", "check_labels_shape", "check_token_ids"]
