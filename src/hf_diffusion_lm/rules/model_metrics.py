"""Rule metrics of a trained model: panel completion and unconditional generation, both model families.

Completion masks the bottom-right panel (the last tokens of a sample): the diffusion model infills it, a causal model
continues the prefix left to right. Unconditional samples start from BOS alone: all MASK for diffusion, sampling at
temperature 1 for a causal model. Both families sample with BOS, EOS, PAD and MASK suppressed (the generation
config's `suppress_tokens`): a rule sample never holds them, so a sample cannot end early or hold a hole. Scored with
the checker, beside the chance baselines; unconditional C3 also over the novel samples (not in the training set).
"""

import numpy as np
import torch

from ..families import is_diffusion_model
from ..stats import wilson_interval
from .baselines import copy_middle_completion, random_panel_completion, shuffled_panel_samples
from .checker import INVALID, completion_correct, consistency, score_samples
from .generator import sample_keys


def special_token_ids(tokenizer) -> list[int]:
    """BOS, EOS, PAD and MASK: ids no rule sample holds, suppressed in both families' samplers."""
    ids = (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.mask_token_id)
    return sorted({int(token) for token in ids if token is not None})


def invalid_token_rate(samples) -> float:
    """Fraction of the attribute values of decoded samples `[N, 3, 3, 9, 3]` that are INVALID (a token meaning
    nothing in its slot: a special token, or an attribute token in another attribute's slot)."""
    samples = np.asarray(samples)
    return float((samples == INVALID).mean()) if samples.size else float("nan")


def empty_panel_rate(samples) -> float:
    """Fraction of samples `[N, 3, 3, 9, 3]` whose bottom-right panel holds no object at all."""
    return float((np.asarray(samples)[:, 2, 2] == -1).all(axis=(-1, -2)).mean())


def consistency_report(samples, train_samples) -> dict[str, float]:
    """Unconditional-sample figures with counts and 95% Wilson intervals: anyvalid (rows), c3 and c2 over all samples,
    c3 over the novel ones (whole samples not in `train_samples`), the novel fraction and the invalid-token rate."""
    scores = score_samples(samples)
    n = len(scores["c3"])
    seen = set(sample_keys(np.asarray(train_samples)).tolist())
    novel = np.array([key not in seen for key in sample_keys(np.asarray(samples)).tolist()], dtype=bool)
    counts = {"anyvalid": (int(scores["valid_rows"].sum()), 3 * n), "c3": (int(scores["c3"].sum()), n),
              "c2": (int(scores["c2"].sum()), n), "c3_novel": (int(scores["c3"][novel].sum()), int(novel.sum())),
              "novel": (int(novel.sum()), n)}
    report = {"samples": n, "invalid_token_rate": invalid_token_rate(samples)}
    for name, (successes, trials) in counts.items():
        report[name] = successes / trials if trials else float("nan")
        report[f"{name}_low"], report[f"{name}_high"] = wilson_interval(successes, trials)
        report[f"{name}_trials"] = trials
    return report


def panel_tokens(tokenizer) -> int:
    """Tokens of one panel: 9 positions, one token each (object scheme) or three (attribute scheme)."""
    return 9 * tokenizer.tokens_per_position


@torch.no_grad()
def complete_last_panels(model, tokenizer, samples: np.ndarray, batch_size: int = 64, infill: bool | None = None,
                         return_ids: bool = False, **generate_kwargs):
    """samples `[N, 3, 3, 9, 3]` with their last panel rewritten by the model (greedy by default, `do_sample=True`
    samples: diffusion with its sampler's settings, causal models at temperature 1); with `return_ids`,
    also the generated token ids `[N, sample_length + 1]`.

    infill (default: for diffusion models): the last panel becomes MASK holes that `generate` fills (a
    `PermutedCausalLM` with target conditioning then fills them in any order; pass `mask_token_id`). Otherwise the
    model continues the first 8 panels left to right.
    """
    ids = torch.as_tensor(tokenizer.encode_samples(samples), dtype=torch.long, device=model.device)
    answer = panel_tokens(tokenizer)
    infill = is_diffusion_model(model) if infill is None else infill
    generate_kwargs = {"suppress_tokens": special_token_ids(tokenizer), **generate_kwargs}
    completed = []
    for batch in ids.split(batch_size):
        if infill:
            holes = batch.clone()
            holes[:, -answer:] = tokenizer.mask_token_id
            defaults = {"steps": answer} if is_diffusion_model(model) else {"do_sample": False}
            out = model.generate(holes, **{**defaults, **generate_kwargs})
        else:  # greedy unless do_sample=True is passed (then plain temperature-1 sampling: top_k=0)
            options = {"do_sample": False, "top_k": 0, "pad_token_id": tokenizer.pad_token_id, **generate_kwargs}
            out = model.generate(batch[:, :-answer], max_new_tokens=answer, min_new_tokens=answer, **options)
        completed.append(out[:, : ids.shape[1]].cpu())
    completed = torch.cat(completed).numpy()
    samples = tokenizer.decode_samples(completed)
    return (samples, completed) if return_ids else samples


