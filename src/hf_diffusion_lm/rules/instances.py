"""The 40 rules of the abstract-rule benchmark and their instance lists.

Spec: shared/reference/rules-benchmark.md (GenRAVEN, Wang, Shang & Sompolinsky, arXiv 2411.07873).

A rule acts on one panel-level quantity per panel: the set of distinct values of an attribute (shape,
size, color), the number of objects, or the set of occupied positions. An *instance* is the triple
of those quantities over the three panels of a row. Sets are stored as bitmasks (bit v set <=> value
or position v present), counts as plain integers, so an instance list is an int array [K, 3].

Rule id = 10 * attribute + relation for ids 0..29, 30 + relation for Number (relations 0..6) and
37 + (relation - 7) for Position (relations 7..9, XOR / OR / AND).
"""

import functools

import numpy as np

SHAPE, SIZE, COLOR, NUMBER, POSITION = range(5)  # rule families; the first three are the attributes
FAMILY_NAMES = ("Shape", "Size", "Color", "Number", "Position")
ATTRIBUTE_VALUES = (7, 10, 10)  # M: shape takes 0..6, size and color 0..9
RELATION_NAMES = ("Const", "Prog-2", "Prog-1", "Prog+1", "Prog+2", "Arith+", "Arith-", "XOR", "OR", "AND")
NUM_RULES = 40
HELDOUT_RULES = (1, 16, 20, 34, 37)  # Prog-2 Shape, Arith- Size, Const Color, Prog+2 Number, XOR Position

# every mask and count is < 2**10, so a triple packs into one integer with 10 bits per panel
_BITS = 10
POPCOUNT = np.array([bin(m).count("1") for m in range(1 << _BITS)])
SET_MEMBERS = np.array([[v for v in range(_BITS) if m >> v & 1] + [0] * (_BITS - bin(m).count("1"))
                        for m in range(1 << _BITS)])  # [1024, 10]: the members of each mask, ascending, 0-padded


def rule_family_relation(rule_id: int) -> tuple[int, int]:
    """(family, relation) of a rule id; relation indexes RELATION_NAMES."""
    rule_id = check_rule_id(rule_id)
    if rule_id < 30:
        return divmod(rule_id, 10)
    if rule_id < 37:
        return NUMBER, rule_id - 30
    return POSITION, rule_id - 30  # 37..39 -> XOR, OR, AND


def rule_id_of(family: int, relation: int) -> int:
    """Inverse of rule_family_relation."""
    return 10 * family + relation if family < NUMBER else 30 + relation


def check_rule_id(rule_id) -> int:
    """rule_id as an int, or a ValueError naming it."""
    if isinstance(rule_id, bool) or not isinstance(rule_id, (int, np.integer)) or not 0 <= rule_id < NUM_RULES:
        raise ValueError(f"unknown rule id {rule_id!r}: rule ids are integers 0..{NUM_RULES - 1}")
    return int(rule_id)


RULE_NAMES = tuple("{} {}".format(RELATION_NAMES[r], FAMILY_NAMES[f])
                   for f, r in map(rule_family_relation, range(NUM_RULES)))  # e.g. "Prog-2 Shape"


def check_rule_ids(rule_ids) -> tuple[int, ...]:
    """A sorted tuple of distinct valid rule ids (None means no rules)."""
    return tuple(sorted({check_rule_id(r) for r in (rule_ids or ())}))


