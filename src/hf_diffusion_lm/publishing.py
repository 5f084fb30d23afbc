"""Model cards built from a run folder, `.eval_results` entries, and uploads of a checkpoint to the Hub.

One function, `write_model_card`, writes a checkpoint's `README.md` and `.eval_results/*.yaml` from the files the run
left there, so the card says only what the run measured:

- `config.json` (the model), `run_info.json` (written by `recipes/train.py`: the run's arguments, data, unique tokens,
  world size, hardware, a usage prompt), `trainer_state.json` (steps, tokens seen, FLOPs, runtime, the validation
  curve), `eval_results.json` (validation before and after), `rule_metrics.json` and `samples.png` (rule data),
  `adapter_config.json` (a PEFT adapter run), and the newest `lm_eval/results_*.json` of `recipes/evaluate.py`.

`recipes/train.py` calls it when a run ends, `recipes/evaluate.py` after evaluating the checkpoint, and `publish`
before uploading. Results go both into the README's `model-index` (the legacy format, every result) and into
`.eval_results/<name>.yaml` (the current Hub format, lm-eval results only: the Hub lists an entry on a benchmark's
leaderboard only when its `dataset.id` is a Hub benchmark dataset; local tasks are written with their task name as
the id and say so in `notes`).

Not a model-side module: never copied into a Hub repo.
"""

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from huggingface_hub import (
    EvalResult,
    EvalResultEntry,
    ModelCard,
    ModelCardData,
    eval_result_entries_to_yaml,
    parse_eval_result_entries,
)

from .families import CAUSAL_LM, family_of


TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"
RUN_INFO = "run_info.json"
SAMPLES_PICTURE = "samples.png"
EVAL_RESULTS_FOLDER = ".eval_results"
LM_EVAL_FOLDER = "lm_eval"
LM_EVAL_SOURCE = "https://github.com/EleutherAI/lm-evaluation-harness"
LOCAL_DATASET_LOADERS = {"json", "csv", "parquet", "text", "arrow", "pandas", "webdataset"}
LICENSE = "apache-2.0"
# Files a checkpoint folder holds that are never uploaded: pickles of training state, resumable checkpoints.
NEVER_UPLOADED = ("training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth", "scaler.pt")
PICKLE_WEIGHTS = re.compile(r".*\.(bin|pt|pth|ckpt|pkl|pickle)$")


@dataclass
class RunRecord:
    """What a checkpoint folder says about its run (every part optional but `config`)."""

    folder: Path
    config: dict
    run_info: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)
    evaluation: dict = field(default_factory=dict)
    rule_metrics: dict | None = None
    lm_eval: dict | None = None
    lm_eval_file: Path | None = None
    adapter: dict | None = None

    @property
    def family(self):
        return family_of(self.config.get("model_type", ""))

    def training_log(self, key: str):
        """The last value of `key` in the training logs (None when never logged)."""
        for entry in reversed(self.state.get("log_history", [])):
            if key in entry:
                return entry[key]
        return None


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def newest_lm_eval_results(folder: Path) -> Path | None:
    files = sorted((folder / LM_EVAL_FOLDER).glob("results_*.json"))
    return files[-1] if files else None


def read_run(folder) -> RunRecord:
    folder = Path(folder)
    adapter = _read_json(folder / "adapter_config.json")
    config = _read_json(folder / "config.json")
    if config is None and adapter is None:
        raise ValueError(f"{folder} holds no config.json (nor adapter_config.json): it is not a checkpoint folder.")
    lm_eval_file = newest_lm_eval_results(folder)
    run_info = _read_json(folder / RUN_INFO) or {}
    if config is None:  # an adapter: the base model's configuration, as training recorded it or from a local base
        base = adapter.get("base_model_name_or_path") or ""
        config = run_info.get("base_model_config") or (_read_json(Path(base) / "config.json") if base else None)
    return RunRecord(
        folder=folder, config=config or {}, run_info=run_info,
        state=_read_json(folder / "trainer_state.json") or {}, evaluation=_read_json(folder / "eval_results.json") or {},
        rule_metrics=_read_json(folder / "rule_metrics.json"), lm_eval=_read_json(lm_eval_file) if lm_eval_file else None,
        lm_eval_file=lm_eval_file, adapter=adapter,
    )


# ----------------------------------------------------------------------------------------------------------------------
# Results: model-index and .eval_results.


