"""The rule-learning study: masked diffusion against AR (one order, or N orders) on the abstract rules.

A *run* is one model class trained on one `samples_per_rule`. `recipes/rules_study.py` trains every run with
`recipes/train.py` under `accelerate launch`, then calls `evaluate_run` on the saved model, which measures
- unconditional samples (several diffusion samplers; temperature-1 sampling for causal models): AnyValid, C3, C2 and
  memorization of samples / rows / panels against the training set, beside a fresh control set of the same size;
- completion of the bottom-right panel of fresh samples of every study rule, trained and held-out rules reported
  separately: diffusion infills, causal models continue left to right, and a target-conditioned `PermutedCausalLM`
  also infills in any order;
- the chance baselines of the same data.
`write_study_report` turns the runs' results into a table (Markdown and JSON), plots and sample pictures.
"""

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..families import FAMILIES, is_diffusion_model
from ..stats import wilson_interval
from .baselines import copy_middle_completion, random_panel_completion, shuffled_panel_samples
from .checker import completion_correct, consistency
from . import generator
from .generator import fresh_samples, generate_samples, sample_keys
from .instances import HELDOUT_RULES, NUM_RULES
from .memorization import memorization_rates
from .model_metrics import (complete_last_panels, consistency_report, empty_panel_rate, likelihood_ranked_completion,
                            sample_unconditionally, sampled_completion)
from .render import render_samples

MODEL_CLASSES = tuple(FAMILIES)
DEFAULT_MODELS = {
    "diffusion": {"model": "masked_diffusion"},
    "ar": {"model": "permuted_causal", "num_orders": 1},
    "ar_4orders": {"model": "permuted_causal", "num_orders": 4, "order_conditioning": "target"},
}
# Random-order (ancestral) sampling is the sampler of the ELBO; confidence-first orders tend to collapse to the most
# probable token ("empty") everywhere, so they are reported beside it, never alone.
DEFAULT_DIFFUSION_SAMPLERS = {
    "ancestral": {"remasking": "random", "do_sample": True},
    "low_confidence": {"remasking": "low_confidence", "do_sample": True},
    "margin": {"remasking": "margin", "do_sample": True},
}
CAUSAL_SAMPLERS = {"temperature_1": {}}
RESULTS_FILE = "results.json"


