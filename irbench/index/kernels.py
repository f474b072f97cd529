"""Numba kernels of :class:`irbench.index.numba.NumbaIndex`.

Build: two passes over the CSR doc matrix (count postings per term, then scatter), which
yields term-major posting lists with doc ids ascending within each term.

Search: exhaustive term-at-a-time scoring. Each worker owns one float32 accumulator of
``n_docs`` entries; a query adds ``float32(q_w) * float32(w)`` posting by posting, in
ascending term-id order (no fastmath, so no FMA contraction: the float32 sums are exactly
those of the numpy reference), then feeds the touched docs into a k-sized heap keyed on
(score desc, doc asc) and resets only what it touched. Queries are spread over workers by
stride (worker ``w`` takes queries ``w, w + n_workers, ...``); every query is scored by the
same sequential code, so results do not depend on the thread count.

Touched docs are told apart by ``acc != 0``: a sum of products > 0 is > 0 in float32, so this
is exact unless some product was <= 0 (a query weight <= 0, a quantised weight 0, an
underflow). Only then, and only if a zero score could still enter the top k, the query is
rescored with a ``seen`` byte per doc to find the touched docs that sum to exactly 0.
Selection: for ``k`` below a cutoff (:data:`irbench.index.numba.PARTITION_K`) a k-sized heap
fed while scanning; above it (the caller passes candidate buffers) all candidates are gathered,
the k-th score is located on a histogram (O(n)) and only the few candidates at or above its
bin are sorted (on keys ordering score desc, doc asc).
Candidates are enumerated two ways, chosen per query from its total posting count ``P``:
``P <= touched.shape[1]``: a list of first-touched docs (sparse); otherwise: a linear scan of
all accumulators (dense), which is cheaper when a query touches a large share of the docs;
the scan zeroes as it goes and, once the heap is full, skips 64-doc blocks with no score
above the heap's worst with one vectorisable pass.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from irbench.index.intrinsics import HAS_AVX512, compress16

# ----------------------------------------------------------------------------------- build


@njit(cache=True, nogil=True)
def count_postings(indptr, indices, data, row_start, row_stop, counts, tau=0.0):  # pragma: no cover
    """``counts[t + 1] += 1`` for every entry of rows [row_start, row_stop) with weight > 0
    and >= ``tau`` (as float32)."""
    n_terms = counts.shape[0] - 1
    cut = np.float32(tau)
    for r in range(row_start, row_stop):
        for j in range(indptr[r], indptr[r + 1]):
            t = np.int64(indices[j])
            w = np.float32(data[j])
            if w > np.float32(0.0) and w >= cut and t >= 0 and t < n_terms:
                counts[t + 1] += 1


@njit(cache=True, nogil=True)
def scatter_postings(
    indptr, indices, data, row_start, row_stop, doc0, pos, end, doc_ids, weights, scale, qmax,
    tau=0.0,
):  # pragma: no cover  # fmt: skip
    """Append the entries of rows [row_start, row_stop) with weight > 0 and >= ``tau`` as
    docs ``doc0 + row`` to the posting lists (doc ids ascending within a list);
    ``pos[t]`` = next free slot, ``end[t]`` = the end of list ``t``. ``qmax`` > 0 stores
    ``clip(rint(w / scale), 0, qmax)`` (division in float64) into integer ``weights``;
    ``qmax`` = 0 stores ``w`` as is. Returns False, at the first posting that would pass
    its list's end (nothing is written there), if the rows do not fit."""
    n_terms = pos.shape[0]
    sc = np.float64(scale)
    cut = np.float32(tau)
    for r in range(row_start, row_stop):
        for j in range(indptr[r], indptr[r + 1]):
            t = np.int64(indices[j])
            w = np.float32(data[j])
            if w > np.float32(0.0) and w >= cut and t >= 0 and t < n_terms:
                p = pos[t]
                if p >= end[t]:
                    return False
                doc_ids[p] = doc0 + r
                if qmax > 0:
                    q = np.rint(np.float64(w) / sc)
                    if q > qmax:
                        q = qmax
                    weights[p] = q
                else:
                    weights[p] = w
                pos[t] = p + 1
    return True


