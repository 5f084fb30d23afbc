"""`recipes/evaluate.py` on checkpoints written by `recipes/train.py`: a model trained on a small text of facts scores
above chance on a multiple-choice task about them, results land in lm-eval's own JSON and a Markdown table, and bad
input is refused before any model is loaded (or, for a bad request, with the adapter's clear error)."""

import json
import random
from pathlib import Path

import pytest

from conftest import load_recipe

evaluate_recipe, train_recipe = load_recipe("evaluate"), load_recipe("train")


pytestmark = pytest.mark.usefixtures("one_thread")

SOUNDS = {"cats": "meow", "dogs": "woof", "cows": "moo", "sheep": "baa", "ducks": "quack", "pigs": "oink"}
CHANCE = 1 / len(SOUNDS)


def write_task(folder: Path, name: str, documents: list[dict], body: str) -> None:
    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps(doc) + "\n" for doc in documents))
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\ntest_split: test\n"
        + body)


MULTIPLE_CHOICE = """output_type: multiple_choice
doc_to_text: "{{question}}"
doc_to_choice: "{{choices}}"
doc_to_target: label
metric_list:
  - metric: acc
"""


@pytest.fixture(scope="module")
def task_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks")
    choices = list(SOUNDS.values())  # lm-eval puts its target_delimiter " " between question and choice
    questions = [{"question": f"{animal} say", "choices": choices, "label": index}
                 for index, animal in enumerate(SOUNDS)]
    write_task(folder, "animal_sounds", questions, MULTIPLE_CHOICE)
    write_task(folder, "empty_answer", [{"question": "cats say", "answer": ""}],
               'output_type: loglikelihood\ndoc_to_text: "{{question}}"\ndoc_to_target: "{{answer}}"\n'
               'target_delimiter: ""\nmetric_list:\n  - metric: perplexity\n')
    long_context = [{"question": "cats say meow. " * 40 + "cats say", "choices": choices, "label": 0}]
    write_task(folder, "long_context", long_context, MULTIPLE_CHOICE)
    return folder


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
    """A tiny AR model (N = 1) trained by recipes/train.py on lines of animal facts, with a BPE trained on the spot."""
    folder = tmp_path_factory.mktemp("trained")
    lines = [f"{animal} say {sound}." for animal, sound in SOUNDS.items()]
    rng = random.Random(0)
    corpus = folder / "facts.txt"
    corpus.write_text("\n".join(rng.choice(lines) for _ in range(600)) + "\n")
    output = folder / "run"
    train_recipe.main([
        "--model", "permuted_causal", "--num_orders", "1", "--hidden_size", "32", "--num_hidden_layers", "2",
        "--num_attention_heads", "2", "--dataset", "text", "--data_files", str(corpus), "--tokenizer_name", "bpe:300",
        "--block_size", "32", "--validation_tokens", "256", "--output_dir", str(output), "--use_cpu", "true",
        "--per_device_train_batch_size", "16", "--max_steps", "400", "--learning_rate", "0.003",
        "--warmup_steps", "10", "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
        "--report_to", "none", "--seed", "0",
    ])
    return output


def test_a_trained_model_scores_above_chance_and_the_results_are_lm_evals_own_files(trained_checkpoint, task_folder):
    results = evaluate_recipe.main(["--model", str(trained_checkpoint), "--tasks", "animal_sounds",
                                    "--include_path", str(task_folder), "--batch_size", "8"])
    accuracy = results["results"]["animal_sounds"]["acc,none"]
    assert accuracy > CHANCE and accuracy >= 5 / 6, accuracy
    written = Path(results["results_file"])
    assert written.parent == trained_checkpoint / "lm_eval" and written.name.startswith("results_")
    on_disk = json.loads(written.read_text())
    assert on_disk["results"]["animal_sounds"]["acc,none"] == accuracy
    assert on_disk["n-samples"]["animal_sounds"]["effective"] == len(SOUNDS)
    table = (trained_checkpoint / "lm_eval" / "results.md").read_text()
    stderr = results["results"]["animal_sounds"]["acc_stderr,none"]
    [row] = [line.split("|") for line in table.splitlines() if line.startswith("|animal_sounds")]
    cells = [cell.strip() for cell in row]
    assert cells[5] == "acc" and float(cells[7]) == pytest.approx(accuracy, abs=1e-4)
    assert cells[8] == "±" and float(cells[9]) == pytest.approx(stderr, abs=1e-4)


def test_a_context_longer_than_the_positions_is_cut_from_the_left(trained_checkpoint, task_folder, tmp_path):
    results = evaluate_recipe.main(["--model", str(trained_checkpoint), "--tasks", "long_context",
                                    "--include_path", str(task_folder), "--output_path", str(tmp_path)])
    # max_position_embeddings is 32: the question keeps its last tokens ("... cats say meow. cats say").
    assert trained_checkpoint.joinpath("config.json").read_text().count('"max_position_embeddings": 32') == 1
    assert results["results"]["long_context"]["acc,none"] == 1.0
    assert list(tmp_path.glob("results_*.json"))


def test_bad_input_is_refused_with_a_clear_error(trained_checkpoint, task_folder, tmp_path):
    common = ["--include_path", str(task_folder), "--output_path", str(tmp_path / "out")]
    with pytest.raises(ValueError, match=r"Unknown lm-eval task\(s\) \['animal_sound'\]\. animal_sound: did you mean "
                                         r"animal_sounds\?"):
        evaluate_recipe.main(["--model", str(trained_checkpoint), "--tasks", "animal_sound", *common])
    with pytest.raises(ValueError, match="is a folder without config.json, so not a checkpoint"):
        evaluate_recipe.main(["--model", str(task_folder), "--tasks", "animal_sounds", *common])
    with pytest.raises(ValueError, match="is a file"):
        evaluate_recipe.main(["--model", str(task_folder / "animal_sounds.yaml"), "--tasks", "animal_sounds", *common])
    with pytest.raises(ValueError, match="does not exist here and is not a Hub id"):
        evaluate_recipe.main(["--model", str(tmp_path / "nowhere"), "--tasks", "animal_sounds", *common])
    with pytest.raises(ValueError, match="mc_samples=0 must be an integer >= 1"):
        evaluate_recipe.main(["--model", str(trained_checkpoint), "--mc_samples", "0", *common])
    with pytest.raises(ValueError, match="limit=2.5 must be a whole number"):
        evaluate_recipe.main(["--model", str(trained_checkpoint), "--limit", "2.5", *common])
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="continuation is empty"):
        evaluate_recipe.main(["--model", str(trained_checkpoint), "--tasks", "empty_answer", *common])
