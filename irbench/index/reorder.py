"""Doc-id reordering by recursive graph bisection (BP; Dhulipala et al., KDD 2016).

Docs that share terms get nearby ids, which is what block-max bounds (and compression) feed
on. The doc set is halved recursively down to ``leaf`` docs; at each level, for ``iters``
rounds, every doc gets the gain in the log-gap cost estimate
``sum_t deg_t * log2(n_side / (deg_t + 1))`` of moving to the other half, both halves are
sorted by gain and pairs are swapped while their summed gain is positive. Used by
``irbench bench bounds --reorder bp``; PISA and BMP reorder their indexes the same way.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit


@njit(cache=True)
def move_gains(
    perm, lo, mid, hi, indptr, indices, deg_a, deg_b, log_tab, gains
):  # pragma: no cover
    """Fill ``deg_a``/``deg_b`` (term degrees of halves ``perm[lo:mid]`` and ``perm[mid:hi]``)
    and ``gains[i]`` for ``i`` in [lo, hi): the cost saved by moving doc ``perm[i]`` to the
    other half. ``log_tab[x] = log2(x)``; entries of terms outside the range are left as
    they are."""
    for i in range(lo, hi):
        d = perm[i]
        for p in range(indptr[d], indptr[d + 1]):
            deg_a[indices[p]] = 0
            deg_b[indices[p]] = 0
    for i in range(lo, hi):
        d = perm[i]
        side = deg_a if i < mid else deg_b
        for p in range(indptr[d], indptr[d + 1]):
            side[indices[p]] += 1
    la = log_tab[mid - lo]
    lb = log_tab[hi - mid]
    for i in range(lo, hi):
        d = perm[i]
        from_a = i < mid
        g = 0.0
        for p in range(indptr[d], indptr[d + 1]):
            a = deg_a[indices[p]]
            b = deg_b[indices[p]]
            a2 = a - 1 if from_a else a + 1
            b2 = b + 1 if from_a else b - 1
            before = a * (la - log_tab[a + 1]) + b * (lb - log_tab[b + 1])
            after = a2 * (la - log_tab[a2 + 1]) + b2 * (lb - log_tab[b2 + 1])
            g += before - after
        gains[i] = g


@njit(cache=True)
def _bisect(perm, indptr, indices, iters, leaf, deg_a, deg_b, log_tab, gains):  # pragma: no cover
    # explicit stack of [lo, hi) ranges instead of recursion
    stack = [(np.int64(0), np.int64(perm.shape[0]))]
    while len(stack) > 0:
        lo, hi = stack.pop()
        if hi - lo <= leaf:
            continue
        mid = lo + (hi - lo) // 2
        for _ in range(iters):
            move_gains(perm, lo, mid, hi, indptr, indices, deg_a, deg_b, log_tab, gains)
            oa = np.argsort(-gains[lo:mid], kind="mergesort") + lo
            ob = np.argsort(-gains[mid:hi], kind="mergesort") + mid
            da = perm[oa]
            db = perm[ob]
            swaps = 0
            for j in range(min(oa.shape[0], ob.shape[0])):
                if gains[oa[j]] + gains[ob[j]] <= 0.0:
                    break
                da[j], db[j] = db[j], da[j]
                swaps += 1
            perm[lo:mid] = da
            perm[mid:hi] = db
            if swaps == 0:
                break
        stack.append((mid, hi))
        stack.append((lo, mid))


def bp_order(docs: sp.csr_matrix, iters: int = 20, leaf: int = 16) -> np.ndarray:
    """A doc order (``docs[order]`` is the reordered matrix) from recursive graph bisection:
    ``iters`` swap rounds per level, halving down to ``leaf`` docs. Deterministic."""
    docs = sp.csr_matrix(docs)
    n = docs.shape[0]
    perm = np.arange(n, dtype=np.int64)
    if n <= leaf:
        return perm
    log_tab = np.zeros(n + 2)
    log_tab[1:] = np.log2(np.arange(1, n + 2, dtype=np.float64))
    _bisect(
        perm,
        docs.indptr.astype(np.int64),
        docs.indices.astype(np.int64),
        int(iters),
        max(int(leaf), 1),
        np.zeros(docs.shape[1], dtype=np.int64),
        np.zeros(docs.shape[1], dtype=np.int64),
        log_tab,
        np.zeros(n, dtype=np.float64),
    )
    return perm


def log_gap_cost(docs: sp.csr_matrix) -> float:
    """Mean log2 of the gaps between consecutive doc ids in the posting lists (first ids
    count from -1): the bits per posting an ideal gap coder needs, what BP lowers."""
    csc = sp.csc_matrix(docs)
    csc.sort_indices()
    ids = csc.indices.astype(np.int64)
    gaps = np.diff(ids, prepend=-1)
    starts = csc.indptr[:-1][np.diff(csc.indptr) > 0]
    gaps[starts] = ids[starts] + 1
    return float(np.log2(gaps).mean()) if gaps.size else 0.0