# ---------------------------------------------------------------------------------- search


@njit(inline="always", nogil=True)
def _worse(s1, d1, s2, d2):  # pragma: no cover
    """True if (s1, d1) ranks after (s2, d2): lower score, or same score and higher doc."""
    return s1 < s2 or (s1 == s2 and d1 > d2)


@njit(inline="always", nogil=True)
def _sift_down(hs, hd, size, i):  # pragma: no cover
    """Restore the min-heap (root = worst) below ``i``."""
    s = hs[i]
    d = hd[i]
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        r = c + 1
        if r < size and _worse(hs[r], hd[r], hs[c], hd[c]):
            c = r
        if _worse(hs[c], hd[c], s, d):
            hs[i] = hs[c]
            hd[i] = hd[c]
            i = c
        else:
            break
    hs[i] = s
    hd[i] = d


@njit(inline="always", nogil=True)
def _heap_offer(hs, hd, size, k, s, d):  # pragma: no cover
    """Offer (s, d) to a heap of capacity k holding ``size`` items; return the new size."""
    if size < k:
        i = size
        while i > 0:
            p = (i - 1) >> 1
            if _worse(s, d, hs[p], hd[p]):
                hs[i] = hs[p]
                hd[i] = hd[p]
                i = p
            else:
                break
        hs[i] = s
        hd[i] = d
        return size + 1
    if _worse(hs[0], hd[0], s, d):
        hs[0] = s
        hd[0] = d
        _sift_down(hs, hd, size, 0)
    return size


@njit(nogil=True)
def _offer_zero_scores(
    offsets, doc_ids, weights, scale, q_indices, q_data, q0, q1, k, acc, seen, hs, hd, size
):  # pragma: no cover
    """Slow path: rescore the query tracking touched docs in ``seen``, and offer the touched
    docs whose float32 sum is exactly 0 (those are invisible to the fast path, which tells
    touched from untouched docs by ``acc != 0``). ``acc`` and ``seen`` are zero on exit."""
    n_terms = offsets.shape[0] - 1
    for j in range(q0, q1):
        t = np.int64(q_indices[j])
        if t >= 0 and t < n_terms:
            qw = np.float32(q_data[j])
            for p in range(offsets[t], offsets[t + 1]):
                d = np.int64(doc_ids[p])
                acc[d] += qw * np.float32(weights[p])
                seen[d] = 1
    for j in range(q0, q1):
        t = np.int64(q_indices[j])
        if t >= 0 and t < n_terms:
            for p in range(offsets[t], offsets[t + 1]):
                d = np.int64(doc_ids[p])
                if seen[d] != 0:
                    seen[d] = 0
                    v = acc[d]
                    acc[d] = 0.0
                    if v == 0:
                        size = _heap_offer(hs, hd, size, k, v * scale, d)
    return size


@njit(inline="always", nogil=True)
def _rank_key(score_bits, d):  # pragma: no cover
    """uint64 key whose ascending order is (score desc, doc asc): the float32's bits made
    order-preserving as unsigned, inverted, above the doc index."""
    b = np.uint64(score_bits)
    if b & np.uint64(0x80000000):
        b = b ^ np.uint64(0xFFFFFFFF)
    else:
        b = b ^ np.uint64(0x80000000)
    return ((b ^ np.uint64(0xFFFFFFFF)) << np.uint64(32)) | np.uint64(d)


