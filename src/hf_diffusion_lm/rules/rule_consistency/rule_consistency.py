"""Rule consistency of generated rule samples (GenRAVEN benchmark, arXiv 2411.07873), as an evaluate metric."""

import datasets
import evaluate
import numpy as np

from hf_diffusion_lm.rules.checker import INVALID, consistency, per_rule_consistency
from hf_diffusion_lm.rules.tokenization import SCHEMES, RuleTokenizer

_DESCRIPTION = """
Scores token sequences of generated rule samples (3 rows x 3 panels x 9 positions) with the benchmark's
rule checker. anyvalid: fraction of rows that obey some rule; c3: fraction of samples with one rule in
all three rows; c2: fraction with a rule in exactly two rows. For panel completion, c3 is the accuracy.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: token id sequences, one per sample, of the configuration's scheme ("object", the default,
        or "attribute": load with evaluate.load(path, "attribute")), with or without the leading BOS.
        Any ids are accepted: a leftover MASK, a misplaced token or a sequence of the wrong length counts
        as invalid.
    rule_ids (optional): the true rule id of each sample; adds c3_by_rule (40 values, NaN without samples).
Returns:
    anyvalid, c3, c2 (floats), and c3_by_rule with rule_ids.
Example:
    >>> metric = evaluate.load(hf_diffusion_lm.rules.hf.metric_path())
    >>> metric.compute(predictions=tokenizer.encode_samples(samples))
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RuleConsistency(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="arXiv:2411.07873", inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("int64"))}))

    def _compute(self, predictions, rule_ids=None):
        scheme = "object" if self.config_name == "default" else self.config_name
        if scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r} (the config name): choose one of {SCHEMES}")
        tokenizer = RuleTokenizer(scheme=scheme)
        samples = np.full((len(predictions), 3, 3, 9, 3), INVALID, np.int8)
        for i, ids in enumerate(predictions):
            if len(ids) in (tokenizer.sample_length, tokenizer.sample_length + 1):
                samples[i] = tokenizer.decode_samples(np.asarray(ids, np.int64))
        out = {k: float(v) for k, v in consistency(samples).items()}
        if rule_ids is not None:
            out["c3_by_rule"] = per_rule_consistency(samples, rule_ids)["c3"].tolist()
        return out
