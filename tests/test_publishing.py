"""Model cards from real tiny runs, `.eval_results`, and publishing through the real huggingface_hub client against an
offline stand-in for the Hub (tests/hub_stand_in.py): publish -> reload without the package -> generate."""

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard

from hf_diffusion_lm import publishing
from hf_diffusion_lm.publishing import files_to_upload, publish, read_eval_results_folder, read_run

import hub_stand_in
from conftest import load_recipe, run_without_package

evaluate_recipe, publish_recipe, train_recipe = load_recipe("evaluate"), load_recipe("publish"), load_recipe("train")


pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--hidden_size", "32", "--num_hidden_layers", "2", "--num_attention_heads", "2", "--use_cpu", "true",
        "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false", "--report_to", "none",
        "--logging_steps", "5", "--seed", "0"]
TESTS = str(Path(__file__).parent)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two real recipes/train.py runs: diffusion on rule data (rule metrics and a picture), AR on a text file."""
    folder = tmp_path_factory.mktemp("runs")
    train_recipe.main(["--model", "masked_diffusion", "--samples_per_rule", "16", "--validation_samples_per_rule", "8",
                       "--rule_metric_samples", "8", "--max_steps", "10", "--output_dir", str(folder / "diffusion"),
                       *TINY])
    lines = ["cats say meow.", "dogs say woof.", "cows say moo."]
    corpus = folder / "facts.txt"
    corpus.write_text("\n".join(random.Random(0).choice(lines) for _ in range(300)) + "\n")
    train_recipe.main(["--model", "permuted_causal", "--num_orders", "1", "--dataset", "text", "--data_files",
                       str(corpus), "--tokenizer_name", "bpe:280", "--block_size", "32", "--validation_tokens", "128",
                       "--max_steps", "10", "--output_dir", str(folder / "causal"), *TINY])
    tasks = folder / "tasks"
    tasks.mkdir()
    (tasks / "sounds.jsonl").write_text("".join(json.dumps({"question": f"{animal} say", "choices": sounds,
                                                            "label": index}) + "\n"
                                                for index, (animal, sounds) in enumerate(
                                                    [("cats", ["meow", "woof"]), ("dogs", ["meow", "woof"])])))
    (tasks / "sounds.yaml").write_text(
        f"task: sounds\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {tasks / 'sounds.jsonl'}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{question}}'\ndoc_to_choice: '{{choices}}'\n"
        "doc_to_target: label\nmetric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n")
    evaluate_recipe.main(["--model", str(folder / "causal"), "--tasks", "sounds", "--include_path", str(tasks)])
    return {"diffusion": folder / "diffusion", "causal": folder / "causal"}


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    stand_in = hub_stand_in.install(tmp_path / "hub")
    yield stand_in
    from huggingface_hub import constants, set_client_factory
    from huggingface_hub.utils._http import default_client_factory

    set_client_factory(default_client_factory)
    constants.ENDPOINT = "https://huggingface.co"
    constants.HUGGINGFACE_CO_URL_TEMPLATE = constants.ENDPOINT + "/{repo_id}/resolve/{revision}/{filename}"


def card_table(card_text: str) -> dict[str, str]:
    return dict(re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|$", card_text, flags=re.MULTILINE))


@pytest.mark.parametrize("family", ["diffusion", "causal"])
def test_the_card_carries_the_runs_own_numbers(runs, family):
    folder = runs[family]
    state = json.loads((folder / "trainer_state.json").read_text())
    evaluation = json.loads((folder / "eval_results.json").read_text())
    unique = [entry["unique_tokens"] for entry in state["log_history"] if "unique_tokens" in entry][-1]
    card = ModelCard.load(folder / "README.md")
    table = card_table(card.text)
    assert table["Unique tokens U"] == f"{unique:,}"
    assert table["Epochs over the unique data"] == f"{state['epoch']:.4g}"
    assert table["Training FLOPs (6 N D)"] == f"{state['total_flos']:.4g}"
    assert table["Tokens seen"] == f"{state['num_input_tokens_seen']:,}"
    assert f"Validation loss of these weights: {evaluation['eval_loss']:.4f} nats/token" in card.text
    [loss] = [result for result in card.data.eval_results if result.metric_type == "loss"]
    assert loss.metric_value == round(evaluation["eval_loss"], 6)
    assert ("upper bound" in loss.metric_name) == (family == "diffusion")
    assert card.data.license == "apache-2.0" and family_tag(family) in card.data.tags
    if family == "diffusion":  # rule data: metrics beside chance, and the picture
        assert "![Generated samples](samples.png)" in card.text and (folder / "samples.png").is_file()
        assert "beats chance" in card.text or "does NOT beat chance" in card.text


def family_tag(family):
    return {"diffusion": "masked_diffusion", "causal": "permuted_causal"}[family]


def test_lm_eval_results_parse_back_from_the_model_index_and_eval_results(runs):
    folder = runs["causal"]
    record = read_run(folder)
    accuracy = record.lm_eval["results"]["sounds"]["acc,none"]
    stderr = record.lm_eval["results"]["sounds"]["acc_stderr,none"]
    card = ModelCard.load(folder / "README.md")
    [from_index] = [result for result in card.data.eval_results if result.metric_type == "acc"]
    assert (from_index.dataset_name, from_index.metric_value) == ("sounds", accuracy)
    [entry] = read_eval_results_folder(folder)
    assert (entry.task_id, entry.value) == ("sounds", accuracy)
    assert "local task" in entry.notes and f"{stderr:.4g}" in entry.notes
    assert "|sounds|" in card.text.replace(" ", "") and "lm-evaluation-harness" in card.text


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_publish_reload_without_the_package_and_generate(runs, hub, tmp_path):
    """Both families: publish, then run each card's own no-package snippet in one fresh interpreter where
    hf_diffusion_lm cannot be imported, downloading through the stand-in; it generates what the local model does."""
    script = f"import sys\nsys.path.insert(0, {TESTS!r})\nimport hub_stand_in\nhub_stand_in.install({str(tmp_path / 'hub')!r})\n"
    package_script = script
    expected = []
    for family in ("diffusion", "causal"):
        folder = runs[family]
        repo_id = f"someone/tiny-{family}"
        paths, info = publish(folder, repo_id)
        uploaded = hub.repo_folder(repo_id)
        assert sorted(str(path.relative_to(uploaded)) for path in uploaded.rglob("*")
                      if path.is_file() and path.name != "_commit") == sorted(paths)
        assert info.oid == (uploaded / "_commit").read_text()
        assert "training_args.bin" not in paths and "model.safetensors" in paths and "README.md" in paths
        with_package, without_package = python_blocks((uploaded / "README.md").read_text().split("## Use")[1])
        assert f'from_pretrained("{repo_id}", trust_remote_code=True)' in without_package
        assert "import hf_diffusion_lm" in with_package
        script += without_package
        package_script += with_package
        model = read_run(folder).family.auto_class.from_pretrained(folder).eval()
        prompt = torch.tensor([json.loads((folder / "run_info.json").read_text())["usage_prompt_ids"]])
        with torch.no_grad():
            options = dict(seed=0) if family == "diffusion" else dict(do_sample=False)
            expected.append(str(model.generate(input_ids=prompt, max_new_tokens=16, **options)[0].tolist()))
    stdout = run_without_package(script, tmp_path, env={"HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "reader"),
                                                        "HF_ENDPOINT": hub_stand_in.ENDPOINT})
    assert stdout.strip().splitlines()[-2:] == expected
    # The snippets for users with the package run too (and load the package's own classes).
    result = subprocess.run([sys.executable, "-c", package_script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_HOME": str(tmp_path / "package_reader"), "OMP_NUM_THREADS": "1",
                                 "HF_ENDPOINT": hub_stand_in.ENDPOINT, "HF_HUB_OFFLINE": "0"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-2:] == expected


def test_publish_options_private_revision_pull_request_and_dry_run(runs, hub, tmp_path, capsys):
    folder = runs["causal"]
    paths, info = publish_recipe.main([str(folder), "--repo_id", "someone/options", "--dry_run"])
    assert info is None and hub.requests == [] and "model.safetensors" in paths
    assert "Would upload" in capsys.readouterr().out
    publish(folder, "someone/options", private=True)
    assert hub.repo_meta("someone/options")["private"]
    publish(folder, "someone/options", revision="dev")
    assert (hub.repo_folder("someone/options", "dev") / "model.safetensors").is_file()
    _, pull = publish(folder, "someone/options", create_pr=True)
    assert pull.pr_url.endswith("/discussions/1")
    assert (hub.repo_folder("someone/options", "refs/pr/1") / "README.md").is_file()
    publish_recipe.main([str(folder), "--repo_id", "someone/options"])
    assert hub.token not in capsys.readouterr().out


def test_publishing_refuses_what_it_must_not_upload(runs, hub, tmp_path, monkeypatch, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(runs["causal"], copy)
    (copy / "model.safetensors").rename(tmp_path / "weights.safetensors")
    with pytest.raises(ValueError, match="has no safetensors weights"):
        publish(copy, "someone/refused")
    (tmp_path / "weights.safetensors").rename(copy / "model.safetensors")
    torch.save({"weight": torch.zeros(1)}, copy / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"holds pickle weights \['pytorch_model.bin'\]"):
        publish(copy, "someone/refused")
    (copy / "pytorch_model.bin").unlink()
    monkeypatch.setattr(publishing, "LICENSE", "no-such-license")
    with pytest.raises(ValueError, match="The Hub refuses the model card's metadata.*license"):
        publish(copy, "someone/refused")
    monkeypatch.setattr(publishing, "LICENSE", None)
    with pytest.raises(ValueError, match="metadata has no license"):
        publish(copy, "someone/refused")
    monkeypatch.undo()
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no_login"))
    with pytest.raises(ValueError, match="No Hugging Face token"):
        publish(copy, "someone/refused")
    assert not [request for request in hub.requests if request[0] == "POST" and "commit" in request[1]]
    assert hub.token not in capsys.readouterr().out


def test_train_push_to_hub_uploads_the_run_with_our_card(hub, tmp_path):
    output = tmp_path / "pushed"
    train_recipe.main(["--model", "masked_diffusion", "--samples_per_rule", "8", "--validation_samples_per_rule", "4",
                       "--rule_metric_samples", "0", "--max_steps", "3", "--output_dir", str(output),
                       "--push_to_hub", "true", "--hub_model_id", "someone/pushed", *TINY])
    uploaded = hub.repo_folder("someone/pushed")
    assert (uploaded / "model.safetensors").is_file() and (uploaded / "modeling_masked_diffusion.py").is_file()
    card = ModelCard.load(uploaded / "README.md")
    assert "hf_diffusion_lm" in card.data.tags and card.data.eval_results[0].metric_type == "loss"
    assert 'from_pretrained("someone/pushed", trust_remote_code=True)' in card.text
    assert yaml.safe_load((uploaded / "run_info.json").read_text())["model"] == "masked_diffusion"
