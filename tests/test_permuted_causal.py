"""PermutedCausalLM: orders, causality, the LlamaForCausalLM equivalence for N = 1, target conditioning."""

import pytest
import torch
from torch.nn import functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from hf_diffusion_lm import PermutedCausalLM
from hf_diffusion_lm.modeling_permuted_causal import build_token_orders

from conftest import TINY, tiny_causal_config


def test_orders_are_deterministic_permutations_with_identity_first():
    orders = build_token_orders(num_orders=8, order_length=32, seed=5)
    assert torch.equal(orders, build_token_orders(8, 32, 5))
    assert not torch.equal(orders, build_token_orders(8, 32, 6))
    assert torch.equal(orders[0], torch.arange(32))
    assert (orders[:, 0] == 0).all()
    assert all(torch.equal(row.sort().values, torch.arange(32)) for row in orders)
    assert len({tuple(row.tolist()) for row in orders}) == 8
    model = PermutedCausalLM(tiny_causal_config(num_orders=4, order_length=16))
    shorter = model.orders_for_length(10)
    # Restricting to a shorter sequence keeps each order's relative order of the first 10 positions.
    for full, short in zip(model.token_orders, shorter):
        assert torch.equal(full[full < 10], short)


def test_order_zero_is_causal():
    model = PermutedCausalLM(tiny_causal_config()).eval()
    ids = torch.randint(0, 40, (2, 10))
    changed = ids.clone()
    changed[:, 6] = (ids[:, 6] + 1) % 40
    with torch.no_grad():
        before, after = model(input_ids=ids).logits, model(input_ids=changed).logits
    assert torch.allclose(before[:, :6], after[:, :6], atol=1e-6)
    assert not torch.allclose(before[:, 6:], after[:, 6:], atol=1e-4)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_one_order_is_exactly_a_llama_causal_lm(implementation):
    config = tiny_causal_config(attn_implementation=implementation)
    model = PermutedCausalLM(config).eval()
    llama_config = LlamaConfig(
        **TINY, tie_word_embeddings=True, bos_token_id=None, eos_token_id=None, attn_implementation=implementation
    )
    llama = LlamaForCausalLM(llama_config).eval()
    missing, unexpected = llama.load_state_dict(model.state_dict(), strict=True)
    assert not missing and not unexpected
    assert sum(p.numel() for p in llama.parameters()) == sum(p.numel() for p in model.parameters())
    ids = torch.randint(0, 40, (3, 12))
    padding = torch.ones_like(ids)
    padding[0, :3] = 0  # left padding, as in generation
    labels = ids.masked_fill(padding == 0, -100)
    with torch.no_grad():
        ours = model(input_ids=ids, attention_mask=padding, labels=labels)
        theirs = llama(input_ids=ids, attention_mask=padding, labels=labels)
    assert torch.allclose(ours.logits[padding.bool()], theirs.logits[padding.bool()], atol=1e-5)
    assert ours.loss.item() == pytest.approx(theirs.loss.item(), rel=1e-6)
    prompt = ids[:, :5]
    generated = model.generate(prompt, max_new_tokens=8, do_sample=False)
    assert torch.equal(generated, llama.generate(prompt, max_new_tokens=8, do_sample=False))
    # The cache is used and gives the same tokens as recomputing everything.
    assert torch.equal(generated, model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=False))


def test_loss_is_next_token_cross_entropy_in_the_order_used():
    model = PermutedCausalLM(tiny_causal_config(num_orders=4, order_length=16)).eval()
    ids = torch.randint(0, 40, (4, 16))
    order_index = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids, order_index=order_index)
        orders = model.token_orders[order_index]
        permuted = ids.gather(1, orders)
        manual = model(input_ids=permuted, position_ids=orders, attention_mask=torch.ones_like(ids))
    expected = F.cross_entropy(manual.logits[:, :-1].reshape(-1, 40), permuted[:, 1:].reshape(-1))
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(out.logits, manual.logits, atol=1e-6)
    assert torch.equal(out.order_index, order_index)
    # Reading in another order changes what the model sees, hence its loss.
    with torch.no_grad():
        losses = [model(input_ids=ids[:1], labels=ids[:1], order_index=k).loss.item() for k in range(4)]
    assert len({round(loss, 4) for loss in losses}) == 4


def test_training_draws_orders_and_evaluation_reads_left_to_right():
    model = PermutedCausalLM(tiny_causal_config(num_orders=4, order_length=16))
    ids = torch.randint(0, 40, (256, 16))
    model.train()
    drawn = model(input_ids=ids, labels=ids).order_index
    counts = torch.bincount(drawn, minlength=4)
    assert counts.min() > 40, counts
    model.eval()
    with torch.no_grad():
        evaluated = model(input_ids=ids[:4], labels=ids[:4])
        left_to_right = model(input_ids=ids[:4], labels=ids[:4], order_index=0)
    assert evaluated.order_index is None
    assert evaluated.loss.item() == pytest.approx(left_to_right.loss.item(), rel=1e-6)
    single = PermutedCausalLM(tiny_causal_config(num_orders=1)).train()
    assert single(input_ids=ids[:2], labels=ids[:2]).order_index is None


def test_target_conditioning_tells_the_model_which_position_comes_next():
    model = PermutedCausalLM(tiny_causal_config(order_conditioning="target", num_orders=3, order_length=12))
    assert torch.count_nonzero(model.target_position_embeddings.weight) == 0  # starts as plain AR
    extra = model.config.max_position_embeddings * model.config.hidden_size
    plain = PermutedCausalLM(tiny_causal_config())
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in plain.parameters()) + extra
    torch.nn.init.normal_(model.target_position_embeddings.weight, std=1.0)
    model.eval()
    ids = torch.randint(0, 40, (1, 12))
    positions = torch.arange(12)[None]
    with torch.no_grad():
        default = model(input_ids=ids).logits
        explicit = model(input_ids=ids, position_ids=positions, target_position_ids=positions + 1).logits
        other_target = model(input_ids=ids, position_ids=positions, target_position_ids=(positions + 2) % 12).logits
        permuted = model(input_ids=ids, order_index=2, labels=ids)
        order = model.token_orders[2]
        next_in_order = torch.cat([order[1:], order[-1:] + 1])[None]
        manual = model(input_ids=ids[:, order], position_ids=order[None], target_position_ids=next_in_order,
                       attention_mask=torch.ones_like(ids)).logits
    assert torch.allclose(default, explicit, atol=1e-6)
    assert not torch.allclose(default, other_target, atol=1e-4)
    assert torch.allclose(permuted.logits, manual, atol=1e-6)
    generated = model.generate(ids[:, :4], max_new_tokens=6, do_sample=False)
    assert generated.shape == (1, 10)
