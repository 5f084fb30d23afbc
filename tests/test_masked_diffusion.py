"""MaskedDiffusionForLM: the ELBO, the forward process, bidirectional attention and the SUBS parameterisation."""

import itertools

import numpy as np
import pytest
import torch

from hf_diffusion_lm import MaskedDiffusionForLM, get_noise_schedule, sample_times

from conftest import tiny_diffusion_config


MASK = 39


def exact_negative_elbo(model, clean: torch.LongTensor) -> float:
    """sum_k (1/k) * mean over k-subsets M of sum_{i in M} -log p(x_i | x with M masked), divided by the length."""
    length = clean.numel()
    total = 0.0
    with torch.no_grad():
        for k in range(1, length + 1):
            subset_losses = []
            for subset in itertools.combinations(range(length), k):
                noisy = clean.clone()
                noisy[list(subset)] = MASK
                log_probs = model(input_ids=noisy[None]).logits[0].double().log_softmax(-1)
                subset_losses.append(-sum(log_probs[i, clean[i]].item() for i in subset))
            total += np.mean(subset_losses) / k
    return total / length


def expected_loss_by_quadrature(model, clean: torch.LongTensor, num_nodes: int = 48) -> float:
    """E_t E_M[loss] with the model's own `loss`, exactly over masks and by Gauss-Legendre quadrature over t."""
    length = clean.numel()
    nodes, node_weights = np.polynomial.legendre.leggauss(num_nodes)
    expected = 0.0
    with torch.no_grad():
        for node, node_weight in zip((nodes + 1) / 2, node_weights / 2):
            p_mask = float(model.noise_schedule.masking_probability(torch.tensor(node, dtype=torch.float64)))
            for bits in itertools.product([False, True], repeat=length):
                mask = torch.tensor(bits)
                probability = p_mask ** mask.sum().item() * (1 - p_mask) ** (length - mask.sum().item())
                loss = model(
                    input_ids=clean[None], labels=clean[None],
                    noise_times=torch.tensor([node], dtype=torch.float32), noise_mask=mask[None],
                ).loss.item()
                expected += node_weight * probability * loss
    return expected


@pytest.mark.parametrize("schedule, rtol", [("linear", 1e-4), ("cosine", 1e-4), ("log-linear", 5e-3)])
def test_expected_loss_is_the_exact_enumeration_elbo(schedule, rtol):
    model = MaskedDiffusionForLM(tiny_diffusion_config(vocab_size=6, mask_token_id=5, noise_schedule=schedule)).eval()
    global MASK
    MASK = 5
    try:
        clean = torch.tensor([0, 3, 1, 4])
        exact = exact_negative_elbo(model, clean)
        assert expected_loss_by_quadrature(model, clean) == pytest.approx(exact, rel=rtol)
    finally:
        MASK = 39


def test_monte_carlo_loss_with_sampled_times_converges_to_the_exact_elbo():
    model = MaskedDiffusionForLM(tiny_diffusion_config(vocab_size=6, mask_token_id=5)).eval()
    global MASK
    MASK = 5
    try:
        clean = torch.tensor([2, 0, 4, 1])
        exact = exact_negative_elbo(model, clean)
    finally:
        MASK = 39
    batch = clean[None].repeat(1024, 1)
    with torch.no_grad():
        estimates = [model(input_ids=batch, labels=batch).loss.item() for _ in range(20)]
    standard_error = np.std(estimates) / np.sqrt(len(estimates))
    assert abs(np.mean(estimates) - exact) < 4 * standard_error + 0.01 * exact


