"""Instance lists and rule ids of the abstract-rule benchmark (counts from the spec)."""

import numpy as np
import pytest

from hf_diffusion_lm.rules import HELDOUT_RULES, RULE_NAMES, instances, rule_family_relation
from hf_diffusion_lm.rules.instances import POPCOUNT, family_relations, match_relation

SPEC_COUNTS = {
    "shape": [6, 2, 4, 4, 2, 19, 19, 12012, 12012, 12012],
    "size": [9, 5, 7, 7, 5, 43, 43, 738780, 738780, 738780],
    "color": [9, 5, 7, 7, 5, 43, 43, 738780, 738780, 738780],
    "number": [7, 4, 6, 6, 4, 32, 33],
    "position": [168372, 184092, 171126],
}


def test_instance_counts_match_spec():
    counts = [len(instances(r)) for r in range(40)]
    assert counts == sum(SPEC_COUNTS.values(), [])


def test_rule_ids_and_names():
    assert [rule_family_relation(r) for r in (0, 16, 29, 30, 36, 37, 39)] == [
        (0, 0), (1, 6), (2, 9), (3, 0), (3, 6), (4, 7), (4, 9)]
    assert [RULE_NAMES[r] for r in HELDOUT_RULES] == [
        "Prog-2 Shape", "Arith- Size", "Const Color", "Prog+2 Number", "XOR Position"]


@pytest.mark.parametrize("bad", [-1, 40, 3.0, "3", None, True])
def test_unknown_rule_id_is_a_value_error(bad):
    with pytest.raises(ValueError, match="rule id"):
        instances(bad)


def test_relations_of_a_family_are_disjoint_and_matched():
    for family in range(5):
        relations = family_relations(family)
        codes = np.concatenate([(t[:, 0] << 20) | (t[:, 1] << 10) | t[:, 2] for t in relations.values()])
        assert len(np.unique(codes)) == len(codes)
        for relation, inst in relations.items():
            assert (match_relation(family, *inst.T) == relation).all()


def test_examples_from_the_spec():
    bit = lambda *vs: sum(1 << v for v in vs)  # noqa: E731
    assert (bit(3), bit(1), bit(5)) not in map(tuple, instances(1).tolist())  # Prog-2 only goes down by 2
    assert (bit(7), bit(5), bit(3)) in map(tuple, instances(11).tolist())
    assert match_relation(1, bit(6), bit(4), bit(2)) == -1  # excluded from both Prog-2 and Arith-
    assert (bit(2), bit(4), bit(6)) not in map(tuple, instances(15).tolist())  # Arith+ 2+4 is a progression
    assert (bit(1, 2), bit(2, 3), bit(1, 3)) in map(tuple, instances(17).tolist())  # XOR size
    assert (9, 8, 1) in map(tuple, instances(36).tolist()) and (9, 6, 3) not in map(tuple, instances(36).tolist())


def test_position_instances_never_have_number_counts():
    numbers = {tuple(t) for r in range(30, 37) for t in instances(r).tolist()}
    starts = {t[:2] for t in numbers}
    for r in (37, 38, 39):
        counts = {tuple(c) for c in POPCOUNT[instances(r)].tolist()}
        assert not counts & numbers
        assert {c[:2] for c in counts} <= starts


def test_instance_lists_are_read_only():
    with pytest.raises(ValueError):
        instances(17)[0, 0] = 0