@njit(nogil=True)
def _radix_sort(keys, shift0):  # pragma: no cover
    """Sort uint64 ``keys`` in place on their bits from ``shift0`` (a multiple of 8) up: a
    stable LSD radix sort, 8-bit digits, the digits' histograms counted in one pass and
    digits that every key shares skipped (numba's ``np.sort`` is several times slower on a
    few thousand keys). With ``shift0 = 32`` the keys are ordered by their high halves, ties
    in input order."""
    n = keys.shape[0]
    if n < 2:
        return
    j0 = shift0 // 8
    count = np.zeros((8 - j0, 256), dtype=np.int64)
    for i in range(n):
        x = keys[i]
        for j in range(j0, 8):
            count[j - j0, (x >> np.uint64(8 * j)) & np.uint64(255)] += 1
    tmp = np.empty(n, dtype=np.uint64)
    src = keys
    dst = tmp
    for j in range(j0, 8):
        sh = np.uint64(8 * j)
        c = count[j - j0]
        if c[(src[0] >> sh) & np.uint64(255)] == n:
            continue  # every key has this digit: the pass would not move anything
        total = 0
        for b in range(256):
            x = c[b]
            c[b] = total
            total += x
        for i in range(n):
            b = (src[i] >> sh) & np.uint64(255)
            dst[c[b]] = src[i]
            c[b] += 1
        src, dst = dst, src
    if src is not keys:
        keys[:] = src


@njit(inline="always", nogil=True)
def _bin(v, lo, inv, nbins):  # pragma: no cover
    """Histogram bin of ``v`` (monotone in v; the same float32 arithmetic at every call)."""
    b = np.int64((v - lo) * inv)
    return min(max(b, 0), nbins - 1)


@njit(nogil=True)
def _select_top(cand_s, cand_d, m, k, out_s, out_d, doc_ordered):  # pragma: no cover
    """Best-first top-k of the ``m`` candidates (distinct docs; in ascending doc order if
    ``doc_ordered``, else any order) into ``out_s``/``out_d``; returns how many were written
    (min(m, k)).

    A 4096-bin histogram of the scores locates the bin holding the k-th score (O(m)); the
    candidates above that bin and those in it are keyed (:func:`_rank_key`) and only they
    are sorted, so ties are broken by doc index exactly as a full sort would.
    """
    bits = cand_s[:m].view(np.uint32)
    if m <= k:
        keys = np.empty(m, dtype=np.uint64)
        for i in range(m):
            keys[i] = _rank_key(bits[i], cand_d[i])
    else:
        lo = cand_s[0]
        hi = cand_s[0]
        for i in range(m):
            lo = min(lo, cand_s[i])
            hi = max(hi, cand_s[i])
        nbins = 4096
        span = np.float32(hi) - np.float32(lo)
        inv = np.float32(nbins) / span if span > 0 else np.float32(0.0)
        count = np.zeros(nbins, dtype=np.int64)
        for i in range(m):
            count[_bin(cand_s[i], lo, inv, nbins)] += 1
        b = nbins - 1
        above = 0
        while above + count[b] < k:
            above += count[b]
            b -= 1
        keys = np.empty(m, dtype=np.uint64)
        j = 0
        for i in range(m):  # branch-free, as in _gather
            keys[j] = _rank_key(bits[i], cand_d[i])
            j += np.int64(_bin(cand_s[i], lo, inv, nbins) >= b)
        keys = keys[:j]
    # candidates in doc order need only the score bits sorted (the sort is stable)
    _radix_sort(keys, 32 if doc_ordered else 0)
    n = min(m, k)
    key_bits = np.empty(1, dtype=np.uint32)
    key_f = key_bits.view(np.float32)
    for i in range(n):
        key = keys[i]
        s = (key >> np.uint64(32)) ^ np.uint64(0xFFFFFFFF)
        if s & np.uint64(0x80000000):
            s = s ^ np.uint64(0x80000000)
        else:
            s = s ^ np.uint64(0xFFFFFFFF)
        key_bits[0] = np.uint32(s)
        out_s[i] = key_f[0]
        out_d[i] = np.int64(key & np.uint64(0xFFFFFFFF))
    return n


@njit(nogil=True)
def _gather_scalar(acc, scale, thr, cand_s, cand_d, d0):  # pragma: no cover
    """:func:`_gather` from doc ``d0`` on, one doc at a time.

    Branch-free: every doc is written at the next free slot, which advances only for a
    candidate (a few percent of the docs at random positions: a branch on it mispredicts;
    5x faster on an 18k-doc accumulator at k = 1000).
    """
    zero = np.float32(0.0)
    m = 0
    for d in range(d0, acc.shape[0]):
        v = acc[d]
        s = v * scale
        cand_s[m] = s
        cand_d[m] = d
        m += np.int64((s >= thr) & (v != zero))
    return m


