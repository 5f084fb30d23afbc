"""The data-constrained sweep: diffusion against AR over model size, unique data U and epochs, and the law fitted to it.

A *run* is one family (diffusion, AR with N orders, ...) at one model size on one unique-data budget for a number of
epochs. `recipes/sweep.py` trains every run with `recipes/train.py`; this module holds the rest:
- `SweepConfig`: the grid (read from `recipes/sweeps/*.yaml`) and each run's `recipes/train.py` config;
- `check_runs`: every run's config parsed and every distinct data setting built before anything trains;
- `collect_run`: a run's validation curve, best and final loss, U, N and FLOPs from its own logs;
- `fit_families` / `critical_compute_table`: Muennighoff's law per family, and where diffusion overtakes AR;
- `write_report`: results.{csv,json,md} and four plots.

Losses are the runs' validation losses in nats/token: for diffusion the negative ELBO (an upper bound on the NLL),
a Monte Carlo estimate over `validation_repeats` fixed draws with its standard error; for AR the exact NLL left to
right (order 0), whatever orders it was trained on.
"""

import csv
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from .families import family_of
from .flops import reference_parameter_count, training_flops
from .scaling import (AR_DECAY_PRABHUDESAI, DIFFUSION_DECAY_PRABHUDESAI, MUENNIGHOFF_C4, Run, critical_compute,
                      fit_data_constrained, paper_critical_compute)

FINISHED_FILE = "eval_results.json"  # recipes/train.py writes it after the final model: the run is trained
RESULT_FILE = "sweep_result.json"  # the sweep's record of a finished run (its row and wall time)
# Set by the sweep for each run; a grid may not set them.
RESERVED_FIELDS = ("output_dir", "num_train_epochs", "max_steps", "eval_strategy", "eval_steps", "save_strategy",
                   "save_steps")
LOSS_MEANING = (
    "Validation loss in nats/token. Diffusion families: the negative ELBO, an upper bound on the negative "
    "log-likelihood, a Monte Carlo estimate over `validation_repeats` fixed draws (± its standard error over the "
    "repetitions). AR families: the exact negative log-likelihood left to right (order 0), whatever orders they were "
    "trained on. The two are compared as in the paper, bound against exact value."
)
TABLE_NOTE = (
    "Validation curves (step, tokens seen, epochs = tokens / U, loss) are in `results.json`. Tokens seen are the "
    "Trainer's count of input tokens and U the scored training tokens, so on rule data (one BOS per sequence that is "
    "never a target) epochs read 244/243 of the passes made. Best and final losses are in-training validations; FLOPs "
    "are 6 N D with the paper's N (4Ld² + 3Ldf + 6Ld + Vd)."
)
FIT_NOTE = (
    "Fitted with `hf_diffusion_lm.scaling.fit_data_constrained` (Muennighoff et al.'s two-stage fit) on every "
    "validation point of every run of the family as an observation (N, D = tokens seen at that point, U, loss). "
    "Intermediate points stand in for separate shorter runs: an approximation (a shorter run would have finished its "
    "own learning-rate schedule; with a constant schedule the two agree up to noise). Stage 1 fits the single-epoch "
    "points (D <= U) with N' = N; points with N above the size the unique data supports (U_N) bend that assumption."
)
CRITICAL_NOTE = (
    "Ours: `scaling.critical_compute(ar_law, diffusion_law, U)`. The paper's: C_crit(U) = 2.12e15 U^2.174 with U in "
    "millions of unique tokens, a unit inferred from its magnitudes, not stated by the authors."
)
TABLE_COLUMNS = ("name", "family", "model", "size", "budget", "target_epochs", "parameters", "unique_tokens", "steps",
                 "tokens_seen", "epochs", "best_loss", "best_loss_standard_error", "best_step", "best_epochs",
                 "final_loss", "final_loss_standard_error", "initial_loss", "flops", "flops_at_best", "wall_seconds",
                 "chance_uniform", "chance_unigram")


