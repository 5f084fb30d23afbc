"""Distributed training on 2 CPU processes: DDP and DeepSpeed ZeRO-2/3 follow the single-process loss curve."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch


ROOT = Path(__file__).parents[1]
TINY_RUN = [
    "--samples_per_rule", "8", "--rules", "0", "3", "--hidden_size", "32", "--num_hidden_layers", "2",
    "--max_steps", "4", "--validation_samples_per_rule", "3", "--per_device_eval_batch_size", "4",
    "--logging_steps", "1", "--eval_strategy", "no",
    "--save_strategy", "no", "--load_best_model_at_end", "false", "--disable_tqdm", "true", "--warmup_steps", "0",
    "--learning_rate", "0.01", "--rule_metric_samples", "0",
]


def run(command: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    # torchrun leaves its temporary folders in TMPDIR; keep them in the test's folder.
    env = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def train(tmp_path: Path, name: str, launcher: list[str], batch_size: int) -> list[float]:
    output = tmp_path / name
    run([*launcher, "recipes/train.py", *TINY_RUN, "--per_device_train_batch_size", str(batch_size),
         "--output_dir", str(output)], tmp_path)
    history = json.loads((output / "trainer_state.json").read_text())["log_history"]
    return [entry["loss"] for entry in history if "loss" in entry]


def accelerate(config: str) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            f"recipes/accelerate_configs/{config}", "--num_processes", "2", "--mixed_precision", "no"]


@pytest.fixture(scope="module")
def single_process_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("single")
    return train(folder, "single", [sys.executable], batch_size=8), folder / "single"


@pytest.fixture(scope="module")
def single_process_losses(single_process_run):
    return single_process_run[0]


def test_ddp_on_two_processes_matches_one_process(tmp_path, single_process_run):
    single_losses, single_folder = single_process_run
    losses = train(tmp_path, "ddp", accelerate("cpu_2proc.yaml"), batch_size=4)
    assert len(losses) == 4
    assert losses == pytest.approx(single_losses, rel=1e-4)
    # Validation of the same (initial) weights: 6 samples in batches of 4 are 1 batch per process with 2 processes
    # (the second padded by accelerate), 2 batches with one; the diffusion ELBO's draws are keyed by sample index.
    single, ddp = (json.loads((folder / "eval_results.json").read_text()) for folder in (single_folder, tmp_path / "ddp"))
    assert ddp["initial_loss"] == pytest.approx(single["initial_loss"], rel=1e-6)
    assert ddp["initial_loss_standard_error"] == pytest.approx(single["initial_loss_standard_error"], rel=1e-5)
    assert ddp["eval_loss"] == pytest.approx(single["eval_loss"], rel=1e-3)


def test_deepspeed_zero2_on_two_processes_matches_one_process(tmp_path, single_process_losses):
    losses = train(tmp_path, "zero2", accelerate("zero2.yaml"), batch_size=4)
    assert losses == pytest.approx(single_process_losses, rel=1e-4)


def test_deepspeed_zero3_saves_a_loadable_model(tmp_path, single_process_run):
    single_losses, single_folder = single_process_run
    losses = train(tmp_path, "zero3", accelerate("zero3.yaml"), batch_size=4)
    assert losses == pytest.approx(single_losses, rel=1e-4)
    from hf_diffusion_lm import MaskedDiffusionForLM

    folder = tmp_path / "zero3"
    assert (folder / "model.safetensors").stat().st_size > 10_000
    gathered = dict(MaskedDiffusionForLM.from_pretrained(folder).named_parameters())
    reference = dict(MaskedDiffusionForLM.from_pretrained(single_folder).named_parameters())
    assert gathered.keys() == reference.keys()
    for name, parameter in reference.items():
        assert parameter.shape == gathered[name].shape and parameter.numel() > 0, name
        assert torch.allclose(parameter, gathered[name], atol=1e-4), name
