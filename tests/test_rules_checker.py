"""Checker: hand-built rows and samples, a from-the-spec reference on perturbed rows, bad input."""

import numpy as np
import pytest

from hf_diffusion_lm.rules import (INVALID, c3_rule_counts, completion_correct, consistency, generate_rows,
                                   per_rule_consistency, row_rule_matrix, row_rules, with_last_panel)


def make_row(*panels):
    """A row from three dicts {position: (shape, size, color)}."""
    row = np.full((3, 9, 3), -1, np.int64)
    for p, objects in enumerate(panels):
        for position, attributes in objects.items():
            row[p, position] = attributes
    return row


# Const Shape (2); sizes {1,5},{2},{9} and colors {3},{7},{0,1} follow nothing; counts 2,1,4 and
# positions {0,1},{4},{2,3,6,8} follow no Number or Position rule.
CONST_SHAPE = make_row({0: (2, 1, 3), 1: (2, 5, 3)}, {4: (2, 2, 7)},
                       {2: (2, 9, 0), 3: (2, 9, 1), 6: (2, 9, 0), 8: (2, 9, 1)})
# Prog+1 Number (counts 2, 3, 4) with a constant-free look elsewhere
PROG_NUMBER = make_row({0: (0, 0, 0), 4: (1, 0, 0)}, {1: (4, 3, 8), 2: (4, 3, 9), 5: (4, 3, 8)},
                       {0: (6, 7, 2), 3: (5, 7, 2), 4: (6, 6, 2), 8: (5, 6, 2)})


# --- a slow, independent reference written from the spec's formulas --------------------------------------
def _single_relations(a, b, c, lo):
    """Relations 0..6 of one-valued panels a, b, c (lo: smallest allowed value of a Number)."""
    found = set()
    if a == b == c and a >= 1 and (lo == 0 or 2 <= a <= 8):
        found.add(0)
    for r, d, skip in ((1, -2, 6), (2, -1, 3), (3, 1, 1), (4, 2, 2)):
        if b == a + d and c == b + d and a != skip and min(a, c) >= lo:
            found.add(r)
    excluded_plus = {(1, 2), (2, 4)} | ({(1, 1), (3, 6)} if lo else set())
    excluded_minus = {(3, 2), (6, 4)} | ({(9, 6)} if lo else set())
    if c == a + b and b >= 1 and a >= lo and (a, b) not in excluded_plus:
        found.add(5)
    if c == a - b and 1 <= b and (b < a if lo else b <= a) and (a, b) not in excluded_minus:
        found.add(6)
    return found


def _number_relations(n1, n2, n3):
    found = _single_relations(n1, n2, n3, lo=1)
    # Number progressions list only these starts
    starts = {1: {5, 7, 8, 9}, 2: set(range(4, 10)), 3: set(range(2, 8)), 4: {1, 3, 4, 5}}
    return {r for r in found if r not in starts or n1 in starts[r]}


def _set_relations(x1, x2, x3, max_union):
    if not (x1 & x2 and x1 ^ x2 and len(x1 | x2) <= max_union):
        return set()
    return {r for r, x in ((7, x1 ^ x2), (8, x1 | x2), (9, x1 & x2)) if x3 == x}


NUMBER_STARTS = {(a, b) for a in range(10) for b in range(10) for c in range(10) if _number_relations(a, b, c)}


def reference_rules(row):
    row = np.asarray(row)
    occupied = [(row[p] >= 0).all(-1) for p in range(3)]
    if (row == INVALID).any():
        return []
    rules = []
    for a, (m, n_max) in enumerate([(7, 7), (10, 9), (10, 9)]):
        x = [frozenset(row[p][occupied[p], a].tolist()) for p in range(3)]
        if all(len(s) == 1 for s in x):
            found = _single_relations(*(min(s) for s in x), lo=0)
        else:
            found = _set_relations(*x, max_union=n_max - 1)
        rules += [10 * a + r for r in found]
    counts = [int(o.sum()) for o in occupied]
    rules += [30 + r for r in _number_relations(*counts)]
    if tuple(counts[:2]) in NUMBER_STARTS and not _number_relations(*counts):
        positions = [frozenset(np.flatnonzero(o).tolist()) for o in occupied]
        rules += [30 + r for r in _set_relations(*positions, max_union=9)]
    return sorted(rules)
# ---------------------------------------------------------------------------------------------------------


