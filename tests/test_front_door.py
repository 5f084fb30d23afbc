"""`accelerate launch recipes/train.py`, as a new user runs it: every core, no warning from our code, and a run that
shows its result (a picture of samples linked from the card, each figure next to its chance baseline)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_diffusion_lm.training.report import compare_with_chance, describe_rule_metrics
from hf_diffusion_lm.training.threads import cpu_threads_per_process


ROOT = Path(__file__).parents[1]
LAUNCHED = {"ACCELERATE_USE_CPU": "False", "OMP_NUM_THREADS": "1"}
TINY = ["--max_steps", "4", "--samples_per_rule", "8", "--validation_samples_per_rule", "4", "--hidden_size", "32",
        "--num_hidden_layers", "1", "--disable_tqdm", "true"]


def test_only_the_launchers_own_one_thread_limit_is_lifted():
    assert cpu_threads_per_process(LAUNCHED, launcher_environ={}, num_cores=8) == 8
    assert cpu_threads_per_process({**LAUNCHED, "LOCAL_WORLD_SIZE": "2"}, {}, num_cores=8) == 4
    assert cpu_threads_per_process({**LAUNCHED, "LOCAL_WORLD_SIZE": "16"}, {}, num_cores=8) == 1
    # The user asked for one thread: kept.
    assert cpu_threads_per_process(LAUNCHED, {"OMP_NUM_THREADS": "1"}, num_cores=8) is None
    # Any other value came from the user (accelerate passes theirs on), and plain `python` sets nothing.
    assert cpu_threads_per_process({**LAUNCHED, "OMP_NUM_THREADS": "3"}, {}, num_cores=8) is None
    assert cpu_threads_per_process({"OMP_NUM_THREADS": "1"}, {}, num_cores=8) is None


def launch(tmp_path, env, *flags) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "recipes/train.py",
               "--output_dir", str(tmp_path / "out"), *TINY, *flags]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def thread_line(result) -> str:
    return [line for line in result.stdout.splitlines() if line.startswith("[train]") and "thread" in line][0]


@pytest.fixture(scope="module")
def user_environment(tmp_path_factory):
    # Without an accelerate config that says use_cpu, `accelerate launch` hands its child OMP_NUM_THREADS=1.
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    env["HF_HOME"] = str(tmp_path_factory.mktemp("hf_home"))  # no accelerate config of the user's
    return env


def test_the_default_run_uses_every_core_warns_nothing_and_shows_its_samples(tmp_path, user_environment):
    result = launch(tmp_path, user_environment, "--eval_steps", "2", "--save_steps", "2", "--rule_metric_samples", "4")
    assert thread_line(result) == f"[train] {len(os.sched_getaffinity(0))} CPU thread(s) per process"
    output = tmp_path / "out"
    # Reloading the best checkpoint (load_best_model_at_end in the default config) used to report the tied head.
    assert "missing keys" not in result.stderr
    assert "FutureWarning" not in result.stderr and "DeprecationWarning" not in result.stderr
    picture = output / "samples.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"Picture of generated samples: {picture}" in result.stdout
    card = (output / "README.md").read_text()
    assert "![Generated samples](samples.png)" in card
    metrics = json.loads((output / "rule_metrics.json").read_text())
    assert metrics["unconditional_samples"] == 4 and metrics["completion_samples"] == 4
    for row in compare_with_chance(metrics):  # every figure printed beside its baseline and a plain verdict
        verdict = "beats chance" if row["beats_chance"] else "does NOT beat chance"
        assert f"- {row['name']}: {row['rate']:.3f}" in result.stdout and verdict in result.stdout
    assert "Beats chance:" in result.stdout and "Beats chance:" in card


def test_a_thread_count_the_user_chose_is_kept(tmp_path, user_environment):
    result = launch(tmp_path, {**user_environment, "OMP_NUM_THREADS": "1"}, "--rule_metric_samples", "0",
                    "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false")
    assert thread_line(result) == "[train] 1 CPU thread(s) per process"


def test_a_figure_beats_chance_only_when_its_whole_interval_lies_above_the_baseline():
    metrics = dict(completion=0.9, completion_samples=100, completion_chance_copy_middle=0.5,
                   completion_chance_random_panel=0.1, unconditional_anyvalid=0.4, unconditional_chance_anyvalid=0.38,
                   unconditional_c3=0.05, unconditional_chance_c3=0.0, unconditional_c2=0.0,
                   unconditional_chance_c2=0.0, unconditional_samples=100, unconditional_c3_novel=0.0,
                   unconditional_novel=0.5)
    rows = {row["name"]: row for row in compare_with_chance(metrics)}
    verdicts = {name: row["beats_chance"] for name, row in rows.items()}
    assert verdicts == {"panel completion": True, "unconditional AnyValid (rows)": False, "unconditional C3": True,
                        "unconditional C3 of novel samples": False, "unconditional C2": False}
    assert rows["unconditional C3 of novel samples"]["trials"] == 50  # the novel half of the 100 samples
    text = describe_rule_metrics(metrics)
    assert "Beats chance: panel completion, unconditional C3." in text
    assert "copy the middle panel 0.500" in text  # the strongest baseline is named
