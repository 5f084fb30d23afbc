"""Building the model a run trains: one of ours, or any transformers causal LM as an extra AR baseline."""

from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from ..configuration_masked_diffusion import MaskedDiffusionConfig
from ..configuration_permuted_causal import PermutedCausalConfig
from ..modeling_masked_diffusion import MaskedDiffusionForLM
from ..modeling_permuted_causal import PermutedCausalLM
from .config import ModelArguments


def build_model(arguments: ModelArguments, tokenizer, block_size: int):
    """A freshly initialised model sized by `arguments`, with the tokenizer's vocabulary (plus MASK for
    diffusion), or the weights of `model_name_or_path` with embeddings resized to the tokenizer."""
    if arguments.model_name_or_path is not None:
        auto_class = AutoModelForMaskedLM if arguments.model == "masked_diffusion" else AutoModelForCausalLM
        model = auto_class.from_pretrained(arguments.model_name_or_path)
        if model.get_input_embeddings().num_embeddings < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=arguments.pad_vocab_to_multiple_of)
        return model

    multiple = arguments.pad_vocab_to_multiple_of
    positions = arguments.max_position_embeddings or block_size
    if block_size > positions:
        raise ValueError(
            f"block_size={block_size} exceeds max_position_embeddings={positions}; shorten the blocks or raise "
            "max_position_embeddings."
        )
    shape = dict(
        vocab_size=-(-len(tokenizer) // multiple) * multiple,
        hidden_size=arguments.hidden_size,
        intermediate_size=arguments.intermediate_size or int(8 * arguments.hidden_size / 3 / 64) * 64 or 64,
        num_hidden_layers=arguments.num_hidden_layers,
        num_attention_heads=arguments.num_attention_heads,
        num_key_value_heads=arguments.num_key_value_heads,
        max_position_embeddings=positions,
        tie_word_embeddings=arguments.tie_word_embeddings,
        attention_dropout=arguments.attention_dropout,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if arguments.attn_implementation:
        shape["attn_implementation"] = arguments.attn_implementation
    if arguments.model == "masked_diffusion":
        config = MaskedDiffusionConfig(
            **shape, hidden_dropout=arguments.hidden_dropout, mask_token_id=tokenizer.mask_token_id,
            noise_schedule=arguments.noise_schedule, loss_weighting=arguments.loss_weighting,
            time_sampling=arguments.time_sampling,
        )
        return MaskedDiffusionForLM(config)
    if arguments.model == "permuted_causal":
        config = PermutedCausalConfig(
            **shape, hidden_dropout=arguments.hidden_dropout, num_orders=arguments.num_orders,
            order_seed=arguments.order_seed, order_length=positions, order_conditioning=arguments.order_conditioning,
        )
        return PermutedCausalLM(config)
    if arguments.model not in CONFIG_MAPPING:
        raise ValueError(
            f"model={arguments.model!r} is unknown: use masked_diffusion, permuted_causal, or a transformers causal-LM "
            "model type such as gpt2, llama or mamba."
        )
    config = AutoConfig.for_model(arguments.model, **shape)
    return AutoModelForCausalLM.from_config(config)
