"""LoRA through peft for both families: the recipe trains adapters only, they save, load and merge, `generate` and
the likelihood estimators run with them, the card says what the adapter is, and 2-process DDP / ZeRO-2 follow the
single-process losses."""

import json

import pytest
import torch

from hf_diffusion_lm import FAMILIES
from hf_diffusion_lm.evaluation.likelihood import continuation_log_likelihood
from conftest import load_recipe
from test_distributed import accelerate, run

DATA = ["--samples_per_rule", "8", "--rules", "0", "3", "--validation_samples_per_rule", "3",
        "--per_device_eval_batch_size", "4", "--logging_steps", "1", "--eval_strategy", "no", "--save_strategy", "no",
        "--disable_tqdm", "true", "--warmup_steps", "0", "--rule_metric_samples", "0", "--max_steps", "4"]
# No LoRA dropout where runs are compared: dropout masks are drawn per process, the diffusion noise is not.
LORA = ["--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0", "--learning_rate", "0.05"]


def train(folder, tmp_path, *flags, launcher=None, batch_size=8) -> list[float]:
    """recipes/train.py in this process, or under `launcher` (e.g. accelerate launch) in a subprocess."""
    argv = [*DATA, *flags, "--per_device_train_batch_size", str(batch_size), "--output_dir", str(folder)]
    if launcher is None:
        load_recipe("train").main(argv)
    else:
        run([*launcher, "recipes/train.py", *argv], tmp_path)
    return [entry["loss"] for entry in json.loads((folder / "trainer_state.json").read_text())["log_history"]
            if "loss" in entry]


_TRAINED = {}


def trained(family, tmp_path_factory):
    """A tiny base model of one family and a LoRA run on it (one process), trained once per test module."""
    if family not in _TRAINED:
        tmp = tmp_path_factory.mktemp(family)
        base, adapter = tmp / "base", tmp / "adapter"
        train(base, tmp, "--model", family, "--hidden_size", "32", "--num_hidden_layers", "2",
              "--num_attention_heads", "2", "--learning_rate", "0.01")
        losses = train(adapter, tmp, "--model", family, "--model_name_or_path", str(base), *LORA)
        _TRAINED[family] = family, base, adapter, losses
    return _TRAINED[family]


@pytest.fixture(scope="module", params=["masked_diffusion", "permuted_causal"])
def runs(request, tmp_path_factory):
    return trained(request.param, tmp_path_factory)


def load(family, folder):
    return FAMILIES[family].model_class.from_pretrained(folder).eval()


def test_the_recipe_trains_only_the_adapters_and_saves_an_adapter(runs):
    family, base, adapter, losses = runs
    assert (adapter / "adapter_config.json").exists() and (adapter / "adapter_model.safetensors").exists()
    assert not (adapter / "model.safetensors").exists()
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base)
    loaded, base_model = load(family, adapter), load(family, base)  # from_pretrained: the base, then the adapter
    lora = {name: p for name, p in loaded.named_parameters() if "lora_" in name}
    assert lora and any(p.abs().sum() > 0 for name, p in lora.items() if "lora_B" in name)  # B starts at zero
    base_weights = dict(base_model.named_parameters())
    for name, parameter in loaded.named_parameters():  # every base weight as it was
        if "lora_" not in name:
            plain = name.replace("base_layer.", "")
            assert torch.equal(parameter, base_weights[plain]), name
    assert len(losses) == 4


def test_merged_equals_unmerged_and_generate_and_likelihoods_use_the_adapter(runs):
    from peft import PeftModel

    family, base, adapter, _ = runs
    wrapped = PeftModel.from_pretrained(load(family, base), adapter).eval()
    merged = PeftModel.from_pretrained(load(family, base), adapter).merge_and_unload().eval()
    plain = load(family, base)
    ids = torch.randint(0, 30, (2, 40))
    ids[:, 0] = plain.config.bos_token_id
    probe = ids.clone()
    if family == "masked_diffusion":  # diffusion predicts at MASK positions (it copies the others)
        probe[:, 20:] = plain.config.mask_token_id
    with torch.no_grad():
        logits = wrapped(input_ids=probe).logits[:, 20:]
        assert torch.allclose(logits, merged(input_ids=probe).logits[:, 20:], atol=1e-5)
        assert not torch.allclose(logits, plain(input_ids=probe).logits[:, 20:], atol=1e-3)  # the adapter acts
    context, continuation = ids[:, :30], ids[:, 30:]
    scores = [[e.value for e in continuation_log_likelihood(m, context, continuation, mc_samples=4)]
              for m in (wrapped, merged, plain)]
    assert scores[0] == pytest.approx(scores[1], abs=1e-4) and scores[0] != pytest.approx(scores[2], abs=1e-3)
    if family == "masked_diffusion":
        canvas = ids.clone()
        canvas[:, 30:] = plain.config.mask_token_id
        options = dict(steps=10, do_sample=True, seed=3)
    else:
        canvas, options = ids[:, :30], dict(max_new_tokens=10, do_sample=False)
    outputs = [m.generate(canvas, **options) for m in (wrapped, merged)]
    assert torch.equal(outputs[0], outputs[1])


def test_the_card_of_an_adapter_run_names_its_base_model(runs):
    family, base, adapter, _ = runs
    card = (adapter / "README.md").read_text()
    assert "library_name: peft" in card and f"base_model: {base}" in card
    assert f"**A LoRA adapter** (peft) on the base model `{base}`: rank 4, alpha 8" in card
    assert f"- Family: `{family}`" in card and "width\n  32, 2 layers" in card


def test_lora_requires_pretrained_weights_and_sane_settings():
    from hf_diffusion_lm.training import ModelArguments

    with pytest.raises(ValueError, match="pass --model_name_or_path"):
        ModelArguments(use_peft=True)
    with pytest.raises(ValueError, match="lora_r=0"):
        ModelArguments(use_peft=True, model_name_or_path="x", lora_r=0)


@pytest.mark.parametrize("config", ["cpu_2proc.yaml", "zero2.yaml"])
def test_lora_on_two_processes_matches_one_process(config, tmp_path, tmp_path_factory):
    # One family suffices here: diffusion, whose training noise is the harder case.
    family, base, adapter, single_losses = trained("masked_diffusion", tmp_path_factory)
    losses = train(tmp_path / "two", tmp_path, "--model", family, "--model_name_or_path", str(base), *LORA,
                   launcher=accelerate(config), batch_size=4)
    assert losses == pytest.approx(single_losses, rel=1e-4)
