"""AR-to-diffusion adaptation: Dream's right-shifted logits (the loss, the sampler and the estimators read them the
same way) and a `MaskedDiffusionForLM` initialised from a Llama causal LM, then trained with the diffusion objective."""

import json

import pytest
import torch
from transformers import ByT5Tokenizer, LlamaConfig, LlamaForCausalLM

from conftest import load_recipe
from hf_diffusion_lm import MaskedDiffusionConfig, MaskedDiffusionForLM
from hf_diffusion_lm.evaluation.likelihood import continuation_log_likelihood
from hf_diffusion_lm.training import ModelArguments
from hf_diffusion_lm.training.data import ensure_mask_token
from hf_diffusion_lm.training.modeling import build_model

pytestmark = pytest.mark.usefixtures("one_thread")
MASK = 39


def shifted_model(shift: bool = True) -> MaskedDiffusionForLM:
    torch.manual_seed(0)
    config = MaskedDiffusionConfig(vocab_size=40, mask_token_id=MASK, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, shift_logits=shift)
    return MaskedDiffusionForLM(config).eval()


def test_the_shifted_loss_equals_a_hand_computation():
    model = shifted_model()
    clean = torch.randint(0, 39, (3, 12))
    times = torch.tensor([0.2, 0.5, 0.9])
    mask = torch.rand(3, 12) < times[:, None]
    mask[:, 5] = True
    loss = model(input_ids=clean, labels=clean, noise_times=times, noise_mask=mask).loss
    # By hand: position j is predicted from the hidden state at j - 1 (position 0 from its own); MASK excluded.
    hidden = model.model(input_ids=clean.masked_fill(mask, MASK)).last_hidden_state
    states = torch.cat([hidden[:, :1], hidden[:, :-1]], dim=1)
    logits = model.lm_head(states)
    logits[..., MASK] = float("-inf")
    nll = -logits.log_softmax(-1).gather(-1, clean[..., None])[..., 0]
    by_hand = ((nll * mask) / times[:, None]).sum() / clean.numel()  # linear schedule: ELBO weight 1 / t
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    unshifted = shifted_model(shift=False)(input_ids=clean, labels=clean, noise_times=times, noise_mask=mask).loss
    assert unshifted.item() != pytest.approx(loss.item(), rel=1e-3)  # same weights: the shift is what differs


def test_the_sampler_and_the_estimators_read_the_shifted_predictions():
    model = shifted_model()
    ids = torch.randint(0, 39, (2, 10))
    holes = ids.clone()
    holes[:, 6] = MASK
    with torch.no_grad():
        logits = model(input_ids=holes).logits[:, 6]  # forward: the shifted prediction, MASK excluded
    filled = model.generate(holes, steps=1, do_sample=False)
    assert torch.equal(filled[:, 6], logits.argmax(-1))
    # A one-token continuation is scored exactly: log p(token | context) from the same logits.
    estimates = continuation_log_likelihood(model, ids[:, :6], ids[:, 6:7], mc_samples=1)
    # Only the context is visible when the continuation is scored: position 6 masked, nothing after it.
    with torch.no_grad():
        expected = model(input_ids=holes[:, :7]).logits[:, 6].log_softmax(-1).gather(-1, ids[:, 6:7])[:, 0]
    assert [e.value for e in estimates] == pytest.approx(expected.tolist(), abs=1e-5)
    with pytest.raises(ValueError, match="block_cache='prefix' is not supported with shift_logits=True"):
        model.generate(holes.masked_fill(torch.arange(10) >= 6, MASK), steps=4, block_cache="prefix", block_length=2)


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """A tiny Llama causal LM with a ByT5 tokenizer (no MASK token), saved as a local checkpoint."""
    folder = tmp_path_factory.mktemp("llama")
    tokenizer = ByT5Tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=64, tie_word_embeddings=True,
                         bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_adaptation_maps_the_llama_weights_one_to_one_and_adds_a_mask_token(llama):
    tokenizer = ByT5Tokenizer.from_pretrained(llama)
    assert tokenizer.mask_token_id is None
    ensure_mask_token(tokenizer)
    model = build_model(ModelArguments(model="masked_diffusion", model_name_or_path=str(llama),
                                       model_config={"shift_logits": True}), tokenizer, 32)
    source = LlamaForCausalLM.from_pretrained(llama)
    assert isinstance(model, MaskedDiffusionForLM) and model.config.shift_logits
    assert model.config.mask_token_id == tokenizer.mask_token_id == len(tokenizer) - 1
    assert model.get_input_embeddings().num_embeddings == len(tokenizer) > source.config.vocab_size
    theirs = dict(source.named_parameters())
    for name, parameter in model.named_parameters():
        if name == "model.embed_tokens.weight":
            assert torch.equal(parameter[: source.config.vocab_size], theirs[name])
        else:
            assert torch.equal(parameter, theirs[name]), name
    assert set(theirs) == {name for name, _ in model.named_parameters()}


def test_an_adapted_llama_learns_the_diffusion_objective_and_infills(llama, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog\n" * 200)
    output = tmp_path / "adapted"
    load_recipe("train").main([
        "--model", "masked_diffusion", "--model_name_or_path", str(llama), "--shift_logits", "true",
        "--dataset", "text", "--data_files", str(corpus), "--tokenizer_name", str(llama), "--block_size", "32",
        "--validation_tokens", "256", "--max_steps", "300", "--per_device_train_batch_size", "16",
        "--learning_rate", "0.01", "--warmup_steps", "10", "--logging_steps", "50", "--eval_strategy", "no",
        "--save_strategy", "no", "--use_cpu", "true", "--disable_tqdm", "true", "--report_to", "none",
        "--output_dir", str(output)])
    results = json.loads((output / "eval_results.json").read_text())
    assert results["eval_loss"] < 0.5 * results["initial_loss"]
    model = MaskedDiffusionForLM.from_pretrained(output).eval()
    assert model.config.shift_logits
    tokenizer = ByT5Tokenizer.from_pretrained(output)
    text = tokenizer("the quick brown fox jumps over the lazy dog", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([text])
    holes = ids.clone()
    holes[0, 10:19] = model.config.mask_token_id  # "brown fox"
    filled = model.generate(holes, steps=9, do_sample=False)
    assert tokenizer.decode(filled[0, 10:19]) == "brown fox"
