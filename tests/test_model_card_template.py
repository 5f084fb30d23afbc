"""The model-card template: every placeholder is filled by `build_model_card`, even for a bare save_pretrained folder
(a card says what was not recorded instead of failing or leaving template syntax behind)."""

import re

import pytest

from hf_diffusion_lm import MaskedDiffusionForLM, PermutedCausalLM
from hf_diffusion_lm.publishing import TEMPLATE, build_model_card, check_card

from conftest import tiny_causal_config, tiny_diffusion_config


@pytest.mark.parametrize("model", [MaskedDiffusionForLM(tiny_diffusion_config()), PermutedCausalLM(tiny_causal_config())])
def test_every_placeholder_is_filled_for_a_bare_checkpoint(model, tmp_path):
    model.save_pretrained(tmp_path)
    placeholders = set(re.findall(r"{{ (\w+) }}", TEMPLATE.read_text()))
    assert {"training_table", "validation", "usage_without_package"} <= placeholders
    card = build_model_card(tmp_path, repo_id="me/bare")
    check_card(card)
    assert not re.search(r"{{ ?\w+ ?}}", card.content)
    assert "No validation loss was recorded." in card.text and "The training data were not recorded." in card.text
    auto = "AutoModelForMaskedLM" if isinstance(model, MaskedDiffusionForLM) else "AutoModelForCausalLM"
    assert f'{auto}.from_pretrained("me/bare", trust_remote_code=True)' in card.text
    assert card.data.model_name == "bare" and card.data.eval_results is None
