"""Compute accounting as in the data-constrained scaling papers: C = 6 N D for AR and diffusion alike."""


def reference_parameter_count(config) -> int:
    """N = 4 L d^2 + 3 L d f + 6 L d + V d, the count the data-constrained paper fits its laws with.

    L layers, width d, SwiGLU inner size f, vocabulary V (input embedding counted once). It assumes full multi-head
    attention, so it over-counts grouped-query models; use it to compare with the paper, not to size memory.
    """
    layers, width = config.num_hidden_layers, config.hidden_size
    inner = getattr(config, "intermediate_size", None) or 4 * width
    return 4 * layers * width**2 + 3 * layers * width * inner + 6 * layers * width + config.vocab_size * width


def training_flops(num_parameters: int, num_tokens: int) -> float:
    """C = 6 N D: forward (2 N D) plus backward (4 N D) multiply-adds counted as two FLOPs each."""
    return 6.0 * num_parameters * num_tokens
