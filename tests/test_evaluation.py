"""Likelihood estimators (`hf_diffusion_lm.evaluation`): checked against enumeration on models small enough to
enumerate, against hand computations, and for determinism, padding and bad input."""

import itertools
import math

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from hf_diffusion_lm import MaskedDiffusionForLM, PermutedCausalLM
from hf_diffusion_lm.evaluation import (
    DatasetLikelihood,
    continuation_log_likelihood,
    dataset_likelihood,
    is_greedy,
    sequence_log_likelihood,
)

from conftest import TINY, tiny_causal_config, tiny_diffusion_config


SMALL_MASK = 5  # MASK id of the 6-token vocabulary used for enumeration


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small_diffusion():
    torch.manual_seed(1)
    return MaskedDiffusionForLM(tiny_diffusion_config(vocab_size=6, mask_token_id=SMALL_MASK)).eval()


@pytest.fixture(scope="module")
def diffusion():
    torch.manual_seed(2)
    return MaskedDiffusionForLM(tiny_diffusion_config()).eval()


def masked_log_probs(model, tokens, masked) -> torch.Tensor:
    """log p(x_i | x with `masked` positions set to MASK) `[L]`, through the model's own forward."""
    noisy = tokens.masked_fill(masked, model.config.mask_token_id)
    with torch.no_grad():
        log_probs = model(input_ids=noisy[None]).logits[0].double().log_softmax(-1)
    return log_probs.gather(-1, tokens[:, None])[:, 0]


def exact_elbo(model, tokens, prefix=0, num_nodes=16) -> float:
    """ELBO of tokens[prefix:] given tokens[:prefix]: every mask of the continuation enumerated, and
    int_0^1 w(t) sum_M P(M | t) sum_{i in M} log p(x_i | x_M) dt by Gauss-Legendre (exact here: a polynomial)."""
    length = len(tokens) - prefix
    by_mask = {}
    for bits in itertools.product([False, True], repeat=length):
        masked = torch.tensor([False] * prefix + list(bits))
        by_mask[bits] = masked_log_probs(model, tokens, masked)[masked].sum().item()
    nodes, weights = np.polynomial.legendre.leggauss(num_nodes)
    total = 0.0
    for node, weight in zip((nodes + 1) / 2, weights / 2):
        t = torch.tensor(node, dtype=torch.float64)
        p, w = model.noise_schedule.masking_probability(t).item(), model.noise_schedule.elbo_weight(t).item()
        total += weight * w * sum(p ** sum(bits) * (1 - p) ** (length - sum(bits)) * value
                                  for bits, value in by_mask.items())
    return total


def chain_rule_by_hand(model, tokens, prefix, guidance_scale=0.0) -> float:
    """sum_s log p(x_s | context, x_<s, MASK...) with the logits (1 + w) cond - w uncond (context -> MASK)."""
    mask_id, total = model.config.mask_token_id, 0.0
    for step in range(prefix, len(tokens)):
        noisy = tokens.clone()
        noisy[step:] = mask_id
        unconditional = noisy.clone()
        unconditional[:prefix] = mask_id
        with torch.no_grad():
            cond, uncond = (model(input_ids=ids[None]).logits[0, step, :mask_id].double()
                            for ids in (noisy, unconditional))
        logits = (1 + guidance_scale) * cond - guidance_scale * uncond
        total += logits.log_softmax(-1)[tokens[step]].item()
    return total


# ---- masked diffusion: the ELBO against enumeration --------------------------------------------------------------

def test_dataset_elbo_converges_to_the_enumerated_elbo(small_diffusion):
    sequences = [torch.tensor([2, 0, 4]), torch.tensor([1, 3, 0, 2])]  # different lengths: padded rows
    exact = -sum(exact_elbo(small_diffusion, tokens) for tokens in sequences) / 7
    large = dataset_likelihood(small_diffusion, sequences, mc_samples=4096, batch_size=1024, seed=3)
    assert large.is_bound and large.num_tokens == 7 and large.num_sequences == 2
    # Times are drawn in [eps, 1] as in training: an O(eps) bias on top of the Monte Carlo error.
    assert abs(large.nats_per_token - exact) < 3 * large.standard_error + 2e-3 * exact
    assert large.standard_error < 0.02 * exact
    assert large.bits_per_token == pytest.approx(large.nats_per_token / math.log(2))
    assert large.perplexity == pytest.approx(math.exp(large.nats_per_token))
    low, high = large.perplexity_interval()
    assert low < large.perplexity < high


