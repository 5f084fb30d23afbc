"""The data pipeline: loading local files, exact unique-token budget, disjoint validation, packing, rule data."""

import json
import re

import numpy as np
import pytest
from datasets import Dataset
from transformers import ByT5Tokenizer

from hf_diffusion_lm.training import build_rule_datasets, build_text_datasets, ensure_mask_token, load_text_dataset
from hf_diffusion_lm.rules import RuleTokenizer


def write_corpus(folder, num_documents=40):
    """Documents of different lengths, each identifiable by its number."""
    rng = np.random.default_rng(0)
    documents = [f"doc{i:03d} " + "abcdefgh"[i % 8] * int(rng.integers(5, 60)) for i in range(num_documents)]
    path = folder / "corpus.txt"
    path.write_text("\n".join(documents) + "\n")
    return path, documents


@pytest.fixture
def tokenizer():
    tokenizer = ByT5Tokenizer()
    ensure_mask_token(tokenizer)
    return tokenizer


def test_mask_token_is_added_once():
    tokenizer = ByT5Tokenizer()
    size = len(tokenizer)
    mask_id = ensure_mask_token(tokenizer)
    assert mask_id == size and len(tokenizer) == size + 1
    assert ensure_mask_token(tokenizer) == mask_id and len(tokenizer) == size + 1


def test_exactly_the_first_unique_tokens_train_and_later_documents_validate(tmp_path, tokenizer):
    path, documents = write_corpus(tmp_path)
    corpus = load_text_dataset("text", [str(path)])
    assert corpus.num_rows == len(documents)
    data = build_text_datasets(corpus, tokenizer, block_size=32, unique_tokens=1000, validation_tokens=300)
    stream = np.concatenate([tokenizer(d, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
                             for d in documents])
    train = {name: np.array(data["train"][name]) for name in ("input_ids", "labels", "attention_mask")}
    assert train["input_ids"].shape == (32, 32)  # ceil(1000 / 32) blocks
    scored = train["labels"] != -100
    assert scored.sum() == 1000
    assert np.array_equal(train["labels"][scored], stream[:1000])
    assert np.array_equal(train["attention_mask"].astype(bool), scored)
    validation = np.array(data["validation"]["labels"])
    held_out = validation[validation != -100]
    assert len(held_out) == 300
    # Validation starts at the first document after the one where the budget ran out.
    ends = np.cumsum([len(tokenizer(d, add_special_tokens=False)["input_ids"]) + 1 for d in documents])
    first_validation = int(np.searchsorted(ends, 1000)) + 1
    assert np.array_equal(held_out, stream[ends[first_validation - 1]:][:300])
    train_documents = set(re.findall(r"doc\d{3}", tokenizer.decode(train["labels"][scored])))
    assert train_documents and not train_documents & set(re.findall(r"doc\d{3}", tokenizer.decode(held_out)))


def test_default_budget_keeps_the_last_documents_for_validation(tmp_path, tokenizer):
    path, documents = write_corpus(tmp_path)
    data = build_text_datasets(load_text_dataset("text", [str(path)]), tokenizer, block_size=64,
                               validation_tokens=200)
    validation = np.array(data["validation"]["labels"])
    train = np.array(data["train"]["labels"])
    total = sum(len(tokenizer(d, add_special_tokens=False)["input_ids"]) + 1 for d in documents)
    assert (validation != -100).sum() == 200
    assert total - 260 < (train != -100).sum() <= total - 200  # whole documents (at most 59 + 8 tokens) before it
    validation_text = tokenizer.decode(validation[validation != -100])
    train_text = tokenizer.decode(train[train != -100])
    assert validation_text.startswith("doc0")  # starts at a document boundary
    last_train = max(int(number) for number in re.findall(r"doc(\d{3})", train_text))
    assert int(validation_text[3:6]) == last_train + 1


def test_json_and_parquet_files_load_through_datasets(tmp_path):
    rows = [{"text": f"document {i}", "id": i} for i in range(5)]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    Dataset.from_list(rows).to_parquet(str(tmp_path / "a.parquet"))
    assert load_text_dataset("json", [str(tmp_path / "a.jsonl")])["text"] == [r["text"] for r in rows]
    assert load_text_dataset("parquet", [str(tmp_path / "a.parquet")])["text"] == [r["text"] for r in rows]
    with pytest.raises(ValueError, match=r"no text column 'body'; its columns are \['text', 'id'\]"):
        load_text_dataset("json", [str(tmp_path / "a.jsonl")], text_column="body")
    with pytest.raises(ValueError, match="pass data_files"):
        load_text_dataset("json")


def test_tokenization_is_cached_by_datasets(tmp_path, tokenizer):
    path, _ = write_corpus(tmp_path)
    corpus = load_text_dataset("text", [str(path)])
    from hf_diffusion_lm.training.data import tokenize_documents

    first = tokenize_documents(corpus, tokenizer)
    second = tokenize_documents(corpus, tokenizer)
    assert first.cache_files and first.cache_files == second.cache_files


def test_budget_errors_name_the_numbers(tmp_path, tokenizer):
    path, _ = write_corpus(tmp_path, num_documents=5)
    corpus = load_text_dataset("text", [str(path)])
    with pytest.raises(ValueError, match=r"unique_tokens=100000 but the corpus holds \d+ tokens"):
        build_text_datasets(corpus, tokenizer, block_size=16, unique_tokens=100000)
    total = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in corpus["text"])
    with pytest.raises(ValueError, match="No documents are left for validation"):
        build_text_datasets(corpus, tokenizer, block_size=16, unique_tokens=total)