@njit(nogil=True)
def _gather_simd(acc, scale, thr, cand_s, cand_d):  # pragma: no cover
    """:func:`_gather` 16 docs at a time with compress-stores (the tail one at a time)."""
    n16 = acc.shape[0] - acc.shape[0] % 16
    m = 0
    for d in range(0, n16, 16):
        m += compress16(acc, d, scale, thr, cand_s, cand_d, m)
    return m + _gather_scalar(acc, scale, thr, cand_s[m:], cand_d[m:], n16)


@njit(nogil=True)
def _gather(acc, scale, thr, cand_s, cand_d):  # pragma: no cover
    """Touched docs (``acc[d] != 0``) whose score ``acc[d] * scale`` is >= ``thr`` into the
    candidate buffers (ascending doc; both at least ``acc.shape[0]`` long); returns how many.

    With AVX-512, 16 docs per compress-store (3x faster than the branch-free scalar loop on
    an 18k-doc accumulator); without, the scalar loop.
    """
    if HAS_AVX512:
        return _gather_simd(acc, scale, thr, cand_s, cand_d)
    return _gather_scalar(acc, scale, thr, cand_s, cand_d, 0)


@njit(inline="always", nogil=True)
def _max_nonneg(acc):  # pragma: no cover
    """Largest of the float32 ``acc``, all >= +0 and not NaN: taken on their bit patterns,
    which order such floats as their values do (an integer max vectorises, a float max does
    not without fastmath)."""
    bits = acc.view(np.uint32)
    hi = np.uint32(0)
    for d in range(bits.shape[0]):
        hi = max(hi, bits[d])
    out = np.empty(1, dtype=np.uint32)
    out[0] = hi
    return out.view(np.float32)[0]


@njit(inline="always", nogil=True)
def _any_above(acc, b0, scale, thr):  # pragma: no cover
    """Whether one of the 64 scores ``acc[b0 : b0 + 64] * scale`` is > ``thr`` (a fixed trip
    count, which LLVM vectorises)."""
    n = np.int32(0)
    for i in range(64):
        n += np.int32(acc[b0 + i] * scale > thr)
    return n > 0


