"""How much could safe dynamic pruning save on these vectors? (``irbench bench bounds``)

Exact top-k search can skip postings only where an upper bound proves they cannot reach the
final top-k. Given an *oracle* threshold -- each query's true k-th score, the largest
threshold any safe algorithm ever holds -- this module counts the postings that must still be
read, per query, for two classic families:

* **MaxScore** (list upper bounds ``q_t * max_d w_{t,d}``): the lists whose bounds, smallest
  first, sum below the threshold are *non-essential*; every posting of the other (essential)
  lists is traversed, so their share of the query's postings bounds what MaxScore skips.
* **block-max** over blocks of ``b`` consecutive doc ids (BMP-style range blocks): a block
  whose bound ``sum_t q_t * max_{d in block} w_{t,d}`` is below the threshold is skipped; the
  postings of the other blocks are read.

Both shares are lower bounds for those algorithms (a real run starts from threshold 0 and
pays for bound checks), so ``1 / share`` caps the speed-up over an exhaustive loop that reads
every posting at the same cost per posting.
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


def maxscore_reads(
    docs: sp.csr_matrix, queries: sp.csr_matrix, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per query: (essential-list postings, all postings of its terms); see the module doc.
    ``theta`` may hold one row of thresholds per k (the reads get the same leading axis)."""
    csc = sp.csc_matrix(docs)
    df = np.diff(csc.indptr)
    maxw = np.zeros(docs.shape[1], dtype=np.float64)
    has = df > 0
    maxw[has] = np.maximum.reduceat(csc.data, csc.indptr[:-1][has])
    total = np.zeros(queries.shape[0])
    lists = []  # per query: list postings in ascending bound order, cumulative bounds
    for i in range(queries.shape[0]):
        t = queries.indices[queries.indptr[i] : queries.indptr[i + 1]]
        ub = queries.data[queries.indptr[i] : queries.indptr[i + 1]] * maxw[t]
        order = np.argsort(ub, kind="stable")
        lists.append((df[t[order]], np.cumsum(ub[order])))
        total[i] = df[t].sum()

    def read(th: np.ndarray) -> np.ndarray:
        non_essential = [post[cum < x].sum() for (post, cum), x in zip(lists, th, strict=True)]
        return total - np.array(non_essential, dtype=np.float64)

    return _per_threshold(np.asarray(theta), read), total


def blockmax_reads(
    docs: sp.csr_matrix, queries: sp.csr_matrix, theta: np.ndarray, block: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per query: (postings of its terms in blocks of ``block`` consecutive doc ids whose
    bound reaches ``theta``, all postings of its terms); ``theta`` as in
    :func:`maxscore_reads`."""
    coo = sp.coo_matrix(docs)
    n_blocks = (docs.shape[0] + block - 1) // block
    rows = coo.row // block
    # max per (block, term): sort entries by (block, term, weight) and keep each group's last
    order = np.lexsort((coo.data, coo.col, rows))
    r, c, w = rows[order], coo.col[order], coo.data[order].astype(np.float64)
    last = np.r_[(r[1:] != r[:-1]) | (c[1:] != c[:-1]), True]
    bmax = sp.csr_matrix((w[last], (r[last], c[last])), shape=(n_blocks, docs.shape[1]))
    counts = sp.csr_matrix(
        (np.ones(len(rows)), (rows, coo.col)), shape=(n_blocks, docs.shape[1])
    )  # summed duplicates: postings per (block, term)
    ub = (bmax @ sp.csr_matrix(queries, dtype=np.float64).T).toarray()  # blocks x queries
    present = sp.csr_matrix(queries, dtype=np.float64)
    present.data[:] = 1.0
    posts = (counts @ present.T).toarray()
    read = lambda th: (posts * (ub >= th[None, :])).sum(axis=0)  # noqa: E731
    return _per_threshold(np.asarray(theta), read), posts.sum(axis=0)


def pruning_bounds(
    docs: sp.csr_matrix, queries: sp.csr_matrix, ks: Sequence[int], blocks: Sequence[int]
) -> list[dict[str, Any]]:
    """One row per k and method (MaxScore, block-max per block size): the share of the
    queries' postings read under an oracle threshold, over all queries (``share``) and per
    query (p50 / p90), and the speed-up cap ``1 / share``."""
    docs = sp.csr_matrix(docs, dtype=np.float32)
    queries = sp.csr_matrix(queries, dtype=np.float32)
    if queries.shape[1] > docs.shape[1]:  # query terms no doc holds: no postings
        queries = queries[:, : docs.shape[1]]
    elif queries.shape[1] < docs.shape[1]:
        queries = sp.csr_matrix(queries, shape=(queries.shape[0], docs.shape[1]))
    ks = [int(k) for k in ks]
    theta = kth_scores(docs, queries, ks)  # one row per k
    reads = {"maxscore": maxscore_reads(docs, queries, theta)}
    for b in blocks:
        reads[f"blockmax_{b}"] = blockmax_reads(docs, queries, theta, b)
    rows = []
    for j, k in enumerate(ks):
        for method, (read_all, total) in reads.items():
            read = read_all[j]
            per_query = read[total > 0] / total[total > 0]
            share = float(read.sum() / max(total.sum(), 1.0))
            rows.append(
                {
                    "k": int(k),
                    "method": method,
                    "share": share,
                    "p50_share": float(np.median(per_query)),
                    "p90_share": float(np.quantile(per_query, 0.9)),
                    "speedup_cap": 1.0 / share if share > 0 else float("inf"),
                }
            )
    return rows


def to_markdown(rows: list[dict[str, Any]], corpus: str) -> str:
    """The rows as a markdown table."""
    out = [
        f"Postings a safe algorithm must read with an oracle threshold ({corpus})",
        "",
        "| k | method | share of postings read | p50 (per query) | p90 | speed-up cap |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['k']} | {r['method']} | {r['share']:.3f} | {r['p50_share']:.3f} "
            f"| {r['p90_share']:.3f} | {r['speedup_cap']:.2f}x |"
        )
    return "\n".join(out)