def test_rule_data_marks_bos_as_context_and_validates_on_fresh_samples_of_the_trained_rules():
    tokenizer = RuleTokenizer(scheme="attribute")
    data = build_rule_datasets(tokenizer, samples_per_rule=20, rules=[0, 3, 30], validation_samples_per_rule=5)
    labels = np.array(data["train"]["labels"])
    assert labels.shape == (60, 244) and (labels[:, 0] == -100).all() and (labels[:, 1:] >= 0).all()
    assert set(data["train"]["rule_id"]) == {0, 3, 30} == set(data["validation"]["rule_id"])
    train_keys = {tuple(row) for row in data["train"]["input_ids"]}
    assert not train_keys & {tuple(row) for row in data["validation"]["input_ids"]}
    default = build_rule_datasets(tokenizer, samples_per_rule=2, validation_samples_per_rule=1)
    assert not {1, 16, 20, 34, 37} & set(default["train"]["rule_id"])
    with pytest.raises(ValueError, match=r"Rule ids \[40\] do not exist"):
        build_rule_datasets(tokenizer, samples_per_rule=2, rules=[0, 40])


def test_a_folder_of_text_files_is_a_corpus_of_documents_with_an_exact_budget(tmp_path):
    from hf_diffusion_lm.training.data import load_tokenizer

    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    texts = {f"sub/file{i:02d}.txt" if i % 2 else f"file{i:02d}.txt": f"document {i}\n" + "word " * (20 + 7 * i)
             for i in range(12)}
    for name, text in texts.items():
        (folder / name).write_text(text)
    (folder / ".hidden").write_text("never read")
    corpus = load_text_dataset("text", [str(folder)], sample_by="document")
    assert sorted(corpus["text"]) == sorted(texts.values())  # one document per file, hidden files skipped
    tokenizer = load_tokenizer("bpe:300", corpus)  # a byte-level BPE trained here, no download
    ensure_mask_token(tokenizer)
    assert tokenizer.decode(tokenizer("word word")["input_ids"]) == "word word"
    assert {tokenizer.eos_token, tokenizer.mask_token} == {"<|endoftext|>", "<|mask|>"}
    data = build_text_datasets(corpus, tokenizer, block_size=16, unique_tokens=150, validation_tokens=40)
    train = np.array(data["train"]["labels"])
    validation = np.array(data["validation"]["labels"])
    assert (train != -100).sum() == 150 and (validation != -100).sum() == 40
    decoded_train = tokenizer.decode(train[train != -100])
    decoded_validation = tokenizer.decode(validation[validation != -100])
    train_documents = set(re.findall(r"document \d+", decoded_train))
    assert train_documents and not train_documents & set(re.findall(r"document \d+", decoded_validation))
    with pytest.raises(ValueError, match="does not exist"):
        load_text_dataset("text", [str(tmp_path / "nowhere")])
    with pytest.raises(ValueError, match="write bpe:<vocabulary size>"):
        load_tokenizer("bpe:big", corpus)


def test_the_default_corpus_is_the_python_standard_library():
    from hf_diffusion_lm.training.data import python_stdlib_files

    files = python_stdlib_files()
    names = {f.rsplit("/", 1)[-1] for f in files}
    assert {"os.py", "json/__init__.py".rsplit("/", 1)[-1], "dataclasses.py"} <= names
    assert not any("/site-packages/" in f or "/test/" in f for f in files)
    assert sum(len(open(f, encoding="utf-8", errors="replace").read()) for f in files[:200]) > 1_000_000


def test_a_budget_that_cannot_be_honoured_is_an_error_in_the_recipe(tmp_path):
    from conftest import load_recipe

    train = load_recipe("train")

    common = ["--output_dir", str(tmp_path / "out"), "--max_steps", "1", "--samples_per_rule", "2"]
    with pytest.raises(ValueError, match="unique_tokens=-5 must be a positive number"):
        train.main(["--unique_tokens", "-5", *common])
    with pytest.raises(ValueError, match="unique_tokens=999999999 cannot be honoured: the rules data hold 486"):
        train.main(["--unique_tokens", "999999999", *common])
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i} " + "x" * i for i in range(30)) + "\n")
    with pytest.raises(ValueError, match=r"unique_tokens=999999999 but the corpus holds \d+ tokens"):
        train.main(["--dataset", "text", "--data_files", str(corpus), "--tokenizer_name", "bpe:280",
                    "--unique_tokens", "999999999", *common])
    assert not (tmp_path / "out").exists()