def test_hand_built_rows():
    assert row_rules(CONST_SHAPE) == reference_rules(CONST_SHAPE) == [0]
    assert row_rules(PROG_NUMBER) == reference_rules(PROG_NUMBER) == [33]
    broken = CONST_SHAPE.copy()
    broken[2, 2, 0] = 3  # one object of the third panel changes shape: no rule left
    assert row_rules(broken) == []


def test_partly_empty_position_counts_as_empty():
    row = CONST_SHAPE.copy()
    row[2, 5] = (4, -1, 2)  # an extra object with its size missing is no object
    assert row_rules(row) == [0]
    row[2, 5] = (4, 1, 2)
    assert 0 not in row_rules(row)


def test_invalid_marker_makes_a_row_invalid():
    row = CONST_SHAPE.copy()
    row[1, 7] = INVALID  # e.g. a leftover MASK at an empty position
    assert row_rules(row) == [] and not row_rule_matrix(row[None]).any()


def test_rows_with_one_panel_changed_match_the_reference():
    rng, valid = np.random.default_rng(0), {}
    for rule in range(40):
        rows = generate_rows(rule, 60, seed=rule).astype(np.int64)
        donors = generate_rows(int(rng.integers(40)), 60, seed=100 + rule)
        changed = rows.copy()
        panel = rng.integers(3, size=60)
        changed[np.arange(60), panel] = donors[np.arange(60), panel]
        changed[:10, 2] = changed[:10, 1]  # copies of the middle panel, as a completion baseline answers
        got = row_rule_matrix(changed)
        for i, row in enumerate(changed):
            assert np.flatnonzero(got[i]).tolist() == reference_rules(row), (rule, i)
        valid[rule] = got.any(1).mean()
    # the changes break many rows but not all (copies keep Const rules, some swaps keep the instance)
    assert 0.05 < np.mean(list(valid.values())) < 0.8 and valid[0] > valid[7]


def sample_of(*rows):
    return np.stack(rows)[None]


def test_c3_c2_anyvalid_on_hand_built_samples():
    broken = CONST_SHAPE.copy()
    broken[2, 2, 0] = 3
    samples = np.concatenate([
        sample_of(CONST_SHAPE, CONST_SHAPE, CONST_SHAPE),  # C3
        sample_of(CONST_SHAPE, CONST_SHAPE, broken),       # C2, 2 valid rows
        sample_of(CONST_SHAPE, PROG_NUMBER, broken),       # neither, 2 valid rows
        sample_of(broken, broken, broken),                 # nothing valid
    ])
    assert consistency(samples) == pytest.approx({"anyvalid": 7 / 12, "c3": 1 / 4, "c2": 1 / 4})
    assert completion_correct(samples).tolist() == [True, False, False, False]
    assert c3_rule_counts(samples)[0] == 1 and c3_rule_counts(samples).sum() == 1
    per_rule = per_rule_consistency(samples, [0, 0, 0, 33])
    assert per_rule["n"][0] == 3 and per_rule["c3"][0] == pytest.approx(1 / 3)
    assert per_rule["anyvalid"][33] == 0 and np.isnan(per_rule["c3"][5])


def test_with_last_panel_replaces_only_the_bottom_right_panel():
    samples = sample_of(CONST_SHAPE, CONST_SHAPE, CONST_SHAPE)
    completed = with_last_panel(samples, CONST_SHAPE[None, 1])
    assert (completed[0, 2, 2] == CONST_SHAPE[1]).all() and (completed[0, :2] == samples[0, :2]).all()
    assert (samples[0, 2, 2] == CONST_SHAPE[2]).all()  # the input is not modified


@pytest.mark.parametrize("bad, match", [
    (np.zeros((3, 9, 2), int), "shape"),
    (np.full((3, 9, 3), 0.5), "integers"),
    (np.full((3, 9, 3), 7), "value 7 out of range for attribute 0"),
    (np.full((3, 9, 3), -3), "value -3"),
])
def test_bad_rows_are_value_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        row_rules(bad)


def test_bad_metric_input():
    with pytest.raises(ValueError, match="samples must have shape"):
        consistency(np.zeros((2, 3, 9, 3), int))
    with pytest.raises(ValueError, match="rule id"):
        per_rule_consistency(np.stack([sample_of(CONST_SHAPE, CONST_SHAPE, CONST_SHAPE)[0]]), [45])
