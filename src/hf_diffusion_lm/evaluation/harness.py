"""Run lm-evaluation-harness on a checkpoint and keep its results where the publishing step reads them.

`evaluate_checkpoint` is what `recipes/evaluate.py` runs: it checks the input before any model is loaded (the
checkpoint folder, the task names, the sampling settings), evaluates with `lm_eval.simple_evaluate` through the
`hf_diffusion_lm` model, and on the main process writes, under `output_path` (default `<checkpoint>/lm_eval`):

- `results_<timestamp>.json`: lm-eval's own aggregated results file, written by its `EvaluationTracker` (the format
  leaderboards keep), and `samples_<task>_<timestamp>.jsonl` with `log_samples`;
- `results.md`: lm-eval's Markdown table of every metric with its standard error;

and, when the results go to the default place, refreshes the checkpoint's model card (`README.md`, model-index and
`.eval_results/`) with them (`hf_diffusion_lm.publishing.write_model_card`).

Like the adapter, this module imports lm-eval; `hf_diffusion_lm.evaluation` does not import it.
"""

import difflib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..publishing import LM_EVAL_FOLDER, write_model_card
# The nine 0-shot tasks of the data-constrained paper (Prabhudesai et al.), in its order.
PAPER_TASKS = ("arc_easy", "boolq", "copa", "hellaswag", "piqa", "race", "winogrande", "sciq", "lambada_standard")
TABLE_FILE = "results.md"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

logger = logging.getLogger(__name__)


