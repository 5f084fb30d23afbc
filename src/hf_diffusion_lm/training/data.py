"""The data pipeline, in one place.

Text corpora: load (a Hub dataset, local text/json/parquet/csv files or folders of text files, or the embedded
default: the Python standard library's own source files, one document per file) -> a tokenizer (a Hub or local one,
or a byte-level BPE trained on the spot on the first training documents) -> tokenize each document with EOS appended
(`datasets.map`: batched, multiprocess, cached) -> keep exactly the first U tokens of the document stream for training
-> validation from the documents after them (disjoint) -> pack into fixed-length blocks. The Trainer repeats the
training blocks for the requested epochs.

Abstract-rule data: samples generated on the spot (`hf_diffusion_lm.rules`), one sample per sequence, BOS as
context that is never a target; validation is a fresh draw of the same rules.
"""

import math
import sysconfig
from pathlib import Path

import numpy as np
from datasets import Dataset, DatasetDict, load_dataset

from ..rules import HELDOUT_RULES, NUM_RULES
from ..rules.hf import rule_dataset


LOCAL_FORMATS = ("text", "json", "parquet", "csv")
PYTHON_STDLIB = "python_stdlib"
MASK_TOKEN = "<|mask|>"
EOS_TOKEN = "<|endoftext|>"
BPE_PREFIX = "bpe:"
BPE_TRAINING_CHARACTERS = 4_000_000  # the BPE learns its merges from the first documents up to this many characters


