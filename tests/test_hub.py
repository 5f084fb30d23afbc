"""Registration with the Auto classes, save/load, remote-code loading without the package, PEFT."""

import json

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM

from hf_diffusion_lm import MaskedDiffusionConfig, MaskedDiffusionForLM, PermutedCausalConfig, PermutedCausalLM

from conftest import run_without_package, tiny_causal_config, tiny_diffusion_config


LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_auto_classes_know_both_families():
    assert isinstance(AutoConfig.for_model("masked_diffusion"), MaskedDiffusionConfig)
    assert isinstance(AutoConfig.for_model("permuted_causal"), PermutedCausalConfig)
    assert type(AutoModelForMaskedLM.from_config(tiny_diffusion_config())) is MaskedDiffusionForLM
    assert type(AutoModel.from_config(tiny_diffusion_config())) is MaskedDiffusionForLM
    assert type(AutoModelForCausalLM.from_config(tiny_causal_config())) is PermutedCausalLM
    assert type(AutoModel.from_config(tiny_causal_config())) is PermutedCausalLM


@pytest.mark.parametrize(
    "model_class, make_config, auto_class",
    [(MaskedDiffusionForLM, tiny_diffusion_config, "AutoModelForMaskedLM"),
     (PermutedCausalLM, lambda: tiny_causal_config(num_orders=3, order_length=16, order_conditioning="target"),
      "AutoModelForCausalLM")],
)
def test_save_and_load_and_remote_code_without_the_package(tmp_path, model_class, make_config, auto_class):
    model = model_class(make_config()).eval()
    folder = tmp_path / "checkpoint"
    model.save_pretrained(folder)
    assert (folder / "model.safetensors").exists()
    config = json.loads((folder / "config.json").read_text())
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel", auto_class}
    ids = torch.randint(0, 39, (2, 10))
    ids[:, ::4] = 39
    with torch.no_grad():
        reference = model(input_ids=ids).logits
    reloaded = getattr(__import__("transformers"), auto_class).from_pretrained(folder).eval()
    assert type(reloaded) is model_class
    with torch.no_grad():
        assert torch.equal(reloaded(input_ids=ids).logits, reference)
    if model_class is PermutedCausalLM:
        assert torch.equal(reloaded.token_orders, model.token_orders)
    torch.save({"ids": ids, "logits": reference}, tmp_path / "reference.pt")

    # A fresh interpreter in which `import hf_diffusion_lm` fails, as for a Hub user without the package.
    stdout = run_without_package(f"""
        import sys, torch
        import transformers
        model = transformers.{auto_class}.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        assert "hf_diffusion_lm" not in sys.modules
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        reference = torch.load({str(tmp_path / "reference.pt")!r})
        with torch.no_grad():
            logits = model(input_ids=reference["ids"]).logits
        assert torch.equal(logits, reference["logits"]), (logits - reference["logits"]).abs().max()
        base = transformers.AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True)
        assert type(base).__name__ == {model_class.__name__!r}
        print("remote code ok", type(model).__name__)
    """, tmp_path)
    assert f"remote code ok {model_class.__name__}" in stdout


@pytest.mark.parametrize(
    "model_class, make_config, task_type",
    [(MaskedDiffusionForLM, tiny_diffusion_config, None), (PermutedCausalLM, tiny_causal_config, "CAUSAL_LM")],
)
def test_lora_wraps_both_models_with_the_llama_module_names(model_class, make_config, task_type):
    model = model_class(make_config())
    ids = torch.randint(0, 39, (2, 10))
    ids[:, ::3] = 39  # MASK for the diffusion model, an ordinary token for the causal one
    with torch.no_grad():
        before = model.eval()(input_ids=ids).logits
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=LLAMA_TARGETS, task_type=task_type))
    trainable = [name for name, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    assert sum("lora_A" in name for name in trainable) == 7 * make_config().num_hidden_layers
    with torch.no_grad():
        assert torch.allclose(peft_model(input_ids=ids).logits.nan_to_num(), before.nan_to_num())  # B starts at 0
    optimizer = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=0.5)
    peft_model.train()
    extra = {"noise_times": torch.tensor([0.5, 0.5])} if model_class is MaskedDiffusionForLM else {}
    peft_model(input_ids=ids, labels=ids.clamp(max=38), **extra).loss.backward()
    optimizer.step()
    peft_model.eval()
    with torch.no_grad():
        adapted = peft_model(input_ids=ids).logits
    assert not torch.allclose(adapted.nan_to_num(), before.nan_to_num())
    merged = peft_model.merge_and_unload()
    assert type(merged) is model_class
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits.nan_to_num(), adapted.nan_to_num(), atol=1e-5)
