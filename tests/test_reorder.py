"""BP doc reordering (irbench.index.reorder) against brute force and planted clusters."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from irbench.index.reorder import bp_order, log_gap_cost, move_gains


def _cost(d: np.ndarray, n: int) -> float:
    """Brute-force log-gap estimate of a half of nominal size n:
    sum_t deg_t * log2(n / (deg_t + 1))."""
    deg = (d > 0).sum(axis=0)
    return float((deg * (np.log2(n) - np.log2(deg + 1.0))).sum())


def test_move_gains_match_brute_force():
    rng = np.random.default_rng(3)
    docs = sp.random(23, 15, density=0.3, format="csr", random_state=rng)
    d = docs.toarray()
    perm = rng.permutation(23).astype(np.int64)
    lo, mid, hi = 2, 11, 21  # a sub-range, halves of 9 and 10 docs
    gains = np.zeros(23)
    log_tab = np.r_[0.0, np.log2(np.arange(1, 25, dtype=np.float64))]
    deg_a = np.zeros(15, dtype=np.int64)
    deg_b = np.zeros(15, dtype=np.int64)
    indptr, indices = docs.indptr.astype(np.int64), docs.indices.astype(np.int64)
    move_gains(perm, lo, mid, hi, indptr, indices, deg_a, deg_b, log_tab, gains)
    a, b = list(perm[lo:mid]), list(perm[mid:hi])
    n_a, n_b = len(a), len(b)
    for i in range(lo, hi):
        doc = perm[i]
        a2 = [x for x in a if x != doc] + ([] if doc in a else [doc])
        b2 = [x for x in b if x != doc] + ([] if doc in b else [doc])
        # a move is costed with each side's nominal size, as swaps keep the sizes
        before = _cost(d[a], n_a) + _cost(d[b], n_b)
        after = _cost(d[a2], n_a) + _cost(d[b2], n_b)
        assert gains[i] == pytest.approx(before - after, abs=1e-9)


def test_bp_groups_planted_clusters():
    rng = np.random.default_rng(5)
    n_clusters, size, pool = 8, 64, 40
    rows, label = [], []
    for c in range(n_clusters):
        for _ in range(size):
            terms = c * pool + rng.choice(pool, 12, replace=False)
            rows.append(terms)
            label.append(c)
    shuffle = rng.permutation(len(rows))
    indptr = np.r_[0, np.cumsum([len(rows[i]) for i in shuffle])]
    indices = np.concatenate([np.sort(rows[i]) for i in shuffle])
    docs = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(rows), 8 * pool))
    labels = np.array(label)[shuffle]
    order = bp_order(docs)
    assert sorted(order) == list(range(len(rows)))
    np.testing.assert_array_equal(order, bp_order(docs))  # deterministic
    same = (labels[order][1:] == labels[order][:-1]).mean()
    assert same > 0.95 > (labels[1:] == labels[:-1]).mean() + 0.5
    assert log_gap_cost(docs[order]) < 0.5 * log_gap_cost(docs)


def test_log_gap_cost_brute_force():
    docs = sp.csr_matrix(np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0]], dtype=float))
    # term 0: ids 0, 2, 4 -> gaps 1, 2, 2; term 1: ids 1, 2 -> gaps 2, 1
    assert log_gap_cost(docs) == pytest.approx(np.log2([1, 2, 2, 2, 1]).mean())


def test_bp_small_inputs():
    assert list(bp_order(sp.csr_matrix((3, 4)))) == [0, 1, 2]
    docs = sp.random(40, 10, density=0.2, format="csr", random_state=1)
    assert sorted(bp_order(docs, leaf=1)) == list(range(40))
