import pytest
import torch

from hf_diffusion_lm import MaskedDiffusionConfig, PermutedCausalConfig


TINY = dict(
    vocab_size=40,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
)


def tiny_diffusion_config(**overrides) -> MaskedDiffusionConfig:
    # A larger initializer makes the random network actually use its context, so masking and ordering show up.
    return MaskedDiffusionConfig(**{**TINY, "mask_token_id": 39, "initializer_range": 0.3, **overrides})


def tiny_causal_config(**overrides) -> PermutedCausalConfig:
    return PermutedCausalConfig(**{**TINY, "initializer_range": 0.3, **overrides})


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
