"""Which rules a row obeys, and the sample-level metrics of the benchmark (AnyValid, C3, C2, completion).

Rows are int arrays [..., 3 panels, 9 positions, 3 attributes]: -1 marks an empty attribute (a
position with any -1 counts as empty), INVALID (-2) marks a position decoded from a token that means
nothing there (a leftover MASK, an attribute token in the wrong slot); a row holding INVALID obeys no
rule. Samples are [..., 3 rows, 3, 9, 3].
"""

import numpy as np

from .instances import ATTRIBUTE_VALUES, NUM_RULES, NUMBER, POSITION, check_rule_id, match_relation, rule_id_of

INVALID = -2
_FAMILIES = range(5)
# rule id of (family, relation), -1 where the family has no such relation
_RULE_OF = np.array([[rule_id_of(f, r) if (f != NUMBER or r < 7) and (f != POSITION or r >= 7) else -1
                      for r in range(10)] for f in _FAMILIES])


def check_rows(rows, trailing=(3, 9, 3), name="rows") -> np.ndarray:
    """rows as an int64 array, or a ValueError naming the bad shape, dtype or value."""
    rows = np.asarray(rows)
    if rows.shape[rows.ndim - len(trailing):] != tuple(trailing) or rows.ndim < len(trailing):
        raise ValueError(f"{name} must have shape [..., {', '.join(map(str, trailing))}], got {list(rows.shape)}")
    if rows.size and not np.issubdtype(rows.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {rows.dtype}")
    rows = rows.astype(np.int64)
    for a, m in enumerate(ATTRIBUTE_VALUES):
        bad = (rows[..., a] < INVALID) | (rows[..., a] >= m)
        if bad.any():
            raise ValueError(f"{name}: attribute value {rows[..., a][bad][0]} out of range for attribute {a} "
                             f"(expected 0..{m - 1}, -1 for empty or {INVALID} for invalid)")
    return rows


def check_samples(samples, name="samples") -> np.ndarray:
    """A batch of samples [N, 3, 3, 9, 3] as int64, or a ValueError."""
    samples = check_rows(samples, (3, 3, 9, 3), name)
    if samples.ndim != 5:
        raise ValueError(f"{name} must be a batch [N, 3, 3, 9, 3], got shape {list(samples.shape)}")
    return samples


def row_rule_matrix(rows) -> np.ndarray:
    """bool [..., 40]: which rules each row [..., 3, 9, 3] obeys (several per row are possible)."""
    rows = check_rows(rows)
    lead = rows.shape[:-3]
    rows = rows.reshape(-1, 3, 9, 3)
    occupied = (rows >= 0).all(-1)  # [N, panel, position]
    value_sets = np.bitwise_or.reduce(np.where(occupied[..., None], 1 << np.maximum(rows, 0), 0), axis=2)
    quantities = [value_sets[..., a] for a in range(3)]  # [N, panel] bitmasks of distinct values
    quantities.append(occupied.sum(-1))  # Number: object counts
    quantities.append((occupied << np.arange(9)).sum(-1))  # Position: bitmask of occupied positions
    out = np.zeros((len(rows), NUM_RULES), bool)
    for family, quantity in zip(_FAMILIES, quantities):
        relation = match_relation(family, *quantity.T)
        hit = np.flatnonzero(relation >= 0)
        out[hit, _RULE_OF[family, relation[hit]]] = True
    out[(rows == INVALID).any((1, 2, 3))] = False
    return out.reshape(*lead, NUM_RULES)


def row_rules(row) -> list[int]:
    """All rule ids one row [3, 9, 3] obeys; an empty list for an invalid row."""
    row = check_rows(row, name="row")
    if row.ndim != 3:
        raise ValueError(f"row must have shape [3, 9, 3], got {list(row.shape)}; use row_rule_matrix for batches")
    return np.flatnonzero(row_rule_matrix(row)).tolist()


def score_samples(samples) -> dict[str, np.ndarray]:
    """Per-sample scores of samples [N, 3, 3, 9, 3].

    valid_rows [N] int: rows that obey some rule; c3 [N] bool: some rule holds in all three rows;
    c2 [N] bool: some rule holds in exactly two rows (a sample can be both); rules_in_all [N, 40] bool.
    """
    samples = check_rows(samples, (3, 3, 9, 3), "samples")
    rules = row_rule_matrix(samples)  # [N, row, rule]
    rows_per_rule = rules.sum(-2)
    return {"valid_rows": rules.any(-1).sum(-1), "c3": (rows_per_rule == 3).any(-1),
            "c2": (rows_per_rule == 2).any(-1), "rules_in_all": rows_per_rule == 3}


def consistency(samples) -> dict[str, float]:
    """The paper's sample metrics: anyvalid (valid rows / 3N), c3 and c2 (fractions of samples)."""
    scores = score_samples(samples)
    n = max(len(scores["c3"]), 1)
    return {"anyvalid": scores["valid_rows"].sum() / (3 * n), "c3": scores["c3"].sum() / n,
            "c2": scores["c2"].sum() / n}


def per_rule_consistency(samples, rule_ids) -> dict[str, np.ndarray]:
    """Per true rule r (arrays [40], NaN for rules without samples): n, the number of samples;
    c3, the fraction whose three rows all obey r; anyvalid, the fraction of their rows that obey some rule."""
    scores = score_samples(samples)
    rule_ids = np.asarray(rule_ids, np.int64)
    if rule_ids.shape != scores["c3"].shape:
        raise ValueError(f"rule_ids must have shape [{len(scores['c3'])}], got {list(rule_ids.shape)}")
    for r in np.unique(rule_ids):
        check_rule_id(r)
    n = np.bincount(rule_ids, minlength=NUM_RULES)
    with np.errstate(invalid="ignore", divide="ignore"):
        c3 = np.bincount(rule_ids, scores["rules_in_all"][np.arange(len(rule_ids)), rule_ids], NUM_RULES) / n
        anyvalid = np.bincount(rule_ids, scores["valid_rows"], NUM_RULES) / (3 * n)
    return {"n": n, "c3": c3, "anyvalid": anyvalid}


def c3_rule_counts(samples) -> np.ndarray:
    """int [40]: for unconditional samples, how many samples have all three rows obeying each rule."""
    return score_samples(samples)["rules_in_all"].sum(0)


def with_last_panel(samples, panels) -> np.ndarray:
    """A copy of samples [N, 3, 3, 9, 3] whose bottom-right panel is replaced by panels [N, 9, 3]."""
    samples = check_rows(samples, (3, 3, 9, 3), "samples")
    panels = check_rows(panels, (9, 3), "panels")
    if samples.shape[:-4] != panels.shape[:-2]:
        raise ValueError(f"{samples.shape[:-4]} samples but {panels.shape[:-2]} panels")
    out = samples.copy()
    out[..., 2, 2, :, :] = panels
    return out


def completion_correct(samples) -> np.ndarray:
    """bool [N]: whether completed samples are C3. The two given rows obey exactly one rule, so this is
    "the completed row obeys the rule of the given rows"."""
    return score_samples(samples)["c3"]
