"""Generator: every row obeys exactly its rule, distractors look rule-like, seeds, splits, bad input."""

import numpy as np
import pytest

from hf_diffusion_lm.rules import (HELDOUT_RULES, build_splits, generate_rows, generate_samples, row_rule_matrix,
                                   sample_keys)
from hf_diffusion_lm.rules.instances import match_relation

ROWS_PER_RULE = 400


@pytest.fixture(scope="module")
def rows_by_rule():
    return {r: generate_rows(r, ROWS_PER_RULE, seed=7) for r in range(40)}


def panel_quantities(rows):
    """[N, 3, 5] per panel: value bitmasks of shape, size, color, the object count, the position bitmask."""
    occupied = (rows >= 0).all(-1)
    masks = [np.bitwise_or.reduce(np.where(occupied, 1 << np.maximum(rows[..., a], 0).astype(np.int64), 0), -1)
             for a in range(3)]
    return np.stack(masks + [occupied.sum(-1), (occupied << np.arange(9)).sum(-1)], -1)


def test_every_row_obeys_exactly_its_rule(rows_by_rule):
    for rule, rows in rows_by_rule.items():
        assert rows.shape == (ROWS_PER_RULE, 3, 9, 3) and rows.dtype == np.int8
        rules = row_rule_matrix(rows)
        assert rules[:, rule].all(), f"rule {rule}: rows that miss their rule"
        assert rules.sum(1).max() == 1, f"rule {rule}: rows that obey another rule too"


def test_distractors_follow_a_relation_in_two_panels_only(rows_by_rule):
    for rule, rows in rows_by_rule.items():
        q = panel_quantities(rows)
        for family in range(5 if rule < 30 else 3):  # counts and positions of Number / Position rules are theirs
            if family == rule // 10:
                continue
            x1, x2, x3 = q[:, 0, family], q[:, 1, family], q[:, 2, family]
            assert (match_relation(family, x1, x2, x3) == -1).all()
            # panels 1-2 are the start of some instance: redrawing panel 3 can complete it
            if family < 3:
                assert _has_completion(family, x1, x2).all(), f"rule {rule}, family {family}"


def _has_completion(family, x1, x2):
    m = 7 if family == 0 else 10
    found = np.zeros(len(x1), bool)
    for x3 in range(1, 1 << m):
        found |= match_relation(family, x1, x2, np.full(len(x1), x3)) >= 0
    return found


def test_objects_fill_their_panels(rows_by_rule):
    rows = np.concatenate(list(rows_by_rule.values()))
    partly_empty = (rows == -1).any(-1) & (rows >= 0).any(-1)
    assert not partly_empty.any()
    assert rows[..., 0].max() == 6 and rows[..., 1:].max() == 9 and rows.min() == -1
    counts = (rows >= 0).all(-1).sum(-1)
    assert counts.min() >= 1


def test_rule_instances_used_equally_often():
    rows = generate_rows(30, 700, seed=1)  # Const Number: counts n, n, n for n = 2..8, 7 instances
    counts = (rows[:, 0] >= 0).all(-1).sum(-1)
    assert np.bincount(counts, minlength=9)[2:].tolist() == [100] * 7


def test_same_seed_same_rows_other_seed_other_rows():
    a, b, c = generate_rows(17, 50, 3), generate_rows(17, 50, 3), generate_rows(17, 50, 4)
    assert (a == b).all() and not (a == c).all()
    s = generate_samples(5, 4, seed=3)
    assert s.shape == (4, 3, 3, 9, 3) and (s.reshape(12, 3, 9, 3) == generate_rows(5, 12, 3)).all()


@pytest.mark.parametrize("args, match", [((40, 5, 0), "rule id"), ((3, -1, 0), "n must"),
                                         ((3, 5, -2), "seed"), ((3, 2.5, 0), "n must")])
def test_bad_generator_input(args, match):
    with pytest.raises(ValueError, match=match):
        generate_rows(*args)


def test_splits_hold_out_rules_and_are_disjoint():
    splits = build_splits(samples_per_rule=30, seed=0, test_samples_per_rule=20)
    train, test = splits["train"], splits["test"]
    assert len(train) == 35 * 30 and not set(train.rule_ids.tolist()) & set(HELDOUT_RULES)
    assert np.bincount(test.rule_ids).tolist() == [20] * 40
    # the training data really holds no held-out rule row
    assert not row_rule_matrix(train.samples)[..., list(HELDOUT_RULES)].any()
    assert not set(sample_keys(train.samples).tolist()) & set(sample_keys(test.samples).tolist())
    again = build_splits(samples_per_rule=30, seed=0, test_samples_per_rule=20)
    assert (again["train"].samples == train.samples).all() and (again["test"].samples == test.samples).all()


def test_split_options():
    none = build_splits(samples_per_rule=5, seed=1, heldout=None, test_samples_per_rule=0)
    assert sorted(set(none["train"].rule_ids.tolist())) == list(range(40)) and len(none["test"]) == 0
    other = build_splits(samples_per_rule=5, seed=1, heldout=[0, 39], test_samples_per_rule=1)
    assert set(other["train"].rule_ids.tolist()) == set(range(1, 39))
    with pytest.raises(ValueError, match="rule id"):
        build_splits(samples_per_rule=5, heldout=[41])


def testfresh_samples_skip_excluded_samples():
    from hf_diffusion_lm.rules.generator import fresh_samples

    first_stream = generate_samples(9, 6, np.random.default_rng([2, 9, 1]))
    fresh = fresh_samples(9, 6, seed=2, exclude=set(sample_keys(first_stream[:4]).tolist()))
    assert (fresh[:2] == first_stream[4:]).all()  # the two samples not excluded, then the next stream
    assert (fresh[2:] == generate_samples(9, 6, np.random.default_rng([2, 9, 2]))[:4]).all()
