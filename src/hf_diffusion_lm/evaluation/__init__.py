"""Evaluation: likelihood estimators with standard errors for both families and any transformers causal LM.

The lm-eval model lives in `hf_diffusion_lm.evaluation.lm_eval_model` (imported on its own: it needs lm-eval).
"""

from . import likelihood
from .likelihood import *  # noqa: F403  (the public names are likelihood.__all__)


__all__ = list(likelihood.__all__)