@dataclass
class SweepConfig:
    """What `recipes/sweep.py` runs; a YAML file in `recipes/sweeps/` sets the fields, `--field value` overrides them.

    families: run-name prefix -> model fields, e.g. `{diffusion: {model: masked_diffusion}, ar_n4: {model:
        permuted_causal, num_orders: 4}}`.
    sizes: name -> model config fields (`hidden_size`, `num_hidden_layers`, `num_attention_heads`, ...).
    budgets: name -> the `recipes/train.py` data fields that set the unique data (`{unique_tokens: 100000}` for text,
        `{samples_per_rule: 100}` for rule data).
    epochs: passes over the unique data (`num_train_epochs`; the Trainer computes the steps).
    evaluations_per_run: validations (and checkpoints) per run, evenly spaced (`eval_steps = save_steps = 1 / k`,
        a fraction of the run's steps).
    training: `recipes/train.py` fields shared by every run (data, tokenizer, block size, batch, optimiser, ...).
    accelerate_config: `accelerate launch --config_file` of every run (None: accelerate's default).
    keep_checkpoints: keep a finished run's intermediate checkpoints (the final model is always kept).

    Run names are `<family>_<size>_<budget>_e<epochs>`, e.g. `diffusion_s1_u100k_e100`.
    """

    families: dict
    sizes: dict
    budgets: dict
    epochs: list
    output_dir: str = "outputs/sweep"
    evaluations_per_run: int = 10
    training: dict = field(default_factory=dict)
    accelerate_config: str | None = None
    keep_checkpoints: bool = False

    def __post_init__(self):
        from .training.modeling import config_class_of

        for axis in ("families", "sizes", "budgets"):
            value = getattr(self, axis)
            if not isinstance(value, dict) or not value:
                raise ValueError(f"{axis}={value!r} must be a non-empty mapping name -> fields.")
            for name, spec in value.items():
                if not isinstance(spec, dict):
                    raise ValueError(f"{axis}[{name!r}]={spec!r} must be a mapping of recipes/train.py fields.")
        if not isinstance(self.training, dict):
            raise ValueError(f"training={self.training!r} must be a mapping of recipes/train.py fields.")
        for name, spec in self.families.items():
            if "model" not in spec:
                raise ValueError(f"families[{name!r}]={spec!r} needs a 'model' key (masked_diffusion, "
                                 "permuted_causal or a transformers model type).")
            try:
                config_class_of(spec["model"])
            except ValueError as error:
                raise ValueError(f"families[{name!r}]: {error}") from None
        if not isinstance(self.epochs, list) or not self.epochs:
            raise ValueError(f"epochs={self.epochs!r} must be a non-empty list of numbers of epochs.")
        for epochs in self.epochs:
            if isinstance(epochs, bool) or not isinstance(epochs, (int, float)) or not epochs >= 1:
                raise ValueError(f"epochs: {epochs!r} must be a number >= 1 (passes over the unique data).")
        if len(set(self.epochs)) != len(self.epochs):
            raise ValueError(f"epochs={self.epochs} repeats a value.")
        if isinstance(self.evaluations_per_run, bool) or not isinstance(self.evaluations_per_run, int) \
                or self.evaluations_per_run < 2:
            raise ValueError(f"evaluations_per_run={self.evaluations_per_run!r} must be an integer >= 2.")
        sources = {"training": self.training, **{f"families[{k!r}]": v for k, v in self.families.items()},
                   **{f"sizes[{k!r}]": v for k, v in self.sizes.items()},
                   **{f"budgets[{k!r}]": v for k, v in self.budgets.items()}}
        for source, values in sources.items():
            reserved = sorted(set(RESERVED_FIELDS) & set(values))
            if reserved:
                raise ValueError(f"{source} sets {reserved}, which the sweep sets for each run (epochs -> "
                                 "num_train_epochs, evaluations_per_run -> eval_steps/save_steps, output_dir).")
        for run in self.runs():
            parts = {"training": self.training, "family": self.families[run["family"]],
                     "size": self.sizes[run["size"]], "budget": self.budgets[run["budget"]]}
            seen = {}
            for part, values in parts.items():
                for key in values:
                    if key in seen:
                        raise ValueError(f"{key!r} is set by both {seen[key]} and {part} (run {run['name']}); "
                                         "set each field on one axis only.")
                    seen[key] = part

    def runs(self) -> list[dict]:
        """[{name, family, size, budget, epochs}] in training order: budget by budget, size by size, shortest first."""
        return [{"name": f"{family}_{size}_{budget}_e{epochs:g}", "family": family, "size": size, "budget": budget,
                 "epochs": epochs}
                for budget in self.budgets for size in self.sizes for epochs in sorted(self.epochs)
                for family in self.families]

    def train_config(self, run: dict, run_dir: Path) -> dict:
        """The `recipes/train.py` config of one run: the shared training fields, the run's family, size and budget,
        its epochs and evenly spaced validations with a checkpoint at each."""
        every = 1.0 / self.evaluations_per_run
        return {
            "report_to": "none", "rule_metric_samples": 0, "logging_steps": every,  # train logs carry U and tokens
            **self.training, **self.families[run["family"]], **self.sizes[run["size"]],
            **self.budgets[run["budget"]],
            "num_train_epochs": run["epochs"], "max_steps": -1, "eval_strategy": "steps", "eval_steps": every,
            "save_strategy": "steps", "save_steps": every, "output_dir": str(run_dir),
        }


