"""The lm-eval model `hf_diffusion_lm`: real offline `simple_evaluate` runs on local tasks for both families, and
checks that the adapter adds nothing to the estimators it feeds.

lm-eval is imported plainly: without it these tests fail (they are the adapter's tests), they do not skip."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import lm_eval
import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.tasks import TaskManager
from transformers import ByT5Tokenizer

from hf_diffusion_lm import MaskedDiffusionForLM, PermutedCausalLM
from hf_diffusion_lm.evaluation import continuation_log_likelihood, is_greedy
from hf_diffusion_lm.evaluation.lm_eval_model import HFDiffusionLM, request_key
from hf_diffusion_lm.training.data import ensure_mask_token

from conftest import load_recipe, tiny_causal_config, tiny_diffusion_config

evaluate_recipe = load_recipe("evaluate")


pytestmark = pytest.mark.usefixtures("one_thread")

MC_SAMPLES = 4
QUESTIONS = [
    {"question": "Is the sky blue?", "choices": [" yes", " no", " maybe"], "label": 0, "answer": "yes",
     "text": "The sky is blue on a clear day."},
    {"question": "2 + 2 =", "choices": [" 4", " 5", " 22"], "label": 0, "answer": "4",
     "text": "Two plus two is four, and four is a number."},
    {"question": "Cats say", "choices": [" meow", " woof", " moo"], "label": 0, "answer": "meow",
     "text": "Cats say meow.\nDogs say woof."},
]


def tokenizer():
    tokenizer = ByT5Tokenizer(extra_ids=0)
    ensure_mask_token(tokenizer)
    return tokenizer


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Tiny models of both families with a ByT5 tokenizer (no download), saved as checkpoints."""
    folder = tmp_path_factory.mktemp("lm_eval_model")
    tok = tokenizer()
    torch.manual_seed(0)
    models = {
        "diffusion": MaskedDiffusionForLM(tiny_diffusion_config(vocab_size=len(tok), mask_token_id=tok.mask_token_id)),
        "causal": PermutedCausalLM(tiny_causal_config(vocab_size=len(tok))),
    }
    paths = {}
    for name, model in models.items():
        paths[name] = str(folder / name)
        model.save_pretrained(paths[name])
        tok.save_pretrained(paths[name])
    return paths


@pytest.fixture(scope="module")
def task_folder(tmp_path_factory):
    """Three local tasks (multiple choice, generate_until, rolling perplexity) on a 3-document JSON file."""
    folder = tmp_path_factory.mktemp("tasks")
    data = folder / "docs.jsonl"
    data.write_text("".join(json.dumps(doc) + "\n" for doc in QUESTIONS))
    common = f"""
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {data}
        test_split: test
    """
    tasks = {
        "tiny_mc": """
            output_type: multiple_choice
            doc_to_text: "{{question}}"
            doc_to_choice: "{{choices}}"
            doc_to_target: label
            metric_list:
              - metric: acc
                aggregation: mean
                higher_is_better: true
        """,
        "tiny_gen": """
            output_type: generate_until
            doc_to_text: "Q: {{question}} A:"
            doc_to_target: "{{answer}}"
            generation_kwargs:
              until: ["\\n"]
              max_gen_toks: 6
              do_sample: false
            metric_list:
              - metric: exact_match
                aggregation: mean
                higher_is_better: true
        """,
        "tiny_ppl": """
            output_type: loglikelihood_rolling
            doc_to_text: ""
            doc_to_target: "{{text}}"
            metric_list:
              - metric: word_perplexity
              - metric: byte_perplexity
              - metric: bits_per_byte
        """,
    }
    for name, body in tasks.items():
        (folder / f"{name}.yaml").write_text(f"task: {name}\n" + textwrap.dedent(common) + textwrap.dedent(body))
    return str(folder)


def adapter(path, **overrides):
    settings = dict(pretrained=path, batch_size=4, mc_samples=MC_SAMPLES, seed=3, device="cpu")
    return HFDiffusionLM(**{**settings, **overrides})


def requests(kind, args):
    return [Instance(request_type=kind, doc={}, arguments=arguments, idx=index) for index, arguments in enumerate(args)]


