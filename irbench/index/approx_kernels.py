"""Numba kernels of :class:`irbench.index.approx.ApproxIndex` (a Seismic-class index).

Build, per term (``prange`` over workers, terms strided over workers; every term is built
by the same sequential code, so the layout does not depend on the thread count):

1. *static pruning*: keep the ``n_postings`` highest-weight postings (ties: lower doc id);
2. *clustering*: ``c = ceil(centroid_fraction * n)`` centroids are picked from the kept
   postings (one per stratum of the doc-id order, at a hashed offset), every kept doc joins
   the centroid with the highest sketch dot product -- the centroid's ``cluster_terms``
   highest-weight terms against the doc's ``doc_cut`` highest, the posting's own term left
   out -- and docs similar to no centroid go to the centroid of their stratum. Each
   non-empty cluster is a block, docs ascending within it;
3. *summaries* (one thread per every n-th block): the component-wise max of the block's doc vectors,
   cut to its highest entries holding ``summary_energy`` of its L1 mass (the cut is found
   on a 1024-bin histogram: a few entries beyond the fewest may be kept) and
   quantised to uint8 by rounding *up*, ``q = ceil(v / scale)`` with
   ``scale = max / 255``: an unpruned summary (energy 1.0) never underestimates a doc.

Search, per query (``prange`` over workers, queries strided over workers): scatter the
positive query weights into a dense per-worker array; visit the ``query_cut`` highest-weight
query terms in decreasing weight order; for each, compute ``<q, summary>`` of all its
blocks. The first ``sorted_terms`` of them visit their blocks best first, the others in
stored order (Seismic's search: the first term sorted); once the heap holds k docs, a block
is skipped when its ``<q, summary>`` is below ``heap_factor`` times the k-th score
(Seismic's rule: ``heap_factor < 1`` compensates for lossy summaries). A doc of a visited
block not seen before is first bounded from its *packed row* (one uint32 per entry: the term
id in the high bits, the weight rounded up to a multiple of a global scale in the low bits,
17 for a BERT vocabulary, see :func:`pack_forward`); only if that bound reaches the k-th
score is it scored exactly (``sum over the doc's terms of q[t] * w``, float32 weights,
ascending term id: bit-identical to the exact index's float32 sums for non-negative query
weights). The packed rows are 4 bytes per entry against 6 for term + float32 weight, and
the bound is tight: on the 1M-doc benchmark corpus about 60 of the 8,000 docs a query
visits reach the exact step.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from irbench.index.intrinsics import prefetch
from irbench.index.kernels import _heap_offer, _sift_down, _worse

# --------------------------------------------------------------------------------- build


@njit(cache=True, nogil=True)
def positive_row_counts(indptr, data, out):  # pragma: no cover
    """``out[r]`` = entries of row ``r`` with weight > 0 (as float32)."""
    for r in range(indptr.shape[0] - 1):
        n = 0
        for j in range(indptr[r], indptr[r + 1]):
            n += np.float32(data[j]) > np.float32(0.0)
        out[r] = n


@njit(cache=True, nogil=True)
def append_positive(indptr, indices, data, start, stop, out_indices, out_data):  # pragma: no cover
    """Copy the entries of weight > 0 (as float32), row after row, to ``out_*[start:stop]``;
    returns the next free position, or -1 (after writing nothing past ``stop``) if they do
    not fit."""
    p = start
    for r in range(indptr.shape[0] - 1):
        for j in range(indptr[r], indptr[r + 1]):
            w = np.float32(data[j])
            if w > np.float32(0.0):
                if p >= stop:
                    return -1
                out_indices[p] = indices[j]
                out_data[p] = w
                p += 1
    return p


@njit(cache=True, nogil=True)
def kth_smallest_positive(data, k):  # pragma: no cover
    """The ``k``-th smallest (0-based) of ``data`` (float32, all > 0), in two passes of
    16-bit radix counting on the bit patterns (monotonic in the value for positive floats):
    no copy, unlike ``np.partition``."""
    bits = data.view(np.uint32)
    hist = np.zeros(65536, dtype=np.int64)
    for i in range(bits.shape[0]):
        hist[bits[i] >> 16] += 1
    hi = 0
    while hist[hi] <= k:
        k -= hist[hi]
        hi += 1
    hist[:] = 0
    for i in range(bits.shape[0]):
        if bits[i] >> 16 == hi:
            hist[bits[i] & 0xFFFF] += 1
    lo = 0
    while hist[lo] <= k:
        k -= hist[lo]
        lo += 1
    out = np.empty(1, dtype=np.uint32)
    out[0] = (np.uint32(hi) << np.uint32(16)) | np.uint32(lo)
    return out.view(np.float32)[0]


@njit(inline="always", nogil=True)
def _row_top(indptr, indices, data, d, m, out_terms, out_w):  # pragma: no cover
    """Doc ``d``'s ``m`` highest-weight terms (ties: lower term id), ascending term id, into
    ``out_terms`` / ``out_w``; ``out_terms`` padded with -1."""
    b = indptr[d]
    e = indptr[d + 1]
    n = e - b
    if n <= m:
        for i in range(n):
            out_terms[i] = indices[b + i]
            out_w[i] = data[b + i]
    else:
        order = np.argsort(-data[b:e], kind="mergesort")[:m]
        order.sort()
        for i in range(m):
            out_terms[i] = indices[b + order[i]]
            out_w[i] = data[b + order[i]]
        n = m
    for i in range(n, out_terms.shape[0]):
        out_terms[i] = -1


@njit(cache=True, nogil=True, parallel=True)
def doc_sketches(indptr, indices, data, m, out_terms, out_w):  # pragma: no cover
    """Each doc's ``m`` highest-weight terms (ties: lower term id), ascending term id;
    ``out_terms`` padded with -1."""
    for d in prange(indptr.shape[0] - 1):
        _row_top(indptr, indices, data, d, m, out_terms[d], out_w[d])


@njit(inline="always", nogil=True)
def _mix(x):  # pragma: no cover
    """A cheap integer hash (non-negative int64)."""
    x = (x ^ (x >> 16)) * 0x45D9F3B
    x = (x ^ (x >> 16)) * 0x45D9F3B
    x = x ^ (x >> 16)
    return x & 0x7FFFFFFF


@njit(nogil=True)
def _cluster_term(
    t,
    sel,
    c,
    fwd_indptr,
    fwd_indices,
    fwd_data,
    c_terms,
    c_w,
    doc_terms,
    doc_w,
    slot,
    slot_terms,
    cptr,
    cent,
    cw,
    sims,
    listed,
    touched,
    assign,
):  # pragma: no cover
    """Assign each doc of ``sel`` (ascending) to one of ``c`` centroids picked from it.

    A centroid is its doc's sketch: its ``c_terms.shape[1]`` heaviest terms, computed here
    into ``c_terms`` / ``c_w`` (rows ``[0, c)``) from the forward index.
    """
    n = sel.shape[0]
    m = c_terms.shape[1]
    stride = n // c
    for j in range(c):
        d = sel[(j * n) // c + _mix(np.int64(t) * 7919 + j) % stride]
        _row_top(fwd_indptr, fwd_indices, fwd_data, d, m, c_terms[j], c_w[j])
    # centroid sketches -> a small inverted index keyed by slot (first-seen term order)
    n_slots = 0
    for j in range(c):
        for s in range(m):
            term = c_terms[j, s]
            if term < 0:
                break
            if term == t:
                continue
            if slot[term] < 0:
                slot[term] = n_slots
                slot_terms[n_slots] = term
                cptr[n_slots + 1] = 0
                n_slots += 1
            cptr[slot[term] + 1] += 1
    for i in range(n_slots):
        cptr[i + 1] += cptr[i]
    fill = cptr[:n_slots].copy()
    for j in range(c):
        for s in range(m):
            term = c_terms[j, s]
            if term < 0:
                break
            if term == t:
                continue
            p = fill[slot[term]]
            cent[p] = j
            cw[p] = c_w[j, s]
            fill[slot[term]] = p + 1
    # each doc joins its most similar centroid (ties: lower centroid), by its own heaviest
    # ``doc_terms.shape[1]`` terms
    m_doc = doc_terms.shape[1]
    for i in range(n):
        d = sel[i]
        n_t = 0
        for s in range(m_doc):
            term = doc_terms[d, s]
            if term < 0:
                break
            if term == t:
                continue
            sl = slot[term]
            if sl < 0:
                continue
            w = doc_w[d, s]
            for p in range(cptr[sl], cptr[sl + 1]):
                j = cent[p]
                # branch-free: listed, not sims[j] == 0 (a product may underflow to 0)
                touched[n_t] = j
                n_t += listed[j] == 0
                listed[j] = 1
                sims[j] += w * cw[p]
        best = -1
        best_v = np.float32(0.0)
        for r in range(n_t):
            j = touched[r]
            v = sims[j]
            sims[j] = 0
            listed[j] = 0
            if v > best_v or (v == best_v and best >= 0 and j < best):
                best = j
                best_v = v
        assign[i] = best if best >= 0 else (i * c) // n
    for i in range(n_slots):
        slot[slot_terms[i]] = -1


@njit(cache=True, nogil=True, parallel=True)
def build_blocks(
    offsets,
    doc_ids,
    weights,
    fwd_indptr,
    fwd_indices,
    fwd_data,
    m,
    doc_terms,
    doc_w,
    n_workers,
    kept_offsets,
    cap_offsets,
    out_docs,
    blk_count,
    blk_sizes,
):  # pragma: no cover
    """Prune and cluster every term's postings (``offsets``/``doc_ids``/``weights``: the
    candidates, at least the kept ones, term-major); centroids are ``m``-term sketches.

    Term ``t`` writes its kept docs, block after block, to
    ``out_docs[kept_offsets[t]:kept_offsets[t + 1]]``, its number of blocks to
    ``blk_count[t]`` and their sizes to ``blk_sizes[cap_offsets[t]:]`` (``cap_offsets`` is
    the prefix sum of each term's centroid count, an upper bound on its block count).
    """
    n_terms = offsets.shape[0] - 1
    max_c = 1
    for t in range(n_terms):
        max_c = max(max_c, cap_offsets[t + 1] - cap_offsets[t])
    for w in prange(n_workers):
        slot = np.full(n_terms, -1, dtype=np.int32)
        c_terms = np.empty((max_c, m), dtype=np.int32)
        c_w = np.empty((max_c, m), dtype=np.float32)
        slot_terms = np.empty(max_c * m, dtype=np.int64)
        cptr = np.zeros(max_c * m + 1, dtype=np.int64)
        cent = np.empty(max_c * m, dtype=np.int64)
        cw = np.empty(max_c * m, dtype=np.float32)
        sims = np.zeros(max_c, dtype=np.float32)
        listed = np.zeros(max_c, dtype=np.uint8)
        touched = np.empty(max_c + 1, dtype=np.int64)
        counts = np.zeros(max_c + 1, dtype=np.int64)
        for t in range(w, n_terms, n_workers):
            b = offsets[t]
            df = offsets[t + 1] - b
            n = kept_offsets[t + 1] - kept_offsets[t]
            c = cap_offsets[t + 1] - cap_offsets[t]
            if n == 0:
                blk_count[t] = 0
                continue
            if df > n:  # static pruning: top-n by weight, ties by doc id, then doc order
                order = np.argsort(-weights[b : b + df], kind="mergesort")[:n]
                sel = np.empty(n, dtype=np.int64)
                for i in range(n):
                    sel[i] = doc_ids[b + order[i]]
                sel.sort()
            else:
                sel = doc_ids[b : b + df].astype(np.int64)
            o = kept_offsets[t]
            if c <= 1:
                for i in range(n):
                    out_docs[o + i] = sel[i]
                blk_count[t] = 1
                blk_sizes[cap_offsets[t]] = n
                continue
            assign = np.empty(n, dtype=np.int64)
            _cluster_term(
                t,
                sel,
                c,
                fwd_indptr,
                fwd_indices,
                fwd_data,
                c_terms,
                c_w,
                doc_terms,
                doc_w,
                slot,
                slot_terms,
                cptr,
                cent,
                cw,
                sims,
                listed,
                touched,
                assign,
            )
            # counting sort by cluster (stable: docs stay ascending within a block)
            for j in range(c + 1):
                counts[j] = 0
            for i in range(n):
                counts[assign[i] + 1] += 1
            nb = 0
            for j in range(c):
                if counts[j + 1] > 0:
                    blk_sizes[cap_offsets[t] + nb] = counts[j + 1]
                    nb += 1
            blk_count[t] = nb
            for j in range(c):
                counts[j + 1] += counts[j]
            for i in range(n):
                j = assign[i]
                out_docs[o + counts[j]] = sel[i]
                counts[j] += 1


@njit(nogil=True)
def _block_max(fwd_indptr, fwd_indices, fwd_data, docs, b0, b1, dense, terms):  # pragma: no cover
    """Component-wise max of the docs ``docs[b0:b1]`` (positive weights) into ``dense``;
    returns the number of distinct terms, listed in ``terms`` (first-seen order; one slot
    longer than the vocabulary). Branch-free: whether a term is new or larger is a coin flip
    to the branch predictor, so every entry writes its term and only a new one advances."""
    nt = 0
    for p in range(b0, b1):
        d = docs[p]
        for e in range(fwd_indptr[d], fwd_indptr[d + 1]):
            term = fwd_indices[e]
            v = fwd_data[e]
            old = dense[term]
            terms[nt] = term
            nt += old == 0
            dense[term] = max(v, old)
    return nt


@njit(nogil=True)
def _energy_threshold(dense, terms, nt, energy, mass, count):  # pragma: no cover
    """A value cut ``tau``: the entries >= tau hold >= ``energy`` of the L1 mass.

    Found on a ``len(mass)``-bin histogram over [0, max] (no sort): ``tau`` is the lower edge
    of the bin where the mass counted from the top reaches the target, so the kept set is the
    fewest highest entries plus, at most, the rest of that one bin. Returns
    ``(tau, number of entries >= tau)``. ``mass``/``count`` are zero on entry and on return
    (only the bins used are reset: a block has far fewer entries than a memset of the bins).
    """
    if nt == 0:
        return np.float32(np.inf), 0
    vmax = np.float32(0.0)
    vmin = dense[terms[0]]
    total = 0.0
    for i in range(nt):
        v = dense[terms[i]]
        total += v
        vmax = max(vmax, v)
        vmin = min(vmin, v)
    if energy >= 1.0:
        return vmin, nt
    nbins = mass.shape[0]
    width = np.float64(vmax) / nbins
    for i in range(nt):
        v = np.float64(dense[terms[i]])
        b = min(int(v / width), nbins - 1)
        mass[b] += v
        count[b] += 1
    target = energy * total
    acc = 0.0
    kept = 0
    b = nbins - 1
    while b > 0:
        acc += mass[b]
        kept += count[b]
        if acc >= target:
            break
        b -= 1
    for i in range(nt):
        v = np.float64(dense[terms[i]])
        c = min(int(v / width), nbins - 1)
        mass[c] = 0.0
        count[c] = 0
    if b == 0:
        return vmin, nt
    tau = np.float32(b * width)
    kept = 0  # recount with the very predicate summarise_blocks uses
    for i in range(nt):
        kept += dense[terms[i]] >= tau
    return tau, kept


@njit(cache=True, nogil=True)
def summarise_blocks(
    fwd_indptr, fwd_indices, fwd_data, blk_ptr, docs, n_terms, energy, slack, w, n_workers,
    out_start, out_size, out_scale,
):  # pragma: no cover  # fmt: skip
    """Summaries of the blocks ``w, w + n_workers, ...``, each block's max computed once:
    the entries >= the block's energy cut (``_energy_threshold``), ascending term id, uint8
    rounded up, appended to this worker's own buffers ``(terms, values)``, which are
    returned (their first ``sum(out_size)`` entries); ``out_start[blk]`` is the block's
    offset in them, ``out_size[blk]`` its length and ``out_scale[blk] = (max / 255) * slack``
    (``slack``, slightly above 1, absorbs float32 rounding in the bound so that an unpruned
    summary never underestimates a doc's score)."""
    n_blocks = blk_ptr.shape[0] - 1
    dense = np.zeros(n_terms, dtype=np.float32)
    terms = np.empty(n_terms + 1, dtype=np.int64)
    mass = np.zeros(1024, dtype=np.float64)
    count = np.zeros(1024, dtype=np.int64)
    buf_t = np.empty(1 << 16, dtype=fwd_indices.dtype)
    buf_v = np.empty(1 << 16, dtype=np.uint8)
    n = 0
    for blk in range(w, n_blocks, n_workers):
        nt = _block_max(
            fwd_indptr, fwd_indices, fwd_data, docs, blk_ptr[blk], blk_ptr[blk + 1], dense, terms
        )
        tau, _ = _energy_threshold(dense, terms, nt, energy, mass, count)
        out_start[blk] = n
        out_scale[blk] = 0
        if nt > buf_t.shape[0] - n:  # room for every entry: grow (amortised doubling)
            cap = max(2 * buf_t.shape[0], n + nt)
            t2 = np.empty(cap, dtype=buf_t.dtype)
            v2 = np.empty(cap, dtype=np.uint8)
            t2[:n] = buf_t[:n]
            v2[:n] = buf_v[:n]
            buf_t, buf_v = t2, v2
        n_sel = 0
        vmax = 0.0
        for i in range(nt):
            v = dense[terms[i]]
            if v >= tau:
                buf_t[n + n_sel] = terms[i]
                n_sel += 1
                vmax = max(vmax, np.float64(v))
        buf_t[n : n + n_sel].sort()
        scale = vmax / 255.0
        for i in range(n, n + n_sel):
            q = np.ceil(np.float64(dense[buf_t[i]]) / scale) if scale > 0 else 0.0
            buf_v[i] = np.uint8(min(max(q, 1.0), 255.0))
        if n_sel > 0:
            out_scale[blk] = np.float32(scale * slack)
        out_size[blk] = n_sel
        n += n_sel
        for i in range(nt):
            dense[terms[i]] = 0
    return buf_t, buf_v


@njit(cache=True, nogil=True)
def place_summaries(
    w, n_workers, start, sum_ptr, buf_t, buf_v, sum_terms, sum_vals
):  # pragma: no cover
    """Copy worker ``w``'s block summaries from its buffers to their places ``sum_ptr``."""
    for blk in range(w, sum_ptr.shape[0] - 1, n_workers):
        s0 = sum_ptr[blk]
        b0 = start[blk]
        for i in range(sum_ptr[blk + 1] - s0):
            sum_terms[s0 + i] = buf_t[b0 + i]
            sum_vals[s0 + i] = buf_v[b0 + i]


@njit(cache=True, nogil=True, parallel=True)
def count_summary_components(term_blocks, sum_ptr, sum_terms, n_workers, out):  # pragma: no cover
    """``out[t]`` = distinct components over the summaries of term ``t``'s blocks."""
    n_lists = term_blocks.shape[0] - 1
    for w in prange(n_workers):
        seen_by = np.full(out.shape[0], -1, dtype=np.int64)  # the last list that saw a component
        for t in range(w, n_lists, n_workers):
            n = 0
            for e in range(sum_ptr[term_blocks[t]], sum_ptr[term_blocks[t + 1]]):
                c = np.int64(sum_terms[e])
                if seen_by[c] != t:
                    seen_by[c] = t
                    n += 1
            out[t] = n


@njit(cache=True, nogil=True, parallel=True)
def transpose_summaries(
    term_blocks, sum_ptr, sum_terms, sum_vals, comp_ptr, n_workers, comps, comp_off, ent_blk,
    ent_val,
):  # pragma: no cover  # fmt: skip
    """Per posting-list term, its blocks' summaries component-major: distinct components
    ascending in ``comps[comp_ptr[t]:comp_ptr[t + 1]]``; component ``i``'s entries (local
    block, value) at term-relative offsets ``comp_off[i]`` .. the next component's offset
    (or the end of the term's entries), blocks ascending; entries stay in ``sum_ptr`` space.

    A counting sort by component (blocks are read in order, so each component's entries
    come out block-ascending): linear in the entries."""
    n_lists = term_blocks.shape[0] - 1
    for w in prange(n_workers):
        pos = np.zeros(n_lists, dtype=np.int64)  # per component: count, then next slot
        for t in range(w, n_lists, n_workers):
            b0 = term_blocks[t]
            nb = term_blocks[t + 1] - b0
            e0 = sum_ptr[b0]
            c0 = comp_ptr[t]
            nc = comp_ptr[t + 1] - c0
            if nc == 0:
                continue
            found = np.empty(nc, dtype=np.int64)
            n = 0
            for e in range(e0, sum_ptr[b0 + nb]):
                c = np.int64(sum_terms[e])
                if pos[c] == 0:
                    found[n] = c
                    n += 1
                pos[c] += 1
            found.sort()
            at = 0
            for i in range(nc):
                c = found[i]
                comps[c0 + i] = c
                comp_off[c0 + i] = at
                size = pos[c]
                pos[c] = at
                at += size
            for j in range(nb):
                for e in range(sum_ptr[b0 + j], sum_ptr[b0 + j + 1]):
                    c = np.int64(sum_terms[e])
                    dst = e0 + pos[c]
                    pos[c] += 1
                    ent_blk[dst] = j
                    ent_val[dst] = sum_vals[e]
            for i in range(nc):
                pos[found[i]] = 0


# -------------------------------------------------------------------------------- search

EPS = np.float32(2.0**-22)  # > 2 * float32 unit roundoff: margin per summed product
#: below this k-th score nothing is pruned (no block skipped, no row filtered): products that
#: small can be subnormal, whose rounding errors are absolute, not relative, and the relative
#: margins (EPS here, the summaries' slack) would not cover them
MIN_PRUNE_SCORE = np.float32(2.0**-100)


@njit(inline="always", nogil=True)
def _pruning(size, k, hs):  # pragma: no cover
    """Whether blocks and rows may be pruned now: the heap is full and its k-th score is at
    least :data:`MIN_PRUNE_SCORE`."""
    return size == k and hs[0] >= MIN_PRUNE_SCORE


@njit(cache=True, nogil=True, parallel=True)
def pack_forward(indices, data, shift, scale, out):  # pragma: no cover
    """``out[e] = indices[e] << shift | ceil(data[e] / scale)`` (the value capped at
    ``2**shift - 1``): a doc entry's term and its weight rounded *up* to a multiple of
    ``scale``, in one uint32."""
    cap = np.float64((1 << shift) - 1)
    for e in prange(out.shape[0]):
        v = min(np.ceil(np.float64(data[e]) / scale), cap)
        out[e] = (np.uint32(indices[e]) << np.uint32(shift)) | np.uint32(v)


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _dot_bound(qdense, pack, shift, e0, e1):  # pragma: no cover
    """sum of qdense[term] * value over the packed entries [e0, e1) (see :func:`pack_forward`;
    values in units of the pack scale), summed in any order.

    Only reassociation is allowed (no other fast-math flag), so LLVM vectorises the loop with
    gathers (about 2x faster per entry than four scalar lanes, measured on AVX-512). The result
    is used only as a bound: whatever the order, a sum of n non-negative float32 products
    errs by less than about (n + 1) * 2^-24 of it (normal numbers: see MIN_PRUNE_SCORE), which
    the caller's margin covers together with the exact sum's own error. The call
    is a plain call, not a Numba inline: inlined, the flag would not reach this loop, and a
    fast-math caller would reorder its exact sums too."""
    mask = (np.uint32(1) << shift) - np.uint32(1)
    s = np.float32(0.0)
    # unsigned positions: no negative-index wraparound code, which blocks vectorisation
    e = np.uint64(e0)
    end = np.uint64(e1)
    while e < end:
        x = pack[e]
        s += qdense[np.uint64(x >> shift)] * np.float32(x & mask)
        e += np.uint64(1)
    return s


@njit(inline="always", nogil=True)
def _visit_block(
    fwd_indptr, fwd_pack, fwd_data, shift, pscale, blk_ptr, blk_docs,
    blk, k, qdense, stamp, gen, hs, hd, size,
):  # pragma: no cover  # fmt: skip
    """Offer every doc of block ``blk`` not seen yet this query to the heap:
    ``(new size, doc rows read, row entries read)``."""
    p0 = blk_ptr[blk]
    p1 = blk_ptr[blk + 1]
    rows = 0
    entries = 0
    for p in range(p0, p1):
        # the next doc's mark and packed row start loading while this one is scored
        if p + 2 < p1:
            prefetch(fwd_indptr, np.int64(blk_docs[p + 2]))
        if p + 1 < p1:
            dn = np.int64(blk_docs[p + 1])
            prefetch(stamp, dn)
            en = fwd_indptr[dn]
            e1n = fwd_indptr[dn + 1]
            for e in range(en, e1n, 16):  # 16 uint32 entries per cache line
                prefetch(fwd_pack, e)
            if size < k and e1n > en:  # the heap is filling: the next doc is scored exactly
                for e in range(en, e1n, 16):
                    prefetch(fwd_data, e)
                prefetch(fwd_data, e1n - 1)
            if e1n > en:
                prefetch(fwd_pack, e1n - 1)
        d = np.int64(blk_docs[p])
        if stamp[d] == gen:
            continue
        stamp[d] = gen
        e0 = fwd_indptr[d]
        e1 = fwd_indptr[d + 1]
        rows += 1
        if _pruning(size, k, hs):
            entries += e1 - e0
            # filter on the packed row first: its weights are rounded up, its float32 sum
            # (any order) errs by less than about (n + 1) * 2^-24 of it for these
            # non-negative products and the exact serial sum by less than n * 2^-24, which
            # the margin n * EPS covers both; so a doc it puts below the k-th score is
            # below it exactly too
            s4 = _dot_bound(qdense, fwd_pack, shift, e0, e1) * pscale
            if s4 * (np.float32(1.0) + np.float32(e1 - e0) * EPS) < hs[0]:
                continue
        entries += e1 - e0
        # the exact weights are a row of their own, not read yet: request all its cache
        # lines at once rather than let the serial sum below miss on them one by one
        for e in range(e0, e1, 16):  # 16 float32 per cache line
            prefetch(fwd_data, e)
        if e1 > e0:
            prefetch(fwd_data, e1 - 1)
        s = np.float32(0.0)  # the exact score: serial, ascending term id
        for e in range(e0, e1):
            s += qdense[fwd_pack[e] >> shift] * fwd_data[e]
        if size == k and _worse(s, d, hs[0], hd[0]):
            continue
        size = _heap_offer(hs, hd, size, k, s, d)
    return size, rows, entries


@njit(inline="always", nogil=True)
def _prefetch_components(t, comp_ptr, comps):  # pragma: no cover
    """Start loading term ``t``'s summary component list, which its bounds search (galloping,
    one dependent probe after another) would otherwise miss on again and again; issued one
    term ahead, before the current term's bounds and block visits."""
    step = max(1, 64 // comps.itemsize)  # entries per cache line
    for c in range(comp_ptr[t], comp_ptr[t + 1], step):
        prefetch(comps, c)
    if comp_ptr[t + 1] > comp_ptr[t]:
        prefetch(comps, comp_ptr[t + 1] - 1)


@njit(nogil=True)
def _search_one(
    fwd_indptr,
    fwd_pack,
    fwd_data,
    shift,
    pscale,
    term_blocks,
    blk_ptr,
    blk_docs,
    sum_ptr,
    sum_scale,
    comp_ptr,
    comps,
    comp_off,
    ent_blk,
    ent_val,
    q_indices,
    q_data,
    q0,
    q1,
    k,
    query_cut,
    heap_factor,
    sorted_terms,
    qdense,
    stamp,
    gen,
    bounds,
    hs,
    hd,
    out_s,
    out_d,
    work,
):  # pragma: no cover
    n_terms = term_blocks.shape[0] - 1
    nq = q1 - q0
    cand_t = np.empty(nq, dtype=np.int64)
    cand_v = np.empty(nq, dtype=np.float32)
    m_pos = np.empty(nq, dtype=np.int64)  # a term's summary components the query matches
    m_val = np.empty(nq, dtype=np.float32)
    cnt = 0
    for j in range(q0, q1):
        t = np.int64(q_indices[j])
        v = np.float32(q_data[j])
        if t >= 0 and t < n_terms and v > 0:
            cand_t[cnt] = t
            cand_v[cnt] = v
            cnt += 1
    if cnt == 0:
        return
    for i in range(cnt):
        qdense[cand_t[i]] = cand_v[i]
    order = np.argsort(-cand_v[:cnt], kind="mergesort")  # weight desc, ties: lower term
    cut = min(cnt, query_cut)
    hf = np.float32(heap_factor)
    size = 0
    n_terms_read = 0  # counted work (see search_batch)
    n_sum = 0
    n_bounds = 0
    n_blk = 0
    n_rows = 0
    n_ent = 0
    _prefetch_components(cand_t[order[0]], comp_ptr, comps)
    for rank in range(cut):
        t = cand_t[order[rank]]
        if rank + 1 < cut:
            _prefetch_components(cand_t[order[rank + 1]], comp_ptr, comps)
        b0 = term_blocks[t]
        nb = term_blocks[t + 1] - b0
        if nb == 0:
            continue
        n_terms_read += 1
        n_bounds += nb
        # summary bounds of the term's blocks, visited best first: the summaries are stored
        # component-major, so only the query's components are touched (one galloping search
        # per query term, ascending)
        for i in range(nb):
            bounds[i] = 0
        c1 = comp_ptr[t + 1]
        lo = comp_ptr[t]
        ebase = sum_ptr[b0]
        eend = sum_ptr[b0 + nb] - ebase
        nm = 0
        for r in range(cnt):
            qt = cand_t[r]
            # galloping search from where the last one ended: probes stay near ``lo`` (a
            # term's component list is far larger than the cache; a plain binary search
            # over [lo, c1) would start with a miss far away every time)
            if lo < c1 and np.int64(comps[lo]) < qt:
                step = 1
                while lo + step < c1 and np.int64(comps[lo + step]) < qt:
                    step <<= 1
                hi = lo + step if lo + step < c1 else c1
                lo = lo + (step >> 1) + 1
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if np.int64(comps[mid]) < qt:
                        lo = mid + 1
                    else:
                        hi = mid
            if lo == c1:
                break
            if np.int64(comps[lo]) == qt:
                m_pos[nm] = lo
                m_val[nm] = cand_v[r]
                nm += 1
                prefetch(comp_off, lo + 1)
        # then the matched entry runs, all their loads in flight at once (each is a miss
        # of its own: one after another, they would wait for each other)
        for j in range(nm):
            c = m_pos[j]
            x0 = ebase + np.int64(comp_off[c])
            prefetch(ent_blk, x0)
            prefetch(ent_val, x0)
        for j in range(nm):
            c = m_pos[j]
            qv = m_val[j]
            x0 = np.int64(comp_off[c])
            x1 = np.int64(comp_off[c + 1]) if c + 1 < c1 else eend
            n_sum += x1 - x0
            for x in range(ebase + x0, ebase + x1):
                bounds[ent_blk[x]] += qv * np.float32(ent_val[x])
        for i in range(nb):
            bounds[i] = -(bounds[i] * sum_scale[b0 + i])
        if rank < sorted_terms:
            # best summary first: once one block falls below the threshold, all later ones do
            border = np.argsort(bounds[:nb], kind="mergesort")
            for i in range(nb):
                if _pruning(size, k, hs) and -bounds[border[i]] < hf * hs[0]:
                    break  # bounds only fall and the threshold only rises
                size, vr, ve = _visit_block(
                    fwd_indptr, fwd_pack, fwd_data, shift, pscale, blk_ptr, blk_docs,
                    b0 + border[i], k, qdense, stamp, gen, hs, hd, size,
                )  # fmt: skip
                n_blk += 1
                n_rows += vr
                n_ent += ve
        else:
            # stored order (Seismic's order after its first term)
            for i in range(nb):
                if _pruning(size, k, hs) and -bounds[i] < hf * hs[0]:
                    continue
                size, vr, ve = _visit_block(
                    fwd_indptr, fwd_pack, fwd_data, shift, pscale, blk_ptr, blk_docs,
                    b0 + i, k, qdense, stamp, gen, hs, hd, size,
                )  # fmt: skip
                n_blk += 1
                n_rows += vr
                n_ent += ve
    for i in range(cnt):
        qdense[cand_t[i]] = 0
    work[0] = n_terms_read
    work[1] = n_sum
    work[2] = n_bounds
    work[3] = n_blk
    work[4] = n_rows
    work[5] = n_ent
    while size > 0:
        size -= 1
        out_s[size] = hs[0]
        out_d[size] = hd[0]
        hs[0] = hs[size]
        hd[0] = hd[size]
        _sift_down(hs, hd, size, 0)


@njit(cache=True, nogil=True, parallel=True)
def search_batch(
    fwd_indptr,
    fwd_pack,
    fwd_data,
    shift,
    pscale,
    term_blocks,
    blk_ptr,
    blk_docs,
    sum_ptr,
    sum_scale,
    comp_ptr,
    comps,
    comp_off,
    ent_blk,
    ent_val,
    q_indptr,
    q_indices,
    q_data,
    k,
    query_cut,
    heap_factor,
    sorted_terms,
    qdense,
    stamp,
    gens,
    bounds,
    heap_s,
    heap_d,
    out_s,
    out_d,
    work,
):  # pragma: no cover
    """Approximate top-k of every query row into ``out_s``/``out_d`` (pre-filled -inf / -1).

    ``work[qi]`` (int64) receives what query ``qi`` read: posting lists, summary entries,
    block bounds computed, blocks visited, doc rows read, row entries read (the packed-row
    filter and the exact score each count a row's entries).

    ``qdense`` must be zero on entry (and is again on return); ``stamp``/``gens`` carry the
    per-worker visited marks across calls (``stamp[w, d] == gens[w]`` = seen this query).
    """
    n_workers = qdense.shape[0]
    nq = q_indptr.shape[0] - 1
    for w in prange(n_workers):
        for qi in range(w, nq, n_workers):
            g = gens[w] + 1
            if g >= 2**31 - 1:
                stamp[w, :] = 0
                g = 1
            gens[w] = g
            _search_one(
                fwd_indptr,
                fwd_pack,
                fwd_data,
                shift,
                pscale,
                term_blocks,
                blk_ptr,
                blk_docs,
                sum_ptr,
                sum_scale,
                comp_ptr,
                comps,
                comp_off,
                ent_blk,
                ent_val,
                q_indices,
                q_data,
                q_indptr[qi],
                q_indptr[qi + 1],
                k,
                query_cut,
                heap_factor,
                sorted_terms,
                qdense[w],
                stamp[w],
                np.int32(g),
                bounds[w],
                heap_s[w],
                heap_d[w],
                out_s[qi],
                out_d[qi],
                work[qi],
            )


# ------------------------------------------------------------------------ exact reference

#: queries scored together by :func:`forward_topk` (one pass over the forward index each)
LANES = 16


@njit(cache=True, nogil=True, parallel=True)
def forward_topk(
    fwd_indptr, fwd_pack, fwd_data, shift, q_indptr, q_indices, q_data, k, qmat, heap_s,
    heap_d, out_s, out_d,
):  # pragma: no cover  # fmt: skip
    """Exact top-k of every query row by a scan of the forward index, into ``out_s``/``out_d``
    (pre-filled -inf / -1): the brute-force reference that :mod:`irbench.index.tuning`
    measures recall against.

    Queries go in batches of :data:`LANES` (``prange`` over workers, batches strided over
    workers), each batch one pass over every doc row. A doc's score for a query is
    ``sum q[t] * w`` over the row in ascending term order, serially in float32: the sum
    :func:`_visit_block` computes, so scores and ties (doc asc) agree bit for bit. Only
    query entries of weight > 0 count, and only docs of score > 0 are returned.
    ``qmat`` (float32 ``[workers, n_terms, LANES]``) must be zero; it is again on return.
    """
    n_workers = qmat.shape[0]
    n_terms = qmat.shape[1]
    n_docs = fwd_indptr.shape[0] - 1
    nq = q_indptr.shape[0] - 1
    n_batches = (nq + LANES - 1) // LANES
    for w in prange(n_workers):
        qm = qmat[w]
        hs = heap_s[w]
        hd = heap_d[w]
        size = np.zeros(LANES, dtype=np.int64)
        s = np.zeros(LANES, dtype=np.float32)
        for bi in range(w, n_batches, n_workers):
            q0 = bi * LANES
            nb = min(nq - q0, LANES)
            for b in range(nb):
                size[b] = 0
                for j in range(q_indptr[q0 + b], q_indptr[q0 + b + 1]):
                    t = np.int64(q_indices[j])
                    v = np.float32(q_data[j])
                    if t >= 0 and t < n_terms and v > 0:
                        qm[t, b] = v
            for d in range(n_docs):
                e0 = fwd_indptr[d]
                e1 = fwd_indptr[d + 1]
                if e0 == e1:
                    continue
                for b in range(LANES):
                    s[b] = 0
                for e in range(e0, e1):
                    row = qm[fwd_pack[e] >> shift]
                    x = fwd_data[e]
                    for b in range(LANES):
                        s[b] += row[b] * x
                for b in range(nb):
                    v = s[b]
                    if v > 0 and (size[b] < k or not _worse(v, d, hs[b, 0], hd[b, 0])):
                        size[b] = _heap_offer(hs[b], hd[b], size[b], k, v, d)
            for b in range(nb):
                for j in range(q_indptr[q0 + b], q_indptr[q0 + b + 1]):
                    t = np.int64(q_indices[j])
                    if t >= 0 and t < n_terms:
                        qm[t, b] = 0
                n = size[b]
                while n > 0:
                    n -= 1
                    out_s[q0 + b, n] = hs[b, 0]
                    out_d[q0 + b, n] = hd[b, 0]
                    hs[b, 0] = hs[b, n]
                    hd[b, 0] = hd[b, n]
                    _sift_down(hs[b], hd[b], n, 0)