@dataclass
class StudyConfig:
    """What `recipes/rules_study.py` runs; a YAML file in `recipes/rules/` sets any field.

    `training` holds `recipes/train.py` fields shared by every run (model size, steps, learning rate, tokenization);
    `models` maps a run-name prefix to the model fields of one model class. Data, seed and output folder are set by
    the study for each run.
    """

    output_dir: str = "outputs/rules_study"
    samples_per_rule: list[int] = field(default_factory=lambda: [400, 4000])
    models: dict = field(default_factory=lambda: dict(DEFAULT_MODELS))
    rules: list[int] | None = None  # None: all 40 rules with the paper's held-out split
    heldout_rules: list[int] | None = None
    training: dict = field(default_factory=dict)
    accelerate_config: str | None = None  # None: accelerate's default (one process)
    unconditional_samples: int = 1000
    diffusion_samplers: dict = field(default_factory=lambda: dict(DEFAULT_DIFFUSION_SAMPLERS))
    diffusion_steps: int | None = None  # network calls per unconditional diffusion sample; None: one per token
    completion_samples_per_rule: int = 50
    generation_batch_size: int = 250
    pictures_per_sampler: int = 6
    keep_checkpoints: bool = False  # the final model is always kept; intermediate checkpoints go once evaluated
    seeds: list[int] = field(default_factory=lambda: [0])  # one run per seed: data, initialisation and sampling
    # Equal-compute curves: the checkpoints at these optimizer steps are measured too (the first sampler with
    # `curve_unconditional_samples` samples, greedy completion by the first way); every one must be a saved checkpoint.
    curve_steps: list[int] = field(default_factory=list)
    curve_unconditional_samples: int = 300
    # Likelihood-ranked completion: the best of `ranked_candidates` sampled completions (0: not measured).
    ranked_candidates: int = 4
    ranked_mc_samples: int = 8  # stratified ELBO rows per diffusion candidate
    # This many samples of the best diffusion run measured (lowest validation loss) with the exact ancestral sampler,
    # one token per network call, beside its parallel samplers; once, by a call of the whole study (0: skipped).
    exact_sampler_samples: int = 0
    # Wall-clock budget of one call of the study (short device windows): training stops with a checkpoint when it runs
    # out and no new run starts; the same command continues. Evaluation is not cut, so leave room for it.
    time_limit_seconds: float | None = None

    def __post_init__(self):
        if not self.samples_per_rule or any(int(n) < 1 for n in self.samples_per_rule):
            raise ValueError(f"samples_per_rule={self.samples_per_rule} must be a non-empty list of positive counts.")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or any(
                isinstance(seed, bool) or not isinstance(seed, int) for seed in self.seeds):
            raise ValueError(f"seeds={self.seeds!r} must be a non-empty list of distinct integers.")
        if not self.models:
            raise ValueError("models is empty: name at least one model, e.g. {diffusion: {model: masked_diffusion}}.")
        for name, spec in self.models.items():
            if not isinstance(spec, dict) or spec.get("model") not in MODEL_CLASSES:
                raise ValueError(f"models[{name!r}] = {spec!r} needs a 'model' key, one of {MODEL_CLASSES}.")
        if isinstance(self.ranked_candidates, bool) or not isinstance(self.ranked_candidates, int) \
                or self.ranked_candidates < 0:
            raise ValueError(f"ranked_candidates={self.ranked_candidates!r} must be 0 (off) or a positive count.")
        if self.time_limit_seconds is not None and not self.time_limit_seconds > 0:
            raise ValueError(f"time_limit_seconds={self.time_limit_seconds} must be positive (or null: no limit).")
        if self.exact_sampler_samples < 0:
            raise ValueError(f"exact_sampler_samples={self.exact_sampler_samples} must be 0 (skip) or positive.")
        for name in ("unconditional_samples", "completion_samples_per_rule", "generation_batch_size",
                     "curve_unconditional_samples", "ranked_mc_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1.")
        reserved = {"dataset", "rules", "heldout_rules", "samples_per_rule", "seed", "output_dir"} & set(self.training)
        if reserved:
            raise ValueError(f"training sets {sorted(reserved)}, which the study sets per run; use the study's own "
                             "fields (rules, heldout_rules, samples_per_rule, seeds, output_dir) instead.")
        self.check_curve_steps()
        trained, heldout = self.trained_rules(), self.heldout()
        unknown = [r for r in trained + heldout if not 0 <= r < NUM_RULES]
        if unknown:
            raise ValueError(f"Rule ids {unknown} do not exist; rules are numbered 0..{NUM_RULES - 1}.")
        if not trained:
            raise ValueError(f"rules={self.rules} are all held out ({heldout}); nothing is left to train on.")

    def check_curve_steps(self) -> None:
        """Every curve step must be a checkpoint the training saves: a multiple of save_steps, at most max_steps."""
        if not self.curve_steps:
            return
        save_steps, max_steps = self.training.get("save_steps"), self.training.get("max_steps")
        if self.training.get("save_strategy") != "steps" or not save_steps or not max_steps:
            raise ValueError(f"curve_steps={self.curve_steps} needs training.save_strategy: steps with save_steps and "
                             "max_steps set, so that those checkpoints exist.")
        bad = [s for s in self.curve_steps if isinstance(s, bool) or not isinstance(s, int) or s < 1 or s > max_steps
               or (s % save_steps and s != max_steps)]
        if bad:
            raise ValueError(f"curve_steps {bad} are not saved checkpoints: use multiples of save_steps={save_steps} "
                             f"up to max_steps={max_steps}.")

    def heldout(self) -> list[int]:
        if self.heldout_rules is not None:
            return sorted(self.heldout_rules)
        return list(HELDOUT_RULES) if self.rules is None else []

    def trained_rules(self) -> list[int]:
        rules = range(NUM_RULES) if self.rules is None else self.rules
        return [r for r in rules if r not in self.heldout()]

    def runs(self) -> list[dict]:
        """[{name, samples_per_rule, seed, model fields...}] in the order they are trained: seed by seed, so the first
        seed's runs are complete before the next seed starts."""
        return [{"name": f"{name}_{n}_seed{seed}", "samples_per_rule": int(n), "seed": int(seed), **spec}
                for seed in self.seeds for n in self.samples_per_rule for name, spec in self.models.items()]

    def training_fields(self, run: dict, run_dir: Path) -> dict:
        """The `recipes/train.py` config of one run."""
        return {
            "rule_scheme": "attribute", "report_to": "none", **self.training,
            **model_fields(run),
            "dataset": "rules", "rules": self.trained_rules() + self.heldout(), "heldout_rules": self.heldout(),
            "samples_per_rule": run["samples_per_rule"], "seed": run["seed"], "output_dir": str(run_dir),
            "rule_metric_samples": 0,  # the study measures its own, larger, set
            **({"save_total_limit": None} if self.curve_steps else {}),  # the curve's checkpoints must all stay
        }