def _lm_eval_metrics(record: RunRecord):
    """(task, metric, value, stderr, dataset_path, dataset_name) for every numeric lm-eval result, in task order."""
    if not record.lm_eval:
        return []
    rows = []
    for task, metrics in record.lm_eval.get("results", {}).items():
        task_config = record.lm_eval.get("configs", {}).get(task, {})
        for key, value in metrics.items():
            metric, _, filter_name = key.partition(",")
            if not filter_name or metric.endswith("_stderr") or not isinstance(value, (int, float)) \
                    or isinstance(value, bool):  # "metric,filter" keys only (not sample_len, alias)
                continue
            if isinstance(value, float) and not math.isfinite(value):
                continue
            stderr = metrics.get(f"{metric}_stderr,{filter_name}")
            rows.append((task, metric, float(value), stderr if isinstance(stderr, (int, float)) else None,
                         task_config.get("dataset_path") or task, task_config.get("dataset_name")))
    return rows


def _validation_dataset(record: RunRecord) -> tuple[str, str]:
    data = record.run_info.get("dataset", "unknown")
    if data == "rules":
        return "abstract-rules", "Abstract-rule (GenRAVEN) samples, generated"
    return data, data


def model_index_results(record: RunRecord) -> list[EvalResult]:
    """The validation loss of the run and every lm-eval result, as the README's model-index entries."""
    results = []
    if "eval_loss" in record.evaluation:
        dataset_type, dataset_name = _validation_dataset(record)
        name = "validation negative ELBO (nats/token, upper bound)" if record.family.is_diffusion else \
            "validation NLL (nats/token)"
        results.append(EvalResult(task_type="text-generation", dataset_type=dataset_type, dataset_name=dataset_name,
                                  dataset_split="validation", metric_type="loss", metric_name=name,
                                  metric_value=round(float(record.evaluation["eval_loss"]), 6)))
    for task, metric, value, _, dataset_path, dataset_config in _lm_eval_metrics(record):
        results.append(EvalResult(task_type="text-generation", dataset_type=dataset_path, dataset_name=task,
                                  dataset_config=dataset_config, metric_type=metric, metric_name=f"{task} {metric}",
                                  metric_value=value, source_name="lm-evaluation-harness",
                                  source_url=LM_EVAL_SOURCE))
    return results


def eval_result_entries(record: RunRecord) -> list[EvalResultEntry]:
    """lm-eval results as `.eval_results` entries (one per task and metric)."""
    entries = []
    date = record.lm_eval.get("date") if record.lm_eval else None
    date = None if date is None else str(date)
    for task, metric, value, stderr, dataset_path, _ in _lm_eval_metrics(record):
        local = dataset_path in LOCAL_DATASET_LOADERS or dataset_path == task
        notes = f"lm-evaluation-harness, {metric}" + (f" +/- {stderr:.4g}" if stderr is not None else "")
        if local:
            notes += "; a local task, not a Hub benchmark dataset"
        entries.append(EvalResultEntry(dataset_id=task if local else dataset_path, task_id=task, value=value,
                                       notes=notes, source_url=LM_EVAL_SOURCE, source_name="lm-evaluation-harness"))
    return entries


def read_eval_results_folder(folder) -> list[EvalResultEntry]:
    """Parse `<folder>/.eval_results/*.yaml` back with huggingface_hub (what the Hub reads)."""
    entries = []
    for path in sorted((Path(folder) / EVAL_RESULTS_FOLDER).glob("*.yaml")):
        entries += parse_eval_result_entries(yaml.safe_load(path.read_text()) or [])
    return entries


# ----------------------------------------------------------------------------------------------------------------------
# The card.


def _number(value, digits=3) -> str:
    return "-" if value is None else (f"{value:,}" if isinstance(value, int) else f"{value:.{digits}g}")


def _training_rows(record: RunRecord) -> list[tuple[str, str]]:
    info, state = record.run_info, record.state
    epochs = state.get("epoch")  # the Trainer's passes over the training set: U tokens each
    global_batch = info.get("global_batch_size")
    runtime = record.training_log("train_runtime")
    return [
        ("Unique tokens U", _number(info.get("unique_tokens"))),
        ("Epochs over the unique data", _number(epochs, 4)),
        ("Tokens seen", _number(state.get("num_input_tokens_seen"))),
        ("Training FLOPs (6 N D)", _number(state.get("total_flos"), 4)),
        ("Optimizer steps", _number(state.get("global_step"))),
        ("Batch (sequences per step)", _number(global_batch)),
        ("Hardware", f"{info.get('hardware', 'unknown')}, world size {info.get('world_size', '-')}"),
        ("Training time", "-" if runtime is None else f"{float(runtime):.0f} s ({float(runtime) / 60:.1f} min)"),
    ]


