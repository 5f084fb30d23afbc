"""Rule metrics of a model: completion keeps the given panels, and the report scores with the checker."""

import numpy as np
import pytest

from hf_diffusion_lm import MaskedDiffusionConfig, MaskedDiffusionForLM, PermutedCausalConfig, PermutedCausalLM
from hf_diffusion_lm.rules import RuleTokenizer, build_splits, completion_correct, consistency
from hf_diffusion_lm.rules.model_metrics import complete_last_panels, rule_report, sample_unconditionally


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