def check_runs(config: SweepConfig, parse_config) -> dict[str, dict]:
    """Parse every run's `recipes/train.py` config with `parse_config` (train.py's) and build each distinct data
    setting once, so that an unknown field or a budget the data cannot honour fails before any training.
    Returns {run name: {"unique_tokens": U, "chance_uniform": ..., "chance_unigram": ...}} (`chance_baselines`)."""
    from .training import LMTrainingConfig, build_datasets
    from .training.data import chance_baselines
    from transformers import TrainingArguments

    data_fields = [f.name for f in fields(LMTrainingConfig) if f.name not in
                   {g.name for g in fields(TrainingArguments)}] + ["seed"]
    parsed = []
    with tempfile.TemporaryDirectory() as scratch:
        for run in config.runs():
            path = Path(scratch) / f"{run['name']}.yaml"
            write_yaml(path, config.train_config(run, Path(scratch) / run["name"]))
            try:
                parsed.append((run, parse_config([str(path)])[1]))
            except ValueError as error:
                raise ValueError(f"run {run['name']}: {error}".replace(str(path), "its train config")) from None
    unique, by_setting = {}, {}
    for run, training in parsed:
        setting = json.dumps({key: getattr(training, key) for key in data_fields}, sort_keys=True, default=str)
        if setting not in by_setting:
            try:
                tokenizer, datasets, unique_tokens = build_datasets(training)
            except ValueError as error:
                raise ValueError(f"budgets[{run['budget']!r}] = {config.budgets[run['budget']]} (run {run['name']}): "
                                 f"{error}") from None
            chance = chance_baselines(datasets, len(tokenizer))
            by_setting[setting] = {"unique_tokens": unique_tokens, "chance_uniform": chance["uniform"],
                                   "chance_unigram": chance["unigram"]}
        unique[run["name"]] = by_setting[setting]
    return unique


def write_yaml(path: Path, values: dict) -> None:
    import yaml

    path.write_text(yaml.safe_dump(values, sort_keys=False))


