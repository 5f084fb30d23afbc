"""The rule-learning study driver on a tiny setting: 2 rules (one held out), 3 model classes, a few steps each."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from hf_diffusion_lm.rules import RuleTokenizer, completion_correct, consistency, memorization_rates
from hf_diffusion_lm.rules.model_metrics import consistency_report
from hf_diffusion_lm.rules.study import StudyConfig, aggregate_seeds
from hf_diffusion_lm.training.data import build_rule_datasets

ROOT = Path(__file__).parents[1]
TINY_STUDY = {
    "rules": [0, 20], "heldout_rules": [20], "samples_per_rule": [6],
    "models": {"diffusion": {"model": "masked_diffusion"}, "ar": {"model": "permuted_causal"},
               "ar_2orders": {"model": "permuted_causal", "num_orders": 2, "order_conditioning": "target"}},
    "training": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "max_steps": 4,
                 "per_device_train_batch_size": 4, "per_device_eval_batch_size": 8, "validation_samples_per_rule": 4,
                 "validation_repeats": 1, "logging_steps": 1, "eval_strategy": "steps", "eval_steps": 2,
                 "save_strategy": "steps", "save_steps": 2, "learning_rate": 0.003, "use_cpu": True,
                 "disable_tqdm": True},
    "accelerate_config": str(ROOT / "recipes" / "accelerate_configs" / "single_process.yaml"),
    "unconditional_samples": 5, "completion_samples_per_rule": 3, "diffusion_steps": 9,
    "diffusion_samplers": {"ancestral": {"remasking": "random", "do_sample": True},
                           "low_confidence": {"remasking": "low_confidence", "do_sample": True}},
    "generation_batch_size": 8, "pictures_per_sampler": 2, "keep_checkpoints": True,
    "curve_steps": [2], "curve_unconditional_samples": 4, "ranked_candidates": 2, "ranked_mc_samples": 2,
    "exact_sampler_samples": 2,
}
RUNS = ["diffusion_6_seed0", "ar_6_seed0", "ar_2orders_6_seed0"]

from conftest import interrupt_after_first_checkpoint


def load_driver():
    spec = importlib.util.spec_from_file_location("rules_study", ROOT / "recipes" / "rules_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    config_path = root / "tiny.yaml"
    config_path.write_text(yaml.safe_dump({**TINY_STUDY, "output_dir": str(root / "out")}, sort_keys=False))
    driver = load_driver()
    results = driver.main([str(config_path)])
    return driver, config_path, root / "out", results


def test_study_writes_every_output_file(study):
    _, _, out, results = study
    assert [r["name"] for r in results] == RUNS
    table = (out / "results.md").read_text()
    for name in RUNS:
        assert f"| {name} |" in table
    assert [r["name"] for r in json.loads((out / "results.json").read_text())] == RUNS
    for plot in ("c3_vs_samples_per_rule.png", "completion_vs_samples_per_rule.png", "loss_curves.png", "curves.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pictures = sorted(p.name for p in (out / "samples").glob("*.png"))
    assert pictures == sorted(["diffusion_6_seed0_ancestral.png", "diffusion_6_seed0_low_confidence.png",
                               "ar_6_seed0_temperature_1.png", "ar_2orders_6_seed0_temperature_1.png"])
    by_name = {r["name"]: r for r in results}
    assert set(by_name["diffusion_6_seed0"]["completion"]) == {"infill_greedy", "infill_sampled", "infill_ranked"}
    assert set(by_name["ar_6_seed0"]["completion"]) == {"left_to_right_greedy", "left_to_right_sampled",
                                                         "left_to_right_ranked"}
    assert set(by_name["ar_2orders_6_seed0"]["completion"]) == {"left_to_right_greedy", "left_to_right_sampled",
                                                                 "left_to_right_ranked", "any_order_greedy",
                                                                 "any_order_sampled"}
    for r in results:
        assert r["steps"] == 4 and r["validation_loss"] < r["initial_validation_loss"]
        # held-out rule 20 reported on its own; 3 fresh samples per rule
        assert all(acc["heldout"] is not None for acc in r["completion"].values())


def test_study_metrics_agree_with_the_checker_on_the_saved_samples(study):
    _, _, out, results = study
    tokenizer = RuleTokenizer(scheme="attribute")
    # The training set as the training pipeline drew it, independent of the study's own redraw.
    train_ids = np.array(build_rule_datasets(tokenizer, 6, 0, [0, 20], [20], 4)["train"]["input_ids"])
    train = tokenizer.decode_samples(train_ids)
    for r in results:
        run_dir = out / "runs" / r["name"]
        for sampler, metrics in r["unconditional"].items():
            generated = np.load(run_dir / f"unconditional_{sampler}.npy")
            assert len(generated) == 5
            by_hand = consistency(generated)
            assert {k: metrics[k] for k in by_hand} == pytest.approx(by_hand)
            assert metrics["c3_novel"] == pytest.approx(consistency_report(generated, train)["c3_novel"], nan_ok=True)
            assert metrics["memorization"] == pytest.approx(memorization_rates(generated, train))
        rule_ids = np.load(run_dir / "completion_test_rules.npy")
        test = np.load(run_dir / "completion_test.npy")
        assert sorted(set(rule_ids.tolist())) == [0, 20] and len(test) == 6
        for method, accuracy in r["completion"].items():
            completed = np.load(run_dir / f"completion_{method}.npy")
            # only the bottom-right panel may differ from the test sample
            assert (completed[:, :2] == test[:, :2]).all() and (completed[:, 2, :2] == test[:, 2, :2]).all()
            correct = completion_correct(completed)
            assert accuracy["trained"] == pytest.approx(correct[rule_ids == 0].mean())
            assert accuracy["heldout"] == pytest.approx(correct[rule_ids == 20].mean())
            assert accuracy["per_rule"] == {0: pytest.approx(correct[rule_ids == 0].mean()),
                                            20: pytest.approx(correct[rule_ids == 20].mean())}
            assert accuracy["empty_panels"] == pytest.approx((completed[:, 2, 2] == -1).all(axis=(1, 2)).mean())


def test_study_resumes_without_retraining_finished_models(study, monkeypatch):
    driver, config_path, out, results = study

    def no_training(*args, **kwargs):
        raise AssertionError("a finished model was trained again")

    monkeypatch.setattr(driver, "train", no_training)
    weights = out / "runs" / "ar_6_seed0" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    # A run whose evaluation was interrupted: the model is kept and evaluated again, to the same numbers.
    (out / "runs" / "ar_6_seed0" / "results.json").unlink()
    again = driver.main([str(config_path)])
    assert weights.stat().st_mtime_ns == before
    same = lambda runs: json.dumps([{k: v for k, v in r.items() if k != "wall_seconds"} for r in runs],  # noqa: E731
                                   sort_keys=True)
    assert same(again) == same(results)
    assert again[1]["wall_seconds"]["train"] < 1  # evaluated only


def test_study_resumes_half_trained_run_from_its_last_checkpoint(study, monkeypatch):
    driver, config_path, out, _ = study
    run_dir = out / "runs" / "diffusion_6_seed0"
    interrupt_after_first_checkpoint(run_dir, ("results.json", "eval_results.json", "all_results.json"))
    config = StudyConfig(**yaml.safe_load(config_path.read_text()))
    assert driver.train_command(config, run_dir)[-2:] == ["--resume_from_checkpoint", str(run_dir / "checkpoint-2")]
    resumed = {r["name"]: r for r in driver.main([str(config_path), "--runs", "diffusion_6_seed0"])}["diffusion_6_seed0"]
    assert resumed["steps"] == 4
    steps_logged = [h["step"] for h in resumed["log_history"] if "loss" in h]
    assert steps_logged == [1, 2, 3, 4]  # steps 1-2 come from the checkpoint's state, not from a retrain


@pytest.mark.parametrize("override, message", [
    ({"models": {"x": {"model": "gpt2"}}}, "needs a 'model' key"),
    ({"training": {"seed": 3}}, "which the study sets per run"),
    ({"samples_per_rule": []}, "non-empty list"),
    ({"rules": [0], "heldout_rules": [0]}, "nothing is left to train on"),
    ({"rules": [0, 41]}, "do not exist"),
    ({"unconditional_samples": 0}, "must be at least 1"),
    ({"seeds": []}, "non-empty list of distinct integers"),
    ({"seeds": [1, 1]}, "non-empty list of distinct integers"),
    ({"curve_steps": [2]}, "needs training.save_strategy: steps"),
    ({"curve_steps": [3, 4], "training": {"save_strategy": "steps", "save_steps": 2, "max_steps": 5}},
     r"curve_steps \[3\] are not saved checkpoints"),
    ({"ranked_candidates": -1}, "must be 0 \\(off\\) or a positive count"),
    ({"time_limit_seconds": 0}, "must be positive"),
    ({"exact_sampler_samples": -1}, "must be 0 \\(skip\\) or positive"),
])
def test_study_config_rejects_bad_input(override, message):
    with pytest.raises(ValueError, match=message):
        StudyConfig(**override)


def test_study_driver_rejects_unknown_fields_and_runs(tmp_path):
    driver = load_driver()
    config_path = tmp_path / "s.yaml"
    config_path.write_text(yaml.safe_dump({"samples_per_rule": [5], "output_dir": str(tmp_path)}))
    with pytest.raises(ValueError, match="unknown study field.*samples_per_rules"):
        driver.main([str(config_path), "--samples_per_rules", "[3]"])
    with pytest.raises(ValueError, match="not runs of this study"):
        driver.main([str(config_path), "--runs", "diffusion_400"])


def test_study_driver_reads_overrides_without_a_config():
    driver = load_driver()
    config, runs, mode = driver.parse_config(["--output_dir", "elsewhere", "--runs", "ar_400"])
    assert config.output_dir == "elsewhere" and runs == ["ar_400"]
    assert config.rules == [0, 10, 13, 20] and mode is None  # the default config, recipes/rules/cpu.yaml
    assert driver.parse_config(["--report_only"])[2] == "report_only"
    with pytest.raises(ValueError, match="exclude each other"):
        driver.parse_config(["--report_only", "--train_only"])


def test_a_seed_list_gives_one_run_per_seed_and_the_aggregate_equals_the_per_seed_figures():
    config = StudyConfig(**{key: value for key, value in TINY_STUDY.items() if key != "accelerate_config"},
                         seeds=[0, 7])
    runs = config.runs()
    assert [run["name"] for run in runs] == [f"{name}_seed{seed}" for seed in (0, 7) for name in
                                             ("diffusion_6", "ar_6", "ar_2orders_6")]
    assert [config.training_fields(run, Path("x"))["seed"] for run in runs] == [0, 0, 0, 7, 7, 7]
    # Per-seed results as evaluate_run writes them (only the fields the aggregate reads).
    per_seed = {0: (0.25, 0.5, 1.2), 7: (0.75, 0.0, 1.0)}
    results = [{"name": f"diffusion_6_seed{seed}", "seed": seed, "samples_per_rule": 6, "validation_loss": loss,
                "unconditional": {"ancestral": {"anyvalid": 0.5, "c3": c3, "c3_novel": c3, "c2": 0.0,
                                                "invalid_token_rate": 0.0}},
                "completion": {"infill": {"all": completion, "trained": completion, "heldout": None}}}
               for seed, (c3, completion, loss) in per_seed.items()]
    rows = {(row["variant"], row["metric"]): row for row in aggregate_seeds(results)}
    c3 = rows[("ancestral", "c3")]
    assert (c3["model"], c3["seeds"], c3["values"]) == ("diffusion", [0, 7], [0.25, 0.75])
    assert c3["mean"] == pytest.approx(0.5) and c3["std"] == pytest.approx(np.std([0.25, 0.75], ddof=1))
    assert rows[("infill", "completion_all")]["values"] == [0.5, 0.0]
    assert rows[("validation", "loss")]["mean"] == pytest.approx(1.1)
    assert rows[("infill", "completion_heldout")]["mean"] is None  # no held-out rule: no figure, not a zero


def test_the_curve_holds_every_checkpoint_and_the_final_model_with_its_logged_validation_loss(study):
    _, _, out, results = study
    for r in results:
        curve = r["curve"]
        assert [point["step"] for point in curve] == [2, 4]
        logged = {h["step"]: h["eval_loss"] for h in r["log_history"] if "eval_loss" in h}
        assert [point["validation_loss"] for point in curve] == [logged[2], logged[4]]
        first_sampler, first_method = next(iter(r["unconditional"])), next(iter(r["completion"]))
        assert curve[1]["unconditional"] == r["unconditional"][first_sampler]  # the final point is the final model
        assert curve[1]["completion"] == r["completion"][first_method]
        assert curve[0]["unconditional"]["samples"] == 4 and curve[0]["completion"]["all"] is not None
    table = (out / "results.md").read_text()
    assert "## Equal-compute curves" in table and "| diffusion_6_seed0 | 2 |" in table
    rows = {(row["model"], row["variant"], row["metric"]) for row in json.loads((out / "over_seeds.json").read_text())}
    assert ("ar", "step 2: temperature_1 / left_to_right_greedy", "c3_novel") in rows


@pytest.mark.parametrize("run", ["diffusion_6_seed0", "ar_6_seed0"])
def test_likelihood_ranked_completion_keeps_the_candidate_the_model_scores_highest(study, run):
    import torch

    from hf_diffusion_lm import FAMILIES
    from hf_diffusion_lm.evaluation.likelihood import continuation_log_likelihood
    from hf_diffusion_lm.rules.model_metrics import complete_last_panels, likelihood_ranked_completion

    _, _, out, results = study
    run_dir = out / "runs" / run
    model_class = FAMILIES[next(r for r in results if r["name"] == run)["model"]["model"]].model_class
    model, tokenizer = model_class.from_pretrained(run_dir).eval(), RuleTokenizer.from_pretrained(run_dir)
    test = np.load(run_dir / "completion_test.npy")
    diffusion = run.startswith("diffusion")
    chosen, chosen_ids = likelihood_ranked_completion(model, tokenizer, test, candidates=3, batch_size=4, seed=5,
                                                      mc_samples=2, return_ids=True)
    scores, drafts = [], []
    for k in range(3):  # each candidate by hand: sampled with seed 5 + k, then scored
        if not diffusion:
            torch.manual_seed(5 + k)
        _, ids = complete_last_panels(model, tokenizer, test, 4, return_ids=True, do_sample=True,
                                      **({"seed": 5 + k} if diffusion else {}))
        tokens = torch.as_tensor(ids)
        scores.append([e.value for e in continuation_log_likelihood(model, tokens[:, :-27], tokens[:, -27:],
                                                                      mc_samples=2, seed=5)])
        drafts.append(ids)
    best = np.argmax(scores, axis=0)
    assert (chosen_ids == np.stack(drafts)[best, np.arange(len(test))]).all()
    assert (chosen == tokenizer.decode_samples(chosen_ids)).all()
    assert len({tuple(d.ravel()) for d in drafts}) > 1  # the candidates differ, so the ranking chose among them


def test_the_exact_sampler_runs_on_the_best_diffusion_run_at_one_token_per_call(study):
    _, _, out, results = study
    exact = json.loads((out / "exact_sampler.json").read_text())
    assert exact["run"] == "diffusion_6_seed0"  # the only diffusion run
    assert exact["exact"]["settings"]["steps"] == 243 and exact["exact"]["samples"] == 2
    assert set(exact["parallel"]) == {"ancestral", "low_confidence"}
    assert "## Exact sampler (diffusion_6_seed0" in (out / "results.md").read_text()


def test_a_study_out_of_time_starts_no_run_and_says_how_to_continue(tmp_path, capsys):
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump({**TINY_STUDY, "output_dir": str(tmp_path / "out"),
                                           "time_limit_seconds": 1e-9}, sort_keys=False))
    assert load_driver().main([str(config_path)]) == []
    assert "used up before diffusion_6_seed0; run the same command again" in capsys.readouterr().out
    assert not (tmp_path / "out" / "runs").exists()


@pytest.mark.parametrize("recipe", sorted((ROOT / "recipes" / "rules").glob("*.yaml")), ids=lambda p: p.name)
def test_every_rule_recipe_gives_valid_training_configs(recipe, tmp_path):
    from conftest import load_recipe

    config, _, _ = load_driver().parse_config([str(recipe)])
    assert len(config.runs()) == len(config.models) * len(config.samples_per_rule) * len(config.seeds) >= 2
    train = load_recipe("train")
    for run in config.runs()[:2]:
        path = tmp_path / f"{run['name']}.yaml"
        path.write_text(yaml.safe_dump(config.training_fields(run, tmp_path / run["name"])))
        model_args, training = train.parse_config([str(path), "--use_cpu", "true", "--bf16", "false"])
        assert model_args.model == run["model"] and training.seed == run["seed"]
        if config.curve_steps:  # the curve's checkpoints are all kept
            assert training.save_total_limit is None
