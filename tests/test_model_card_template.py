"""The model-card template renders into a Hub card with YAML metadata."""

from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData


TEMPLATE = Path(__file__).parents[1] / "src" / "hf_diffusion_lm" / "templates" / "model_card.md"


def test_template_renders_metadata_and_every_field():
    fields = dict(model_name="tiny-mdlm", model_family="MaskedDiffusionForLM", num_parameters="1.2M", hidden_size=128,
                  num_layers=4, num_heads=4, attention="bidirectional", objective="masked-diffusion ELBO",
                  training_data="rules", results="loss 1.0", auto_class="AutoModelForMaskedLM", repo_id="me/tiny-mdlm")
    card = ModelCard.from_template(ModelCardData(license="apache-2.0", library_name="transformers"),
                                   template_path=str(TEMPLATE), **fields)
    assert card.data.license == "apache-2.0" and card.data.library_name == "transformers"
    assert "{{" not in card.text
    assert 'AutoModelForMaskedLM.from_pretrained("me/tiny-mdlm", trust_remote_code=True)' in card.text