def write_json(path: Path, value) -> None:
    """Written to a temporary file and renamed, so an interrupted sweep never leaves half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, default=float))
    os.replace(tmp, path)


# ---- collecting ------------------------------------------------------------------------------------------------
def collect_run(run: dict, run_dir: Path, unique_tokens: int | None = None) -> dict:
    """A finished run's row: its validation curve, best and final loss, U, N and FLOPs, read from its own files
    (`trainer_state.json`'s log_history, `config.json`, `eval_results.json`).

    U is the `unique_tokens` of the train logs (`unique_tokens` here only when no train log was written). A curve
    point is one in-training validation: step, tokens seen, epochs = tokens / U, loss and, for diffusion, its
    standard error. N is the paper's parameter count of the saved config; FLOPs are 6 N D.
    """
    from transformers import AutoConfig

    run_dir = Path(run_dir)
    history = json.loads((run_dir / "trainer_state.json").read_text())["log_history"]
    logged_u = {h["unique_tokens"] for h in history if "unique_tokens" in h}
    if len(logged_u) > 1:
        raise ValueError(f"{run_dir}: the train logs disagree on unique_tokens {sorted(logged_u)}.")
    unique = logged_u.pop() if logged_u else unique_tokens
    if not unique:
        raise ValueError(f"{run_dir}: no train log carries unique_tokens; set logging_steps so the run logs.")
    curve, steps_seen = [], set()
    for entry in history:
        # The final evaluation after training repeats the last step (with load_best_model_at_end: on the best
        # weights); the in-training one comes first and is kept.
        if "eval_loss" not in entry or entry["step"] in steps_seen:
            continue
        steps_seen.add(entry["step"])
        tokens = entry["num_input_tokens_seen"]
        curve.append({"step": entry["step"], "tokens_seen": tokens, "epochs": tokens / unique,
                      "loss": entry["eval_loss"], "loss_standard_error": entry.get("eval_loss_standard_error")})
    if not curve:
        raise ValueError(f"{run_dir}: no validation in trainer_state.json; the sweep sets eval_steps, so the run "
                         "was not trained by this sweep.")
    model_config = AutoConfig.from_pretrained(run_dir)
    parameters = reference_parameter_count(model_config)
    best, final = min(curve, key=lambda p: p["loss"]), curve[-1]
    finished = json.loads((run_dir / FINISHED_FILE).read_text())
    return {
        "name": run["name"], "family": run["family"], "model": model_config.model_type, "size": run["size"],
        "budget": run["budget"], "target_epochs": run["epochs"], "is_diffusion": family_of(model_config).is_diffusion,
        "parameters": parameters, "unique_tokens": unique, "steps": final["step"],
        "tokens_seen": final["tokens_seen"], "epochs": final["epochs"],
        "best_loss": best["loss"], "best_loss_standard_error": best["loss_standard_error"],
        "best_step": best["step"], "best_epochs": best["epochs"],
        "final_loss": final["loss"], "final_loss_standard_error": final["loss_standard_error"],
        "initial_loss": finished.get("initial_loss"),
        "flops": training_flops(parameters, final["tokens_seen"]),
        "flops_at_best": training_flops(parameters, best["tokens_seen"]),
        "curve": curve,
    }


# ---- the law ---------------------------------------------------------------------------------------------------
def fit_families(rows: list[dict]) -> dict[str, dict]:
    """Muennighoff's law fitted per family on every validation point of every run of the family: (N, D = tokens seen
    at that point, U, loss). A family whose fit is impossible gets its reason instead."""
    fits = {}
    for family in dict.fromkeys(row["family"] for row in rows):
        family_rows = [row for row in rows if row["family"] == family]
        points = [Run(row["parameters"], p["tokens_seen"], row["unique_tokens"], p["loss"])
                  for row in family_rows for p in row["curve"] if p["tokens_seen"] > 0]
        single = sum(p.tokens_seen <= p.unique_tokens for p in points)
        fit = {"is_diffusion": family_rows[0]["is_diffusion"], "num_points": len(points),
               "num_single_epoch_points": single}
        try:
            result = fit_data_constrained(points)
        except Exception as error:  # noqa: BLE001 - hours of training must still get their table; say why instead
            fits[family] = {**fit, "law": None, "reason": f"{type(error).__name__}: {error}"}
            continue
        fits[family] = {**fit, "law": asdict(result.law), "r_squared": result.r_squared,
                        "num_repeated_points": result.num_repeated_runs,
                        "num_excess_parameter_points": result.num_excess_parameter_runs, "reason": None}
    return fits


def critical_compute_table(fits: dict[str, dict], unique_tokens: list[float]) -> list[dict]:
    """For every (AR family, diffusion family) pair with fitted laws and every U: the FLOPs above which the diffusion
    law's best loss beats the AR law's (`scaling.critical_compute`), beside the paper's C_crit(U) (U in millions of
    tokens, a unit inferred from its magnitudes)."""
    from .scaling import DataConstrainedLaw

    fitted = {name: DataConstrainedLaw(**fit["law"]) for name, fit in fits.items() if fit["law"]}
    rows = []
    for ar in (name for name in fitted if not fits[name]["is_diffusion"]):
        for diffusion in (name for name in fitted if fits[name]["is_diffusion"]):
            for u in unique_tokens:
                try:
                    found = critical_compute(fitted[ar], fitted[diffusion], u, flops_range=(1e6, 1e26))
                    flops, reason = found.flops, found.reason
                except Exception as error:  # noqa: BLE001 - as in fit_families
                    flops, reason = None, f"{type(error).__name__}: {error}"
                rows.append({"ar": ar, "diffusion": diffusion, "unique_tokens": float(u), "flops": flops,
                             "reason": reason, "paper_flops": float(paper_critical_compute(u / 1e6))})
    return rows


def critical_compute_range(rows: list[dict], points: int = 9) -> list[float]:
    """U values for the critical-compute comparison: a decade either side of the sweep's budgets."""
    unique = [row["unique_tokens"] for row in rows]
    return [float(u) for u in np.geomspace(min(unique) / 10, max(unique) * 10, points)]


