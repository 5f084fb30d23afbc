"""The benchmark as Hugging Face objects: a datasets.DatasetDict of token ids, and the path of the local
`evaluate` metric (load it offline with `evaluate.load(metric_path())`)."""

from pathlib import Path

import numpy as np
from datasets import Dataset, DatasetDict, Features, Sequence, Value

from .generator import RuleSplit, build_splits
from .instances import HELDOUT_RULES
from .tokenization import RuleTokenizer

FEATURES = Features({"input_ids": Sequence(Value("int32")), "rule_id": Value("int32"), "heldout": Value("bool")})


def split_to_dataset(split: RuleSplit, tokenizer: RuleTokenizer, heldout=HELDOUT_RULES) -> Dataset:
    """One split as a Dataset: input_ids (BOS + sample tokens), rule_id, and heldout (the rule is never trained on)."""
    return Dataset.from_dict({
        "input_ids": tokenizer.encode_samples(split.samples).astype(np.int32),
        "rule_id": split.rule_ids.astype(np.int32),
        "heldout": np.isin(split.rule_ids, list(heldout or ())),
    }, features=FEATURES)


def rule_dataset(tokenizer: RuleTokenizer | None = None, samples_per_rule: int = 4000, seed: int = 0,
                 heldout=HELDOUT_RULES, test_samples_per_rule: int = 50) -> DatasetDict:
    """{"train", "test"} as in build_splits, tokenized with tokenizer (default: the object scheme)."""
    tokenizer = tokenizer or RuleTokenizer()
    splits = build_splits(samples_per_rule, seed, heldout, test_samples_per_rule)
    return DatasetDict({name: split_to_dataset(split, tokenizer, heldout) for name, split in splits.items()})


def metric_path() -> str:
    """Directory of the rule_consistency evaluate metric, for `evaluate.load(metric_path())`."""
    return str(Path(__file__).parent / "rule_consistency")