def test_elbo_standard_error_shrinks_like_one_over_root_k_and_covers_the_seed_to_seed_spread(small_diffusion):
    # The 1/t weight makes single draws heavy-tailed: a token masked at t ~ eps counts ~1/eps times, and with few
    # draws the sample variance tends to miss them, so the reported error understates. A larger eps keeps the tail
    # short enough to see the 1/sqrt(K) law at test sizes.
    model = MaskedDiffusionForLM(tiny_diffusion_config(vocab_size=6, mask_token_id=SMALL_MASK, time_epsilon=0.05))
    model.load_state_dict(small_diffusion.state_dict())
    sequence = [torch.tensor([1, 3, 0, 2])]
    runs = {k: [dataset_likelihood(model.eval(), sequence, mc_samples=k, batch_size=1024, seed=seed)
                for seed in range(8)] for k in (64, 1024)}
    median_error = {k: np.median([run.standard_error for run in runs[k]]) for k in runs}
    assert 3.0 < median_error[64] / median_error[1024] < 5.3  # 16x the draws: ~4x smaller error
    for k in runs:
        assert np.std([run.nats_per_token for run in runs[k]], ddof=1) < 1.6 * median_error[k]


def test_sequence_elbo_uses_the_trainers_validation_draws():
    from hf_diffusion_lm.training import keyed_generator

    model = MaskedDiffusionForLM(tiny_diffusion_config()).eval()
    sequences = torch.randint(0, 39, (3, 12))
    estimates = sequence_log_likelihood(model, sequences, mc_samples=8, batch_size=5, seed=11)
    for index, tokens in enumerate(sequences):
        noise = model.draw_training_randomness(8, 12, generator=keyed_generator(11, index))
        with torch.no_grad():
            loss = model(input_ids=tokens.repeat(8, 1), labels=tokens.repeat(8, 1), **noise).loss.item()
        assert estimates[index].value == pytest.approx(-loss * 12, rel=1e-5)  # loss: per token and per draw
        assert estimates[index].num_samples == 8 and estimates[index].num_tokens == 12


def test_conditional_estimators_agree_with_the_enumerated_conditional_elbo_and_the_chain_rule_is_exact(
    small_diffusion,
):
    contexts = [torch.tensor([1, 3]), torch.tensor([2])]
    continuations = [torch.tensor([0, 4, 2]), torch.tensor([3, 1])]
    joined = [torch.cat(pair) for pair in zip(contexts, continuations)]
    exact = [exact_elbo(small_diffusion, tokens, len(context)) for tokens, context in zip(joined, contexts)]
    kwargs = dict(mc_samples=4096, batch_size=2048, seed=5)
    antithetic = continuation_log_likelihood(small_diffusion, contexts, continuations, method="antithetic", **kwargs)
    stratified = continuation_log_likelihood(small_diffusion, contexts, continuations, method="stratified", **kwargs)
    chain = continuation_log_likelihood(small_diffusion, contexts, continuations, method="chain_rule")
    for index, target in enumerate(exact):
        a, b = antithetic[index], stratified[index]
        assert a.is_bound and b.is_bound and a.value < 0
        assert abs(a.value - target) < 3 * a.standard_error + 2e-3 * abs(target)
        assert abs(b.value - target) < 3 * b.standard_error
        assert abs(a.value - b.value) < 3 * math.hypot(a.standard_error, b.standard_error) + 2e-3 * abs(target)
        by_hand = chain_rule_by_hand(small_diffusion, joined[index], len(contexts[index]))
        assert chain[index].value == pytest.approx(by_hand, rel=1e-5)
        assert chain[index].standard_error == 0 and not chain[index].is_bound
        assert chain[index].num_samples == chain[index].num_tokens == len(continuations[index])


def test_stratified_single_token_is_exact_in_one_row(diffusion):
    (estimate,) = continuation_log_likelihood(diffusion, [[4, 7, 9]], [[12]], method="stratified", mc_samples=64)
    by_hand = chain_rule_by_hand(diffusion, torch.tensor([4, 7, 9, 12]), 3)
    assert estimate.num_samples == 1 and estimate.standard_error == 0
    assert estimate.value == pytest.approx(by_hand, rel=1e-5)


