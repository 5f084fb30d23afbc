"""Generate rows and samples of the abstract-rule benchmark, vectorised over rows with numpy.

A row is an int8 array [3 panels, 9 positions, 3 attributes (shape, size, color)], -1 where a position
is empty; a sample is 3 independent rows of one rule, [3, 3, 9, 3]. A row of rule c gets:

1. an instance of c for c's quantity (attribute value sets, object counts, or position sets);
2. for every attribute that is not c's, a *distractor*: an instance of a random relation whose third
   panel is replaced by a same-size set that completes the first two panels under no relation, so the
   attribute looks rule-like in two panels and breaks in the third;
3. object counts (unless c is a Number rule) whose first two panels are the start of a Number instance
   but whose triple is not one, large enough for the distinct values of every attribute;
4. positions (unless c is a Position rule) with those counts that obey no Position rule;
5. per panel and attribute: the set's values plus draws with replacement from it up to the panel's
   count, shuffled over the chosen positions.
"""

import functools
from dataclasses import dataclass

import numpy as np

from .instances import (ATTRIBUTE_VALUES, HELDOUT_RULES, NUM_RULES, NUMBER, POPCOUNT, POSITION, SET_MEMBERS,
                        check_rule_id, check_rule_ids, encode_triples, family_relations, instances, match_relation,
                        rule_family_relation)

MAX_DISTRACTOR_COUNT = 8  # like the authors' generator, a count that breaks a Number pattern is at most 8


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int or a numpy Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


def _check_count(n, name="n") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{name} must be a non-negative int, got {n!r}")
    return int(n)


def _random_subsets(sizes: np.ndarray, m: int, rng) -> np.ndarray:
    """One uniformly random subset of range(m) per entry of sizes, as bitmasks."""
    ranks = rng.random((len(sizes), m)).argsort(1).argsort(1)  # a random permutation per row
    return ((ranks < sizes[:, None]) << np.arange(m)).sum(1)


def _random_true(allowed: np.ndarray, rng) -> np.ndarray:
    """Index of a uniformly random True entry per row of a bool matrix; -1 for rows without one."""
    choice = np.where(allowed, rng.random(allowed.shape), -1.0).argmax(1)
    return np.where(allowed.any(1), choice, -1)


def _break_third(family: int, x1, x2, sizes, m: int, rng) -> np.ndarray:
    """Random third-panel sets of the given sizes such that (x1, x2, x3) is an instance of no relation."""
    x3 = np.empty(len(x1), np.int64)
    todo = np.arange(len(x1))
    while todo.size:  # rejection: a pair has at most a handful of completions, so few rounds are needed
        x3[todo] = _random_subsets(sizes[todo], m, rng)
        todo = todo[match_relation(family, x1[todo], x2[todo], x3[todo]) >= 0]
    return x3


def _draw_rule_instances(rule_id: int, n: int, rng) -> np.ndarray:
    """[n, 3] instances of a rule: each instance equally often for relations 0..6, uniform for XOR/OR/AND."""
    table = instances(rule_id)
    if rule_family_relation(rule_id)[1] < 7:
        index = rng.permutation(np.arange(n) % len(table))
    else:
        index = rng.integers(len(table), size=n)
    return table[index]  # fancy indexing copies: the shared list is never modified


def _distractor_sets(attribute: int, n: int, rng) -> np.ndarray:
    """[n, 3] value sets of an attribute that follow a random relation in panels 1-2 and no relation in 3."""
    relations = list(family_relations(attribute).values())
    relation = rng.integers(len(relations), size=n)
    sizes = np.array([len(inst) for inst in relations])
    index = rng.integers(sizes[relation])  # draw an index per row: never copy a list to draw from it
    triples = np.empty((n, 3), np.int64)
    for r, inst in enumerate(relations):
        rows = relation == r
        triples[rows] = inst[index[rows]]
    x1, x2, x3 = triples.T
    x3 = _break_third(attribute, x1, x2, POPCOUNT[x3], ATTRIBUTE_VALUES[attribute], rng)
    return np.stack([x1, x2, x3], 1)


@functools.cache
def _number_tables() -> tuple[np.ndarray, np.ndarray]:
    """The distinct (n1, n2) starts of Number instances [P, 2], and is_number [10, 10, 10]."""
    numbers = np.concatenate(list(family_relations(NUMBER).values()))
    is_number = np.zeros((10, 10, 10), bool)
    is_number[tuple(numbers.T)] = True
    return np.argwhere(is_number.any(-1)), is_number


