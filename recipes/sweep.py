"""The data-constrained sweep: every (family, size, unique-data budget, epochs) run, its table, the fitted law, plots.

    python recipes/sweep.py                                         # recipes/sweeps/cpu_rules.yaml (2 CPU cores)
    python recipes/sweep.py recipes/sweeps/cpu_text.yaml --output_dir outputs/x --evaluations_per_run 30
    python recipes/sweep.py recipes/sweeps/X.yaml --print_commands   # one `accelerate launch` line per run, no training

Each run trains with `accelerate launch [--config_file <accelerate_config>] recipes/train.py
<output_dir>/runs/<run>/train_config.yaml`, one after the other. Every run's config is parsed and every data setting
built first, so a bad grid fails before anything trains. Run the same command again to resume: finished runs (with an
eval_results.json) are kept, a half-trained one continues from its last checkpoint.
Outputs in output_dir: results.{csv,json,md}, loss_vs_epochs.png, best_loss_vs_flops.png, repeated_data_value.png,
critical_compute.png, and runs/<run>/ (model, trainer_state.json, sweep_result.json).
"""

import argparse
import importlib.util
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from hf_diffusion_lm.training import launch

from hf_diffusion_lm.sweep import FINISHED_FILE, RESULT_FILE, SweepConfig, check_runs, collect_run, write_json, \
    write_report, write_yaml

DEFAULT_CONFIG = Path(__file__).parent / "sweeps" / "cpu_rules.yaml"
TRAIN_SCRIPT = Path(__file__).parent / "train.py"


def parse_config(argv: list[str]) -> tuple[SweepConfig, bool]:
    """A YAML grid (default recipes/sweeps/cpu_rules.yaml), then `--field value` overrides read as YAML
    (`--epochs [1,10]`); `--print_commands` prints the runs' commands instead of training."""
    config_path = argv[0] if argv and argv[0].endswith((".yaml", ".yml")) else str(DEFAULT_CONFIG)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     usage="%(prog)s [grid.yaml] [--field value ...] [--print_commands]")
    parser.add_argument("--print_commands", action="store_true", help="Print one accelerate launch line per run.")
    args, overrides = parser.parse_known_args(argv[1:] if argv and argv[0] == config_path else argv)
    values = yaml.safe_load(Path(config_path).read_text()) or {}
    if len(overrides) % 2 or not all(flag.startswith("--") for flag in overrides[::2]):
        raise ValueError(f"Overrides must come as `--field value` pairs, got {overrides}.")
    values |= {flag[2:]: yaml.safe_load(value) for flag, value in zip(overrides[::2], overrides[1::2])}
    unknown = sorted(set(values) - set(SweepConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"{config_path}: unknown sweep field(s) {unknown}; known fields: "
                         f"{sorted(SweepConfig.__dataclass_fields__)}.")
    return SweepConfig(**values), args.print_commands


def train_parser():
    """recipes/train.py's `parse_config`, so that every run's config is checked exactly as training will read it."""
    spec = importlib.util.spec_from_file_location("sweep_train_recipe", TRAIN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parse_config


def train_command(config: SweepConfig, run_dir: Path) -> list[str]:
    return launch.train_command(TRAIN_SCRIPT, run_dir, config.accelerate_config)


def train(command: list[str]) -> None:
    subprocess.run(command, check=True)  # the child shows its own progress; train.py gives itself the cores


def main(argv: list[str] | None = None) -> list[dict]:
    config, print_commands = parse_config(sys.argv[1:] if argv is None else argv)
    output_dir = Path(config.output_dir)
    runs = config.runs()
    data = check_runs(config, train_parser())  # a bad grid fails here, before any run folder exists
    rows, started = [], time.perf_counter()
    for i, run in enumerate(runs, 1):
        run_dir = output_dir / "runs" / run["name"]
        finished = (run_dir / FINISHED_FILE).exists()
        if not finished:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_yaml(run_dir / "train_config.yaml", config.train_config(run, run_dir))
            command = train_command(config, run_dir)
            if print_commands:
                print(shlex.join(["accelerate", "launch", *command[3:]]), flush=True)
                continue
            resuming = f" (resuming from {Path(command[-1]).name})" if "--resume_from_checkpoint" in command else ""
            print(f"[sweep] {i}/{len(runs)} {run['name']}: training{resuming}", flush=True)
            run_started = time.perf_counter()
            train(command)
            row = collect_run(run, run_dir, data[run["name"]]["unique_tokens"])
            row["wall_seconds"] = round(time.perf_counter() - run_started, 1)
            write_json(run_dir / RESULT_FILE, {k: v for k, v in row.items() if k != "curve"})
            if not config.keep_checkpoints:
                for checkpoint in run_dir.glob("checkpoint-*"):
                    shutil.rmtree(checkpoint)
        elif print_commands:
            print(f"# {run['name']}: finished, skipped", file=sys.stderr)
            continue
        else:
            row = collect_run(run, run_dir, data[run["name"]]["unique_tokens"])
            recorded = run_dir / RESULT_FILE
            row["wall_seconds"] = json.loads(recorded.read_text()).get("wall_seconds") if recorded.exists() else None
        row |= {key: data[run["name"]][key] for key in ("chance_uniform", "chance_unigram")}
        status = "finished, kept" if finished else f"trained in {row['wall_seconds']:.0f} s"
        print(f"[sweep] {i}/{len(runs)} {run['name']}: {status}; best validation loss {row['best_loss']:.4f} at "
              f"epoch {row['best_epochs']:.2f}, final {row['final_loss']:.4f} "
              f"(sweep {(time.perf_counter() - started) / 60:.1f} min)", flush=True)
        rows.append(row)
    if rows:
        write_report(rows, output_dir)
        print(f"[sweep] {len(rows)}/{len(runs)} runs; table: {output_dir / 'results.md'}", flush=True)
    return rows


if __name__ == "__main__":
    main()
