"""Configuration defaults, validation and the clear errors of bad input."""

import pytest
import torch

from hf_diffusion_lm import MaskedDiffusionConfig, MaskedDiffusionForLM, PermutedCausalConfig, PermutedCausalLM

from conftest import tiny_causal_config, tiny_diffusion_config


def test_configs_build_without_arguments_and_round_trip(tmp_path):
    for config_class in (MaskedDiffusionConfig, PermutedCausalConfig):
        config = config_class()
        assert config.tie_word_embeddings is True
        config.save_pretrained(tmp_path / config.model_type)
        reloaded = config_class.from_pretrained(tmp_path / config.model_type)
        assert reloaded.to_dict() == config.to_dict()
    assert MaskedDiffusionConfig(vocab_size=100).mask_token_id == 99
    assert PermutedCausalConfig(max_position_embeddings=128).order_length == 128


def test_llama_field_names_and_grouped_query_attention():
    config = tiny_diffusion_config()
    for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "rope_parameters",
                 "tie_word_embeddings", "attention_dropout", "hidden_dropout"):
        assert hasattr(config, name), name
    model = MaskedDiffusionForLM(config)
    attention = model.model.layers[0].self_attn
    assert attention.k_proj.out_features == config.num_key_value_heads * config.head_dim == 16
    assert attention.q_proj.out_features == 32
    assert all(module.bias is None for module in model.modules() if isinstance(module, torch.nn.Linear))


@pytest.mark.parametrize(
    "config_class, kwargs, fragment",
    [
        (MaskedDiffusionConfig, dict(vocab_size=10, mask_token_id=10), "mask_token_id=10"),
        (MaskedDiffusionConfig, dict(vocab_size=10, mask_token_id=-1), "mask_token_id=-1"),
        (MaskedDiffusionConfig, dict(hidden_size=100, num_attention_heads=3), "num_attention_heads=3"),
        (PermutedCausalConfig, dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=3), "num_key_value_heads=3"),
        (PermutedCausalConfig, dict(num_orders=0), "num_orders=0"),
        (PermutedCausalConfig, dict(max_position_embeddings=32, order_length=64), "order_length=64"),
        (PermutedCausalConfig, dict(order_conditioning="source"), "order_conditioning='source'"),
        (MaskedDiffusionConfig, dict(noise_schedule="quadratic"), "noise_schedule='quadratic'"),
        (MaskedDiffusionConfig, dict(loss_weighting="cart"), "loss_weighting='cart'"),
        (MaskedDiffusionConfig, dict(time_sampling="sobol"), "time_sampling='sobol'"),
        (MaskedDiffusionConfig, dict(hidden_dropout=1.5), "hidden_dropout=1.5"),
    ],
)
def test_bad_config_values_raise_a_value_error_naming_them(config_class, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        config_class(**kwargs)


@pytest.mark.parametrize("model_class, make_config", [(MaskedDiffusionForLM, tiny_diffusion_config),
                                                      (PermutedCausalLM, tiny_causal_config)])
def test_token_ids_outside_the_vocabulary_and_bad_label_shapes(model_class, make_config):
    model = model_class(make_config())
    good = torch.randint(0, 39, (2, 8))
    with pytest.raises(ValueError, match="input_ids contains the id 40"):
        model(input_ids=good.masked_fill(good == good[0, 0], 40))
    with pytest.raises(ValueError, match="labels contains the id -5"):
        model(input_ids=good, labels=good.masked_fill(good == good[0, 0], -5))
    with pytest.raises(ValueError, match=r"labels have shape \(2, 7\)"):
        model(input_ids=good, labels=good[:, :7])
    # -100 is the ignore index, never an error.
    assert model(input_ids=good, labels=torch.full_like(good, -100).index_fill(1, torch.tensor([3]), 5)).loss.isfinite()


def test_sequences_longer_than_the_orders_are_refused():
    model = PermutedCausalLM(tiny_causal_config(num_orders=2, order_length=8))
    with pytest.raises(ValueError, match="order_length=8"):
        model(input_ids=torch.randint(0, 39, (1, 9)), order_index=1)
    with pytest.raises(ValueError, match=r"must lie in \[0, num_orders=2\)"):
        model(input_ids=torch.randint(0, 39, (1, 8)), order_index=2)