def _distractor_counts(need: np.ndarray, rng) -> np.ndarray:
    """[n, 3] object counts >= need that start like a Number instance and are not one; 0 where impossible."""
    starts, is_number = _number_tables()
    start = _random_true((starts[None, :, 0] >= need[:, :1]) & (starts[None, :, 1] >= need[:, 1:2]), rng)
    n1, n2 = starts[start].T
    last = np.arange(1, MAX_DISTRACTOR_COUNT + 1)
    n3 = 1 + _random_true((last >= need[:, 2:]) & ~is_number[n1[:, None], n2[:, None], last], rng)
    possible = (start >= 0) & (n3 > 0)
    return np.where(possible[:, None], np.stack([n1, n2, n3], 1), 0)


@functools.cache
def _positions_by_counts() -> tuple[np.ndarray, np.ndarray]:
    """All Position instances [K, 3] sorted by their counts, and the sorted keys 100 n1 + 10 n2 + n3."""
    inst = np.concatenate(list(family_relations(POSITION).values()))
    key = POPCOUNT[inst] @ [100, 10, 1]
    order = np.argsort(key, kind="stable")
    return inst[order], key[order]


def _distractor_positions(counts: np.ndarray, rng) -> np.ndarray:
    """[n, 3] position sets with the given counts that obey no Position rule.

    Like the authors' generator, the first two panels come from a Position instance with the same
    counts (the same three counts where one exists), and the third panel is redrawn to break it.
    """
    inst, key = _positions_by_counts()
    want = counts @ [100, 10, 1]
    lo, hi = np.searchsorted(key, want, "left"), np.searchsorted(key, want, "right")
    other = lo == hi  # no instance has all three counts: any instance with the same first two
    lo[other] = np.searchsorted(key, want[other] - counts[other, 2], "left")
    hi[other] = np.searchsorted(key, want[other] - counts[other, 2] + 10, "left")
    assert (hi > lo).all(), "every Number start has Position instances"
    pick = lo + (rng.random(len(counts)) * (hi - lo)).astype(np.int64)
    x1, x2 = inst[pick, 0], inst[pick, 1]
    return np.stack([x1, x2, _break_third(POSITION, x1, x2, counts[:, 2], 9, rng)], 1)


def _fill(sets: np.ndarray, counts: np.ndarray, positions: np.ndarray, rng) -> np.ndarray:
    """Rows [n, 3, 9, 3] from value sets [n, 3 panels, 3 attributes], counts [n, 3] and position sets [n, 3]."""
    n = len(sets)
    slot = np.arange(9)  # object slots of a panel
    distinct = POPCOUNT[sets][..., None]  # [n, 3, 3, 1]
    # slot j shows the j-th value of the set for j < |set|, a draw with replacement from the set after that
    pick = np.where(slot < distinct, slot, (rng.random((n, 3, 3, 9)) * distinct).astype(np.int64))
    values = np.take_along_axis(SET_MEMBERS[sets], pick, -1)  # [n, panel, attribute, slot]
    # shuffle each attribute's values over the panel's objects; unused slots (>= count) sort last
    shuffle = (rng.random((n, 3, 3, 9)) + (slot >= counts[:, :, None, None])).argsort(-1)
    values = np.take_along_axis(values, shuffle, -1)
    rows = np.full((n, 3, 9, 3), -1, np.int8)
    r, p, j = np.nonzero(slot < counts[..., None])
    rows[r, p, SET_MEMBERS[positions][r, p, j]] = values[r, p, :, j]
    return rows