def _validation_text(record: RunRecord) -> str:
    evaluation = record.evaluation
    if "eval_loss" not in evaluation:
        return "No validation loss was recorded."
    error = evaluation.get("eval_loss_standard_error")
    error_text = f" +/- {error:.4f} (Monte Carlo standard error)" if error else ""
    before = evaluation.get("initial_loss")
    before_text = f", from {before:.4f} before training" if before is not None else ""
    text = (f"Validation loss of these weights: {evaluation['eval_loss']:.4f} nats/token{error_text}{before_text} "
            f"({evaluation['eval_loss'] / math.log(2):.4f} bits/token): {record.family.validation_loss}.")
    curve = [entry for entry in record.state.get("log_history", []) if "eval_loss" in entry]
    if len(curve) > 1:
        best = min(curve, key=lambda entry: entry["eval_loss"])
        text += (f" Lowest validation loss during training: {best['eval_loss']:.4f} at step {best['step']} (epoch "
                 f"{best.get('epoch', float('nan')):.3g}), over {len(curve)} validations.")
    return text


def _evaluation_text(record: RunRecord) -> str:
    if not record.lm_eval:
        return ("No lm-evaluation-harness results yet: `python recipes/evaluate.py --model <this folder>` adds them "
                "here.")
    from .evaluation.harness import results_table

    settings = record.lm_eval.get("config", {})
    meaning = ("log-likelihoods are ELBO estimates, lower bounds in expectation, so perplexities are upper bounds"
               if record.family.is_diffusion else "log-likelihoods are exact")
    return (f"lm-evaluation-harness (`{record.lm_eval_file.name}`, {settings.get('limit') or 'all'} documents per "
            f"task; {meaning}):\n\n" + results_table(record.lm_eval))


def _pictures_text(record: RunRecord) -> str:
    lines = []
    if record.rule_metrics:
        from .training.report import describe_rule_metrics

        lines.append("Rule metrics on fresh samples (`rule_metrics.json`):\n\n" +
                     describe_rule_metrics(record.rule_metrics))
    if (record.folder / SAMPLES_PICTURE).is_file():
        lines.append(f"Unconditional samples (rows labelled with the rules they obey):\n\n"
                     f"![Generated samples]({SAMPLES_PICTURE})")
    return "\n\n".join(lines)


def usage_snippet(record: RunRecord, repo_id: str, with_package: bool) -> str:
    """Python that loads the checkpoint from `repo_id` and generates from the run's usage prompt."""
    family = record.family
    auto = family.auto_class.__name__
    prompt = record.run_info.get("usage_prompt_ids") or [record.config.get("bos_token_id") or 0]
    generate = "max_new_tokens=16, seed=0" if family.is_diffusion else "max_new_tokens=16, do_sample=False"
    lines = ["import torch"]
    if with_package:
        lines.append("import hf_diffusion_lm  # registers both families with the Auto classes")
    lines.append(f"from transformers import {auto}")
    remote = "" if with_package else ", trust_remote_code=True"
    lines += [f'model = {auto}.from_pretrained("{repo_id}"{remote}).eval()',
              f"prompt = torch.tensor([{list(prompt)}])  # token ids; a text model's tokenizer loads with AutoTokenizer",
              "with torch.no_grad():",
              f"    output = model.generate(input_ids=prompt, {generate})",
              "print(output[0].tolist())"]
    return "\n".join(lines)


def _model_details(record: RunRecord) -> str:
    config, lines = record.config, []
    if record.family.is_diffusion:
        lines.append(f"- Noise: `{config.get('noise_schedule')}` schedule, times in [{config.get('time_epsilon')}, 1] "
                     f"({config.get('time_sampling')}), MASK id {config.get('mask_token_id')}.")
    elif record.family is not CAUSAL_LM:
        orders = config.get("num_orders", 1)
        what = "the plain left-to-right AR baseline" if orders == 1 else "order 0 is left to right"
        lines.append(f"- Orderings: N = {orders} fixed token orders ({what}); conditioning "
                     f"`{config.get('order_conditioning')}`.")
    if record.adapter:
        adapter = record.adapter
        targets = adapter.get("target_modules")
        if isinstance(targets, (list, tuple, set)):  # peft lists every adapted module; name each kind once
            targets = ", ".join(sorted({name.rsplit(".", 1)[-1] for name in targets}))
        lines.append(f"- **A LoRA adapter** (peft) on the base model `{adapter.get('base_model_name_or_path')}`: rank "
                     f"{adapter.get('r')}, alpha {adapter.get('lora_alpha')}, dropout {adapter.get('lora_dropout')}, "
                     f"on {targets}. `from_pretrained` on this folder loads the base model and then the adapter "
                     "(peft installed); `merge_and_unload()` folds it into the weights.")
    return "\n".join(lines)