def python_stdlib_files() -> list[str]:
    """The running interpreter's standard-library modules (`*.py`, without site-packages, tests and IDLE), sorted: a
    corpus of several MB of real text that every machine with Python has."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skipped = {"site-packages", "dist-packages", "test", "tests", "idlelib"}
    files = [str(path) for path in sorted(root.rglob("*.py")) if not skipped & set(path.relative_to(root).parts)]
    if not files:
        raise ValueError(f"No Python source files under {root}; pass dataset=text with data_files instead.")
    return files


def expand_data_files(data_files: list[str]) -> list[str]:
    """Files as given, folders replaced by the files under them (sorted, hidden ones skipped)."""
    expanded = []
    for entry in data_files:
        path = Path(entry)
        if path.is_dir():
            files = [str(p) for p in sorted(path.rglob("*")) if p.is_file() and not any(
                part.startswith(".") for part in p.relative_to(path).parts)]
            if not files:
                raise ValueError(f"data_files: the folder {entry} holds no files.")
            expanded += files
        elif path.exists() or any(char in entry for char in "*?["):
            expanded.append(entry)
        else:
            raise ValueError(f"data_files: {entry} does not exist.")
    return expanded


def load_text_dataset(
    dataset: str,
    data_files: list[str] | None = None,
    dataset_config: str | None = None,
    split: str = "train",
    text_column: str = "text",
    sample_by: str = "line",
) -> Dataset:
    """Documents from local files (`dataset` is a format: text, json, parquet, csv; `data_files` may name folders),
    the Python standard library (`python_stdlib`: one document per file) or a Hub dataset. For `text`, `sample_by`
    says what a document is: a line, a paragraph or a whole file ("document")."""
    if dataset == PYTHON_STDLIB:
        dataset, data_files, sample_by = "text", python_stdlib_files(), "document"
    if dataset in LOCAL_FORMATS:
        if not data_files:
            raise ValueError(f"dataset={dataset!r} reads local files: pass data_files (e.g. --data_files corpus.txt).")
        options = {"sample_by": sample_by} if dataset == "text" else {}
        documents = load_dataset(dataset, data_files=expand_data_files(data_files), split="train", **options)
    else:
        documents = load_dataset(dataset, dataset_config, split=split)
    if text_column not in documents.column_names:
        raise ValueError(
            f"The dataset has no text column {text_column!r}; its columns are {documents.column_names}. "
            "Set text_column to the column holding the documents."
        )
    return documents


def ensure_mask_token(tokenizer) -> int:
    """Add a MASK special token when the tokenizer has none (resize the model's embeddings after); return its id."""
    if tokenizer.mask_token_id is None:
        tokenizer.add_special_tokens({"mask_token": MASK_TOKEN})
    return tokenizer.mask_token_id


def train_byte_level_bpe(documents: Dataset, vocab_size: int, text_column: str = "text"):
    """A byte-level BPE tokenizer (`PreTrainedTokenizerFast`, with EOS, PAD = EOS and MASK) trained here on the first
    documents, up to `BPE_TRAINING_CHARACTERS` characters: the start of the corpus, where the training budget is."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 257 + 2:
        raise ValueError(f"bpe:{vocab_size} is too small: a byte-level BPE needs 256 bytes plus EOS and MASK.")

    def first_documents():
        characters = 0
        for text in documents[text_column]:
            yield text
            characters += len(text)
            if characters >= BPE_TRAINING_CHARACTERS:
                return

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS_TOKEN, MASK_TOKEN],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(first_documents(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS_TOKEN, pad_token=EOS_TOKEN,
                                   mask_token=MASK_TOKEN)


def load_tokenizer(name: str, documents: Dataset, text_column: str = "text"):
    """`bpe:<vocab size>` trains a byte-level BPE on the corpus; anything else is a tokenizer folder or Hub id."""
    if name.startswith(BPE_PREFIX):
        size = name[len(BPE_PREFIX):]
        if not size.isdigit():
            raise ValueError(f"tokenizer_name={name!r}: write bpe:<vocabulary size>, e.g. bpe:4096.")
        return train_byte_level_bpe(documents, int(size), text_column)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)


def tokenize_documents(documents: Dataset, tokenizer, text_column: str = "text", num_proc: int | None = None) -> Dataset:
    """One row per document: its token ids followed by EOS, and its length."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("The tokenizer has no eos_token; documents are separated by EOS, so set tokenizer.eos_token.")

    def tokenize(batch):
        ids = tokenizer(batch[text_column], add_special_tokens=False)["input_ids"]
        ids = [document + [eos] for document in ids]
        return {"input_ids": ids, "length": [len(document) for document in ids]}

    return documents.map(tokenize, batched=True, num_proc=num_proc, remove_columns=documents.column_names,
                         desc="Tokenizing")


def document_tokens(tokenized: Dataset, start: int, stop: int) -> np.ndarray:
    """The token ids of documents [start, stop) as one flat array."""
    column = tokenized.select(range(start, stop)).data.column("input_ids").combine_chunks()
    return column.flatten().to_numpy(zero_copy_only=False).astype(np.int64)


def pack(tokens: np.ndarray, block_size: int, pad_token_id: int) -> Dataset:
    """Cut a token stream into blocks; the last one is padded (attention 0, label -100) so no token is lost."""
    num_blocks = math.ceil(len(tokens) / block_size)
    input_ids = np.full(num_blocks * block_size, pad_token_id, dtype=np.int64)
    input_ids[: len(tokens)] = tokens
    real = np.arange(num_blocks * block_size) < len(tokens)
    return Dataset.from_dict({
        "input_ids": input_ids.reshape(num_blocks, block_size),
        "labels": np.where(real, input_ids, -100).reshape(num_blocks, block_size),
        "attention_mask": real.astype(np.int64).reshape(num_blocks, block_size),
    })


def build_text_datasets(
    documents: Dataset,
    tokenizer,
    block_size: int,
    unique_tokens: int | None = None,
    validation_tokens: int = 65536,
    text_column: str = "text",
    num_proc: int | None = None,
) -> DatasetDict:
    """{"train": exactly `unique_tokens` tokens packed in blocks, "validation": later documents}, both with
    input_ids, labels and attention_mask `[block_size]`.

    Training takes the first U tokens of the document stream (the document where the budget ends is cut); validation
    starts at the next document, so no document contributes to both. Without `unique_tokens`, the last documents
    holding `validation_tokens` tokens are kept for validation and all earlier ones train.
    """
    if block_size < 2:
        raise ValueError(f"block_size={block_size} must be at least 2.")
    tokenized = tokenize_documents(documents, tokenizer, text_column, num_proc)
    ends = np.cumsum(tokenized["length"])  # ends[i]: tokens in documents 0..i
    total = int(ends[-1]) if len(ends) else 0
    if unique_tokens is None:
        # The document holding position total - validation_tokens starts validation; all earlier ones train.
        first_validation = int(np.searchsorted(ends, total - validation_tokens, side="right"))
        if first_validation == 0:
            raise ValueError(
                f"validation_tokens={validation_tokens} leaves no training documents in a corpus of {total} tokens; "
                "lower validation_tokens or add data."
            )
        unique_tokens = int(ends[first_validation - 1])
    else:
        if unique_tokens < 1 or unique_tokens > total:
            raise ValueError(
                f"unique_tokens={unique_tokens} but the corpus holds {total} tokens; ask for at most {total} (and "
                "leave documents for validation) or add data."
            )
        first_validation = int(np.searchsorted(ends, unique_tokens, side="left")) + 1
    if first_validation >= len(ends):
        raise ValueError(
            f"No documents are left for validation after unique_tokens={unique_tokens} of {total} corpus tokens; "
            "lower unique_tokens or add data."
        )
    train_tokens = document_tokens(tokenized, 0, first_validation)[:unique_tokens]
    held_out = document_tokens(tokenized, first_validation, len(ends))[:validation_tokens]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return DatasetDict({"train": pack(train_tokens, block_size, pad), "validation": pack(held_out, block_size, pad)})


def build_rule_datasets(
    tokenizer,
    samples_per_rule: int = 400,
    seed: int = 0,
    rules: list[int] | None = None,
    heldout_rules: list[int] | None = None,
    validation_samples_per_rule: int = 50,
) -> DatasetDict:
    """{"train", "validation"} of rule samples: input_ids (BOS + sample), labels (BOS at -100: context, never a
    target), attention_mask, rule_id. Validation is a fresh draw of the trained rules. Without `heldout_rules`, the
    paper's held-out split applies when all rules are used, and nothing is held out from an explicit subset."""
    if heldout_rules is None:
        heldout_rules = HELDOUT_RULES if rules is None else []
    rules = list(range(NUM_RULES)) if rules is None else list(rules)
    heldout = set(heldout_rules)
    unknown = [rule for rule in rules + sorted(heldout) if not 0 <= rule < NUM_RULES]
    if unknown:
        raise ValueError(f"Rule ids {unknown} do not exist; rules are numbered 0..{NUM_RULES - 1}.")
    trained = [rule for rule in rules if rule not in heldout]
    if not trained:
        raise ValueError(f"rules={rules} are all held out ({sorted(heldout)}); nothing is left to train on.")
    data = rule_dataset(tokenizer, samples_per_rule, seed, [r for r in range(NUM_RULES) if r not in trained],
                        validation_samples_per_rule)

    def add_labels(batch):
        labels = np.array(batch["input_ids"], dtype=np.int64)
        labels[:, 0] = -100
        return {"labels": labels, "attention_mask": np.ones_like(labels)}

    validation = data["test"].filter(lambda rule_id: rule_id in trained, input_columns="rule_id")
    return DatasetDict({
        "train": data["train"].map(add_labels, batched=True).remove_columns("heldout"),
        "validation": validation.map(add_labels, batched=True).remove_columns("heldout"),
    })


def chance_baselines(datasets, vocab_size: int) -> dict[str, float]:
    """Validation NLL (nats per scored token) of two models that learn nothing beyond counting: uniform over the
    vocabulary, and a unigram model fitted to the training tokens (add-one smoothed). A model that does not beat the
    unigram figure has learned no more than token frequencies."""
    def scored(split):
        labels = np.asarray(datasets[split]["labels"])
        return labels[labels != -100]

    counts = np.bincount(scored("train"), minlength=vocab_size).astype(np.float64)
    probabilities = (counts + 1) / (counts.sum() + vocab_size)
    return {"uniform": float(np.log(vocab_size)), "unigram": float(-np.log(probabilities[scored("validation")]).mean())}


def build_datasets(config) -> tuple[object, DatasetDict, int]:
    """The tokenizer, {"train", "validation"} and U (scored training tokens) for an `LMTrainingConfig`.

    A MASK token is always present, so diffusion and AR runs on the same data share one vocabulary.
    """
    if config.dataset == "rules":
        from ..rules import RuleTokenizer

        tokenizer = RuleTokenizer(scheme=config.rule_scheme)
        datasets = build_rule_datasets(tokenizer, config.samples_per_rule, config.seed, config.rules,
                                       config.heldout_rules, config.validation_samples_per_rule)
    else:
        if config.tokenizer_name is None:
            raise ValueError(f"dataset={config.dataset!r} is text: set tokenizer_name (a folder, a Hub id, or "
                             "bpe:<vocabulary size> to train a byte-level BPE on the corpus).")
        documents = load_text_dataset(config.dataset, config.data_files, config.dataset_config, config.dataset_split,
                                      config.text_column, config.sample_by)
        tokenizer = load_tokenizer(config.tokenizer_name, documents, config.text_column)
        ensure_mask_token(tokenizer)
        datasets = build_text_datasets(documents, tokenizer, config.block_size, config.unique_tokens,
                                       config.validation_tokens, config.text_column, config.preprocessing_num_workers)
    unique_tokens = int(np.sum(np.array(datasets["train"]["labels"]) != -100))
    if config.unique_tokens is not None and config.unique_tokens != unique_tokens:
        raise ValueError(
            f"unique_tokens={config.unique_tokens} cannot be honoured: the {config.dataset} data hold {unique_tokens} "
            "unique training tokens (rule data: set by samples_per_rule and rules). Leave unique_tokens out or change "
            "the data size."
        )
    return tokenizer, datasets, unique_tokens