@njit(nogil=True)
def _select_dense(acc, scale, k, cand_s, cand_d, out_s, out_d):  # pragma: no cover
    """Top-k of a dense accumulator (every touched doc's sum > 0) into ``out_s``/``out_d``,
    best first; leaves ``acc`` zeroed and returns how many were written.

    A histogram of every ``step``-th score (``step = max(1, n // 8k, n // 2048)``: a sample
    of at least ``min(n, 8k, 2048)`` scores and under twice that; at k = 1000 on 18k docs
    every 8th score rather than every 2nd costs 6-7 us less a query, for 1.12x the
    candidates) gives a threshold that the sample says about ``k + 3 step sqrt(k / step)``
    docs reach; one pass gathers the docs at or above it, and only they go to
    :func:`_select_top`. If fewer than ``k`` reach it (an
    unlucky sample), all touched docs are gathered instead: the result is exact either way.
    """
    n = acc.shape[0]
    zero = np.float32(0.0)
    hi = _max_nonneg(acc) * scale
    m = 0
    if hi > zero:
        step = max(1, n // (8 * k), n // 2048)
        need = k / step
        need = need + 3.0 * np.sqrt(need) + 2.0
        nbins = 1024
        inv = np.float32(nbins) / hi
        # four interleaved histograms: consecutive samples mostly fall in the same low bins,
        # and one array would chain each increment on the previous one's store
        count4 = np.zeros((4, nbins), dtype=np.int32)
        i = 0
        for d in range(0, n, step):  # untouched docs land in bin 0: it never sets thr
            count4[i & 3, _bin(acc[d] * scale, zero, inv, nbins)] += 1
            i += 1
        b = nbins - 1
        above = np.int64(count4[0, b] + count4[1, b] + count4[2, b] + count4[3, b])
        while b > 0 and above < need:
            b -= 1
            above += count4[0, b] + count4[1, b] + count4[2, b] + count4[3, b]
        thr = np.float32(b) / inv if b > 0 else zero
        m = _gather(acc, scale, thr, cand_s, cand_d)
        if m < k and thr > zero:
            m = _gather(acc, scale, zero, cand_s, cand_d)
    else:  # no touched doc, or all their scores underflow to 0 (they tie at 0)
        m = _gather(acc, scale, zero, cand_s, cand_d)
    for d in range(n):
        acc[d] = zero
    return _select_top(cand_s, cand_d, m, k, out_s, out_d, True)


@njit(nogil=True)
def _search_one(
    offsets,
    doc_ids,
    weights,
    scale,
    q_indices,
    q_data,
    q0,
    q1,
    k,
    acc,
    seen,
    touched,
    cand_s,
    cand_d,
    hs,
    hd,
    out_s,
    out_d,
):  # pragma: no cover
    n_terms = offsets.shape[0] - 1
    n_docs = acc.shape[0]
    total = np.int64(0)
    for j in range(q0, q1):
        t = np.int64(q_indices[j])
        if t >= 0 and t < n_terms:
            total += offsets[t + 1] - offsets[t]
    if total == 0 or k == 0:
        return
    dense = total > touched.shape[0]
    zero = np.float32(0.0)
    n_nonpos = np.int64(0)  # products <= 0: only then can a touched doc sum to exactly 0
    n_touched = np.int64(0)
    for j in range(q0, q1):
        t = np.int64(q_indices[j])
        if t < 0 or t >= n_terms:
            continue
        qw = np.float32(q_data[j])
        b = offsets[t]
        e = offsets[t + 1]
        if dense:
            pu = np.uint64(b)
            eu = np.uint64(e)
            while pu < eu:
                d = doc_ids[pu]  # unsigned: no negative-index wraparound code in the loop
                x = qw * np.float32(weights[pu])
                acc[d] += x
                n_nonpos += np.int64(x <= zero)
                pu += np.uint64(1)
        else:
            for p in range(b, e):
                # branch-free: always write, advance on a first touch (acc still 0); a doc
                # whose sum returned to 0 may be listed twice, the selection below skips it
                d = doc_ids[p]
                x = qw * np.float32(weights[p])
                a = acc[d]
                touched[n_touched] = d
                n_touched += np.int64(a == zero)
                acc[d] = a + x
                n_nonpos += np.int64(x <= zero)
    # select among docs with a nonzero sum (= touched docs unless n_nonpos > 0)
    size = 0
    thr_s = zero  # the heap's worst entry, valid once size == k
    thr_d = np.int64(0)
    if cand_s.shape[0] > 0:
        # large k: gather all candidates, partition around the k-th score, sort k
        m = 0
        if dense and n_nonpos == 0:
            _select_dense(acc, scale, k, cand_s, cand_d, out_s, out_d)
            return
        if dense:
            m = _gather(acc, scale, np.float32(-np.inf), cand_s, cand_d)
            for d in range(n_docs):
                acc[d] = zero
        else:
            for i in range(n_touched):
                d = np.int64(touched[i])
                v = acc[d]
                if v != zero:
                    acc[d] = zero
                    cand_s[m] = v * scale
                    cand_d[m] = d
                    m += 1
        # dense: the candidates come from _gather, in doc order; sparse: in touched order
        size = _select_top(cand_s, cand_d, m, k, out_s, out_d, dense)
        if not (n_nonpos > 0 and (size < k or out_s[size - 1] <= zero)):
            return
        # zero-sum matches may still enter: continue through the heap
        n_sel = size
        size = 0
        for i in range(n_sel):
            size = _heap_offer(hs, hd, size, k, out_s[i], out_d[i])
        size = _offer_zero_scores(
            offsets, doc_ids, weights, scale, q_indices, q_data, q0, q1, k, acc, seen,
            hs, hd, size,
        )  # fmt: skip
    elif dense:
        # blocks of 64 docs; once the heap is full, a block with no score > the worst entry
        # is skipped (a tie cannot enter either: the scan is in ascending doc order)
        # (fixed trip counts from b0 = blk * 64: LLVM vectorises the test and the zeroing;
        # with b0 from a stepped range and a variable block end, 5x slower)
        n_full = n_docs // 64
        for blk in range(n_full + 1):
            b0 = blk * 64
            if size == k and blk < n_full and not _any_above(acc, b0, scale, thr_s):
                for i in range(64):
                    acc[b0 + i] = zero
                continue
            b1 = min(b0 + 64, n_docs)
            # the threshold test first: once the heap is full it is nearly always false (a
            # well-predicted branch), where ``v != 0`` alone would be a coin toss per doc; a
            # score equal to the worst entry's never enters (that doc index is lower)
            for d in range(b0, b1):
                v = acc[d]
                s = v * scale
                if (size < k or s > thr_s) and v != zero:
                    size = _heap_offer(hs, hd, size, k, s, np.int64(d))
                    thr_s = hs[0]
            for d in range(b0, b1):
                acc[d] = zero
    else:
        for i in range(n_touched):
            d = np.int64(touched[i])
            v = acc[d]
            if v != zero:
                acc[d] = zero
                s = v * scale
                if size == k and (s < thr_s or (s == thr_s and d > thr_d)):
                    continue
                size = _heap_offer(hs, hd, size, k, s, d)
                thr_s = hs[0]
                thr_d = hd[0]
    if cand_s.shape[0] == 0 and n_nonpos > 0 and (size < k or hs[0] <= zero):
        size = _offer_zero_scores(
            offsets,
            doc_ids,
            weights,
            scale,
            q_indices,
            q_data,
            q0,
            q1,
            k,
            acc,
            seen,
            hs,
            hd,
            size,
        )
    # pop the worst to the back: row ends up best-first
    while size > 0:
        size -= 1
        out_s[size] = hs[0]
        out_d[size] = hd[0]
        hs[0] = hs[size]
        hd[0] = hd[size]
        _sift_down(hs, hd, size, 0)


@njit(cache=True, nogil=True, parallel=True)
def search_batch(
    offsets,
    doc_ids,
    weights,
    scale,
    q_indptr,
    q_indices,
    q_data,
    k,
    acc,
    seen,
    touched,
    cand_s,
    cand_d,
    heap_s,
    heap_d,
    out_s,
    out_d,
):  # pragma: no cover
    """Top-k of every query row into ``out_s``/``out_d`` (pre-filled with -inf / -1).

    ``acc``/``seen`` must be zero on entry and are zero again on return; one row per worker.
    """
    n_workers = acc.shape[0]
    nq = q_indptr.shape[0] - 1
    for w in prange(n_workers):
        for qi in range(w, nq, n_workers):
            _search_one(
                offsets,
                doc_ids,
                weights,
                scale,
                q_indices,
                q_data,
                q_indptr[qi],
                q_indptr[qi + 1],
                k,
                acc[w],
                seen[w],
                touched[w],
                cand_s[w],
                cand_d[w],
                heap_s[w],
                heap_d[w],
                out_s[qi],
                out_d[qi],
            )


@njit(cache=True, nogil=True)
def search_batch_serial(
    offsets,
    doc_ids,
    weights,
    scale,
    q_indptr,
    q_indices,
    q_data,
    k,
    acc,
    seen,
    touched,
    cand_s,
    cand_d,
    heap_s,
    heap_d,
    out_s,
    out_d,
):  # pragma: no cover
    """:func:`search_batch` on one worker without the parallel launch (small batches)."""
    nq = q_indptr.shape[0] - 1
    for qi in range(nq):
        _search_one(
            offsets,
            doc_ids,
            weights,
            scale,
            q_indices,
            q_data,
            q_indptr[qi],
            q_indptr[qi + 1],
            k,
            acc[0],
            seen[0],
            touched[0],
            cand_s[0],
            cand_d[0],
            heap_s[0],
            heap_d[0],
            out_s[qi],
            out_d[qi],
        )
