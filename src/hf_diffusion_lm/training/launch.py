"""The command that trains one run of a driver (the rule study, the sweep) through `accelerate launch`."""

import sys
from pathlib import Path

from transformers.trainer_utils import get_last_checkpoint


def train_command(train_script: Path, run_dir: Path, accelerate_config: str | None = None) -> list[str]:
    """`python -m accelerate.commands.launch [--config_file ...] <train_script> run_dir/train_config.yaml
    [--resume_from_checkpoint <last checkpoint>]`: a half-trained run continues where it stopped."""
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if accelerate_config:
        command += ["--config_file", accelerate_config]
    command += [str(train_script), str(run_dir / "train_config.yaml")]
    checkpoint = get_last_checkpoint(str(run_dir)) if run_dir.is_dir() else None
    if checkpoint:
        command += ["--resume_from_checkpoint", checkpoint]
    return command
