"""The benchmark as datasets / evaluate objects, and its pictures."""

import evaluate
import numpy as np
import pytest
from PIL import Image

from hf_diffusion_lm.rules import HELDOUT_RULES, INVALID, RuleTokenizer, generate_samples
from hf_diffusion_lm.rules.hf import metric_path, rule_dataset
from hf_diffusion_lm.rules.render import render_samples


def test_rule_dataset_columns_and_split():
    tok = RuleTokenizer("attribute")
    data = rule_dataset(tok, samples_per_rule=4, seed=0, test_samples_per_rule=2)
    assert set(data) == {"train", "test"} and data["train"].num_rows == 35 * 4 and data["test"].num_rows == 80
    row = data["test"][0]
    assert set(row) == {"input_ids", "rule_id", "heldout"} and len(row["input_ids"]) == 244
    assert not any(data["train"]["heldout"]) and sum(data["test"]["heldout"]) == 2 * len(HELDOUT_RULES)
    ids = np.array(data["train"]["input_ids"])
    assert (tok.decode_samples(ids)[:4] == generate_samples(0, 4, np.random.default_rng([0, 0, 0]))).all()


def test_metric_loads_offline_and_scores_garbage(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    metric = evaluate.load(metric_path())
    tok = RuleTokenizer()
    samples = np.concatenate([generate_samples(r, 2, seed=0) for r in (3, 38)])
    predictions = tok.encode_samples(samples).tolist()
    predictions[0][40] = tok.mask_token_id  # a leftover MASK
    predictions.append([5, 7])              # a sequence of the wrong length
    got = metric.compute(predictions=predictions, rule_ids=[3, 3, 38, 38, 0])
    assert got["c3"] == pytest.approx(3 / 5) and got["anyvalid"] == pytest.approx(11 / 15)  # 1 + 3 invalid rows
    assert got["c3_by_rule"][3] == 0.5 and got["c3_by_rule"][38] == 1.0 and np.isnan(got["c3_by_rule"][1])
    attribute = evaluate.load(metric_path(), "attribute")
    assert attribute.compute(predictions=RuleTokenizer("attribute").encode_samples(samples))["c3"] == 1.0


def test_render_png(tmp_path):
    samples = np.concatenate([generate_samples(r, 1, seed=0) for r in (0, 17, 38)])
    samples[1, 2, 2, 0] = INVALID
    image = render_samples(samples, tmp_path / "rules.png")
    reloaded = Image.open(tmp_path / "rules.png")
    assert reloaded.format == "PNG" and reloaded.size == image.size == (512, 3 * 328)
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert (pixels != 255).any(1).mean() > 0.05  # objects and frames drawn, not a blank page
    assert ((pixels == (255, 0, 0)).all(1)).sum() > 100  # the invalid row's red frame
    assert len(np.unique(pixels, axis=0)) >= 5  # several object colors
