"""The data-constrained sweep driver on recipes/sweeps/tiny.yaml (2 families x 1 size x 1 budget x 2 epochs, 4 steps
per run), and the report's fitting path on synthetic runs drawn from known laws."""

import csv
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from hf_diffusion_lm.scaling import DataConstrainedLaw
from hf_diffusion_lm.sweep import SweepConfig, write_report

ROOT = Path(__file__).parents[1]
TINY = yaml.safe_load((ROOT / "recipes" / "sweeps" / "tiny.yaml").read_text())
TINY["accelerate_config"] = str(ROOT / TINY["accelerate_config"])
RUNS = ["diffusion_t_n8_e2", "ar_t_n8_e2"]
PLOTS = ("loss_vs_epochs.png", "best_loss_vs_flops.png", "repeated_data_value.png", "critical_compute.png")

from conftest import interrupt_after_first_checkpoint


def load_driver():
    spec = importlib.util.spec_from_file_location("sweep_recipe", ROOT / "recipes" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_grid(path: Path, **changes) -> Path:
    path.write_text(yaml.safe_dump({**TINY, **changes}, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    grid = write_grid(root / "tiny.yaml", output_dir=str(root / "out"))
    driver = load_driver()
    rows = driver.main([str(grid)])
    return driver, grid, root / "out", rows


def logged(run_dir: Path) -> dict:
    """What the run's own trainer_state.json says, read independently of the driver."""
    history = json.loads((run_dir / "trainer_state.json").read_text())["log_history"]
    evaluations = {}
    for entry in history:
        if "eval_loss" in entry:
            evaluations.setdefault(entry["step"], entry)  # the first evaluation at a step is the in-training one
    unique = {entry["unique_tokens"] for entry in history if "loss" in entry}
    assert len(unique) == 1
    best = min(evaluations.values(), key=lambda entry: entry["eval_loss"])
    last = evaluations[max(evaluations)]
    return {"unique": unique.pop(), "best": best, "last": last, "steps": sorted(evaluations)}


def test_sweep_writes_every_output_file(sweep):
    _, _, out, rows = sweep
    assert [row["name"] for row in rows] == RUNS
    for plot in PLOTS:
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "results.json").read_text())
    assert [row["name"] for row in report["runs"]] == RUNS
    with open(out / "results.csv") as handle:
        assert [row["name"] for row in csv.DictReader(handle)] == RUNS
    markdown = (out / "results.md").read_text()
    for name in RUNS:
        assert f"| {name} |" in markdown
    assert "negative ELBO" in markdown and "exact negative log-likelihood" in markdown
    # Too few points for the law: each family records why, and the report says so instead of failing.
    for family in ("diffusion", "ar"):
        fit = report["fits"][family]
        assert fit["law"] is None and "single-epoch" in fit["reason"]
        assert f"| {family} | {fit['num_points']} ({fit['num_single_epoch_points']}) |" in markdown
    assert report["critical_compute"] == [] and "Not computed" in markdown
    for name in RUNS:
        run_dir = out / "runs" / name
        assert (run_dir / "model.safetensors").exists() and (run_dir / "sweep_result.json").exists()
        config = yaml.safe_load((run_dir / "train_config.yaml").read_text())
        assert config["num_train_epochs"] == 2 and config["max_steps"] == -1
        assert config["eval_steps"] == config["save_steps"] == 0.5 and config["output_dir"] == str(run_dir)


def test_sweep_table_equals_the_runs_own_logs(sweep):
    _, _, out, _ = sweep
    with open(out / "results.csv") as handle:
        table = {row["name"]: row for row in csv.DictReader(handle)}
    runs = {row["name"]: row for row in json.loads((out / "results.json").read_text())["runs"]}
    for name in RUNS:
        run_dir = out / "runs" / name
        log, row = logged(run_dir), runs[name]
        # 8 samples of 243 scored tokens; 2 steps of 4 samples an epoch, a validation every half run
        assert log["unique"] == row["unique_tokens"] == int(table[name]["unique_tokens"]) == 8 * 243
        assert log["steps"] == [2, 4] == [p["step"] for p in row["curve"]]
        assert row["best_loss"] == log["best"]["eval_loss"] == float(table[name]["best_loss"])
        assert row["best_step"] == log["best"]["step"]
        assert row["tokens_seen"] == log["last"]["num_input_tokens_seen"] == int(table[name]["tokens_seen"])
        assert row["tokens_seen"] == 2 * 8 * 244  # BOS + 243 tokens per sequence
        assert row["epochs"] == pytest.approx(row["tokens_seen"] / log["unique"], rel=1e-12)
        assert float(table[name]["epochs"]) == pytest.approx(row["epochs"], rel=1e-12)
        assert row["best_epochs"] == pytest.approx(log["best"]["num_input_tokens_seen"] / log["unique"], rel=1e-12)
        final = json.loads((run_dir / "eval_results.json").read_text())
        assert row["final_loss"] == pytest.approx(final["eval_loss"], rel=1e-12)  # the saved model's own evaluation
        assert row["initial_loss"] == final["initial_loss"] > row["best_loss"]
        if name.startswith("diffusion"):
            assert row["best_loss_standard_error"] == log["best"]["eval_loss_standard_error"] > 0
        else:
            assert row["best_loss_standard_error"] is None and table[name]["best_loss_standard_error"] == ""
        # N: the paper's count for width 32, 1 layer, SwiGLU 64, the rule vocabulary; FLOPs = 6 N D
        vocab = json.loads((run_dir / "config.json").read_text())["vocab_size"]
        assert row["parameters"] == 4 * 32**2 + 3 * 32 * 64 + 6 * 32 + vocab * 32
        assert row["flops"] == 6 * row["parameters"] * row["tokens_seen"]
        assert row["chance_uniform"] == pytest.approx(math.log(vocab)) and row["chance_unigram"] < row["chance_uniform"]
    assert f"unigram {runs[RUNS[0]]['chance_unigram']:.3f}" in (out / "results.md").read_text()


def test_chance_baselines_are_a_hand_count():
    from datasets import Dataset, DatasetDict

    from hf_diffusion_lm.training.data import chance_baselines

    data = DatasetDict(train=Dataset.from_dict({"labels": [[1, 1, 2, -100]]}),
                       validation=Dataset.from_dict({"labels": [[1, -100, 3]]}))
    # counts (0, 2, 1, 0) + 1 over 3 + 4: p(1) = 3/7, p(3) = 1/7
    assert chance_baselines(data, 4) == pytest.approx({"uniform": math.log(4),
                                                       "unigram": -(math.log(3 / 7) + math.log(1 / 7)) / 2})


def test_sweep_skips_finished_runs(sweep, monkeypatch, capsys):
    driver, grid, out, rows = sweep

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was launched again")

    monkeypatch.setattr(driver, "train", no_training)
    weights = {name: (out / "runs" / name / "model.safetensors").stat().st_mtime_ns for name in RUNS}
    again = driver.main([str(grid)])
    assert {name: (out / "runs" / name / "model.safetensors").stat().st_mtime_ns for name in RUNS} == weights
    assert [row["best_loss"] for row in again] == [row["best_loss"] for row in rows]
    assert [row["wall_seconds"] for row in again] == [row["wall_seconds"] for row in rows]  # from sweep_result.json
    assert capsys.readouterr().out.count("finished, kept") == len(RUNS)


def test_sweep_prints_one_command_per_run_and_trains_nothing(sweep, tmp_path, monkeypatch, capsys):
    driver, grid, _, _ = sweep
    monkeypatch.setattr(driver, "train", lambda *a, **k: pytest.fail("--print_commands launched a run"))
    fresh = tmp_path / "fresh"
    assert driver.main([str(grid), "--output_dir", str(fresh), "--print_commands"]) == []
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(RUNS)
    for line, name in zip(lines, RUNS):
        config = fresh / "runs" / name / "train_config.yaml"
        assert line == (f"accelerate launch --config_file {TINY['accelerate_config']} "
                        f"{ROOT / 'recipes' / 'train.py'} {config}")
        assert config.exists() and not (config.parent / "trainer_state.json").exists()
    assert not (fresh / "results.md").exists()


def test_sweep_resumes_half_finished_run_from_its_last_checkpoint(sweep, capsys):
    driver, grid, out, rows = sweep
    run_dir = out / "runs" / "diffusion_t_n8_e2"
    interrupt_after_first_checkpoint(run_dir, ("eval_results.json", "all_results.json", "sweep_result.json"))
    before = json.loads((run_dir / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
    others = {name: (out / "runs" / name / "model.safetensors").stat().st_mtime_ns for name in RUNS if
              name != "diffusion_t_n8_e2"}
    capsys.readouterr()
    driver.main([str(grid), "--print_commands"])  # only the unfinished run, resuming
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and printed[0].endswith(f"--resume_from_checkpoint {run_dir / 'checkpoint-2'}")

    resumed = {row["name"]: row for row in driver.main([str(grid)])}
    assert "diffusion_t_n8_e2: training (resuming from checkpoint-2)" in capsys.readouterr().out
    assert {name: (out / "runs" / name / "model.safetensors").stat().st_mtime_ns for name in others} == others
    history = json.loads((run_dir / "trainer_state.json").read_text())["log_history"]
    # Steps 1-2 come from the checkpoint's state (same timings), not from a retrain; steps 3-4 were trained now.
    assert [h for h in history if h["step"] <= 2] == before
    assert [h["step"] for h in history if "loss" in h] == [2, 4]
    row = resumed["diffusion_t_n8_e2"]
    assert row["steps"] == 4 and row["tokens_seen"] == 2 * 8 * 244
    assert row["best_loss"] == logged(run_dir)["best"]["eval_loss"]
    assert (run_dir / "sweep_result.json").exists() and (run_dir / "model.safetensors").exists()


@pytest.mark.parametrize("changes, message", [
    ({"families": {"x": {"model": "not_a_model"}}}, r"families\['x'\]: model='not_a_model' is unknown"),
    ({"families": {"x": {"num_orders": 4}}}, "needs a 'model' key"),
    ({"epochs": [2, 0.5]}, "0.5 must be a number >= 1"),
    ({"epochs": []}, "epochs=.* must be a non-empty list"),
    ({"sizes": {}}, "sizes=.* must be a non-empty mapping"),
    ({"evaluations_per_run": 1}, "evaluations_per_run=1 must be an integer >= 2"),
    ({"training": {**TINY["training"], "max_steps": 5}}, r"training sets \['max_steps'\], which the sweep sets"),
    ({"sizes": {"t": {"hidden_size": 32, "learning_rate": 0.1}}}, "'learning_rate' is set by both training and size"),
    ({"training": {**TINY["training"], "hidden_sise": 32}}, r"run diffusion_t_n8_e2: .*unknown config key\(s\) "
                                                            r"\['hidden_sise'\]"),
    ({"budgets": {"huge": {"samples_per_rule": 8, "unique_tokens": 10**9}}},
     r"budgets\['huge'\].*unique_tokens=1000000000 cannot be honoured"),
    ({"evaluations_per_runs": 3}, r"unknown sweep field\(s\) \['evaluations_per_runs'\]"),
])
def test_bad_grid_fails_before_any_run_folder(tmp_path, changes, message):
    out = tmp_path / "out"
    grid = write_grid(tmp_path / "bad.yaml", output_dir=str(out), **changes)
    with pytest.raises(ValueError, match=message):
        load_driver().main([str(grid)])
    assert not out.exists()


def test_text_budget_larger_than_the_corpus_fails_before_any_run_folder(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i} of a small local corpus" for i in range(200)))
    out = tmp_path / "out"
    training = {"dataset": "text", "data_files": [str(corpus)], "tokenizer_name": "bpe:300", "block_size": 16,
                "use_cpu": True}
    grid = write_grid(tmp_path / "text.yaml", output_dir=str(out), training=training,
                      budgets={"u1m": {"unique_tokens": 10**6}})
    with pytest.raises(ValueError, match=r"budgets\['u1m'\].*unique_tokens=1000000 but the corpus holds"):
        load_driver().main([str(grid)])
    assert not out.exists()


# ---- the report's fitting path, on runs drawn from known laws ------------------------------------------------
AR_LAW = DataConstrainedLaw(A=60.0, B=250.0, E=1.0, alpha=0.35, beta=0.35, R_D_star=15.0, R_N_star=5.0)
DIFFUSION_LAW = DataConstrainedLaw(A=80.0, B=400.0, E=1.0, alpha=0.35, beta=0.35, R_D_star=500.0, R_N_star=1000.0)


def synthetic_row(family: str, law, parameters: float, unique: float, epochs: float, rng) -> dict:
    points = np.concatenate([np.linspace(0.1, 1, 6), np.geomspace(1.5, epochs, 12)])
    curve = [{"step": i + 1, "tokens_seen": float(e * unique), "epochs": float(e),
              "loss": float(law.loss(parameters, e * unique, unique) * np.exp(rng.normal(0, 0.003))),
              "loss_standard_error": None} for i, e in enumerate(points)]
    best, final = min(curve, key=lambda p: p["loss"]), curve[-1]
    return {"name": f"{family}_{parameters:g}_{unique:g}", "family": family, "model": family, "size": "s",
            "budget": "u", "target_epochs": epochs, "is_diffusion": family == "diffusion",
            "parameters": parameters, "unique_tokens": unique, "steps": final["step"],
            "tokens_seen": final["tokens_seen"], "epochs": final["epochs"], "best_loss": best["loss"],
            "best_loss_standard_error": None, "best_step": best["step"], "best_epochs": best["epochs"],
            "final_loss": final["loss"], "final_loss_standard_error": None, "initial_loss": None,
            "flops": 6 * parameters * final["tokens_seen"], "flops_at_best": 6 * parameters * best["tokens_seen"],
            "curve": curve, "wall_seconds": 1.0}


def test_report_fits_each_family_and_finds_where_diffusion_overtakes(tmp_path):
    rng = np.random.default_rng(0)
    rows = [synthetic_row(family, law, n, u, 200, rng)
            for family, law in (("ar", AR_LAW), ("diffusion", DIFFUSION_LAW))
            for n in (3e5, 1e6, 3e6) for u in (1e5, 1e6)]
    report = write_report(rows, tmp_path)
    ar, diffusion = report["fits"]["ar"], report["fits"]["diffusion"]
    for fit in (ar, diffusion):
        assert fit["reason"] is None and fit["r_squared"] > 0.98
        assert fit["num_points"] == 6 * 18 and fit["num_single_epoch_points"] == 6 * 6
    # Repeated data keeps its value far longer under the diffusion law the runs were drawn from.
    assert diffusion["law"]["R_D_star"] > 10 * ar["law"]["R_D_star"]
    critical = report["critical_compute"]
    assert [c["unique_tokens"] for c in critical] == pytest.approx(np.geomspace(1e4, 1e7, 9))
    crossings = [c for c in critical if c["flops"] is not None]
    assert crossings, [c["reason"] for c in critical]
    fitted = {name: DataConstrainedLaw(**fit["law"]) for name, fit in report["fits"].items()}
    for c in crossings:  # just above the critical compute diffusion's best loss is lower, just below it is not
        best = lambda name, flops: fitted[name].best_allocation(flops, c["unique_tokens"]).loss  # noqa: E731
        assert best("diffusion", c["flops"] * 1.05) < best("ar", c["flops"] * 1.05)
        assert best("diffusion", c["flops"] / 1.05) >= best("ar", c["flops"] / 1.05)
        assert c["paper_flops"] == pytest.approx(2.12e15 * (c["unique_tokens"] / 1e6) ** 2.174)
    markdown = (tmp_path / "results.md").read_text()
    assert f"{ar['law']['R_D_star']:.4g}" in markdown and "U in millions of unique tokens" in markdown
    for plot in PLOTS:
        assert (tmp_path / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["notes"] == []  # every plot could draw its fitted part


def test_sweep_config_names_runs_and_sets_their_epochs(tmp_path):
    config = SweepConfig(**{**TINY, "epochs": [100, 1.5]})
    names = [run["name"] for run in config.runs()]
    assert names == ["diffusion_t_n8_e1.5", "ar_t_n8_e1.5", "diffusion_t_n8_e100", "ar_t_n8_e100"]
    fields = config.train_config(config.runs()[-1], tmp_path)
    assert (fields["model"], fields["num_orders"], fields["samples_per_rule"]) == ("permuted_causal", 1, 8)
    assert (fields["num_train_epochs"], fields["max_steps"], fields["eval_steps"]) == (100, -1, 0.5)
