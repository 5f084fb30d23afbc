"""Compute accounting as in the data-constrained scaling papers: C = 6 N D for AR and diffusion alike.

The formulas live in `scaling`; this module applies them to a model config.
"""

from .scaling import parameter_count, training_flops


__all__ = ["reference_parameter_count", "training_flops"]


def reference_parameter_count(config) -> int:
    """`scaling.parameter_count` of a config: N = 4 L d^2 + 3 L d f + 6 L d + V d, the count the data-constrained
    paper fits its laws with.

    L = num_hidden_layers, d = hidden_size, V = vocab_size, f = the config's intermediate_size when it sets one,
    else the paper's int(8 d / 3 / 64) * 64. It assumes full multi-head attention, so it over-counts grouped-query
    models; use it to compare with the paper, not to size memory.
    """
    return parameter_count(config.hidden_size, config.num_hidden_layers, config.vocab_size,
                           getattr(config, "intermediate_size", None) or None)
