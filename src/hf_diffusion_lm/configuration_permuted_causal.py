"""Configuration of `PermutedCausalLM`."""

from .configuration_backbone import BackboneConfig


ORDER_CONDITIONINGS = ("none", "target")


class PermutedCausalConfig(BackboneConfig):
    r"""
    Configuration of a causal language model trained on `num_orders` fixed token orderings. With `num_orders=1` it
    is an ordinary left-to-right language model with exactly the weights of a `LlamaForCausalLM`.

    Args beyond `BackboneConfig`:
        num_orders (`int`, *optional*, defaults to 1):
            N, the number of orderings. Order 0 is the identity (left to right); orders 1..N-1 keep the first token
            first and permute the rest at random. They are a deterministic function of `order_seed` and
            `order_length`, so a saved checkpoint reproduces them exactly.
        order_seed (`int`, *optional*, defaults to 0):
            Seed of the orderings.
        order_length (`int`, *optional*):
            Length L the orderings cover (defaults to `max_position_embeddings`). A shorter sequence uses each order
            restricted to its first positions (the values below its length, in the same relative order).
        order_conditioning (`str`, *optional*, defaults to `"none"`):
            `"none"`: the paper's ablation, permuted tokens with RoPE on their original positions and no sign of
            which position comes next. `"target"`: a learned embedding of the next target position is added to each
            input (RAR / sigma-GPT style), which any-order generation and infilling need. This adds
            `max_position_embeddings * hidden_size` parameters.

    Example:

    ```python
    >>> from hf_diffusion_lm import PermutedCausalConfig, PermutedCausalLM
    >>> config = PermutedCausalConfig(vocab_size=260, num_orders=4, order_length=64, max_position_embeddings=64)
    >>> model = PermutedCausalLM(config)
    ```"""

    model_type = "permuted_causal"

    num_orders: int = 1
    order_seed: int = 0
    order_length: int | None = None
    order_conditioning: str = "none"

    def __post_init__(self, **kwargs):
        if self.order_length is None:
            self.order_length = self.max_position_embeddings
        if not isinstance(self.num_orders, int) or self.num_orders < 1:
            raise ValueError(f"num_orders={self.num_orders!r} must be an integer >= 1 (1 is plain left-to-right AR).")
        if not 1 <= self.order_length <= self.max_position_embeddings:
            raise ValueError(
                f"order_length={self.order_length} must lie in [1, max_position_embeddings="
                f"{self.max_position_embeddings}]; the orders permute positions the rotary embedding can represent."
            )
        if self.order_conditioning not in ORDER_CONDITIONINGS:
            raise ValueError(f"order_conditioning={self.order_conditioning!r} is not one of {ORDER_CONDITIONINGS}.")
        super().__post_init__(**kwargs)