def test_loss_is_weighted_cross_entropy_over_masked_tokens_per_scored_token():
    model = MaskedDiffusionForLM(tiny_diffusion_config()).eval()
    clean = torch.randint(0, 39, (2, 10))
    labels = clean.clone()
    labels[:, :3] = -100  # a prompt: never noised, never scored
    labels[1, 8:] = -100  # padding
    noise_mask = torch.rand(2, 10) < 0.5
    noise_mask[:, 3] = True
    times = torch.tensor([0.25, 0.8])
    with torch.no_grad():
        out = model(input_ids=clean, labels=labels, noise_times=times, noise_mask=noise_mask)
        effective_mask = noise_mask & (labels != -100)
        noisy = clean.masked_fill(effective_mask, MASK)
        raw_logits = model.lm_head(model.model(input_ids=noisy).last_hidden_state)
        log_probs = raw_logits.index_fill(-1, torch.tensor([MASK]), float("-inf")).log_softmax(-1)
    assert torch.equal(out.noise_mask, effective_mask)
    token_nll = -log_probs.gather(-1, clean[..., None])[..., 0]
    weights = (1 / times)[:, None]  # ELBO weight of the linear schedule
    scored = (labels != -100).sum()
    expected = (token_nll * weights * effective_mask).sum() / scored
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert out.masked_fraction.item() == pytest.approx(effective_mask.sum().item() / scored.item())
    assert out.masked_token_loss.item() == pytest.approx(token_nll[effective_mask].mean().item(), rel=1e-5)
    # The Trainer's global token count replaces this batch's own.
    with torch.no_grad():
        halved = model(input_ids=clean, labels=labels, noise_times=times, noise_mask=noise_mask,
                       num_items_in_batch=2 * scored)
    assert halved.loss.item() == pytest.approx(out.loss.item() / 2, rel=1e-6)
    uniform = MaskedDiffusionForLM(tiny_diffusion_config(loss_weighting="uniform")).eval()
    uniform.load_state_dict(model.state_dict())
    with torch.no_grad():
        unweighted = uniform(input_ids=clean, labels=labels, noise_times=times, noise_mask=noise_mask).loss
    assert unweighted.item() == pytest.approx(((token_nll * effective_mask).sum() / scored).item(), rel=1e-5)


def test_sampled_noise_respects_labels_and_the_schedule():
    model = MaskedDiffusionForLM(tiny_diffusion_config()).eval()
    clean = torch.randint(0, 39, (512, 16))
    labels = clean.clone()
    labels[:, :4] = -100
    with torch.no_grad():
        out = model(input_ids=clean, labels=labels)
    assert not out.noise_mask[:, :4].any()
    times = out.noise_times
    assert times.min() >= 1e-3 and times.max() <= 1
    # Antithetic times are evenly spread over the batch.
    gaps = times.sort().values.diff()
    assert torch.allclose(gaps, torch.full_like(gaps, (1 - 1e-3) / 512), atol=1e-5)
    # Each sequence is masked at rate t (linear schedule).
    masked_rate = out.noise_mask[:, 4:].float().mean(1)
    assert masked_rate.mean().item() == pytest.approx(times.mean().item(), abs=0.02)
    assert torch.corrcoef(torch.stack([masked_rate, times]))[0, 1] > 0.85
    with pytest.raises(ValueError, match="noise_times it was drawn at"):
        model(input_ids=clean, labels=labels, noise_mask=out.noise_mask)
    with pytest.raises(ValueError, match="one time per sequence"):
        model(input_ids=clean, labels=labels, noise_times=torch.rand(3))


@pytest.mark.parametrize("name", ["linear", "cosine", "log-linear"])
def test_schedules_run_from_clean_to_masked_with_the_right_derivative(name):
    schedule = get_noise_schedule(name, eps=1e-3)
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    assert schedule.alpha(torch.tensor(0.0, dtype=torch.float64)) == pytest.approx(1.0)
    assert schedule.alpha(torch.tensor(1.0, dtype=torch.float64)) == pytest.approx(0.0, abs=1.1e-3)
    assert (schedule.alpha(t).diff() < 0).all()
    step = 1e-6
    numeric = (schedule.alpha(t + step) - schedule.alpha(t - step)) / (2 * step)
    assert torch.allclose(schedule.alpha_derivative(t), numeric, rtol=1e-5)
    assert torch.allclose(schedule.elbo_weight(t), -numeric / (1 - schedule.alpha(t)), rtol=1e-5)


