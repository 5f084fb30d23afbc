"""Masked diffusion and permuted-order autoregressive language models for the Hugging Face ecosystem.

Importing the package registers both model families with the transformers Auto classes.
"""

from .configuration_masked_diffusion import MaskedDiffusionConfig
from .configuration_permuted_causal import PermutedCausalConfig
from .families import FAMILIES, family_of, register_families
from .modeling_masked_diffusion import MaskedDiffusionForLM, MaskedDiffusionOutput
from .modeling_permuted_causal import PermutedCausalLM, PermutedCausalLMOutput
from .schedules import get_noise_schedule, sample_times


__version__ = "0.1.0.dev0"

register_families()

__all__ = [
    "FAMILIES",
    "MaskedDiffusionConfig",
    "MaskedDiffusionForLM",
    "MaskedDiffusionOutput",
    "PermutedCausalConfig",
    "PermutedCausalLM",
    "PermutedCausalLMOutput",
    "family_of",
    "get_noise_schedule",
    "sample_times",
]