def test_guidance_follows_the_formula_and_zero_is_the_plain_model(diffusion):
    contexts, continuations = [[3, 8, 1, 20], [5]], [[7, 2, 30], [11, 6]]
    tokens = [torch.tensor(context + continuation) for context, continuation in zip(contexts, continuations)]
    guided = continuation_log_likelihood(diffusion, contexts, continuations, method="chain_rule", guidance_scale=0.7)
    for index, estimate in enumerate(guided):
        by_hand = chain_rule_by_hand(diffusion, tokens[index], len(contexts[index]), guidance_scale=0.7)
        assert estimate.value == pytest.approx(by_hand, rel=1e-5)
    for method in ("chain_rule", "antithetic", "stratified"):
        plain = continuation_log_likelihood(diffusion, contexts, continuations, method=method, mc_samples=8)
        zero = continuation_log_likelihood(diffusion, contexts, continuations, method=method, mc_samples=8,
                                           guidance_scale=0.0)
        strong = continuation_log_likelihood(diffusion, contexts, continuations, method=method, mc_samples=8,
                                             guidance_scale=1.5)
        assert zero == plain
        assert all(abs(s.value - p.value) > 1e-3 for s, p in zip(strong, plain))


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")  # peft calls the old name
def test_a_peft_wrapped_diffusion_model_is_scored_with_its_adapters(diffusion):
    from peft import LoraConfig, get_peft_model

    base = MaskedDiffusionForLM(tiny_diffusion_config()).eval()
    base.load_state_dict(diffusion.state_dict())
    wrapped = get_peft_model(base, LoraConfig(target_modules=["q_proj", "v_proj"], init_lora_weights=False)).eval()
    tokens = torch.tensor([3, 8, 1, 7, 2, 30])
    (estimate,) = continuation_log_likelihood(wrapped, [tokens[:3]], [tokens[3:]], method="chain_rule")
    assert estimate.value == pytest.approx(chain_rule_by_hand(wrapped, tokens, 3), rel=1e-5)
    with wrapped.disable_adapter():
        (without,) = continuation_log_likelihood(wrapped, [tokens[:3]], [tokens[3:]], method="chain_rule")
    assert abs(without.value - estimate.value) > 1e-3


# ---- causal models ---------------------------------------------------------------------------------------------

def tiny_llama():
    return LlamaForCausalLM(LlamaConfig(**TINY, initializer_range=0.3)).eval()


def tiny_gpt2():
    config = GPT2Config(vocab_size=40, n_embd=32, n_layer=2, n_head=4, n_positions=64, initializer_range=0.3)
    return GPT2LMHeadModel(config).eval()


@pytest.mark.parametrize("build", [tiny_llama, tiny_gpt2], ids=["llama", "gpt2"])
def test_causal_lm_exact_likelihoods_are_hand_log_softmax_sums(build):
    model = build()
    sequences = [torch.randint(0, 40, (length,)) for length in (9, 4, 12)]
    estimates = sequence_log_likelihood(model, sequences, batch_size=2)
    contexts, continuations = [s[:5] for s in sequences], [s[5:] for s in sequences]
    contexts[1], continuations[1] = sequences[1][:1], sequences[1][1:]
    conditional = continuation_log_likelihood(model, contexts, continuations)
    greedy_flags = is_greedy(model, contexts, continuations)
    for index, tokens in enumerate(sequences):
        with torch.no_grad():
            log_probs = model(input_ids=tokens[None]).logits[0].double().log_softmax(-1)
        token_log_probs = log_probs[:-1].gather(-1, tokens[1:, None])[:, 0]  # position p predicts token p + 1
        assert estimates[index].value == pytest.approx(token_log_probs.sum().item(), rel=1e-5)
        assert estimates[index].num_tokens == len(tokens) - 1 and estimates[index].standard_error == 0
        prefix = len(contexts[index])
        assert conditional[index].value == pytest.approx(token_log_probs[prefix - 1:].sum().item(), rel=1e-5)
        argmax = log_probs[:-1].argmax(-1)
        assert greedy_flags[index] == bool((argmax[prefix - 1:] == tokens[prefix:]).all())
    single = dataset_likelihood(model, sequences[:1])
    with torch.no_grad():
        loss = model(input_ids=sequences[0][None], labels=sequences[0][None]).loss.item()
    assert single.nats_per_token == pytest.approx(loss, rel=1e-5) and single.standard_error == 0

    # A greedy continuation built token by token is greedy; changing its last token makes it not.
    context, continuation = sequences[0][:4], []
    for _ in range(3):
        with torch.no_grad():
            ids = torch.cat([context, torch.tensor(continuation, dtype=torch.long)])
            continuation.append(int(model(input_ids=ids[None]).logits[0, -1].argmax()))
    wrong = continuation[:-1] + [(continuation[-1] + 1) % 40]
    assert is_greedy(model, [context, context], [continuation, wrong]) == [True, False]