LOGLIKELIHOOD_ARGS = [(doc["question"], choice) for doc in QUESTIONS for choice in doc["choices"]]
LOGLIKELIHOOD_ARGS += [("Trailing space ", "moves"), ("", "no context at all")]


@pytest.mark.parametrize("family", ["diffusion", "causal"])
def test_simple_evaluate_on_local_tasks(family, checkpoints, task_folder, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    results = lm_eval.simple_evaluate(
        model=adapter(checkpoints[family]), tasks=["tiny_mc", "tiny_gen", "tiny_ppl"],
        task_manager=TaskManager(include_path=task_folder, include_defaults=False), random_seed=0, numpy_random_seed=0,
        torch_random_seed=0, fewshot_random_seed=0,
    )["results"]
    assert 0.0 <= results["tiny_mc"]["acc,none"] <= 1.0
    assert results["tiny_mc"]["acc_stderr,none"] >= 0.0
    assert 0.0 <= results["tiny_gen"]["exact_match,none"] <= 1.0
    assert results["tiny_ppl"]["word_perplexity,none"] > 1.0
    assert results["tiny_ppl"]["bits_per_byte,none"] > 0.0


@pytest.mark.parametrize("family", ["diffusion", "causal"])
def test_loglikelihood_is_the_estimator(family, checkpoints):
    """The adapter adds nothing: same value and greedy flag as the estimator on the same tokens and key."""
    lm = adapter(checkpoints[family])
    results = lm.loglikelihood(requests("loglikelihood", LOGLIKELIHOOD_ARGS))
    for (context, continuation), (value, greedy) in zip(LOGLIKELIHOOD_ARGS, results):
        context_ids, continuation_ids = lm._encode_pair(context, continuation)
        if context.endswith(" "):  # lm-eval's convention: the space goes with the continuation
            assert lm.tokenizer.decode(continuation_ids).startswith(" ")
        if family == "causal" and not context_ids:
            context_ids = [lm.tokenizer.eos_token_id]  # the prefix token
        [expected] = continuation_log_likelihood(
            lm.model, [context_ids], [continuation_ids], mc_samples=MC_SAMPLES, seed=3,
            keys=[request_key(context_ids, continuation_ids)])
        assert value == pytest.approx(expected.value, rel=1e-6, abs=1e-6)
        assert greedy == is_greedy(lm.model, [context_ids], [continuation_ids])[0]
    assert all(value < 0 for value, _ in results)


@pytest.mark.parametrize("family", ["diffusion", "causal"])
def test_is_greedy_is_computed(family, checkpoints):
    """A continuation the model generates greedily is greedy; the same with its last byte changed is not."""
    lm = adapter(checkpoints[family])
    for index in range(40):  # a context whose greedy continuation is two bytes that survive decoding
        context = f"Q{index}:"
        [generated] = lm.generate_until(requests("generate_until", [(context, {"until": [], "max_gen_toks": 2})]))
        if len(lm.tok_encode(generated)) == 2 and lm.tok_decode(lm.tok_encode(generated)) == generated:
            break
    else:
        pytest.fail("no context with a two-byte printable greedy continuation")
    other = generated[0] + ("a" if generated[1] != "a" else "b")
    [(_, greedy_flag), (_, other_flag)] = lm.loglikelihood(requests("loglikelihood", [(context, generated),
                                                                                      (context, other)]))
    assert greedy_flag and not other_flag


@pytest.mark.parametrize("family", ["diffusion", "causal"])
def test_results_do_not_depend_on_batch_size_or_order(family, checkpoints):
    texts = [(doc["text"],) for doc in QUESTIONS]
    generation = [(f"Q: {doc['question']} A:", {"until": ["\n"], "max_gen_toks": 5, "do_sample": False})
                  for doc in QUESTIONS]
    outcomes = []
    for batch_size, order in ((1, slice(None)), (4, slice(None, None, -1))):
        lm = adapter(checkpoints[family], batch_size=batch_size)
        outcomes.append((
            lm.loglikelihood(requests("loglikelihood", LOGLIKELIHOOD_ARGS[order]))[order],
            lm.loglikelihood_rolling(requests("loglikelihood_rolling", texts[order]))[order],
            lm.generate_until(requests("generate_until", generation[order]))[order],
        ))
    (single_ll, single_rolling, single_text), (batched_ll, batched_rolling, batched_text) = outcomes
    assert [flag for _, flag in single_ll] == [flag for _, flag in batched_ll]
    assert [value for value, _ in single_ll] == pytest.approx([value for value, _ in batched_ll], rel=1e-5)
    assert single_rolling == pytest.approx(batched_rolling, rel=1e-5)
    assert single_text == batched_text


def test_rolling_windows_cover_the_document(checkpoints):
    """Long documents are split into windows that fit the positions and predict every token exactly once."""
    lm = adapter(checkpoints["diffusion"], max_length=16)
    text = "abcdefghijklmnopqrstuvwxyz0123456789"
    windows = lm.rolling_windows(text)
    assert len(windows) > 1 and windows[0][0] == []
    assert sum((continuation for _, continuation in windows), []) == lm.tok_encode(text)
    assert all(len(context) + len(continuation) <= 16 for context, continuation in windows)
    [total] = lm.loglikelihood_rolling(requests("loglikelihood_rolling", [(text,)]))
    assert total < 0


def test_generate_until_cuts_at_until(checkpoints):
    for family in ("diffusion", "causal"):
        lm = adapter(checkpoints[family])
        context = "Q: Is the sky blue? A:"
        [full] = lm.generate_until(requests("generate_until", [(context, {"until": [], "max_gen_toks": 8})]))
        assert len(full) >= 3, (family, full)
        stop = full[2]
        [cut] = lm.generate_until(requests("generate_until", [(context, {"until": [stop], "max_gen_toks": 8})]))
        assert cut == full.split(stop)[0] and stop not in cut and len(cut) <= 2


def test_bad_input_gets_clear_errors(checkpoints):
    with pytest.raises(ValueError, match="mc_samples"):
        adapter(checkpoints["diffusion"], mc_samples=0)
    with pytest.raises(ValueError, match="method"):
        adapter(checkpoints["diffusion"], method="exact")
    lm = adapter(checkpoints["causal"], max_length=8)
    with pytest.raises(ValueError, match="does not fit"):
        lm.loglikelihood(requests("loglikelihood", [("context", "a continuation far too long")]))
    # A long context is cut from the left (documented), not an error.
    [(value, _)] = lm.loglikelihood(requests("loglikelihood", [("a long context that does not fit", " ok")]))
    assert value < 0


@pytest.mark.parametrize("family", ["diffusion", "causal"])
def test_two_processes_equal_one(family, checkpoints, task_folder, tmp_path):
    """recipes/evaluate.py under torchrun with 2 processes gives the 1-process (in this process) metrics and
    generations."""
    recipe = Path(__file__).parents[1] / "recipes" / "evaluate.py"
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    outputs = {}
    for processes in (1, 2):
        output = tmp_path / f"results_{processes}"
        arguments = ["--model", checkpoints[family], "--tasks", "tiny_mc,tiny_gen,tiny_ppl", "--include_path",
                     task_folder, "--batch_size", "4", "--mc_samples", "4", "--seed", "3", "--device", "cpu",
                     "--log_samples", "true", "--output_path", str(output)]
        if processes == 1:
            evaluate_recipe.main(arguments)
        else:
            launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
            result = subprocess.run(launcher + [str(recipe), *arguments], env=env, capture_output=True, text=True,
                                    timeout=300)
            assert result.returncode == 0, result.stderr[-4000:]
        [results_file] = output.glob("results_*.json")
        generations = {sample["doc_id"]: sample["filtered_resps"] for path in output.glob("samples_tiny_gen_*.jsonl")
                       for sample in map(json.loads, path.read_text().splitlines())}
        outputs[processes] = json.loads(results_file.read_text()), generations
    (one, one_generations), (two, two_generations) = outputs[1], outputs[2]
    assert len(one_generations) == len(QUESTIONS) and one_generations == two_generations
    for task in ("tiny_mc", "tiny_gen", "tiny_ppl"):
        assert one["n-samples"][task] == two["n-samples"][task]
        for metric, value in one["results"][task].items():
            if isinstance(value, float):
                assert two["results"][task][metric] == pytest.approx(value, rel=1e-5), (task, metric)
