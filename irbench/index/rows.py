"""Numba pass over search results: padding marked and row order checked in one sweep.

Used by :class:`irbench.index.faiss.FaissIndex`, whose rows come from FAISS best first but with
ties in arbitrary order and its own padding values. The numpy version of this check made up
to a fifth of a fast IVF search's time at k = 1000 (an ad hoc micro-benchmark; the end-to-end
effect is what ``irbench bench dense`` measures, docs/benchmarks.md "Dense search").
"""

from __future__ import annotations

import numpy as np
from numba import njit

_LAST = np.iinfo(np.int64).max  # the order key of padding: after every doc


@njit(cache=True, nogil=True)
def settle_rows(scores, idx, pad, negate, bad):  # pragma: no cover
    """In place over ``scores`` (float32 ``[nq, k]``) and ``idx`` (int64): scores negated
    when ``negate`` (L2 distances); hits with ``idx < 0`` or ``score <= pad`` become
    ``(-inf, -1)``. ``bad[r]`` is set True where row ``r`` is not ordered by (score desc,
    idx asc) with the padding last, NaN scores counting as out of order; False elsewhere."""
    nq, k = scores.shape
    for r in range(nq):
        out_of_order = False
        prev_s = np.float32(0.0)
        prev_key = 0
        for j in range(k):
            s = scores[r, j]
            if negate:
                s = -s
            i = idx[r, j]
            if i < 0 or s <= pad:
                s = -np.inf
                idx[r, j] = -1
                key = _LAST
            else:
                key = i
            scores[r, j] = s
            if j > 0 and not (s < prev_s or (s == prev_s and key >= prev_key)):
                out_of_order = True
            prev_s = s
            prev_key = key
        bad[r] = out_of_order
