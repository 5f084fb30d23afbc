"""Rule metrics of a trained model: panel completion and unconditional generation, both model families.

Completion masks the bottom-right panel (the last tokens of a sample): the diffusion model infills it, a causal model
continues the prefix left to right. Unconditional samples start from BOS alone: all MASK for diffusion, sampling at
temperature 1 for a causal model. Scored with the checker, beside the chance baselines.
"""

import numpy as np
import torch

from .baselines import copy_middle_completion, random_panel_completion, shuffled_panel_samples
from ..families import is_diffusion_model
from .checker import completion_correct, consistency


def panel_tokens(tokenizer) -> int:
    """Tokens of one panel: 9 positions, one token each (object scheme) or three (attribute scheme)."""
    return 9 * tokenizer.tokens_per_position


@torch.no_grad()
def complete_last_panels(model, tokenizer, samples: np.ndarray, batch_size: int = 64, infill: bool | None = None,
                         **generate_kwargs) -> np.ndarray:
    """samples `[N, 3, 3, 9, 3]` with their last panel rewritten by the model (greedy by default).

    infill (default: for diffusion models): the last panel becomes MASK holes that `generate` fills (a
    `PermutedCausalLM` with target conditioning then fills them in any order; pass `mask_token_id`). Otherwise the
    model continues the first 8 panels left to right.
    """
    ids = torch.as_tensor(tokenizer.encode_samples(samples), dtype=torch.long, device=model.device)
    answer = panel_tokens(tokenizer)
    infill = is_diffusion_model(model) if infill is None else infill
    completed = []
    for batch in ids.split(batch_size):
        if infill:
            holes = batch.clone()
            holes[:, -answer:] = tokenizer.mask_token_id
            kwargs = {"steps": answer} if is_diffusion_model(model) else {"do_sample": False}
            out = model.generate(holes, **kwargs, **generate_kwargs)
        else:
            out = model.generate(batch[:, :-answer], max_new_tokens=answer, min_new_tokens=answer, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, **generate_kwargs)
        completed.append(out[:, : ids.shape[1]].cpu())
    return tokenizer.decode_samples(torch.cat(completed).numpy())


@torch.no_grad()
def sample_unconditionally(model, tokenizer, num_samples: int, batch_size: int = 64, seed: int = 0,
                           **generate_kwargs) -> np.ndarray:
    """`num_samples` samples `[N, 3, 3, 9, 3]` generated from BOS alone (diffusion: random-order ancestral sampling
    unless `remasking` says otherwise; causal: temperature-1 sampling)."""
    length = tokenizer.sample_length
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
            out = model.generate(bos, max_new_tokens=length, min_new_tokens=length, do_sample=True, top_k=0,
                                 pad_token_id=tokenizer.pad_token_id, **generate_kwargs)
        generated.append(out[:, : length + 1].cpu())
    return tokenizer.decode_samples(torch.cat(generated).numpy())


def rule_report(model, tokenizer, test_samples: np.ndarray, train_samples: np.ndarray, num_unconditional: int = 200,
                seed: int = 0) -> tuple[dict[str, float], np.ndarray]:
    """Completion accuracy and unconditional AnyValid / C3 / C2, with the chance baselines next to them; and the
    unconditional samples `[num_unconditional, 3, 3, 9, 3]` they were measured on."""
    completed = complete_last_panels(model, tokenizer, test_samples)
    generated = sample_unconditionally(model, tokenizer, num_unconditional, seed=seed)
    unconditional = consistency(generated)
    metrics = {
        "completion": float(completion_correct(completed).mean()),
        "completion_chance_copy_middle": float(copy_middle_completion(test_samples).mean()),
        "completion_chance_random_panel": float(random_panel_completion(test_samples, train_samples, seed).mean()),
        **{f"unconditional_{name}": float(value) for name, value in unconditional.items()},
        **{f"unconditional_chance_{name}": float(value)
           for name, value in consistency(shuffled_panel_samples(train_samples, num_unconditional, seed)).items()},
    }
    return metrics, generated