# ---- report ----------------------------------------------------------------------------------------------------
def _fmt(value, spec=".4f") -> str:
    return "-" if value is None else format(value, spec)


def _loss(value, error) -> str:
    return _fmt(value) + ("" if error is None else f" ± {error:.4f}")


def markdown_report(rows: list[dict], fits: dict[str, dict], critical: list[dict], notes: list[str]) -> str:
    lines = ["# Data-constrained sweep", "", LOSS_MEANING, "",
             "| run | family | N | U | epochs | steps | tokens seen | best loss | best at epoch | final loss | "
             "FLOPs (6ND) | wall s |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['family']} ({r['model']}) | {r['parameters']:,} | {r['unique_tokens']:,} | "
                     f"{r['epochs']:.2f} | {r['steps']} | {r['tokens_seen']:,} | "
                     f"{_loss(r['best_loss'], r['best_loss_standard_error'])} | {r['best_epochs']:.2f} | "
                     f"{_loss(r['final_loss'], r['final_loss_standard_error'])} | {r['flops']:.3g} | "
                     f"{_fmt(r.get('wall_seconds'), '.0f')} |")
    lines += ["", "Chance baselines (validation NLL of models that only count tokens: uniform over the vocabulary; a "
              "unigram model fitted to the U training tokens, add-one smoothed): "
              + "; ".join(f"{budget}: uniform {r['chance_uniform']:.3f}, unigram {r['chance_unigram']:.3f}"
                          for budget, r in {r["budget"]: r for r in rows if "chance_unigram" in r}.items()) + ".",
              "", TABLE_NOTE, "", "## Data-constrained law per family", "", FIT_NOTE, "",
              "| family | points (single-epoch) | A | B | E | alpha | beta | R_D* | R_N* | R² | note |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, fit in fits.items():
        head = f"| {name} | {fit['num_points']} ({fit['num_single_epoch_points']}) |"
        if fit["law"] is None:
            lines.append(f"{head} - | - | - | - | - | - | - | - | no fit: {fit['reason']} |")
            continue
        law = fit["law"]
        excess = fit["num_excess_parameter_points"]
        note = f"{excess} points with N > U_N" if excess else "R_N* not determined (no point with N > U_N)"
        lines.append(f"{head} {law['A']:.4g} | {law['B']:.4g} | {law['E']:.4g} | {law['alpha']:.3f} | "
                     f"{law['beta']:.3f} | {law['R_D_star']:.4g} | {law['R_N_star']:.4g} | {fit['r_squared']:.4f} | "
                     f"{note} |")
    lines += ["", f"Published decay constants R_D*: AR {MUENNIGHOFF_C4.R_D_star:.1f} (Muennighoff, C4) or "
              f"{AR_DECAY_PRABHUDESAI.R_D_star:.1f} (Prabhudesai et al.), diffusion "
              f"{DIFFUSION_DECAY_PRABHUDESAI.R_D_star:.1f} (Prabhudesai et al.).", "",
              "## Critical compute (diffusion's best loss below AR's above it)", "", CRITICAL_NOTE, ""]
    if critical:
        lines += ["| AR family | diffusion family | U (tokens) | ours (FLOPs) | paper's (FLOPs) | note |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {c['ar']} | {c['diffusion']} | {c['unique_tokens']:.3g} | {_fmt(c['flops'], '.3g')} | "
                  f"{c['paper_flops']:.3g} | {c['reason']} |" for c in critical]
    else:
        lines.append("Not computed: it needs a fitted law for an AR family and for a diffusion family.")
    lines += ["", "## Plots", "", *notes, "",
              "![validation loss against epochs](loss_vs_epochs.png)", "",
              "![best loss against FLOPs](best_loss_vs_flops.png)", "",
              "![value of repeated data](repeated_data_value.png)", "", "![critical compute](critical_compute.png)"]
    return "\n".join(lines) + "\n"


def plot_report(rows: list[dict], fits: dict[str, dict], critical: list[dict], output_dir: Path) -> list[str]:
    """The four plots (PNG); returns notes on what a plot could not show."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    notes = []
    families = list(dict.fromkeys(row["family"] for row in rows))
    colours = {family: f"C{i}" for i, family in enumerate(families)}

    # (1) validation loss against epochs, one panel per family, the best point starred.
    fig, axes = plt.subplots(1, len(families), figsize=(5 * len(families), 4), squeeze=False, sharey=True)
    for ax, family in zip(axes[0], families):
        for row in (r for r in rows if r["family"] == family):
            epochs, losses = [p["epochs"] for p in row["curve"]], [p["loss"] for p in row["curve"]]
            line, = ax.plot(epochs, losses, marker=".", label=row["name"].removeprefix(f"{family}_"))
            ax.plot(row["best_epochs"], row["best_loss"], "*", markersize=14, color=line.get_color())
        ax.set(xscale="log", xlabel="epochs over the unique data (tokens seen / U)", title=family)
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("validation loss (nats/token)")
    fig.suptitle("Validation loss (diffusion: negative ELBO, a bound; AR: exact NLL); * = best", fontsize=9)
    _save(fig, output_dir / "loss_vs_epochs.png", plt)

    # (2) the frontier: every run's best loss at the FLOPs it took to reach it, and each family's lower envelope.
    fig, ax = plt.subplots(figsize=(6, 4))
    for family in families:
        family_rows = [r for r in rows if r["family"] == family]
        ax.scatter([r["flops_at_best"] for r in family_rows], [r["best_loss"] for r in family_rows],
                   color=colours[family], label=family)
        points = sorted((training_flops(r["parameters"], p["tokens_seen"]), p["loss"])
                        for r in family_rows for p in r["curve"])
        envelope = np.minimum.accumulate([loss for _, loss in points])
        ax.step([flops for flops, _ in points], envelope, where="post", color=colours[family], alpha=0.5)
    ax.set(xscale="log", xlabel="training FLOPs (6 N D)", ylabel="best validation loss (nats/token)",
           title="Best loss against compute (line: the family's frontier)")
    ax.legend(fontsize=7)
    _save(fig, output_dir / "best_loss_vs_flops.png", plt)

    # (3) the value of repeated data: effective data D'/U = 1 + R_D* (1 - exp(-(epochs - 1) / R_D*)).
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.geomspace(1, 1000, 200)
    ax.plot(epochs, epochs, "k:", label="fresh data (D' = D)")
    references = [(f"AR, Muennighoff (R_D*={MUENNIGHOFF_C4.R_D_star:.1f})", MUENNIGHOFF_C4.R_D_star, "--"),
                  (f"AR, Prabhudesai (R_D*={AR_DECAY_PRABHUDESAI.R_D_star:.1f})", AR_DECAY_PRABHUDESAI.R_D_star, "--"),
                  (f"diffusion, Prabhudesai (R_D*={DIFFUSION_DECAY_PRABHUDESAI.R_D_star:.0f})",
                   DIFFUSION_DECAY_PRABHUDESAI.R_D_star, "-.")]
    ours = [(f"{name}, this sweep (R_D*={fit['law']['R_D_star']:.3g})", fit["law"]["R_D_star"], "-")
            for name, fit in fits.items() if fit["law"]]
    for label, star, style in references + ours:
        ax.plot(epochs, 1 + star * (1 - np.exp(-(epochs - 1) / star)), style, label=label)
    if not ours:
        notes.append("No family has a fitted law: `repeated_data_value.png` shows the published constants only.")
        ax.text(0.02, 0.6, "no fitted law in this sweep", transform=ax.transAxes, fontsize=8)
    ax.set(xscale="log", yscale="log", xlabel="epochs", ylabel="effective data D' / U",
           title="Value of repeated data")
    ax.legend(fontsize=6)
    _save(fig, output_dir / "repeated_data_value.png", plt)

    # (4) critical compute against U, ours beside the paper's line.
    fig, ax = plt.subplots(figsize=(6, 4))
    unique = np.array(sorted({c["unique_tokens"] for c in critical} or critical_compute_range(rows)))
    ax.plot(unique, paper_critical_compute(unique / 1e6), "k--",
            label="paper: 2.12e15 (U/1e6)^2.174 (U in millions: inferred)")
    for pair in dict.fromkeys((c["ar"], c["diffusion"]) for c in critical):
        found = [(c["unique_tokens"], c["flops"]) for c in critical if (c["ar"], c["diffusion"]) == pair and c["flops"]]
        if found:
            ax.plot(*zip(*found), "o-", label=f"{pair[1]} overtakes {pair[0]} (this sweep)")
        else:
            notes.append(f"{pair[1]} never overtakes {pair[0]} under the fitted laws in 1e6-1e26 FLOPs.")
    if not critical:
        notes.append("No critical compute: it needs fitted laws for an AR and a diffusion family; "
                     "`critical_compute.png` shows the paper's line only.")
        ax.text(0.02, 0.9, "no fitted AR/diffusion pair in this sweep", transform=ax.transAxes, fontsize=8)
    ax.set(xscale="log", yscale="log", xlabel="unique tokens U", ylabel="critical compute (FLOPs)",
           title="Compute above which diffusion beats AR")
    ax.legend(fontsize=6)
    _save(fig, output_dir / "critical_compute.png", plt)
    return notes


def _save(fig, path: Path, plt) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(rows: list[dict], output_dir: Path) -> dict:
    """Fit, compare and write results.csv, results.json, results.md and the plots into output_dir."""
    output_dir = Path(output_dir)
    fits = fit_families(rows)
    critical = critical_compute_table(fits, critical_compute_range(rows))
    notes = plot_report(rows, fits, critical, output_dir)
    with open(output_dir / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=TABLE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    report = {"loss": LOSS_MEANING, "runs": rows, "fits": fits, "critical_compute": critical, "notes": notes}
    write_json(output_dir / "results.json", report)
    (output_dir / "results.md").write_text(markdown_report(rows, fits, critical, notes))
    return report


__all__ = ["SweepConfig", "check_runs", "collect_run", "critical_compute_table", "fit_families", "write_report"]