def _triples(rows) -> np.ndarray:
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def _set_pairs(m: int, max_union: int) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (x1, x2) of non-empty subsets of range(m) that overlap, differ, and have |x1 | x2| <= max_union."""
    x1, x2 = (a.ravel() for a in np.meshgrid(np.arange(1, 1 << m), np.arange(1, 1 << m), indexing="ij"))
    keep = ((x1 & x2) != 0) & ((x1 ^ x2) != 0) & (POPCOUNT[x1 | x2] <= max_union)
    return x1[keep], x2[keep]


def _set_relations(x1, x2) -> dict[int, np.ndarray]:
    """The XOR / OR / AND instances (relations 7, 8, 9) built on the pairs (x1, x2)."""
    return {7: np.stack([x1, x2, x1 ^ x2], 1), 8: np.stack([x1, x2, x1 | x2], 1), 9: np.stack([x1, x2, x1 & x2], 1)}


def _value_relations(m: int) -> dict[int, np.ndarray]:
    """Instances of the 10 relations on an attribute with m values, as [K, 3] bitmasks."""
    # the excluded (i, j) pairs would also be progressions
    values = {
        0: _triples([(i, i, i) for i in range(1, m)]),
        1: _triples([(i, i - 2, i - 4) for i in range(4, m) if i != 6]),
        2: _triples([(i, i - 1, i - 2) for i in range(2, m) if i != 3]),
        3: _triples([(i, i + 1, i + 2) for i in range(m - 2) if i != 1]),
        4: _triples([(i, i + 2, i + 4) for i in range(m - 4) if i != 2]),
        5: _triples([(i, j, i + j) for i in range(m) for j in range(1, m - i) if (i, j) not in ((1, 2), (2, 4))]),
        6: _triples([(i, j, i - j) for i in range(1, m) for j in range(1, i + 1) if (i, j) not in ((3, 2), (6, 4))]),
    }
    n_max = 7 if m == 7 else 9  # the spec's cap: |x1 | x2| < n_max
    return {r: 1 << v for r, v in values.items()} | _set_relations(*_set_pairs(m, n_max - 1))


def _number_relations() -> dict[int, np.ndarray]:
    """Instances of the 7 Number relations, as [K, 3] object counts (1..9)."""
    return {
        0: _triples([(n, n, n) for n in range(2, 9)]),
        1: _triples([(i, i - 2, i - 4) for i in (5, 7, 8, 9)]),
        2: _triples([(i, i - 1, i - 2) for i in range(4, 10)]),
        3: _triples([(i, i + 1, i + 2) for i in range(2, 8)]),
        4: _triples([(i, i + 2, i + 4) for i in (1, 3, 4, 5)]),
        5: _triples([(i, j, i + j) for i in range(1, 9) for j in range(1, 10 - i)
                     if (i, j) not in ((1, 1), (1, 2), (2, 4), (3, 6))]),
        6: _triples([(i, j, i - j) for i in range(2, 10) for j in range(1, i)
                     if (i, j) not in ((3, 2), (6, 4), (9, 6))]),
    }


def _position_relations() -> dict[int, np.ndarray]:
    """XOR / OR / AND over the 9 positions, kept only where the object counts are Number-like in the
    first two panels but not a Number instance (so a row never obeys a Position and a Number rule)."""
    numbers = np.concatenate(list(_number_relations().values()))
    is_number = np.zeros((10, 10, 10), bool)
    is_number[tuple(numbers.T)] = True
    first_two = is_number.any(-1)
    out = {}
    for r, inst in _set_relations(*_set_pairs(9, 9)).items():
        c1, c2, c3 = POPCOUNT[inst].T
        out[r] = inst[first_two[c1, c2] & ~is_number[c1, c2, c3]]
    return out


@functools.cache
def family_relations(family: int) -> dict[int, np.ndarray]:
    """relation -> read-only [K, 3] instance array of one rule family (computed once, then cached)."""
    if family == COLOR:
        return family_relations(SIZE)  # size and color share one set of (large) lists
    if family in (SHAPE, SIZE):
        relations = _value_relations(ATTRIBUTE_VALUES[family])
    elif family == NUMBER:
        relations = _number_relations()
    elif family == POSITION:
        relations = _position_relations()
    else:
        raise ValueError(f"unknown rule family {family!r}: families are 0..4 ({', '.join(FAMILY_NAMES)})")
    for inst in relations.values():
        inst.flags.writeable = False  # instances are shared: a drawn instance must be copied, never edited
    return relations


def instances(rule_id: int) -> np.ndarray:
    """Read-only [K, 3] instance list of a rule: per-panel bitmasks, or counts for Number rules."""
    family, relation = rule_family_relation(rule_id)
    return family_relations(family)[relation]


def encode_triples(x1, x2, x3) -> np.ndarray:
    """Pack per-panel masks or counts into one int64 code per triple."""
    return (np.asarray(x1, np.int64) << 2 * _BITS) | (np.asarray(x2, np.int64) << _BITS) | np.asarray(x3, np.int64)


@functools.cache
def _relation_table(family: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted codes of every instance of a family and the relation of each."""
    if family == COLOR:
        return _relation_table(SIZE)
    relations = family_relations(family)
    codes = np.concatenate([encode_triples(*inst.T) for inst in relations.values()])
    labels = np.concatenate([np.full(len(inst), r) for r, inst in relations.items()])
    order = np.argsort(codes, kind="stable")
    return codes[order], labels[order]


def match_relation(family: int, x1, x2, x3) -> np.ndarray:
    """The relation whose instance list holds (x1, x2, x3), elementwise; -1 where there is none.

    The relations of one family have disjoint instance lists, so the match is unique.
    """
    codes, labels = _relation_table(family)
    query = encode_triples(x1, x2, x3)
    at = np.minimum(np.searchsorted(codes, query), len(codes) - 1)
    return np.where(codes[at] == query, labels[at], -1)