def _limitations(record: RunRecord) -> str:
    lines = [f"- Trained on {_number(record.run_info.get('unique_tokens'))} unique tokens of "
             f"{record.run_info.get('dataset', 'unknown data')}: a research checkpoint for comparing objectives, not "
             "a general-purpose language model."]
    if record.family.is_diffusion:
        lines.append("- Its likelihoods are Monte Carlo ELBO estimates (bounds), while AR models report exact NLL: "
                     "compare the two with that in mind, as the papers do.")
    if record.adapter:
        lines.append(f"- A LoRA adapter: it needs its base model `{record.adapter.get('base_model_name_or_path')}`.")
    return "\n".join(lines)


def card_data(record: RunRecord, model_name: str) -> ModelCardData:
    family = record.family
    data_source = record.run_info.get("dataset")
    hub_datasets = [data_source] if data_source and "/" in str(data_source) else None
    base_model = (record.adapter or {}).get("base_model_name_or_path") or record.run_info.get("model_name_or_path")
    tags = ["hf_diffusion_lm", family.name, "masked-diffusion" if family.is_diffusion else "autoregressive"]
    if record.config.get("auto_map"):
        tags.append("custom_code")
    return ModelCardData(
        license=LICENSE, library_name="peft" if record.adapter else "transformers", pipeline_tag="text-generation",
        tags=tags, datasets=hub_datasets, base_model=base_model, model_name=model_name,
        eval_results=model_index_results(record) or None,
    )


def build_model_card(folder, repo_id: str | None = None) -> ModelCard:
    return render_model_card(read_run(folder), repo_id)


def render_model_card(record: RunRecord, repo_id: str | None = None) -> ModelCard:
    folder = record.folder
    name = repo_id.split("/")[-1] if repo_id else Path(folder).resolve().name
    repo = repo_id or str(Path(folder))
    config = record.config
    family = record.family
    full_config = {key: record.run_info[key] for key in ("model_arguments", "training_arguments")
                   if key in record.run_info}
    return ModelCard.from_template(
        card_data(record, name), template_path=str(TEMPLATE),
        model_name=name,
        family_title="masked diffusion language model" if family.is_diffusion else "autoregressive language model",
        model_class=config.get("architectures", ["?"])[0],
        family_description=f"`{family.name}`",
        objective=family.objective.format(num_orders=config.get("num_orders", 1)),
        attention=family.attention,
        hidden_size=config.get("hidden_size"), num_layers=config.get("num_hidden_layers"),
        num_heads=config.get("num_attention_heads"), intermediate_size=config.get("intermediate_size"),
        vocab_size=config.get("vocab_size"), max_positions=config.get("max_position_embeddings"),
        num_parameters=_number(record.run_info.get("num_parameters")),
        flops_parameters=_number(record.run_info.get("flops_parameters")),
        model_details=_model_details(record),
        training_data=record.run_info.get("data_description", "The training data were not recorded."),
        training_table="\n".join(f"| {label} | {value} |" for label, value in _training_rows(record)),
        full_config=yaml.safe_dump(full_config, sort_keys=False).strip() if full_config else "(not recorded)",
        validation=_validation_text(record),
        evaluation=_evaluation_text(record),
        pictures=_pictures_text(record),
        usage_with_package=usage_snippet(record, repo, with_package=True),
        usage_without_package=usage_snippet(record, repo, with_package=False),
        limitations=_limitations(record),
    )


def check_card(card: ModelCard) -> None:
    """Local checks of the metadata the Hub validates: it parses back into `ModelCardData` with the same results."""
    try:
        metadata = yaml.safe_load(card.content.split("---")[1])
        parsed = ModelCardData(**metadata)
    except Exception as error:  # any parse failure means the Hub would refuse the card too
        raise ValueError(f"The model card's metadata does not validate: {error}") from error
    if not parsed.license:
        raise ValueError("The model card's metadata has no license.")
    if metadata.get("model-index") and not parsed.eval_results:
        raise ValueError("The model card's model-index does not parse into evaluation results.")