@pytest.mark.parametrize("order_conditioning", ["none", "target"])
def test_permuted_causal_order_zero_is_the_eval_loss_and_order_mean_the_mean_of_order_losses(order_conditioning):
    model = PermutedCausalLM(tiny_causal_config(num_orders=3, order_length=16, order_conditioning=order_conditioning))
    if model.target_position_embeddings is not None:  # zero at init: make the target positions matter
        torch.nn.init.normal_(model.target_position_embeddings.weight, std=0.3)
    sequences = [torch.randint(0, 40, (length,)) for length in (7, 10)]
    model.train()  # the estimators must switch to eval mode (order 0, no dropout) and back
    exact = sequence_log_likelihood(model, sequences, batch_size=2)
    mixed = sequence_log_likelihood(model, sequences, method="order_mean", batch_size=4)
    assert model.training
    model.eval()
    per_order_totals = np.zeros(3)
    for index, tokens in enumerate(sequences):
        with torch.no_grad():
            eval_loss = model(input_ids=tokens[None], labels=tokens[None]).loss.item()
            order_losses = [model(input_ids=tokens[None], labels=tokens[None], order_index=k).loss.item()
                            for k in range(3)]
        scored = len(tokens) - 1
        assert exact[index].value == pytest.approx(-eval_loss * scored, rel=1e-5)
        assert mixed[index].samples == pytest.approx([-loss * scored for loss in order_losses], rel=1e-5)
        assert mixed[index].value == pytest.approx(-np.mean(order_losses) * scored, rel=1e-5)
        assert mixed[index].standard_error == pytest.approx(np.std(order_losses, ddof=1) * scored / np.sqrt(3),
                                                            rel=1e-4)
        per_order_totals += np.array(order_losses) * scored
    assert len(set(np.round(per_order_totals, 4))) == 3  # the orders really differ
    pooled = DatasetLikelihood.from_estimates(mixed)
    assert pooled.nats_per_token == pytest.approx(per_order_totals.mean() / 15, rel=1e-5)
    assert pooled.standard_error == pytest.approx(np.std(per_order_totals / 15, ddof=1) / np.sqrt(3), rel=1e-4)

    context, continuation = sequences[1][:6], sequences[1][6:]
    labels = torch.cat([torch.full((6,), -100), continuation])
    with torch.no_grad():
        loss = model(input_ids=sequences[1][None], labels=labels[None]).loss.item()
    (conditional,) = continuation_log_likelihood(model, [context], [continuation])
    assert conditional.value == pytest.approx(-loss * 4, rel=1e-5)


# ---- greedy for diffusion ----------------------------------------------------------------------------------------

def test_diffusion_is_greedy_by_generate_and_by_chain_rule(diffusion):
    contexts = [torch.tensor([3, 8, 1, 20, 6]), torch.tensor([5, 9])]
    generated = [diffusion.generate(input_ids=context[None], max_new_tokens=3, do_sample=False)[0, -3:]
                 for context in contexts]
    wrong = generated[0].clone()
    wrong[1] = (wrong[1] + 1) % 39
    # Contexts of different lengths share a call (left padding); the third differs in one token.
    assert is_greedy(diffusion, contexts + [contexts[0]], generated + [wrong]) == [True, True, False]

    context, continuation = contexts[0], []
    for step in range(3):  # left to right, each token the argmax with the rest of the continuation masked
        canvas = torch.cat([context, torch.tensor(continuation, dtype=torch.long), torch.full((3 - step,), 39)])
        with torch.no_grad():
            continuation.append(int(diffusion(input_ids=canvas[None]).logits[0, len(context) + step].argmax()))
    changed = continuation[:2] + [(continuation[2] + 1) % 39]
    assert is_greedy(diffusion, [context, context], [continuation, changed], criterion="chain_rule") == [True, False]


# ---- determinism and padding -------------------------------------------------------------------------------------

def values(estimates):
    return [estimate.value for estimate in estimates]


