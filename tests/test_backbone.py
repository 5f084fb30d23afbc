"""What both families share: one weight layout, activation checkpointing, dropout."""

import pytest
import torch

from hf_diffusion_lm import MaskedDiffusionForLM, PermutedCausalLM

from conftest import tiny_causal_config, tiny_diffusion_config


def test_both_families_have_the_same_weights_layout_and_parameter_count():
    diffusion = MaskedDiffusionForLM(tiny_diffusion_config())
    causal = PermutedCausalLM(tiny_causal_config(num_orders=8))
    shapes = {name: p.shape for name, p in diffusion.state_dict().items()}
    assert shapes == {name: p.shape for name, p in causal.state_dict().items()}
    assert sum(p.numel() for p in diffusion.parameters()) == sum(p.numel() for p in causal.parameters())
    # Tied embeddings: one matrix serves as input embedding and output head.
    assert diffusion.lm_head.weight is diffusion.model.embed_tokens.weight
    untied = MaskedDiffusionForLM(tiny_diffusion_config(tie_word_embeddings=False))
    assert untied.lm_head.weight is not untied.model.embed_tokens.weight
    extra = untied.config.vocab_size * untied.config.hidden_size
    assert sum(p.numel() for p in untied.parameters()) == sum(p.numel() for p in diffusion.parameters()) + extra


@pytest.mark.parametrize("model_class, make_config", [(MaskedDiffusionForLM, tiny_diffusion_config),
                                                      (PermutedCausalLM, tiny_causal_config)])
def test_activation_checkpointing_gives_the_same_gradients(model_class, make_config):
    model = model_class(make_config()).train()
    ids = torch.randint(0, 39, (2, 12))
    extra = {"noise_times": torch.tensor([0.4, 0.7]), "noise_mask": torch.rand(2, 12) < 0.5} if model_class is MaskedDiffusionForLM else {}

    def gradients():
        model.zero_grad()
        model(input_ids=ids, labels=ids, **extra).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    plain = gradients()
    model.activation_checkpointing_enable()
    assert model.is_activation_checkpointing
    checkpointed = gradients()
    assert all(torch.allclose(plain[name], checkpointed[name], atol=1e-6) for name in plain)


def test_dropout_acts_in_training_only():
    model = PermutedCausalLM(tiny_causal_config(hidden_dropout=0.3))
    ids = torch.randint(0, 40, (2, 8))
    model.train()
    assert not torch.allclose(model(input_ids=ids).logits, model(input_ids=ids).logits)
    model.eval()
    assert torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)


def test_a_key_value_cache_is_built_only_where_one_is_read(monkeypatch):
    """Training, evaluation and the exact diffusion sampler never fill a cache; generation with a cache does."""
    from transformers.cache_utils import DynamicCache

    from hf_diffusion_lm import MaskedDiffusionForLM, PermutedCausalLM

    updates = []
    original_update = DynamicCache.update
    monkeypatch.setattr(DynamicCache, "update", lambda self, *args, **kwargs: updates.append(1)
                        or original_update(self, *args, **kwargs))
    ids = torch.randint(0, 39, (2, 8))
    causal = PermutedCausalLM(tiny_causal_config())
    diffusion = MaskedDiffusionForLM(tiny_diffusion_config())
    assert causal.train()(input_ids=ids, labels=ids).cache is None
    assert causal.eval()(input_ids=ids).cache is None
    diffusion.train()(input_ids=ids, labels=ids).loss.backward()
    diffusion.eval().generate(ids[:, :2], max_new_tokens=6, steps=6)
    assert updates == []
    cache = causal(input_ids=ids, use_cache=True).cache
    assert isinstance(cache, DynamicCache) and cache.get_seq_length() == 8
    updates.clear()
    diffusion.generate(ids[:, :2], max_new_tokens=6, steps=6, block_length=3, block_cache="dual")
    assert len(updates) > 0
