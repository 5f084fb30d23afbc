"""Masked diffusion and permuted-order autoregressive language models for the Hugging Face ecosystem.

Importing the package registers both model families with the transformers Auto classes.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM

from .configuration_masked_diffusion import MaskedDiffusionConfig
from .configuration_permuted_causal import PermutedCausalConfig
from .modeling_masked_diffusion import MaskedDiffusionForLM, MaskedDiffusionOutput
from .modeling_permuted_causal import PermutedCausalLM, PermutedCausalLMOutput
from .schedules import get_noise_schedule, sample_times


__version__ = "0.1.0.dev0"

AutoConfig.register(MaskedDiffusionConfig.model_type, MaskedDiffusionConfig, exist_ok=True)
AutoModel.register(MaskedDiffusionConfig, MaskedDiffusionForLM, exist_ok=True)
AutoModelForMaskedLM.register(MaskedDiffusionConfig, MaskedDiffusionForLM, exist_ok=True)
AutoConfig.register(PermutedCausalConfig.model_type, PermutedCausalConfig, exist_ok=True)
AutoModel.register(PermutedCausalConfig, PermutedCausalLM, exist_ok=True)
AutoModelForCausalLM.register(PermutedCausalConfig, PermutedCausalLM, exist_ok=True)

# `save_pretrained` then copies the model code next to the weights and writes `auto_map`, so a saved folder or Hub
# repo loads with `trust_remote_code=True` where this package is not installed.
MaskedDiffusionConfig.register_for_auto_class()
MaskedDiffusionForLM.register_for_auto_class("AutoModelForMaskedLM")
PermutedCausalConfig.register_for_auto_class()
PermutedCausalLM.register_for_auto_class("AutoModelForCausalLM")

__all__ = [
    "MaskedDiffusionConfig",
    "MaskedDiffusionForLM",
    "MaskedDiffusionOutput",
    "PermutedCausalConfig",
    "PermutedCausalLM",
    "PermutedCausalLMOutput",
    "get_noise_schedule",
    "sample_times",
]