def write_model_card(folder, repo_id: str | None = None) -> Path:
    """Write `<folder>/README.md` and `<folder>/.eval_results/lm_eval.yaml` from the run's files; returns the card."""
    folder = Path(folder)
    record = read_run(folder)
    card = render_model_card(record, repo_id)
    check_card(card)
    card.save(folder / "README.md")
    entries = eval_result_entries(record)
    results_folder = folder / EVAL_RESULTS_FOLDER
    if entries:
        results_folder.mkdir(exist_ok=True)
        (results_folder / "lm_eval.yaml").write_text(
            yaml.safe_dump(eval_result_entries_to_yaml(entries), sort_keys=False))
    return folder / "README.md"


# ----------------------------------------------------------------------------------------------------------------------
# Upload.


def files_to_upload(folder) -> list[str]:
    """The paths (relative, POSIX) of a checkpoint folder that go to the Hub, after the refusals: pickle weights, no
    safetensors weights, remote-code files named in `auto_map` but missing. Never uploaded: resumable checkpoints
    (`checkpoint-*`), the Trainer's pickled arguments and optimizer states, caches."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder: give the checkpoint folder recipes/train.py wrote (its output_dir).")
    paths = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or relative.parts[0].startswith("checkpoint-") or "__pycache__" in relative.parts:
            continue
        if path.name in NEVER_UPLOADED or (relative.parts[0].startswith(".") and relative.parts[0] != EVAL_RESULTS_FOLDER):
            continue
        paths.append(relative.as_posix())
    pickles = [path for path in paths if PICKLE_WEIGHTS.match(path)]
    if pickles:
        raise ValueError(f"{folder} holds pickle weights {pickles}: loading a pickle runs code, so they are never "
                         "published. Save the model with save_pretrained (it writes model.safetensors) and remove them.")
    if not any(path.endswith(".safetensors") for path in paths):
        raise ValueError(f"{folder} has no safetensors weights (model.safetensors or adapter_model.safetensors): it is "
                         "not a finished checkpoint. Publish the output_dir of a finished run.")
    config = _read_json(folder / "config.json") or {}
    code_files = {reference.split(".")[0] + ".py" for reference in (config.get("auto_map") or {}).values()
                  if isinstance(reference, str) and "--" not in reference}
    missing = sorted(code_files - set(paths))
    if missing:
        raise ValueError(f"config.json's auto_map names {missing}, which are not in {folder}: without them the model "
                         "does not load with trust_remote_code. Re-save the model with save_pretrained.")
    return paths


def publish(folder, repo_id: str, *, private: bool = False, revision: str | None = None, create_pr: bool = False,
            dry_run: bool = False, token: str | None = None, commit_message: str | None = None):
    """Upload a checkpoint folder to `repo_id` in one commit: weights, config with `auto_map`, model code, generation
    config, tokenizer, model card (rebuilt for `repo_id`), `.eval_results`, lm-eval results and pictures.

    Returns the list of paths that were (dry run: would be) uploaded and, unless `dry_run`, the `CommitInfo`.
    Raises `ValueError` for a folder it will not publish, an invalid card or a missing token (never printed)."""
    from huggingface_hub import CommitOperationAdd, HfApi, get_token

    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id or ""):
        raise ValueError(f"repo_id={repo_id!r} must be <user or organisation>/<name>.")
    folder = Path(folder)
    listed = files_to_upload(folder)  # refusals before anything is written
    record = read_run(folder)
    card = render_model_card(record, repo_id)
    check_card(card)
    if dry_run:  # what write_model_card would add: the card, and the results file when there are results
        added = {"README.md"} | ({f"{EVAL_RESULTS_FOLDER}/lm_eval.yaml"} if eval_result_entries(record) else set())
        return sorted(set(listed) | added), None
    token = token or get_token()
    if not token:
        raise ValueError("No Hugging Face token: log in with `hf auth login` or set HF_TOKEN (a token with write "
                         "access to the repo).")
    api = HfApi(token=token)
    try:
        card.validate()  # the Hub's own metadata check
    except ValueError as error:
        raise ValueError(f"The Hub refuses the model card's metadata: {error}") from error
    write_model_card(folder, repo_id)
    paths = files_to_upload(folder)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision is not None and not create_pr:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(folder / path)) for path in paths]
    info = api.create_commit(repo_id, operations, commit_message=commit_message or f"Upload {folder.name}",
                             revision=revision, create_pr=create_pr)
    return paths, info


__all__ = ["files_to_upload", "publish", "RunRecord", "build_model_card", "render_model_card", "check_card",
           "eval_result_entries", "model_index_results", "read_run", "read_eval_results_folder", "usage_snippet",
           "write_model_card"]
