"""The abstract-rule benchmark (GenRAVEN, arXiv 2411.07873): rules, generator, checker, tokenizer,
chance baselines, memorization, pictures, and the data as datasets / evaluate objects.

Importing this package registers RuleTokenizer with transformers, so a saved tokenizer reloads with
`AutoTokenizer.from_pretrained(path)`. See docs/rules.md.
"""

from transformers import AutoTokenizer

from .baselines import chance_baselines, copy_middle_completion, random_panel_completion, shuffled_panel_samples
from .checker import (INVALID, c3_rule_counts, completion_correct, consistency, per_rule_consistency,
                      row_rule_matrix, row_rules, score_samples, with_last_panel)
from .generator import RuleSplit, build_splits, generate_rows, generate_samples, sample_keys
from .instances import (ATTRIBUTE_VALUES, FAMILY_NAMES, HELDOUT_RULES, NUM_RULES, RELATION_NAMES, RULE_NAMES,
                        instances, rule_family_relation)
from .memorization import memorization_rates, memorization_report
from .tokenization import SCHEMES, RuleTokenizer

# The tokenizer registry is keyed by model type; rule data has no model of its own, so a name stands in.
AutoTokenizer.register("rule_tokenizer", tokenizer_class=RuleTokenizer, exist_ok=True)

__all__ = [
    "ATTRIBUTE_VALUES", "FAMILY_NAMES", "HELDOUT_RULES", "INVALID", "NUM_RULES", "RELATION_NAMES", "RULE_NAMES",
    "SCHEMES", "RuleSplit", "RuleTokenizer", "build_splits", "c3_rule_counts", "chance_baselines",
    "completion_correct", "consistency", "copy_middle_completion", "generate_rows", "generate_samples",
    "instances", "memorization_rates", "memorization_report", "per_rule_consistency", "random_panel_completion",
    "row_rule_matrix", "row_rules", "rule_family_relation", "sample_keys", "score_samples", "shuffled_panel_samples",
    "with_last_panel",
]