@dataclass
class EvaluationArguments:
    """The arguments of `recipes/evaluate.py` (parsed with `HfArgumentParser`)."""

    model: str = field(metadata={"help": "A checkpoint folder (recipes/train.py's output_dir or one of its "
                                         "checkpoint-N folders, or any save_pretrained folder) or a Hub id."})
    tasks: str = field(default=",".join(PAPER_TASKS),
                       metadata={"help": "Comma-separated lm-eval task names or globs (default: the paper's nine)."})
    include_path: str | None = field(default=None, metadata={"help": "A folder of local lm-eval task YAMLs."})
    limit: float | None = field(default=None, metadata={"help": "Documents per task (>= 1), or a fraction (< 1)."})
    num_fewshot: int = field(default=0, metadata={"help": "Few-shot examples per prompt (the paper: 0)."})
    mc_samples: int = field(default=32, metadata={"help": "Monte Carlo draws per diffusion request (the paper: 32)."})
    method: str | None = field(default=None, metadata={"help": "Diffusion continuation estimator: stratified "
                                                               "(default), antithetic or chain_rule."})
    batch_size: int = field(default=32, metadata={"help": "Rows per forward pass; prompts per generate call."})
    seed: int = field(default=0, metadata={"help": "Seed of every Monte Carlo estimate, generation and lm-eval."})
    output_path: str | None = field(default=None, metadata={"help": "Where results go (default <model>/lm_eval)."})
    device: str | None = field(default=None, metadata={"help": "Default: this process's accelerator, else CPU."})
    log_samples: bool = field(default=False, metadata={"help": "Also write every request and response."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Passed to from_pretrained."})

    def __post_init__(self):
        if isinstance(self.mc_samples, bool) or int(self.mc_samples) != self.mc_samples or self.mc_samples < 1:
            raise ValueError(f"mc_samples={self.mc_samples!r} must be an integer >= 1 (the paper uses 32).")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1.")
        if self.limit is not None and (self.limit <= 0 or (self.limit > 1 and self.limit != int(self.limit))):
            raise ValueError(f"limit={self.limit} must be a whole number of documents >= 1 or a fraction in (0, 1].")
        if self.num_fewshot < 0:
            raise ValueError(f"num_fewshot={self.num_fewshot} must be >= 0.")

    @property
    def task_names(self) -> list[str]:
        names = [name.strip() for name in self.tasks.split(",") if name.strip()]
        if not names:
            raise ValueError(f"tasks={self.tasks!r} names no task: give comma-separated lm-eval task names.")
        return names


def check_checkpoint(path: str) -> None:
    """A clear error for a path that cannot be a checkpoint, before lm-eval or transformers try to load it."""
    folder = Path(path)
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ValueError(f"model={path!r} is a folder without config.json, so not a checkpoint: give the "
                             "output_dir of recipes/train.py, one of its checkpoint-N folders, or a save_pretrained "
                             "folder.")
        if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
            raise ValueError(f"model={path!r} has a config.json but no weights (*.safetensors): the run that wrote it "
                             "did not finish saving; evaluate one of its checkpoint-N folders instead.")
    elif folder.exists():
        raise ValueError(f"model={path!r} is a file: give the checkpoint folder that holds config.json and weights.")
    elif not HUB_ID.match(path):
        raise ValueError(f"model={path!r} does not exist here and is not a Hub id (owner/name).")


def task_manager_for(task_names: list[str], include_path: str | None):
    """lm-eval's TaskManager indexing only `include_path` when it holds every task (indexing lm-eval's ~15k built-in
    tasks takes ~20 s), else the built-ins too; unknown names are an error that suggests close ones."""
    from lm_eval.tasks import TaskManager

    if include_path is not None and not Path(include_path).is_dir():
        raise ValueError(f"include_path={include_path!r} is not a folder of task YAMLs.")
    manager = None
    if include_path is not None:
        manager = TaskManager(include_path=include_path, include_defaults=False)
        if any(not manager.match_tasks([name]) for name in task_names):
            manager = None
    if manager is None:
        manager = TaskManager(include_path=include_path)
    unknown = [name for name in task_names if not manager.match_tasks([name])]
    if unknown:
        hints = {name: difflib.get_close_matches(name, manager.all_tasks, n=3) for name in unknown}
        hint_text = "".join(f" {name}: did you mean {', '.join(close)}?" for name, close in hints.items() if close)
        raise ValueError(f"Unknown lm-eval task(s) {unknown}.{hint_text} List tasks with `lm-eval ls tasks`, or pass "
                         "include_path, the folder of your task YAMLs.")
    return manager


def results_table(results: dict) -> str:
    """lm-eval's own Markdown table (every metric with its standard error), with the groups table when there is one."""
    from lm_eval.utils import make_table

    table = make_table(results)
    if results.get("groups"):
        table += "\n" + make_table(results, "groups")
    return table


def init_distributed() -> None:
    """Join the process group a launcher (`torchrun`, `accelerate launch`) describes, so each process scores its share
    of the requests and the adapter gathers them."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


def evaluate_checkpoint(args: EvaluationArguments) -> dict | None:
    """Evaluate `args.model` on `args.tasks`; returns lm-eval's results dict on the main process (None elsewhere)."""
    import lm_eval
    from lm_eval.loggers import EvaluationTracker

    from .lm_eval_model import HFDiffusionLM

    check_checkpoint(args.model)
    manager = task_manager_for(args.task_names, args.include_path)
    output = Path(args.output_path) if args.output_path else Path(args.model) / LM_EVAL_FOLDER
    if not args.output_path and not Path(args.model).is_dir():
        raise ValueError(f"model={args.model!r} is a Hub id: set output_path to say where the results go.")
    init_distributed()
    lm = HFDiffusionLM(pretrained=args.model, batch_size=args.batch_size, mc_samples=args.mc_samples,
                       method=args.method, seed=args.seed, device=args.device,
                       trust_remote_code=args.trust_remote_code)
    tracker = EvaluationTracker(output_path=str(output / "results.json"))  # -> results_<timestamp>.json
    limit = None if args.limit is None else (int(args.limit) if args.limit >= 1 else args.limit)
    results = lm_eval.simple_evaluate(
        model=lm, model_args={"pretrained": args.model}, tasks=args.task_names, num_fewshot=args.num_fewshot,
        limit=limit, task_manager=manager, log_samples=args.log_samples, evaluation_tracker=tracker,
        random_seed=args.seed, numpy_random_seed=args.seed, torch_random_seed=args.seed,
        fewshot_random_seed=args.seed,
    )
    if lm.rank != 0:
        return None
    before = set(output.glob("results_*.json"))
    samples = results.pop("samples", None)
    tracker.save_results_aggregated(results=results, samples=samples)
    if samples:
        for task in results["configs"]:
            tracker.save_results_samples(task_name=task, samples=samples[task])
    written = sorted(set(output.glob("results_*.json")) - before)
    if not written:  # lm-eval's tracker logs a failure to write instead of raising: do not report success
        raise RuntimeError(f"lm-eval did not write its results file under {output}; see the warnings above.")
    results["results_table"] = results_table(results)
    (output / TABLE_FILE).write_text(results["results_table"])
    results["results_file"] = str(written[-1])
    if output == Path(args.model) / LM_EVAL_FOLDER:  # where the card looks for them: refresh the checkpoint's card
        results["model_card"] = str(write_model_card(args.model))
    logger.info("lm-eval results: %s; table: %s", written[-1], output / TABLE_FILE)
    return results


__all__ = ["PAPER_TASKS", "EvaluationArguments", "check_checkpoint", "evaluate_checkpoint", "results_table",
           "task_manager_for"]
