"""LMTrainer: learning, global-batch noise, loss scaling, deterministic validation, logs, resume, bad input."""

from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from hf_diffusion_lm.flops import reference_parameter_count
from hf_diffusion_lm.training import LMTrainer, keyed_generator

from conftest import load_recipe
from trainer_helpers import logged_losses, tiny_setup, tiny_trainer


@pytest.mark.parametrize("model, num_orders", [("masked_diffusion", 1), ("permuted_causal", 1),
                                                ("permuted_causal", 4), ("gpt2", 1)])
def test_validation_loss_decreases_for_every_model_class(tmp_path, model, num_orders):
    trainer = tiny_trainer(tmp_path, model=model, num_orders=num_orders, max_steps=40)
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()
    assert after["eval_loss"] < before - 0.5, (before, after["eval_loss"])
    assert after["eval_bits_per_token"] == pytest.approx(after["eval_loss"] / 0.6931471805599453)
    assert after["eval_perplexity"] == pytest.approx(torch.tensor(after["eval_loss"]).exp().item(), rel=1e-6)


def test_logs_tokens_epochs_flops_and_masked_fraction(tmp_path):
    trainer = tiny_trainer(tmp_path, max_steps=6)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 6
    last = logs[-1]
    tokens = 6 * 8 * 32  # steps x batch x block, no padding in these blocks
    assert last["tokens_seen"] == tokens and last["unique_tokens"] == 2400
    assert last["epochs_over_unique"] == pytest.approx(tokens / 2400)
    assert trainer.state.total_flos == pytest.approx(6 * reference_parameter_count(trainer.model.config) * tokens)
    assert last["flops"] == pytest.approx(trainer.state.total_flos)
    assert all(0.0 < entry["masked_fraction"] < 1.0 for entry in logs)


def test_noise_times_of_processes_and_accumulation_steps_form_one_antithetic_set(tmp_path, monkeypatch):
    trainer = tiny_trainer(tmp_path, per_device_train_batch_size=4, gradient_accumulation_steps=2)
    args_class = type(trainer.args)
    inputs = {"input_ids": torch.zeros(4, 32, dtype=torch.long)}
    monkeypatch.setattr(args_class, "world_size", property(lambda self: 2))
    collected = []
    for micro_batch in range(2):
        for rank in range(2):
            monkeypatch.setattr(args_class, "process_index", property(lambda self, rank=rank: rank))
            trainer._micro_batch = micro_batch
            trainer._noise_step = trainer.state.global_step
            collected.append(trainer.global_batch_inputs(inputs)["noise_times"])
    times = torch.cat(collected)
    assert times.shape == (16,)
    gaps = times.sort().values.diff()
    assert torch.allclose(gaps, torch.full_like(gaps, (1 - 1e-3) / 16), atol=1e-6)  # one antithetic set of 16
    expected = trainer.model.draw_training_randomness(16, 32, keyed_generator(trainer.args.seed, trainer.state.global_step))
    assert torch.equal(times, expected["noise_times"])  # slot a * world + r holds rows 4 (a * 2 + r) ...


def test_gradient_accumulation_reproduces_the_full_batch(tmp_path):
    full = tiny_trainer(tmp_path / "full", max_steps=5, per_device_train_batch_size=8)
    full.train()
    accumulated = tiny_trainer(tmp_path / "accumulated", max_steps=5, per_device_train_batch_size=4,
                               gradient_accumulation_steps=2)
    accumulated.train()
    assert logged_losses(accumulated) == pytest.approx(logged_losses(full), rel=1e-5)
    for (name, p), q in zip(full.model.named_parameters(), accumulated.model.parameters()):
        assert torch.allclose(p, q, atol=1e-5), name


def test_validation_elbo_is_the_same_number_every_time(tmp_path):
    trainer = tiny_trainer(tmp_path, validation_repeats=3)
    first = trainer.evaluate()
    torch.manual_seed(12345)  # the global RNG must not matter
    torch.rand(100)
    second = trainer.evaluate()
    assert first["eval_loss"] == second["eval_loss"]
    assert first["eval_loss_standard_error"] > 0  # the repetitions do differ from one another