@pytest.mark.parametrize("method", ["elbo", "stratified", "antithetic", "chain_rule"])
def test_estimates_depend_on_the_seed_only_not_on_batching_or_padding(diffusion, method):
    generator = torch.Generator().manual_seed(7)
    contexts = [torch.randint(0, 39, (length,), generator=generator) for length in (6, 2, 9, 4)]
    continuations = [torch.randint(0, 39, (length,), generator=generator) for length in (3, 7, 2, 5)]

    def run(contexts, continuations, batch_size=64, seed=0, keys=None):
        kwargs = dict(mc_samples=8, batch_size=batch_size, seed=seed, keys=keys)
        if method == "elbo":
            return sequence_log_likelihood(diffusion, continuations, **kwargs)
        return continuation_log_likelihood(diffusion, contexts, continuations, method=method, **kwargs)

    reference = run(contexts, continuations)
    assert run(contexts, continuations) == reference
    # Rows of several requests share (padded) passes at batch size 5; alone, a request is never padded.
    assert values(run(contexts, continuations, batch_size=5)) == pytest.approx(values(reference), rel=1e-6)
    one_by_one = [run([context], [continuation], batch_size=3, keys=[index])[0]
                  for index, (context, continuation) in enumerate(zip(contexts, continuations))]
    assert values(one_by_one) == pytest.approx(values(reference), rel=1e-6)
    if method != "chain_rule":
        reseeded = run(contexts, continuations, seed=1)
        assert values(reseeded) != pytest.approx(values(reference), rel=1e-3)


def test_padded_tensor_input_equals_a_list_of_sequences(diffusion):
    ids = torch.randint(0, 39, (2, 8))
    attention_mask = torch.ones_like(ids)
    attention_mask[1, 5:] = 0
    from_tensor = sequence_log_likelihood(diffusion, ids, attention_mask=attention_mask, mc_samples=8)
    from_list = sequence_log_likelihood(diffusion, [ids[0], ids[1, :5]], mc_samples=8)
    assert values(from_tensor) == pytest.approx(values(from_list), rel=1e-6)
    assert [estimate.num_tokens for estimate in from_tensor] == [8, 5]


# ---- bad input --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda m: continuation_log_likelihood(m, [[1, 2], [3]], [[4], []]), r"continuation_ids\[1\] is empty"),
    (lambda m: continuation_log_likelihood(m, [[1]], [[4]], mc_samples=0), "mc_samples=0"),
    (lambda m: sequence_log_likelihood(m, [[1, 2]], mc_samples=-3), "mc_samples=-3"),
    (lambda m: continuation_log_likelihood(m, [[1]], [[4]], method="bogus"), "method='bogus'"),
    (lambda m: sequence_log_likelihood(m, [[1, 2]], method="exact"), "method='exact'"),
    (lambda m: is_greedy(m, [[1]], [[4]], criterion="argmax"), "criterion='argmax'"),
    (lambda m: continuation_log_likelihood(m, [[1] * 60], [[4] * 5]), "65 tokens.*max_position_embeddings=64"),
    (lambda m: continuation_log_likelihood(m, [[1]], [[4, 39]]), "mask_token_id=39"),
    (lambda m: continuation_log_likelihood(m, [[1]], [[4, 40]]), "the id 40"),
    (lambda m: continuation_log_likelihood(m, [[1], [2]], [[4]]), "2 contexts but 1 continuations"),
    (lambda m: sequence_log_likelihood(m, [[1, 2]], keys=[0, 1]), "keys has 2 entries"),
    (lambda m: sequence_log_likelihood(m, [[1, 2]], batch_size=0), "batch_size=0"),
    (lambda m: sequence_log_likelihood(m, [[]]), r"input_ids\[0\] is empty"),
])
def test_bad_input_raises_a_value_error_naming_the_value(diffusion, call, message):
    with pytest.raises(ValueError, match=message):
        call(diffusion)


def test_bad_input_for_causal_models():
    model = PermutedCausalLM(tiny_causal_config()).eval()
    with pytest.raises(ValueError, match=r"context_ids\[0\] is empty"):
        continuation_log_likelihood(model, [[]], [[4, 5]])
    with pytest.raises(ValueError, match="guidance_scale=0.5"):
        continuation_log_likelihood(model, [[1]], [[4]], guidance_scale=0.5)
    with pytest.raises(ValueError, match="method='chain_rule'"):
        continuation_log_likelihood(model, [[1]], [[4]], method="chain_rule")
    with pytest.raises(ValueError, match="no token"):
        DatasetLikelihood.from_estimates(sequence_log_likelihood(model, [[7]]))
