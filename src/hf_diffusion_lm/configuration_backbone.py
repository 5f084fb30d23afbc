"""Configuration shared by both model families: a small Llama-style decoder stack."""

from transformers.models.llama.configuration_llama import LlamaConfig


class BackboneConfig(LlamaConfig):
    r"""
    The transformer both model families are built on. Field names are `LlamaConfig`'s, so a config reads like any
    Llama config; the defaults describe a small model (the paper's setup: SwiGLU with `intermediate_size =
    int(8 * hidden_size / 3 / 64) * 64`, tied embeddings, no biases) rather than Llama-7B.

    Args beyond `LlamaConfig`:
        intermediate_size (`int`, *optional*, defaults to 0):
            SwiGLU inner size; 0 derives the paper's `int(8 * hidden_size / 3 / 64) * 64` (at least 64) from the width.
            (0 rather than None: the parent's strict dataclass validation only accepts an int here.)
        hidden_dropout (`float`, *optional*, defaults to 0.0):
            Dropout on the embeddings and on the output of every attention and MLP sub-layer before it joins the
            residual stream (Megatron's hidden dropout; the data-constrained paper trains with 0.1).
    """

    vocab_size: int = 50304
    hidden_size: int = 256
    intermediate_size: int = 0
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    max_position_embeddings: int = 2048
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = True
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    hidden_dropout: float = 0.0

    def __post_init__(self, **kwargs):
        # Checked before LlamaConfig's own validation so that the error is a plain ValueError naming the values.
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"num_attention_heads={self.num_attention_heads} does not divide hidden_size={self.hidden_size}; "
                "choose a head count that divides the width (for example hidden_size // 64)."
            )
        kv_heads = self.num_key_value_heads or self.num_attention_heads
        if self.num_attention_heads % kv_heads != 0:
            raise ValueError(
                f"num_key_value_heads={kv_heads} does not divide num_attention_heads={self.num_attention_heads}; "
                "grouped-query attention needs every key/value head to serve the same number of query heads."
            )
        if not self.intermediate_size:
            self.intermediate_size = max(64, int(8 * self.hidden_size / 3 / 64) * 64)
        for name in ("hidden_dropout", "attention_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name}={value} must lie in [0, 1).")
        super().__post_init__(**kwargs)