class StopAt(TrainerCallback):
    """Ends training after `step`, as if the job had been killed right after its checkpoint."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


@pytest.mark.parametrize("model, num_orders", [("masked_diffusion", 1), ("permuted_causal", 4)])
def test_a_killed_and_resumed_run_continues_with_exactly_the_same_losses(tmp_path, model, num_orders):
    data = tiny_setup(tmp_path)
    settings = dict(model=model, num_orders=num_orders, data=data, max_steps=8, save_strategy="steps", save_steps=4)
    uninterrupted = tiny_trainer(tmp_path / "a", **settings)
    uninterrupted.train()
    killed = tiny_trainer(tmp_path / "b", **settings)
    killed.add_callback(StopAt(4))
    killed.train()
    assert len(logged_losses(killed)) == 4
    resumed = tiny_trainer(tmp_path / "b", **settings)
    resumed.train(resume_from_checkpoint=str(tmp_path / "b" / "out" / "checkpoint-4"))
    assert logged_losses(resumed)[-4:] == logged_losses(uninterrupted)[-4:]


def test_a_run_out_of_time_saves_a_checkpoint_and_resumes_to_the_uninterrupted_losses(tmp_path):
    data = tiny_setup(tmp_path)
    settings = dict(data=data, max_steps=6, save_strategy="steps", save_steps=100)
    uninterrupted = tiny_trainer(tmp_path / "a", **settings)
    uninterrupted.train()
    assert not uninterrupted.stopped_at_time_limit
    timed = tiny_trainer(tmp_path / "b", stop_after_seconds=1e-9, **settings)  # out of time after the first step
    timed.train()
    assert timed.stopped_at_time_limit and timed.state.global_step == 1
    checkpoint = tmp_path / "b" / "out" / "checkpoint-1"
    assert (checkpoint / "model.safetensors").exists()  # saved although save_steps is 100
    resumed = tiny_trainer(tmp_path / "b", **settings)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert logged_losses(resumed)[-5:] == logged_losses(uninterrupted)[-5:]


def test_recipe_refuses_bad_input_before_writing_anything(tmp_path):
    train = load_recipe("train")
    output = tmp_path / "out"
    common = ["--output_dir", str(output), "--max_steps", "1", "--samples_per_rule", "2"]
    with pytest.raises(ValueError, match="model='bert-base-foo' is unknown"):
        train.main(["--model", "bert-base-foo", *common])
    with pytest.raises(ValueError, match="block_size=244 exceeds max_position_embeddings=128"):
        train.main(["--max_position_embeddings", "128", *common])
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("model: masked_diffusion\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['learning_rat'\]"):
        train.main([str(bad_config), *common])
    with pytest.raises(ValueError, match="set tokenizer_name"):
        train.main(["--dataset", "text", "--data_files", "x.txt", *common])
    assert not output.exists()


@pytest.mark.parametrize("family, model", [("ar", "permuted_causal"), ("diffusion", "masked_diffusion")])
def test_paper_configs_mirror_the_setup_table(family, model):
    train = load_recipe("train")
    config_path = Path(__file__).parents[1] / "recipes" / "configs" / f"c4_{family}_117M.yaml"
    model_args, config = train.parse_config([str(config_path), "--bf16", "false", "--use_cpu", "true"])
    assert model_args.model == model
    model_fields = model_args.config_fields()
    assert (model_fields["hidden_size"], model_fields["num_attention_heads"], model_fields["num_hidden_layers"]) == (
        768, 12, 12)
    assert model_fields["hidden_dropout"] == 0.1 and model_args.pad_vocab_to_multiple_of == 128
    assert config.block_size == 2048 and config.unique_tokens == 100_000_000
    assert config.per_device_train_batch_size * config.gradient_accumulation_steps * 8 == 256  # on 8 GPUs
    assert (config.learning_rate, config.lr_scheduler_kwargs["min_lr_rate"]) == (2e-4, 0.1)
    assert (config.adam_beta1, config.adam_beta2, config.weight_decay, config.max_grad_norm) == (0.9, 0.95, 0.1, 1.0)
    assert config.warmup_steps == 0.01 and config.lr_scheduler_type == "cosine_with_min_lr"
    with pytest.raises(ValueError, match="size='118M' is not one of the paper's sizes"):
        train.parse_config([str(config_path), "--size", "118M", "--bf16", "false", "--use_cpu", "true"])


def test_best_checkpoint_by_validation_loss_and_early_stopping(tmp_path):
    # A far too high learning rate makes validation worse after the first evaluations, so training stops early.
    trainer = tiny_trainer(tmp_path, max_steps=40, learning_rate=1.0, eval_strategy="steps", eval_steps=2,
                           save_strategy="steps", save_steps=2, load_best_model_at_end=True,
                           metric_for_best_model="eval_loss", greater_is_better=False, early_stopping_patience=2)
    trainer.train()
    evaluations = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    best = min(evaluations, key=lambda entry: entry["eval_loss"])
    assert trainer.state.global_step < 40
    assert trainer.state.best_metric == best["eval_loss"]
    assert trainer.state.best_model_checkpoint.endswith(f"checkpoint-{best['step']}")
    assert trainer.evaluate()["eval_loss"] == pytest.approx(best["eval_loss"], rel=1e-6)  # best weights reloaded


def test_a_recipe_sets_any_field_of_the_family_config_with_one_default_each(tmp_path):
    train = load_recipe("train")
    from hf_diffusion_lm import MaskedDiffusionConfig
    from hf_diffusion_lm.rules import RuleTokenizer
    from hf_diffusion_lm.training import build_model

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model: masked_diffusion\nhidden_size: 64\ntime_epsilon: 0.01\nmodel_config: {num_hidden_layers: 3}\n")
    model_args, _ = train.parse_config([str(recipe), "--copy_unmasked_tokens", "false", "--noise_schedule", "cosine",
                                        "--output_dir", str(tmp_path / "out")])
    model = build_model(model_args, RuleTokenizer(), block_size=32)
    config = model.config
    assert (config.hidden_size, config.num_hidden_layers, config.time_epsilon) == (64, 3, 0.01)
    assert config.copy_unmasked_tokens is False and config.noise_schedule == "cosine"
    assert model.noise_schedule.alpha(torch.tensor(0.5)) == pytest.approx(1 - 0.7071, abs=1e-4)
    # Unset fields keep the config class's own defaults, the intermediate size rule included.
    defaults = MaskedDiffusionConfig(hidden_size=64)
    assert config.intermediate_size == defaults.intermediate_size == 128  # int(8 * 64 / 3 / 64) * 64
    assert config.loss_weighting == defaults.loss_weighting and config.hidden_dropout == defaults.hidden_dropout
    with pytest.raises(ValueError, match=r"unknown flag\(s\) \['--num_order'\]"):
        train.parse_config(["--model", "permuted_causal", "--num_order", "4"])
    with pytest.raises(ValueError, match="size='117M' sets"):
        train.parse_config(["--size", "117M", "--hidden_size", "64"])


@pytest.mark.parametrize("model, num_orders", [("masked_diffusion", 1), ("permuted_causal", 2)])
def test_training_forward_is_one_graph_without_breaks(tmp_path, model, num_orders):
    trainer = tiny_trainer(tmp_path, model=model, num_orders=num_orders)
    batch = next(iter(trainer.get_train_dataloader()))
    explanation = torch._dynamo.explain(trainer.model)(**batch, **trainer.global_batch_inputs(batch))
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons


@pytest.mark.parametrize("model, num_orders", [("masked_diffusion", 1), ("permuted_causal", 2)])
def test_torch_compile_training_gives_the_eager_losses(tmp_path, model, num_orders):
    # TrainingArguments' own flag; inductor compiles forward and backward (~30 s per family on one CPU thread).
    eager = tiny_trainer(tmp_path / "eager", model=model, num_orders=num_orders, max_steps=3)
    eager.train()
    torch._dynamo.reset()
    compiled = tiny_trainer(tmp_path / "compiled", model=model, num_orders=num_orders, max_steps=3,
                            torch_compile=True, torch_compile_mode="default")
    compiled.train()
    assert type(compiled.model_wrapped).__name__ == "OptimizedModule"
    assert logged_losses(compiled) == pytest.approx(logged_losses(eager), rel=1e-4, abs=1e-4)
    assert len(logged_losses(compiled)) == 3
