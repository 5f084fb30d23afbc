"""Rule metrics of a model: completion keeps the given panels, and the report scores with the checker."""

import copy
import math

import numpy as np
import pytest
import torch

from hf_diffusion_lm import MaskedDiffusionConfig, MaskedDiffusionForLM, PermutedCausalConfig, PermutedCausalLM
from hf_diffusion_lm.rules import RuleTokenizer, build_splits, completion_correct, consistency
from hf_diffusion_lm.rules.checker import INVALID, score_samples
from hf_diffusion_lm.rules.model_metrics import (complete_last_panels, consistency_report, rule_report,
                                                 sample_unconditionally, special_token_ids)
from hf_diffusion_lm.stats import wilson_interval


@pytest.fixture(scope="module")
def setup():
    tokenizer = RuleTokenizer(scheme="attribute")
    config = PermutedCausalConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=2, max_position_embeddings=256, bos_token_id=tokenizer.bos_token_id,
                                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    splits = build_splits(samples_per_rule=4, seed=0, heldout=[r for r in range(40) if r not in (0, 3)],
                          test_samples_per_rule=3)
    keep = np.isin(splits["test"].rule_ids, [0, 3])
    return PermutedCausalLM(config).eval(), tokenizer, splits["test"].samples[keep], splits["train"].samples


@pytest.fixture(scope="module")
def diffusion(setup):
    causal, tokenizer, _, _ = setup
    config = MaskedDiffusionConfig(**{k: getattr(causal.config, k) for k in (
        "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "max_position_embeddings", "bos_token_id", "eos_token_id", "pad_token_id")}, mask_token_id=tokenizer.mask_token_id)
    return MaskedDiffusionForLM(config).eval()


@pytest.mark.parametrize("family", ["causal", "diffusion"])
def test_completion_rewrites_only_the_last_panel(setup, diffusion, family):
    model, tokenizer, test, _ = setup
    model = diffusion if family == "diffusion" else model
    completed = complete_last_panels(model, tokenizer, test)
    assert completed.shape == test.shape
    assert np.array_equal(completed[:, :2], test[:, :2])  # the given rows are kept
    assert np.array_equal(completed[:, 2, :2], test[:, 2, :2])  # and the first two panels of the last row
    assert not np.array_equal(completed[:, 2, 2], test[:, 2, 2])  # an untrained model does not recover the answer


@pytest.mark.parametrize("family", ["causal", "diffusion"])
def test_report_scores_generated_samples_with_the_checker(setup, diffusion, family):
    model, tokenizer, test, train = setup
    model = diffusion if family == "diffusion" else model
    report, generated = rule_report(model, tokenizer, test, train, num_unconditional=4)
    assert generated.shape == (4, 3, 3, 9, 3)
    assert report["unconditional_c3"] == consistency(generated)["c3"]
    assert report["completion"] == completion_correct(complete_last_panels(model, tokenizer, test)).mean()
    assert all(0.0 <= value <= 1.0 for value in report.values())
    samples = sample_unconditionally(model, tokenizer, 4, seed=1)
    assert samples.shape == (4, 3, 3, 9, 3)
    assert len({sample.tobytes() for sample in samples}) == 4  # distinct samples, not one repeated
    assert np.array_equal(samples, sample_unconditionally(model, tokenizer, 4, seed=1))


class EosBiased(torch.nn.Module):
    """An output head that prefers the special tokens by a wide margin: without suppression every sample is EOS."""

    def __init__(self, head, special_ids):
        super().__init__()
        self.head, self.bias = head, torch.zeros(head.out_features)
        self.bias[special_ids] = 1e4

    def forward(self, hidden):
        return self.head(hidden) + self.bias


@pytest.mark.parametrize("family", ["causal", "diffusion"])
def test_no_special_token_is_ever_sampled_even_by_a_model_that_prefers_them(setup, diffusion, family):
    model, tokenizer, test, _ = setup
    model = copy.deepcopy(diffusion if family == "diffusion" else model)
    special = special_token_ids(tokenizer)
    assert special == sorted({tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.mask_token_id})
    model.lm_head = EosBiased(model.lm_head, [tokenizer.eos_token_id, tokenizer.bos_token_id])
    fast = {"steps": 9} if family == "diffusion" else {}  # 27 tokens per network call: the sampler is not on trial
    _, generated = sample_unconditionally(model, tokenizer, 3, return_ids=True, **fast)
    _, completed = complete_last_panels(model, tokenizer, test[:3], return_ids=True)
    for ids in (generated[:, 1:], completed[:, 1:]):
        assert not np.isin(ids, special).any()
    # Without suppression the same model writes EOS (the test would catch a sampler that ignores it).
    _, unsuppressed = sample_unconditionally(model, tokenizer, 2, return_ids=True, suppress_tokens=None, **fast)
    assert np.isin(unsuppressed[:, 1:], [tokenizer.eos_token_id, tokenizer.bos_token_id]).mean() > 0.5


def test_novel_c3_and_intervals_equal_a_hand_count(setup):
    _, _, test, train = setup
    # 6 samples: 3 copies of training samples (C3: true samples) and 3 test samples, one corrupted out of C3.
    samples = np.concatenate([train[:3], test[:3]]).copy()
    samples[5, 0, 0, :, 0] = (samples[5, 0, 0, :, 0] + 1) % 7  # shapes of one panel changed: its row breaks the rule
    samples[4, 1, 1, 0, 1] = INVALID
    report = consistency_report(samples, train)
    c3 = [bool(score) for score in score_samples(samples)["c3"]]
    novel = [not any(np.array_equal(sample, seen) for seen in train) for sample in samples]
    assert novel == [False, False, False, True, True, True]
    novel_c3 = sum(flag and is_novel for flag, is_novel in zip(c3, novel))
    assert report["c3"] == sum(c3) / 6 and report["c3_novel"] == novel_c3 / 3 and report["c3_novel_trials"] == 3
    assert (report["c3_novel_low"], report["c3_novel_high"]) == wilson_interval(novel_c3, 3)
    assert report["invalid_token_rate"] == 1 / samples.size
    # Wilson 95% for 2 of 3 by hand: centre (p + z^2/2n) / (1 + z^2/n), half-width z sqrt(p q/n + z^2/4n^2) / (...)
    z, n, p = 1.96, 3, 2 / 3
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert wilson_interval(2, 3) == pytest.approx((centre - half, centre + half))
