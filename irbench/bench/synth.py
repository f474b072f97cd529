"""Synthetic sparse corpora that follow a real encoded corpus, at any size (``irbench synth``).

What is kept from the real corpus:

* **per-doc nnz** -- each synthetic doc draws a target length ``n_d`` from the real docs'
  nnz (with replacement);
* **term document frequencies** -- term ``t`` enters doc ``d`` independently with probability
  ``min(1, f_t * n_d / mean_nnz)``, ``f_t`` the real fraction of docs holding ``t``: the
  expected df of every term and the expected nnz of every doc match the real ones (up to the
  clipping at 1 for the most frequent terms in long docs);
* **weight distribution** -- each posting's weight is a weight of the same term drawn from the
  real corpus (so frequent terms keep their typically lower weights).

* **term co-occurrence** (optional, ``parent_share`` > 0) -- each synthetic doc has a
  *parent*, the real doc whose length it drew; each of the parent's (term, weight) entries is
  copied with probability ``parent_share``; every other term is drawn independently as above
  with its probability lowered so that, copy or draw, term ``t`` still enters with
  probability ``p_t`` (copied terms are not drawn again). The parent is uniform, so expected
  df and nnz stay those of the real corpus, while docs that share a parent share topics, as
  related real docs do.

With ``parent_share`` 0 (the default) terms are drawn independently of each other, so term
co-occurrence is *not* kept: such a corpus has no topical structure, which makes it much
harder for clustering-based approximate search and dynamic pruning than real text. The real
queries are kept as they are (no qrels: the synthetic docs have no relevance).

Generation is exact Bernoulli sampling made fast by thinning: terms are bucketed by
``f_t`` in powers of two, geometric jumps with the bucket's largest probability propose
terms, each accepted with ``p_t / p_max``. Docs are generated in chunks of 4,096, each seeded
from ``(seed, chunk)``: the corpus depends on the seed only, not on the thread count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import scipy.sparse as sp
from numba import njit, prange

from irbench.bench.index import VectorSet

CHUNK = 4096


@njit(cache=True, nogil=True, inline="always")
def _q(p, share):  # pragma: no cover
    """Draw probability of an uncopied term so that it ends in the doc with probability
    ``p``: ``share * p + (1 - share * p) * q == p`` (increasing in ``p``; ``q == p`` at 0)."""
    return p if share == 0.0 else p * (1.0 - share) / (1.0 - share * p)


@njit(cache=True, nogil=True)
def _gen_doc(
    d, parent, share, n_target, mean_nnz, b_start, b_pmax, terms, f, col_ptr, col_w,
    r_ptr, r_t, r_w, mark, out_t, out_w, o,
):  # fmt: skip  # pragma: no cover
    """Append doc ``d``'s (term, weight) entries at ``o``; returns the new end (or the count
    when ``out_t`` is empty). Each of the parent's entries is kept with probability
    ``share`` (marked in ``mark``); the rest are independent draws (see :func:`_q`) that
    skip marked terms."""
    count_only = out_t.shape[0] == 0
    if share > 0.0:
        for j in range(r_ptr[parent], r_ptr[parent + 1]):
            if np.random.random() < share:
                mark[r_t[j]] = d
                if not count_only:
                    out_t[o] = r_t[j]
                    out_w[o] = r_w[j]
                o += 1
    s = n_target / mean_nnz
    for b in range(b_start.shape[0] - 1):
        lo = b_start[b]
        hi = b_start[b + 1]
        if hi == lo:
            continue
        pmax = _q(min(1.0, b_pmax[b] * s), share)
        if pmax <= 0.0:
            continue
        i = lo - 1
        log1m = np.log1p(-pmax) if pmax < 1.0 else 0.0
        while True:
            if pmax >= 1.0:
                i += 1
            else:
                u = np.random.random()
                i += 1 + int(np.log(1.0 - u) / log1m)
            if i >= hi:
                break
            p = _q(min(1.0, f[i] * s), share)
            if p < pmax and np.random.random() * pmax >= p:
                continue
            t = terms[i]
            a = col_ptr[t]
            j = a + np.random.randint(0, col_ptr[t + 1] - a)  # drawn in both passes alike
            if share > 0.0 and mark[t] == d:
                continue  # already copied from the parent
            if not count_only:
                out_t[o] = t
                out_w[o] = col_w[j]
            o += 1
    return o


@njit(cache=True, nogil=True, parallel=True)
def _generate(
    d_start, d_stop, seed, share, lengths, mean_nnz, b_start, b_pmax, terms, f, col_ptr,
    col_w, r_ptr, r_t, r_w, doc_ptr, out_t, out_w,
):  # fmt: skip  # pragma: no cover
    """Docs [d_start, d_stop) (``d_start`` a multiple of CHUNK): count (``out_t`` empty:
    writes doc ``d``'s nnz to ``doc_ptr[d - d_start + 1]``) or fill."""
    c0 = d_start // CHUNK
    n_chunks = (d_stop - c0 * CHUNK + CHUNK - 1) // CHUNK
    count_only = out_t.shape[0] == 0
    n_terms = col_ptr.shape[0] - 1
    for ci in prange(n_chunks):
        c = c0 + ci
        np.random.seed(seed * 1_000_003 + c)
        mark = np.full(n_terms if share > 0.0 else 0, -1, dtype=np.int64)
        for d in range(c * CHUNK, min(d_stop, (c + 1) * CHUNK)):
            parent = np.random.randint(0, lengths.shape[0])  # also the doc's target length
            n_target = lengths[parent]
            r = d - d_start
            o0 = 0 if count_only else doc_ptr[r]
            o1 = _gen_doc(
                d, parent, share, n_target, mean_nnz, b_start, b_pmax, terms, f, col_ptr,
                col_w, r_ptr, r_t, r_w, mark, out_t, out_w, o0,
            )  # fmt: skip
            if count_only:
                doc_ptr[r + 1] = o1
            else:
                order = np.argsort(out_t[o0:o1])  # ascending term ids (canonical CSR)
                out_t[o0:o1] = out_t[o0:o1][order]
                out_w[o0:o1] = out_w[o0:o1][order]


class Synthesizer:
    """The statistics of a real corpus, ready to generate any range of synthetic docs.

    Doc ``d`` depends only on ``(seed, d)``: ``block(a, b)`` equals rows ``a:b`` of
    ``block(0, n)``, so a corpus larger than memory can be generated block by block (e.g.
    twice, for :meth:`irbench.index.numba.NumbaIndex.build_streaming`).
    """

    def __init__(self, real: VectorSet, seed: int = 0, parent_share: float = 0.0):
        if not 0.0 <= parent_share < 1.0:
            raise ValueError(f"parent_share={parent_share}: give a fraction in [0, 1)")
        docs = sp.csr_matrix(real.docs, dtype=np.float32)
        docs.eliminate_zeros()
        n_real, self.n_terms = docs.shape
        if n_real == 0 or docs.nnz == 0:
            raise ValueError(f"{real.name}: no doc vectors to follow")
        self.real = real
        self.seed = int(seed)
        self.parent_share = float(parent_share)
        lengths = np.diff(docs.indptr).astype(np.int64)
        mean_nnz = float(lengths.mean())
        csc = docs.tocsc()
        csc.sort_indices()
        col_ptr = csc.indptr.astype(np.int64)
        col_w = csc.data.astype(np.float32)
        df = np.diff(col_ptr)
        present = np.nonzero(df)[0]
        f_all = df[present] / n_real
        # buckets by f in powers of two (largest first); terms sorted by f inside a bucket
        bucket = np.floor(-np.log2(f_all)).astype(np.int64)
        order = np.lexsort((-f_all, bucket))
        terms = present[order].astype(np.int64)
        f = f_all[order].astype(np.float64)
        bucket = bucket[order]
        edges = np.r_[0, np.nonzero(np.diff(bucket))[0] + 1, len(bucket)].astype(np.int64)
        b_pmax = np.array([f[edges[i]] for i in range(len(edges) - 1)], dtype=np.float64)
        docs.sort_indices()
        self._args = (
            self.parent_share, lengths, mean_nnz, edges, b_pmax, terms, f, col_ptr, col_w,
            docs.indptr.astype(np.int64), docs.indices.astype(np.int32),
            docs.data.astype(np.float32),
        )  # fmt: skip

    def block(self, d_start: int, d_stop: int) -> sp.csr_matrix:
        """Synthetic docs ``[d_start, d_stop)`` as CSR (``d_start`` a multiple of CHUNK)."""
        if d_start % CHUNK or d_stop < d_start:
            raise ValueError(f"block({d_start}, {d_stop}): start must be a multiple of {CHUNK}")
        n = d_stop - d_start
        doc_ptr = np.zeros(n + 1, dtype=np.int64)
        empty_t = np.empty(0, dtype=np.int32)
        empty_w = np.empty(0, dtype=np.float32)
        _generate(d_start, d_stop, self.seed, *self._args, doc_ptr, empty_t, empty_w)
        np.cumsum(doc_ptr, out=doc_ptr)
        nnz = int(doc_ptr[-1])
        out_t = np.empty(nnz, dtype=np.int32)
        out_w = np.empty(nnz, dtype=np.float32)
        _generate(d_start, d_stop, self.seed, *self._args, doc_ptr, out_t, out_w)
        m = sp.csr_matrix((out_w, out_t, doc_ptr), shape=(n, self.n_terms))
        m.has_sorted_indices = True  # sorted per doc by _generate
        return m

    def blocks(self, n_docs: int, block_docs: int = 64 * CHUNK) -> Iterator[sp.csr_matrix]:
        """Docs ``[0, n_docs)`` in consecutive blocks of ``block_docs`` (a multiple of CHUNK)."""
        step = max(CHUNK, block_docs // CHUNK * CHUNK)
        for d0 in range(0, n_docs, step):
            yield self.block(d0, min(n_docs, d0 + step))

    def vector_set(self, docs: sp.csr_matrix) -> VectorSet:
        """``docs`` with the real queries, as a VectorSet named after the source."""
        n = int(docs.shape[0])
        share = f"p{self.parent_share:g}" if self.parent_share else ""
        return VectorSet(
            f"synth{n}{share}-{self.real.name}",
            docs,
            self.real.queries,
            [str(i) for i in range(n)],
            list(self.real.qids),
            [],
            self.real.term_space,  # its term ids are the real vectors'
        )


def synthesize(
    real: VectorSet,
    n_docs: int,
    seed: int = 0,
    echo: Callable[[str], None] = print,
    parent_share: float = 0.0,
) -> VectorSet:
    """``n_docs`` synthetic doc vectors following ``real`` (see the module docstring)."""
    synth = Synthesizer(real, seed, parent_share)
    echo(f"synth: generating {n_docs:,} docs ...")
    return synth.vector_set(synth.block(0, n_docs))