def sampled_completion(model, tokenizer, samples: np.ndarray, batch_size: int = 64, sampling_seed: int = 0,
                       return_ids: bool = False, **generate_kwargs):
    """`complete_last_panels` sampling at temperature 1, reproducibly: a diffusion model seeds its sampler with
    `sampling_seed`, a causal model draws from the global torch generator seeded with it (a `seed` in
    `generate_kwargs` is then the any-order infilling's own, passed on)."""
    if is_diffusion_model(model):
        generate_kwargs["seed"] = sampling_seed
    else:
        torch.manual_seed(sampling_seed)
    return complete_last_panels(model, tokenizer, samples, batch_size, return_ids=return_ids, do_sample=True,
                                **generate_kwargs)


def likelihood_ranked_completion(model, tokenizer, samples: np.ndarray, candidates: int = 4, batch_size: int = 64,
                                 seed: int = 0, mc_samples: int = 8, return_ids: bool = False, **generate_kwargs):
    """samples `[N, 3, 3, 9, 3]` with their last panel replaced by the best of `candidates` sampled completions, best
    by the model's own log p(last panel | first 8 panels): exact for causal models, the stratified ELBO estimate with
    `mc_samples` rows for diffusion (every candidate of a sample shares its masks, so the comparison is paired).
    Candidate k samples with seed `seed + k`."""
    from ..evaluation.likelihood import continuation_log_likelihood

    if candidates < 1:
        raise ValueError(f"candidates={candidates} must be at least 1.")
    answer = panel_tokens(tokenizer)
    drafts, scores = [], []
    for k in range(candidates):
        _, ids = sampled_completion(model, tokenizer, samples, batch_size, seed + k, return_ids=True,
                                    **generate_kwargs)
        tokens = torch.as_tensor(ids)
        estimates = continuation_log_likelihood(model, tokens[:, :-answer], tokens[:, -answer:],
                                                mc_samples=mc_samples, batch_size=batch_size, seed=seed)
        drafts.append(ids)
        scores.append([estimate.value for estimate in estimates])
    best = np.asarray(scores).argmax(0)
    chosen = np.stack(drafts)[best, np.arange(len(best))]
    decoded = tokenizer.decode_samples(chosen)
    return (decoded, chosen) if return_ids else decoded


@torch.no_grad()
def sample_unconditionally(model, tokenizer, num_samples: int, batch_size: int = 64, seed: int = 0,
                           return_ids: bool = False, **generate_kwargs):
    """`num_samples` samples `[N, 3, 3, 9, 3]` generated from BOS alone (diffusion: random-order ancestral sampling
    unless `remasking` says otherwise; causal: temperature-1 sampling); with `return_ids`, also the token ids
    `[N, sample_length + 1]`."""
    length = tokenizer.sample_length
    generate_kwargs = {"suppress_tokens": special_token_ids(tokenizer), **generate_kwargs}
    generated = []
    for start in range(0, num_samples, batch_size):
        rows = min(batch_size, num_samples - start)
        bos = torch.full((rows, 1), tokenizer.bos_token_id, dtype=torch.long, device=model.device)
        if is_diffusion_model(model):
            # One prompt with num_return_sequences: the sampler seeds each sequence by its prompt and copy index, so
            # identical prompts in a batch would give identical samples.
            canvas = torch.cat([bos[:1], torch.full((1, length), tokenizer.mask_token_id, device=model.device)], 1)
            kwargs = {"steps": length, "remasking": "random", "do_sample": True, **generate_kwargs}
            out = model.generate(canvas, seed=seed + start, num_return_sequences=rows, **kwargs)
        else:
            torch.manual_seed(seed + start)
            out = model.generate(bos, attention_mask=torch.ones_like(bos), max_new_tokens=length,
                                 min_new_tokens=length, do_sample=True, top_k=0, pad_token_id=tokenizer.pad_token_id,
                                 **generate_kwargs)
        generated.append(out[:, : length + 1].cpu())
    generated = torch.cat(generated).numpy()
    samples = tokenizer.decode_samples(generated)
    return (samples, generated) if return_ids else samples


def rule_report(model, tokenizer, test_samples: np.ndarray, train_samples: np.ndarray, num_unconditional: int = 200,
                seed: int = 0) -> tuple[dict[str, float], np.ndarray]:
    """Completion accuracy (and the fraction of completed panels left empty) and unconditional AnyValid / C3 / C2,
    C3 over novel samples and the invalid-token rate, with the chance baselines next to them; and the unconditional
    samples `[num_unconditional, 3, 3, 9, 3]` they were measured on."""
    completed = complete_last_panels(model, tokenizer, test_samples)
    generated = sample_unconditionally(model, tokenizer, num_unconditional, seed=seed)
    unconditional = consistency_report(generated, train_samples)
    metrics = {
        "completion": float(completion_correct(completed).mean()),
        "completion_empty_panels": empty_panel_rate(completed),
        "completion_invalid_token_rate": invalid_token_rate(completed[:, 2, 2]),
        "completion_chance_copy_middle": float(copy_middle_completion(test_samples).mean()),
        "completion_chance_random_panel": float(random_panel_completion(test_samples, train_samples, seed).mean()),
        **{f"unconditional_{name}": float(unconditional[name])
           for name in ("anyvalid", "c3", "c2", "c3_novel", "novel", "invalid_token_rate")},
        **{f"unconditional_chance_{name}": float(value)
           for name, value in consistency(shuffled_panel_samples(train_samples, num_unconditional, seed)).items()},
    }
    return metrics, generated
