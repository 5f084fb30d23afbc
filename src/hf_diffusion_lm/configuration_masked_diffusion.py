"""Configuration of `MaskedDiffusionForLM`."""

from .configuration_backbone import BackboneConfig
from .schedules import LOSS_WEIGHTINGS, NOISE_SCHEDULES, TIME_SAMPLINGS, check_choice


class MaskedDiffusionConfig(BackboneConfig):
    r"""
    Configuration of a masked (absorbing-state) diffusion language model: a bidirectional `BackboneConfig`
    transformer plus the forward process and the training objective.

    Args beyond `BackboneConfig`:
        mask_token_id (`int`, *optional*):
            Id of the MASK token; must lie inside the vocabulary. Defaults to the last id, `vocab_size - 1`.
        noise_schedule (`str`, *optional*, defaults to `"linear"`):
            alpha(t), the probability that a token is still clean at time t: `"linear"` (1 - t), `"cosine"`
            (1 - cos(pi/2 (1 - t))) or `"log-linear"` (1 - (1 - eps) t, MDLM's default).
        loss_weighting (`str`, *optional*, defaults to `"elbo"`):
            `"elbo"` weights the cross-entropy of masked tokens at time t by -alpha'(t) / (1 - alpha(t)) (the
            continuous-time ELBO, 1/t for the linear schedule); `"uniform"` weights it by 1.
        time_sampling (`str`, *optional*, defaults to `"antithetic"`):
            How a batch draws its times: `"antithetic"` (t_i = (u + i / B) mod 1, one uniform u per batch, lower
            variance) or `"iid"`.
        time_epsilon (`float`, *optional*, defaults to 1e-3):
            Time floor: times are drawn in [eps, 1] so that the 1/t weight stays finite.
        copy_unmasked_tokens (`bool`, *optional*, defaults to `True`):
            MDLM's "SUBS" parameterisation at inference: logits of an unmasked input position put all mass on its
            own token. The loss never depends on it (only masked positions are scored).
        shift_logits (`bool`, *optional*, defaults to `False`):
            Dream's right-shifted prediction: the token at position i is predicted from the hidden state at i - 1
            (position 0 from its own), the habit of a causal LM's head, kept when a model is adapted from one. The
            loss, the samplers and the likelihood estimators all read predictions through `prediction_states`.

    Example:

    ```python
    >>> from hf_diffusion_lm import MaskedDiffusionConfig, MaskedDiffusionForLM
    >>> config = MaskedDiffusionConfig(vocab_size=260, mask_token_id=259, hidden_size=128, num_hidden_layers=2)
    >>> model = MaskedDiffusionForLM(config)
    ```"""

    model_type = "masked_diffusion"

    mask_token_id: int | None = None
    noise_schedule: str = "linear"
    loss_weighting: str = "elbo"
    time_sampling: str = "antithetic"
    time_epsilon: float = 1e-3
    copy_unmasked_tokens: bool = True
    shift_logits: bool = False

    def __post_init__(self, **kwargs):
        if self.mask_token_id is None:
            self.mask_token_id = self.vocab_size - 1
        if not 0 <= self.mask_token_id < self.vocab_size:
            raise ValueError(
                f"mask_token_id={self.mask_token_id} lies outside the vocabulary [0, {self.vocab_size}); add a MASK "
                "token to the tokenizer and set vocab_size to cover it."
            )
        check_choice("noise_schedule", self.noise_schedule, NOISE_SCHEDULES)
        check_choice("loss_weighting", self.loss_weighting, LOSS_WEIGHTINGS)
        check_choice("time_sampling", self.time_sampling, TIME_SAMPLINGS)
        if not 0.0 <= self.time_epsilon < 1.0:
            raise ValueError(f"time_epsilon={self.time_epsilon} must lie in [0, 1).")
        super().__post_init__(**kwargs)