def model_fields(run: dict) -> dict:
    return {key: value for key, value in run.items() if key not in ("name", "samples_per_rule", "seed")}


def training_samples(config: StudyConfig, samples_per_rule: int, seed: int) -> np.ndarray:
    """The training samples of a run, drawn exactly as the training data pipeline draws them."""
    return np.concatenate([generator.training_samples(r, samples_per_rule, seed) for r in config.trained_rules()])


def completion_set(config: StudyConfig, train: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fresh samples of every study rule (none in the training set, independent of the validation draw), rule ids."""
    rules = config.trained_rules() + config.heldout()
    seen = set(sample_keys(train).tolist())
    n = config.completion_samples_per_rule
    samples = np.concatenate([fresh_samples(r, n, seed + 1, seen) for r in rules])
    return samples, np.repeat(rules, n)


def control_set(config: StudyConfig, n: int, seed: int) -> np.ndarray:
    """n fresh samples spread over the trained rules: what memorization rates look like for unseen data."""
    rules = config.trained_rules()
    counts = np.bincount(np.arange(n) % len(rules), minlength=len(rules))
    return np.concatenate([generate_samples(r, int(c), np.random.default_rng([seed + 2, r, 0]))
                           for r, c in zip(rules, counts) if c])


def unconditional_samplers(model, config: StudyConfig) -> dict[str, dict]:
    if not is_diffusion_model(model):
        return CAUSAL_SAMPLERS
    steps = {} if config.diffusion_steps is None else {"steps": config.diffusion_steps}
    return {name: {**steps, **kwargs} for name, kwargs in config.diffusion_samplers.items()}


def completion_methods(model, ranked: bool = True) -> dict[str, dict]:
    """{method name: {"infill": bool, "decoding": "greedy" | "sampled" | "ranked"}}. Diffusion infills; causal models
    continue left to right, and infill in any order too when they were trained with target-position conditioning.
    Every way is run greedy and sampled; the first way also likelihood-ranked (the best of several sampled
    completions by the model's own likelihood) when `ranked`."""
    if is_diffusion_model(model):
        ways = {"infill": True}
    else:
        ways = {"left_to_right": False}
        if getattr(model.config, "order_conditioning", "none") == "target":
            ways["any_order"] = True
    methods = {f"{way}_{decoding}": {"infill": infill, "decoding": decoding}
               for way, infill in ways.items() for decoding in ("greedy", "sampled")}
    if ranked:
        way, infill = next(iter(ways.items()))
        methods[f"{way}_ranked"] = {"infill": infill, "decoding": "ranked"}
    return methods


def complete(model, tokenizer, config: StudyConfig, method: dict, test: np.ndarray, seed: int) -> np.ndarray:
    """The test samples `[N, 3, 3, 9, 3]` with their last panel completed by one of `completion_methods`."""
    diffusion = is_diffusion_model(model)
    kwargs = {"mask_token_id": tokenizer.mask_token_id, "seed": seed} if method["infill"] and not diffusion else {}
    batch = config.generation_batch_size
    if method["decoding"] == "ranked":
        return likelihood_ranked_completion(model, tokenizer, test, config.ranked_candidates, batch, seed,
                                            config.ranked_mc_samples, infill=method["infill"], **kwargs)
    if method["decoding"] == "sampled":
        return sampled_completion(model, tokenizer, test, batch, seed, infill=method["infill"], **kwargs)
    return complete_last_panels(model, tokenizer, test, batch, infill=method["infill"], **kwargs)


def split_accuracy(correct: np.ndarray, rule_ids: np.ndarray, heldout: list[int]) -> dict:
    """Accuracy over all, trained and held-out rules (None without such rules), each rule's own, and the 95% Wilson
    interval of the overall rate."""
    is_heldout = np.isin(rule_ids, heldout)
    part = lambda mask: float(correct[mask].mean()) if mask.any() else None  # noqa: E731
    low, high = wilson_interval(int(correct.sum()), len(correct))
    return {"all": float(correct.mean()), "all_low": low, "all_high": high, "trained": part(~is_heldout),
            "heldout": part(is_heldout), "per_rule": {int(r): part(rule_ids == r) for r in np.unique(rule_ids)}}


def evaluate_run(model, tokenizer, config: StudyConfig, run: dict, run_dir: Path) -> dict:
    """Measure one trained run; saves the generated and completed samples (`.npy`) and pictures into run_dir."""
    model.eval()
    seed = run["seed"]
    train = training_samples(config, run["samples_per_rule"], seed)
    test, test_rules = completion_set(config, train, seed)
    control = control_set(config, config.unconditional_samples, seed)
    batch = config.generation_batch_size
    unconditional = {}
    for name, kwargs in unconditional_samplers(model, config).items():
        generated = sample_unconditionally(model, tokenizer, config.unconditional_samples, batch, seed, **kwargs)
        np.save(run_dir / f"unconditional_{name}.npy", generated)
        render_samples(generated[: config.pictures_per_sampler], run_dir / f"unconditional_{name}.png")
        unconditional[name] = {**consistency_report(generated, train), "settings": kwargs,
                               "memorization": memorization_rates(generated, train)}
    completion = {}
    for name, method in completion_methods(model, ranked=config.ranked_candidates > 0).items():
        completed = complete(model, tokenizer, config, method, test, seed)
        np.save(run_dir / f"completion_{name}.npy", completed)
        completion[name] = {**split_accuracy(completion_correct(completed), test_rules, config.heldout()),
                            "empty_panels": empty_panel_rate(completed)}
    heldout = config.heldout()
    chance = {
        "completion_copy_middle": split_accuracy(copy_middle_completion(test), test_rules, heldout),
        "completion_random_panel": split_accuracy(random_panel_completion(test, train, seed), test_rules, heldout),
        "unconditional_shuffled_panels": consistency(shuffled_panel_samples(train, config.unconditional_samples, seed)),
        "memorization_control": memorization_rates(control, train),
    }
    np.save(run_dir / "completion_test.npy", test)
    np.save(run_dir / "completion_test_rules.npy", test_rules)
    metrics = json.loads((run_dir / "all_results.json").read_text()) if (run_dir / "all_results.json").exists() else {}
    state = json.loads((run_dir / "trainer_state.json").read_text())
    return {
        "name": run["name"], "model": model_fields(run), "seed": seed,
        "samples_per_rule": run["samples_per_rule"], "num_parameters": model.num_parameters(),
        "validation_loss": metrics.get("eval_loss"), "initial_validation_loss": metrics.get("initial_loss"),
        "steps": state["global_step"], "epochs": state.get("epoch"),
        "tokens_seen": state.get("num_input_tokens_seen"), "flops": state.get("total_flos"),
        "log_history": state["log_history"],
        "unconditional": unconditional, "completion": completion, "chance": chance,
        "rules": {"trained": config.trained_rules(), "heldout": heldout},
        "study": {k: v for k, v in asdict(config).items() if k != "output_dir"},
    }


def curve_point(model, tokenizer, config: StudyConfig, run: dict, step: int) -> dict:
    """One point of the equal-compute curve, measured on the checkpoint at `step`: the first unconditional sampler with
    `curve_unconditional_samples` samples and greedy completion by the first way (infill / left to right)."""
    model.eval()
    seed = run["seed"]
    train = training_samples(config, run["samples_per_rule"], seed)
    test, test_rules = completion_set(config, train, seed)
    sampler, kwargs = next(iter(unconditional_samplers(model, config).items()))
    generated = sample_unconditionally(model, tokenizer, config.curve_unconditional_samples,
                                       config.generation_batch_size, seed, **kwargs)
    method, spec = next(iter(completion_methods(model, ranked=False).items()))
    completed = complete(model, tokenizer, config, spec, test, seed)
    return {"step": step, "sampler": sampler, "unconditional": consistency_report(generated, train),
            "method": method, "completion": split_accuracy(completion_correct(completed), test_rules, config.heldout())}


def curve(result: dict, points: list[dict]) -> list[dict]:
    """The run's curve: its checkpoint points and the final measurement (same sampler and method), each with the
    validation loss logged at that step, in step order."""
    validation = {h["step"]: h["eval_loss"] for h in result["log_history"] if "eval_loss" in h}
    # curve_point measures the first sampler and the first method (greedy by the first way), as listed here
    sampler, method = next(iter(result["unconditional"])), next(iter(result["completion"]))
    final = {"step": result["steps"], "sampler": sampler, "unconditional": result["unconditional"][sampler],
             "method": method, "completion": result["completion"][method]}
    return [{**point, "validation_loss": validation.get(point["step"])}
            for point in sorted([*points, final], key=lambda point: point["step"])]


EXACT_SAMPLER_FILE = "exact_sampler.json"


def best_diffusion_run(results: list[dict]) -> dict | None:
    """The diffusion run with the lowest validation loss, or None without one."""
    diffusion = [r for r in results if FAMILIES[r["model"]["model"]].is_diffusion and r["validation_loss"] is not None]
    return min(diffusion, key=lambda r: r["validation_loss"]) if diffusion else None


def exact_sampler_check(model, tokenizer, config: StudyConfig, result: dict, measured: list[str]) -> dict:
    """`exact_sampler_samples` unconditional samples of a trained diffusion run with the ancestral sampler at one
    token per network call: the exact sampler of the model's conditionals, against which the run's parallel
    samplers (several tokens per call) are an approximation. `measured`: the runs it was chosen from."""
    model.eval()
    seed = result["seed"]
    train = training_samples(config, result["samples_per_rule"], seed)
    settings = {"remasking": "random", "do_sample": True, "steps": tokenizer.sample_length}
    generated = sample_unconditionally(model, tokenizer, config.exact_sampler_samples, config.generation_batch_size,
                                       seed, **settings)
    return {"run": result["name"], "validation_loss": result["validation_loss"], "runs_measured": measured,
            "exact": {**consistency_report(generated, train), "settings": settings},
            "parallel": {name: {k: v for k, v in m.items() if k != "memorization"}
                         for name, m in result["unconditional"].items()}}


def write_json(path: Path, value) -> None:
    """Written to a temporary file and renamed, so an interrupted study never leaves half a results file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, default=float))
    os.replace(tmp, path)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def results_table(results: list[dict], exact: dict | None = None) -> str:
    """The study's results as Markdown: unconditional samples, panel completion, chance baselines, the equal-compute
    curves, the exact-sampler check (when measured) and the figures over seeds."""
    interval = lambda m, name: (f"{_fmt(m.get(name))} [{_fmt(m.get(name + '_low'))}, "  # noqa: E731
                                f"{_fmt(m.get(name + '_high'))}]")
    lines = ["## Unconditional samples", "",
             "Rates with 95% Wilson intervals; C3 novel: over the samples not in the training set (their count in "
             "brackets); invalid: the share of attribute values that mean nothing in their slot.", "",
             "| run | params | val loss | sampler | AnyValid | C3 | C3 novel (n) | C2 | invalid | memorized samples | "
             "rows | panels |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for sampler, m in r["unconditional"].items():
            mem = m["memorization"]
            lines.append(f"| {r['name']} | {r['num_parameters']:,} | {_fmt(r['validation_loss'])} | {sampler} | "
                         f"{interval(m, 'anyvalid')} | {interval(m, 'c3')} | {interval(m, 'c3_novel')} "
                         f"({m.get('c3_novel_trials', '-')}) | {interval(m, 'c2')} | {_fmt(m.get('invalid_token_rate'))} "
                         f"| {_fmt(mem['sample'])} | {_fmt(mem['row'])} | {_fmt(mem['panel'])} |")
    for r in {(r["samples_per_rule"], r["seed"]): r for r in results}.values():
        c, mem = r["chance"]["unconditional_shuffled_panels"], r["chance"]["memorization_control"]
        lines.append(f"| chance ({r['samples_per_rule']}/rule, seed {r['seed']}): shuffled panels; fresh control set "
                     f"| | | | {_fmt(c['anyvalid'])} | {_fmt(c['c3'])} | {_fmt(c['c3'])} | {_fmt(c['c2'])} | - | "
                     f"{_fmt(mem['sample'])} | {_fmt(mem['row'])} | {_fmt(mem['panel'])} |")
    lines += ["", "## Panel completion (bottom-right panel of fresh samples)", "",
              "Accuracy with its 95% Wilson interval; empty: completed panels with no object at all.", "",
              "| run | method | all | trained rules | held-out rules | empty | per rule |", "|---|---|---|---|---|---|---|"]
    for r in results:
        for method, acc in r["completion"].items():
            per_rule = ", ".join(f"{rule}: {_fmt(value)}" for rule, value in acc.get("per_rule", {}).items())
            lines.append(f"| {r['name']} | {method} | {interval(acc, 'all')} | {_fmt(acc['trained'])} | "
                         f"{_fmt(acc['heldout'])} | {_fmt(acc.get('empty_panels'))} | {per_rule} |")
    for r in {(r["samples_per_rule"], r["seed"]): r for r in results}.values():
        for name in ("completion_copy_middle", "completion_random_panel"):
            acc = r["chance"][name]
            lines.append(f"| chance ({r['samples_per_rule']}/rule, seed {r['seed']}) | {name.removeprefix('completion_')} "
                         f"| {_fmt(acc['all'])} | {_fmt(acc['trained'])} | {_fmt(acc['heldout'])} | | |")
    lines += ["", "## Equal-compute curves", "",
              "Each run measured at its checkpoints (same schedule for every model): validation loss (diffusion: the "
              "ELBO bound), the first sampler's AnyValid / C3 / C3 over novel samples with 95% intervals, and greedy "
              "completion by the first way.", "",
              "| run | step | val loss | sampler (n) | AnyValid | C3 | C3 novel (n) | completion method | "
              "completion all | trained | held-out | per rule |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for point in r.get("curve", []):
            m, acc = point["unconditional"], point["completion"]
            per_rule = ", ".join(f"{rule}: {_fmt(value)}" for rule, value in acc.get("per_rule", {}).items())
            lines.append(f"| {r['name']} | {point['step']} | {_fmt(point.get('validation_loss'))} | {point['sampler']} "
                         f"({m['samples']}) | {interval(m, 'anyvalid')} | {interval(m, 'c3')} | "
                         f"{interval(m, 'c3_novel')} ({m.get('c3_novel_trials', '-')}) | {point['method']} | "
                         f"{interval(acc, 'all')} | {_fmt(acc['trained'])} | {_fmt(acc['heldout'])} | {per_rule} |")
    if exact is not None:
        lines += ["", f"## Exact sampler ({exact['run']}, the best diffusion run by validation loss)", "",
                  "| sampler | network calls | samples | AnyValid | C3 | C3 novel (n) | C2 |",
                  "|---|---|---|---|---|---|---|"]
        for name, m in [("exact ancestral", exact["exact"]), *exact["parallel"].items()]:
            lines.append(f"| {name} | {m['settings'].get('steps', 'one per token')} | {m['samples']} | "
                         f"{interval(m, 'anyvalid')} | {interval(m, 'c3')} | {interval(m, 'c3_novel')} "
                         f"({m.get('c3_novel_trials', '-')}) | {interval(m, 'c2')} |")
    lines += ["", "## Over seeds", "", "Mean ± sample standard deviation over the seeds, with the per-seed values.", "",
              "| model | samples/rule | sampler or method | metric | seeds | mean ± std | per seed |",
              "|---|---|---|---|---|---|---|"]
    for row in aggregate_seeds(results):
        spread = "" if row["std"] is None else f" ± {row['std']:.3f}"
        lines.append(f"| {row['model']} | {row['samples_per_rule']} | {row['variant']} | {row['metric']} | "
                     f"{len(row['values'])} | {_fmt(row['mean'])}{spread} | "
                     f"{', '.join(f'{value:.3f}' for value in row['values'])} |")
    return "\n".join(lines) + "\n"


def _model_name(result: dict) -> str:
    return result["name"].removesuffix(f"_{result['samples_per_rule']}_seed{result['seed']}")


def aggregate_seeds(results: list[dict]) -> list[dict]:
    """One row per (model, samples per rule, sampler or completion method, metric) over the seeds: the per-seed values
    in seed order, their mean and sample standard deviation (None with one seed), min and max."""
    groups = {}
    for r in results:
        figures = {("validation", "loss"): r["validation_loss"]}
        for sampler, m in r["unconditional"].items():
            for metric in ("anyvalid", "c3", "c3_novel", "c2", "invalid_token_rate"):
                figures[(sampler, metric)] = m.get(metric)
        for method, accuracy in r["completion"].items():
            for part in ("all", "trained", "heldout"):
                figures[(method, f"completion_{part}")] = accuracy[part]
        for point in r.get("curve", []):
            variant = f"step {point['step']}: {point['sampler']} / {point['method']}"
            figures[(variant, "validation_loss")] = point.get("validation_loss")
            for metric in ("anyvalid", "c3", "c3_novel"):
                figures[(variant, metric)] = point["unconditional"].get(metric)
            figures[(variant, "completion_all")] = point["completion"]["all"]
        for (variant, metric), value in figures.items():
            key = (_model_name(r), r["samples_per_rule"], variant, metric)
            groups.setdefault(key, []).append((r["seed"], value))
    rows = []
    for (model, samples_per_rule, variant, metric), pairs in groups.items():
        values = [value for _, value in sorted(pairs) if value is not None and not np.isnan(value)]
        rows.append({"model": model, "samples_per_rule": samples_per_rule, "variant": variant, "metric": metric,
                     "seeds": [seed for seed, _ in sorted(pairs)], "values": values,
                     "mean": float(np.mean(values)) if values else None,
                     "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                     "min": min(values) if values else None, "max": max(values) if values else None})
    return rows


def plot_study(results: list[dict], output_dir: Path) -> list[Path]:
    """C3 and completion against samples per rule (one line per model and sampler / method), and loss curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for key, title, filename in (("unconditional", "Unconditional C3", "c3_vs_samples_per_rule.png"),
                                 ("completion", "Panel completion accuracy", "completion_vs_samples_per_rule.png")):
        fig, ax = plt.subplots(figsize=(6, 4))
        lines = {}
        for r in sorted(results, key=lambda r: r["samples_per_rule"]):
            for variant, m in r[key].items():
                value = m["c3"] if key == "unconditional" else m["all"]
                lines.setdefault(f"{_model_name(r)} / {variant}", []).append((r["samples_per_rule"], value))
        for label, points in lines.items():
            ax.plot(*zip(*points), marker="o", label=label)
        ax.set(xscale="log", xlabel="training samples per rule", ylabel=title, title=title, ylim=(-0.02, 1.02))
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(output_dir / filename, dpi=120)
        plt.close(fig)
        paths.append(output_dir / filename)
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        train = [(h["step"], h["loss"]) for h in r["log_history"] if "loss" in h]
        evals = [(h["step"], h["eval_loss"]) for h in r["log_history"] if "eval_loss" in h]
        line = ax.plot(*zip(*train), label=f"{r['name']} train") if train else None
        if evals:
            ax.plot(*zip(*evals), "o--", color=line[0].get_color() if line else None, label=f"{r['name']} val")
    ax.set(xlabel="optimizer step", ylabel="loss (nats / token)", title="Loss curves")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(output_dir / "loss_curves.png", dpi=120)
    plt.close(fig)
    return paths + [output_dir / "loss_curves.png"]


def plot_curves(results: list[dict], output_dir: Path) -> Path | None:
    """Validation loss, AnyValid, C3 (all and novel) and greedy completion against optimizer steps: one line per model
    and samples per rule, the mean over seeds with the seeds' range as a band."""
    if not any(r.get("curve") for r in results):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("validation loss", lambda p: p.get("validation_loss")),
              ("AnyValid", lambda p: p["unconditional"]["anyvalid"]), ("C3", lambda p: p["unconditional"]["c3"]),
              ("C3 novel", lambda p: p["unconditional"]["c3_novel"]),
              ("completion (greedy)", lambda p: p["completion"]["all"]))
    groups = {}
    for r in results:
        groups.setdefault((_model_name(r), r["samples_per_rule"]), []).append(r.get("curve", []))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6))
    for ax, (title, value) in zip(axes, panels):
        for (model, samples_per_rule), curves in sorted(groups.items()):
            by_step = {}
            for points in curves:
                for point in points:
                    if value(point) is not None:
                        by_step.setdefault(point["step"], []).append(value(point))
            if not by_step:
                continue
            steps = sorted(by_step)
            mean = [np.mean(by_step[step]) for step in steps]
            line = ax.plot(steps, mean, marker="o", label=f"{model} {samples_per_rule}/rule")[0]
            ax.fill_between(steps, [min(by_step[s]) for s in steps], [max(by_step[s]) for s in steps],
                            color=line.get_color(), alpha=0.2)
        ax.set(xlabel="optimizer step", title=title)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = output_dir / "curves.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_study_report(results: list[dict], output_dir: Path) -> dict[str, Path]:
    """results.json, over_seeds.json, results.md, the plots, and samples/<run>_<sampler>.png into output_dir (with
    the exact-sampler check of exact_sampler.json when it is there)."""
    output_dir = Path(output_dir)
    exact_path = output_dir / EXACT_SAMPLER_FILE
    exact = json.loads(exact_path.read_text()) if exact_path.exists() else None
    (output_dir / "samples").mkdir(parents=True, exist_ok=True)
    write_json(output_dir / RESULTS_FILE, [{k: v for k, v in r.items() if k != "log_history"} for r in results])
    write_json(output_dir / "over_seeds.json", aggregate_seeds(results))
    (output_dir / "results.md").write_text(results_table(results, exact))
    plot_study(results, output_dir)
    plot_curves(results, output_dir)
    for r in results:
        run_dir = output_dir / "runs" / r["name"]
        for sampler in r["unconditional"]:
            picture = run_dir / f"unconditional_{sampler}.png"
            if picture.exists():
                (output_dir / "samples" / f"{r['name']}_{sampler}.png").write_bytes(picture.read_bytes())
    return {"json": output_dir / RESULTS_FILE, "markdown": output_dir / "results.md"}