def test_time_sampling_methods():
    iid = sample_times(10_000, "iid", eps=0.1, generator=torch.Generator().manual_seed(0))
    assert iid.min() >= 0.1 and iid.max() <= 1.0 and iid.mean().item() == pytest.approx(0.55, abs=0.01)
    first = sample_times(8, "antithetic", generator=torch.Generator().manual_seed(3))
    again = sample_times(8, "antithetic", generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, again)
    with pytest.raises(ValueError, match="time_sampling='halton'"):
        sample_times(8, "halton")


def test_mask_is_never_predicted_and_clean_tokens_are_carried_through():
    model = MaskedDiffusionForLM(tiny_diffusion_config()).eval()
    noisy = torch.randint(0, 39, (2, 12))
    noisy[:, ::3] = MASK
    with torch.no_grad():
        logits = model(input_ids=noisy).logits
    assert torch.isneginf(logits[..., MASK]).all()
    probabilities = logits.softmax(-1)
    unmasked = noisy != MASK
    assert torch.equal(probabilities.argmax(-1)[unmasked], noisy[unmasked])
    assert torch.allclose(probabilities.max(-1).values[unmasked], torch.ones(int(unmasked.sum())))
    assert (probabilities.max(-1).values[~unmasked] < 0.999).all()
    raw = MaskedDiffusionForLM(tiny_diffusion_config(copy_unmasked_tokens=False)).eval()
    raw.load_state_dict(model.state_dict())
    with torch.no_grad():
        raw_logits = raw(input_ids=noisy).logits
    assert torch.isfinite(raw_logits[..., :MASK]).all()
    assert torch.allclose(raw_logits[~unmasked], logits[~unmasked])


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_attention_is_bidirectional_with_and_without_padding(implementation):
    model = MaskedDiffusionForLM(tiny_diffusion_config(attn_implementation=implementation)).eval()
    assert model.config._attn_implementation == implementation
    ids = torch.randint(0, 39, (2, 8))
    ids[:, 0] = MASK
    padding = torch.ones_like(ids)
    padding[1, 6:] = 0
    changed_last = ids.clone()
    changed_last[:, -1] = (ids[:, -1] + 1) % 39
    changed_last_real = ids.clone()
    changed_last_real[1, 5] = (ids[1, 5] + 1) % 39
    with torch.no_grad():
        base = model(input_ids=ids).logits[:, 0, :MASK]
        assert not torch.allclose(base, model(input_ids=changed_last).logits[:, 0, :MASK], atol=1e-4)
        padded = model(input_ids=ids, attention_mask=padding).logits[:, 0, :MASK]
        # Row 1: the last real token is seen from the first position; padded tokens are not.
        padded_changed = model(input_ids=changed_last_real, attention_mask=padding).logits[:, 0, :MASK]
        assert not torch.allclose(padded[1], padded_changed[1], atol=1e-4)
        padding_changed = model(input_ids=changed_last, attention_mask=padding).logits[:, 0, :MASK]
        assert torch.allclose(padded[1], padding_changed[1], atol=1e-5)
        assert not torch.allclose(padded[0], padding_changed[0], atol=1e-4)
        assert torch.allclose(padded[0], base[0], atol=1e-5)


def test_eager_and_sdpa_give_the_same_logits_and_loss():
    model = MaskedDiffusionForLM(tiny_diffusion_config(attn_implementation="eager")).eval()
    ids = torch.randint(0, 39, (3, 12))
    padding = torch.ones_like(ids)
    padding[2, 9:] = 0
    labels = ids.masked_fill(padding == 0, -100)
    times, mask = torch.tensor([0.3, 0.6, 0.9]), torch.rand(3, 12) < 0.5
    results = {}
    for implementation in ("eager", "sdpa"):
        model.set_attn_implementation(implementation)
        with torch.no_grad():
            results[implementation] = (
                model(input_ids=ids.masked_fill(mask, MASK), attention_mask=padding).logits,
                model(input_ids=ids, attention_mask=padding, labels=labels, noise_times=times, noise_mask=mask).loss,
            )
    real = padding.bool()
    assert torch.allclose(results["eager"][0][real], results["sdpa"][0][real], atol=1e-5)
    assert torch.allclose(results["eager"][1], results["sdpa"][1], atol=1e-5)
