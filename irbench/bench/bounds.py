"""How much could safe dynamic pruning save on these vectors? (``irbench bench bounds``)

Exact top-k search can skip postings only where an upper bound proves they cannot reach the
final top-k. Given an *oracle* threshold -- each query's true k-th score, the largest
threshold any safe algorithm ever holds -- this module counts the postings that must still be
read, per query, for the classic families and their combination:

* **MaxScore** (list upper bounds ``q_t * max_d w_{t,d}``): the lists whose bounds, smallest
  first, sum below the threshold are *non-essential*; every posting of the other (essential)
  lists is traversed, so their share of the query's postings bounds what MaxScore skips.
* **block-max** over blocks of ``b`` consecutive doc ids (BMP-style range blocks): a block
  whose bound ``sum_t q_t * max_{d in block} w_{t,d}`` is below the threshold is skipped; the
  postings of the other blocks are read.
* **MaxScore with block-max skipping** (as in block-max MaxScore / WAND): only the essential
  lists' postings in blocks whose bound reaches the threshold are read.

These shares are lower bounds for those algorithms (a real run starts from threshold 0 and
pays for bound checks), so ``1 / share`` caps the speed-up over an exhaustive loop that reads
every posting at the same cost per posting. Block bounds are not free, though: as blocks
shrink the share read falls towards the top-k docs' postings while the (block, term) bounds
to read grow towards the postings themselves. The cap counting one unit of work per block
bound read (all query terms' for block-max, only the essential terms' for the combination)
is ``1 / (share + bound_share)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp


def kth_scores(
    docs: sp.csr_matrix, queries: sp.csr_matrix, k: int | Sequence[int], chunk: int = 64
) -> np.ndarray:
    """Each query's exact k-th highest score (0 when fewer than k docs score): shape
    ``(n_queries,)`` for one ``k``, ``(len(k), n_queries)`` for several (one product)."""
    ks = [int(k)] if np.isscalar(k) else [int(x) for x in k]
    dt = sp.csr_matrix(docs.T)
    n = docs.shape[0]
    out = np.zeros((len(ks), queries.shape[0]), dtype=np.float64)
    kth = sorted({x - 1 for x in ks if x <= n})
    for a in range(0, queries.shape[0], chunk):
        if not kth:
            break
        s = -np.partition(-(queries[a : a + chunk] @ dt).toarray(), kth, axis=1)
        for j, x in enumerate(ks):
            if x <= n:
                out[j, a : a + chunk] = s[:, x - 1]
    return out[0] if np.isscalar(k) else out


def _per_threshold(theta: np.ndarray, read: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``read`` over each row of a 2-D ``theta`` (one row per k), or once for a 1-D one."""
    if theta.ndim == 1:
        return read(theta)
    return np.stack([read(t) for t in theta])


