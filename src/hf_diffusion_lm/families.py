"""The table of model families: one entry per family, read by the Auto registration, the trainer's model builder,
the data pipeline, the run report and model card, the rule metrics and the study.

Not a model-side module: it is never copied into a Hub repo (the model code does not need it).
"""

from dataclasses import dataclass

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, PretrainedConfig

from .configuration_masked_diffusion import MaskedDiffusionConfig
from .configuration_permuted_causal import PermutedCausalConfig
from .flops import reference_parameter_count
from .modeling_masked_diffusion import MaskedDiffusionForLM
from .modeling_permuted_causal import PermutedCausalLM


@dataclass(frozen=True)
class Family:
    """A model family of this package.

    Attributes:
        config_class, model_class: its configuration and model classes; `config_class.model_type` is its name.
        auto_class: the Auto class that loads a checkpoint of the family (`AutoModel` loads it too).
        is_diffusion: its loss is a Monte Carlo bound (the masked-diffusion ELBO) rather than an exact NLL, and it
            generates by denoising a canvas.
        attention: "bidirectional" or "causal", for the model card.
        objective: what it is trained on, for the model card (`{num_orders}` is filled from the config).
        validation_loss: what its validation loss is, for the model card and reports.
    """

    config_class: type[PretrainedConfig]
    model_class: type
    auto_class: type
    is_diffusion: bool
    attention: str
    objective: str
    validation_loss: str

    @property
    def name(self) -> str:
        return self.config_class.model_type


EXACT_NLL = "the exact negative log-likelihood per token, left to right"

FAMILIES = {
    family.name: family
    for family in (
        Family(
            config_class=MaskedDiffusionConfig,
            model_class=MaskedDiffusionForLM,
            auto_class=AutoModelForMaskedLM,
            is_diffusion=True,
            attention="bidirectional",
            objective="the masked-diffusion ELBO",
            validation_loss="the negative ELBO per token (an upper bound on the negative log-likelihood), a Monte Carlo "
                            "estimate with fixed seeds",
        ),
        Family(
            config_class=PermutedCausalConfig,
            model_class=PermutedCausalLM,
            auto_class=AutoModelForCausalLM,
            is_diffusion=False,
            attention="causal",
            objective="next-token cross-entropy over {num_orders} fixed token ordering(s)",
            validation_loss=EXACT_NLL,
        ),
    )
}

# Any other transformers causal LM (`gpt2`, `llama`, ...) trains as an extra AR baseline.
CAUSAL_LM = Family(
    config_class=PretrainedConfig,
    model_class=object,
    auto_class=AutoModelForCausalLM,
    is_diffusion=False,
    attention="causal",
    objective="next-token cross-entropy",
    validation_loss=EXACT_NLL,
)


def family_of(model_or_config) -> Family:
    """The family of a model, a config or a `model_type` string (`CAUSAL_LM` for any other model type)."""
    if isinstance(model_or_config, str):
        model_type = model_or_config
    else:
        config = getattr(model_or_config, "config", model_or_config)
        model_type = getattr(config, "model_type", None)
    return FAMILIES.get(model_type, CAUSAL_LM)


def is_diffusion_model(model_or_config) -> bool:
    return family_of(model_or_config).is_diffusion


def flops_parameter_count(model) -> int:
    """N in C = 6 N D: our families are counted with the data-constrained paper's formula, so that FLOPs compare
    with its scaling laws; any other model by its actual parameter count."""
    if family_of(model) is CAUSAL_LM:
        return model.num_parameters()
    return reference_parameter_count(model.config)


def register_families() -> None:
    """Register every family with the transformers Auto classes, and for remote code: `save_pretrained` then copies
    the model code next to the weights and writes `auto_map`, so a saved folder or Hub repo loads with
    `trust_remote_code=True` where this package is not installed."""
    for family in FAMILIES.values():
        AutoConfig.register(family.name, family.config_class, exist_ok=True)
        AutoModel.register(family.config_class, family.model_class, exist_ok=True)
        family.auto_class.register(family.config_class, family.model_class, exist_ok=True)
        family.config_class.register_for_auto_class()
        family.model_class.register_for_auto_class(family.auto_class.__name__)


__all__ = ["CAUSAL_LM", "FAMILIES", "Family", "family_of", "flops_parameter_count", "is_diffusion_model",
           "register_families"]