def generate_rows(rule_id: int, n: int, seed=0) -> np.ndarray:
    """n rows of one rule, int8 [n, 3 panels, 9 positions, 3 attributes], -1 = empty.

    seed is a non-negative int or a numpy Generator; the same (rule_id, n, int seed) gives the same rows.
    """
    family, _ = rule_family_relation(rule_id)
    n, rng = _check_count(n), _rng(seed)
    sets = np.zeros((n, 3, 3), np.int64)  # [row, panel, attribute] value bitmasks
    counts = np.zeros((n, 3), np.int64)
    positions = None
    if family < NUMBER:
        sets[:, :, family] = _draw_rule_instances(rule_id, n, rng)
    elif family == NUMBER:
        counts = _draw_rule_instances(rule_id, n, rng)
    else:
        positions = _draw_rule_instances(rule_id, n, rng)
        counts = POPCOUNT[positions]
    todo = np.arange(n)
    while todo.size:  # redraw the distractors of rows whose objects cannot hold all their distinct values
        for attribute in range(3):
            if attribute != family:
                sets[todo, :, attribute] = _distractor_sets(attribute, todo.size, rng)
        need = POPCOUNT[sets[todo]].max(-1)  # a panel needs at least as many objects as distinct values
        if family < NUMBER:
            counts[todo] = _distractor_counts(need, rng)
        todo = todo[(counts[todo] < need).any(1)]
    if positions is None:
        positions = _distractor_positions(counts, rng)
    return _fill(sets, counts, positions, rng)


def generate_samples(rule_id: int, n: int, seed=0) -> np.ndarray:
    """n samples of one rule, int8 [n, 3 rows, 3 panels, 9 positions, 3 attributes]; rows are independent."""
    return generate_rows(rule_id, 3 * _check_count(n), seed).reshape(n, 3, 3, 9, 3)


@dataclass
class RuleSplit:
    """Samples [N, 3, 3, 9, 3] (int8) and the rule id of each [N]."""

    samples: np.ndarray
    rule_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.samples)


def sample_keys(samples: np.ndarray) -> np.ndarray:
    """One hashable bytes key per sample (or row, panel: any leading axis), for exact-match tests."""
    samples = np.asarray(samples, np.int8)
    flat = np.ascontiguousarray(samples.reshape(len(samples), int(np.prod(samples.shape[1:]))))
    return flat.view(np.dtype((np.void, flat.shape[1]))).ravel()


def training_samples(rule_id: int, samples_per_rule: int, seed: int) -> np.ndarray:
    """The training samples of one rule: stream 0 of seed (fresh draws use streams 1, 2, ...)."""
    return generate_samples(rule_id, samples_per_rule, np.random.default_rng([seed, rule_id, 0]))


def build_splits(samples_per_rule: int = 4000, seed: int = 0, heldout=HELDOUT_RULES,
                 test_samples_per_rule: int = 50) -> dict[str, RuleSplit]:
    """The benchmark's data: {"train": ..., "test": ...}.

    train: samples_per_rule samples of every rule except the held-out ones (None or () holds out none).
    test: a fresh draw of test_samples_per_rule samples of all 40 rules (held-out ones included) from an
    independent random stream, with any sample that also occurs in train replaced, so the two are disjoint.
    """
    samples_per_rule = _check_count(samples_per_rule, "samples_per_rule")
    test_samples_per_rule = _check_count(test_samples_per_rule, "test_samples_per_rule")
    seed = _check_count(seed, "seed")
    heldout = check_rule_ids(heldout)
    trained = [r for r in range(NUM_RULES) if r not in heldout]
    train = [training_samples(r, samples_per_rule, seed) for r in trained]
    seen = set(sample_keys(np.concatenate(train)).tolist()) if train else set()
    test = [fresh_samples(r, test_samples_per_rule, seed, seen) for r in range(NUM_RULES)]
    return {"train": _split(train, trained, samples_per_rule),
            "test": _split(test, range(NUM_RULES), test_samples_per_rule)}


def fresh_samples(rule_id: int, n: int, seed: int, exclude: set) -> np.ndarray:
    """n samples of a rule from streams 1, 2, ... of seed, skipping samples whose key is in exclude."""
    kept, stream = [np.zeros((0, 3, 3, 9, 3), np.int8)], 1
    while sum(map(len, kept)) < n:
        draw = generate_samples(rule_id, n, np.random.default_rng([seed, rule_id, stream]))
        kept.append(draw[[key not in exclude for key in sample_keys(draw).tolist()]])
        stream += 1
    return np.concatenate(kept)[:n]


def _split(parts: list[np.ndarray], rules, per_rule: int) -> RuleSplit:
    if not parts:
        return RuleSplit(np.zeros((0, 3, 3, 9, 3), np.int8), np.zeros(0, np.int64))
    return RuleSplit(np.concatenate(parts), np.repeat(np.asarray(list(rules), np.int64), per_rule))
