"""CSR helpers of the sparse neural encoders: dense rows to CSR, input-token vectors, top-k."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["bm25_idf", "dense_to_csr", "term_vectors", "top_k"]


def bm25_idf(df: np.ndarray, n: int) -> np.ndarray:
    df = df.astype(np.float64)
    return np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)


def dense_to_csr(dense: Any, vocab: int) -> sp.csr_matrix:
    """Nonzeros of a dense ``[rows, vocab]`` tensor as canonical float32 CSR."""
    import torch

    nz = torch.nonzero(dense)
    values = dense[nz[:, 0], nz[:, 1]].float().cpu().numpy()
    nz = nz.cpu().numpy()
    n = dense.shape[0]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(nz[:, 0], minlength=n), out=indptr[1:])
    return sp.csr_matrix((values, nz[:, 1].astype(np.int32), indptr), shape=(n, vocab))


def term_vectors(
    ids: list[list[int]], special: np.ndarray, idf: np.ndarray | None, pooling: str, vocab: int
) -> sp.csr_matrix:
    """Input-token vectors: weight 1 (binary) or idf, combined per token by max or sum."""
    n = len(ids)
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=n)
    flat = (
        np.concatenate([np.asarray(x, dtype=np.int64) for x in ids])
        if n
        else np.zeros(0, dtype=np.int64)
    )
    rows = np.repeat(np.arange(n, dtype=np.int64), lengths)
    keep = ~special[flat]
    keys, counts = np.unique((rows[keep] << 32) | flat[keep], return_counts=True)
    cols = keys & 0xFFFFFFFF
    weights = np.ones(len(keys)) if idf is None else idf[cols].astype(np.float64)
    if pooling == "sum":
        weights = weights * counts
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys >> 32, minlength=n), out=indptr[1:])
    out = sp.csr_matrix(
        (weights.astype(np.float32), cols.astype(np.int32), indptr), shape=(n, vocab)
    )
    out.eliminate_zeros()
    return out


def top_k(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k highest weights per row (ties: lower column first)."""
    counts = np.diff(m.indptr)
    if counts.size == 0 or counts.max() <= k:
        return m
    keep = np.ones(m.nnz, dtype=bool)
    for r in np.flatnonzero(counts > k):
        s, e = m.indptr[r], m.indptr[r + 1]
        order = np.lexsort((m.indices[s:e], -m.data[s:e]))
        keep[s + order[k:]] = False
    rows = np.repeat(np.arange(m.shape[0]), counts)[keep]
    indptr = np.zeros(m.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=m.shape[0]), out=indptr[1:])
    return sp.csr_matrix((m.data[keep], m.indices[keep], indptr), shape=m.shape)