def _list_maxima(docs: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(postings per term, highest weight per term) of the doc matrix."""
    csc = sp.csc_matrix(docs)
    df = np.diff(csc.indptr)
    maxw = np.zeros(docs.shape[1], dtype=np.float64)
    has = df > 0
    maxw[has] = np.maximum.reduceat(csc.data, csc.indptr[:-1][has])
    return df, maxw


def _essential_mask(queries: sp.csr_matrix, maxw: np.ndarray, theta: np.ndarray) -> sp.csr_matrix:
    """:func:`essential_terms` given the list maxima ``maxw``."""
    queries = sp.csr_matrix(queries)
    keep = np.ones(queries.nnz, dtype=np.float64)
    for i in range(queries.shape[0]):
        a, b = queries.indptr[i], queries.indptr[i + 1]
        ub = queries.data[a:b] * maxw[queries.indices[a:b]]
        order = np.argsort(ub, kind="stable")
        keep[a + order[np.cumsum(ub[order]) < theta[i]]] = 0.0
    out = sp.csr_matrix((keep, queries.indices.copy(), queries.indptr.copy()), shape=queries.shape)
    out.eliminate_zeros()  # in place: hence the copies above
    return out


def essential_terms(
    docs: sp.csr_matrix, queries: sp.csr_matrix, theta: np.ndarray
) -> sp.csr_matrix:
    """0/1 matrix shaped like ``queries``: 1 where the term's list is *essential* for MaxScore
    at threshold ``theta`` (one per query): the lists whose bounds ``q_t * max_d w_{t,d}``,
    smallest first (ties in query order), sum below the threshold are non-essential."""
    return _essential_mask(queries, _list_maxima(docs)[1], theta)


def _presence(queries: sp.csr_matrix) -> sp.csr_matrix:
    """``queries`` with every stored entry set to 1.0 (float64)."""
    present = sp.csr_matrix(queries, dtype=np.float64, copy=True)
    present.data[:] = 1.0
    return present


def _total_postings(queries: sp.csr_matrix, df: np.ndarray) -> np.ndarray:
    """Per query: the postings of its terms."""
    return _presence(queries) @ df


def maxscore_reads(
    docs: sp.csr_matrix, queries: sp.csr_matrix, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per query: (essential-list postings, all postings of its terms); see the module doc.
    ``theta`` may hold one row of thresholds per k (the reads get the same leading axis)."""
    df, maxw = _list_maxima(docs)
    df = df.astype(np.float64)
    read = lambda th: _essential_mask(queries, maxw, th) @ df  # noqa: E731
    return _per_threshold(np.asarray(theta), read), _total_postings(queries, df)


def _block_matrices(docs: sp.csr_matrix, block: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(highest weight, postings) per (block of ``block`` consecutive docs, term)."""
    coo = sp.coo_matrix(docs)
    n_blocks = (docs.shape[0] + block - 1) // block
    rows = coo.row // block
    # max per (block, term): sort entries by (block, term, weight) and keep each group's last
    order = np.lexsort((coo.data, coo.col, rows))
    r, c, w = rows[order], coo.col[order], coo.data[order].astype(np.float64)
    last = np.r_[(r[1:] != r[:-1]) | (c[1:] != c[:-1]), True]
    shape = (n_blocks, docs.shape[1])
    bmax = sp.csr_matrix((w[last], (r[last], c[last])), shape=shape)
    counts = sp.csr_matrix((np.ones(len(rows)), (rows, coo.col)), shape=shape)  # sums dups
    return bmax, counts


def _block_reads(
    docs: sp.csr_matrix,
    queries: sp.csr_matrix,
    thetas: np.ndarray,
    block: int,
    masks: Sequence[sp.csr_matrix] | None,
    chunk: int | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``{"blockmax": (read, total, bounds)}``, plus ``"maxscore_blockmax"`` when ``masks``
    (one essential-term matrix per row of the 2-D ``thetas``) are given; arrays of shape
    (rows, queries), ``total`` (queries,). One pass over the block matrices serves both."""
    bmax, counts = _block_matrices(docs, block)
    block_df = np.diff(sp.csc_matrix(counts).indptr).astype(np.float64)
    present = _presence(queries)
    q64 = sp.csr_matrix(queries, dtype=np.float64)  # the bounds in float64
    n_q = queries.shape[0]
    # (blocks x chunk) dense products at a time: about 2^25 values each
    chunk = chunk or max(1, min(n_q, 2**25 // max(bmax.shape[0], 1)))
    read = np.zeros((len(thetas), n_q))
    read_ess = np.zeros((len(thetas), n_q))
    total = np.zeros(n_q)
    for a in range(0, n_q, chunk):
        b = min(a + chunk, n_q)
        ub = (bmax @ q64[a:b].T).toarray()
        posts = (counts @ present[a:b].T).toarray()
        total[a:b] = posts.sum(axis=0)
        for j, th in enumerate(thetas):
            live = ub >= th[None, a:b]
            read[j, a:b] = (posts * live).sum(axis=0)
            if masks is not None:
                ess_posts = (counts @ masks[j][a:b].T).toarray()
                read_ess[j, a:b] = (ess_posts * live).sum(axis=0)
    out = {"blockmax": (read, total, np.tile(present @ block_df, (len(thetas), 1)))}
    if masks is not None:
        out["maxscore_blockmax"] = (read_ess, total, np.stack([m @ block_df for m in masks]))
    return out


def blockmax_reads(
    docs: sp.csr_matrix,
    queries: sp.csr_matrix,
    theta: np.ndarray,
    block: int,
    essential: sp.csr_matrix | Sequence[sp.csr_matrix] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query: (postings read, all postings of its terms, block bounds read).

    A block of ``block`` consecutive doc ids is read when its bound over all query terms,
    ``sum_t q_t * max_{d in block} w_{t,d}``, reaches ``theta``. Without ``essential`` every
    query term's postings in such blocks are read and the bounds read are the (block, term)
    entries of all query terms (a BMP-style pass). With ``essential`` (0/1 like ``queries``,
    one per theta row: :func:`essential_terms`) only the essential lists' postings in such
    blocks are read (MaxScore with block-max skipping), and only their block entries counted
    as bounds read -- the non-essential terms' bounds taken as free, which favours the method.
    ``theta`` (and so ``essential``) may hold one row per k, as in :func:`maxscore_reads`."""
    theta = np.asarray(theta, dtype=np.float64)
    thetas = theta if theta.ndim == 2 else theta[None, :]
    if essential is None:
        masks = None
    else:
        masks = list(essential) if isinstance(essential, (list, tuple)) else [essential]
    res = _block_reads(docs, queries, thetas, block, masks)
    read, total, bounds = res["blockmax" if masks is None else "maxscore_blockmax"]
    return (read, total, bounds) if theta.ndim == 2 else (read[0], total, bounds[0])


def pruning_bounds(
    docs: sp.csr_matrix, queries: sp.csr_matrix, ks: Sequence[int], blocks: Sequence[int]
) -> list[dict[str, Any]]:
    """One row per k and method (MaxScore; block-max and MaxScore with block-max skipping per
    block size): the share of the queries' postings read under an oracle threshold, over all
    queries (``share``) and per query (p50 / p90), the speed-up cap ``1 / share``, and, with
    one unit of work per block bound read (``bound_share``), ``1 / (share + bound_share)``."""
    docs = sp.csr_matrix(docs, dtype=np.float32)
    queries = sp.csr_matrix(queries, dtype=np.float32)
    if queries.shape[1] > docs.shape[1]:  # query terms no doc holds: no postings
        queries = queries[:, : docs.shape[1]]
    elif queries.shape[1] < docs.shape[1]:
        queries = sp.csr_matrix(queries, shape=(queries.shape[0], docs.shape[1]))
    ks = [int(k) for k in ks]
    theta = kth_scores(docs, queries, ks)  # one row per k
    df, maxw = _list_maxima(docs)
    essential = [_essential_mask(queries, maxw, th) for th in theta]
    read = np.stack([m @ df.astype(np.float64) for m in essential])
    total = _total_postings(queries, df.astype(np.float64))
    reads = {"maxscore": (read, total, np.zeros_like(read))}
    for b in blocks:
        for method, r in _block_reads(docs, queries, theta, b, essential).items():
            reads[f"{method}_{b}"] = r
    rows = []
    for j, k in enumerate(ks):
        for method, (read_all, total, bounds_all) in reads.items():
            read = read_all[j]
            per_query = read[total > 0] / total[total > 0]
            n = max(total.sum(), 1.0)
            share = float(read.sum() / n)
            bound_share = float(bounds_all[j].sum() / n)
            rows.append(
                {
                    "k": int(k),
                    "method": method,
                    "share": share,
                    "p50_share": float(np.median(per_query)),
                    "p90_share": float(np.quantile(per_query, 0.9)),
                    "speedup_cap": 1.0 / share if share > 0 else float("inf"),
                    "bound_share": bound_share,
                    "speedup_cap_with_bounds": 1.0 / (share + bound_share)
                    if share + bound_share > 0
                    else float("inf"),
                }
            )
    return rows


def to_markdown(rows: list[dict[str, Any]], corpus: str) -> str:
    """The rows as a markdown table."""
    out = [
        f"Postings a safe algorithm must read with an oracle threshold ({corpus})",
        "",
        "| k | method | share of postings read | p50 (per query) | p90 | speed-up cap "
        "| block bounds read (share) | cap counting bounds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['k']} | {r['method']} | {r['share']:.3f} | {r['p50_share']:.3f} "
            f"| {r['p90_share']:.3f} | {r['speedup_cap']:.2f}x | {r['bound_share']:.3f} "
            f"| {r['speedup_cap_with_bounds']:.2f}x |"
        )
    return "\n".join(out)
