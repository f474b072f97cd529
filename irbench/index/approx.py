"""``index=numba_approx``: a Seismic-class approximate index for learned sparse vectors.

The design follows Seismic (Bruch, Nardini, Rulli, Venturini, SIGIR 2024):

* **static pruning** -- each term keeps only its ``n_postings`` highest-weight postings;
* **blocking** -- a term's kept postings are clustered by document similarity into
  ``ceil(centroid_fraction * n)`` blocks (a one-pass "shallow k-means" on doc sketches, see
  :mod:`irbench.index.approx_kernels`);
* **summaries** -- each block carries the component-wise max of its docs' vectors, cut to
  ``summary_energy`` of its L1 mass, quantised to uint8 (rounded up);
* **query processing** -- only the ``query_cut`` highest-weight query terms are traversed; the
  first ``sorted_terms`` of them visit their blocks best summary first, the others in stored
  order (as Seismic: 1); once the top-k heap is full, a block is skipped when its
  ``<q, summary>`` is below ``heap_factor`` times the k-th score (``heap_factor`` < 1 skips
  less, compensating for lossy summaries, as in Seismic); docs of the other blocks are scored
  exactly from a **forward index** (the doc vectors as CSR, memory-mapped after
  :meth:`ApproxIndex.load`), after a cheaper upper bound from packed rows (term id and
  weight rounded up to 17 bits in one uint32 for a BERT vocabulary) has shown they can
  enter the top k.

Every returned score is the doc's exact dot product with the query (float32, bit-identical
to :class:`irbench.index.numba.NumbaIndex`); what is approximate is *which* docs are found.
Query entries of weight <= 0 are ignored.

**Exactness condition** (tested): with no static pruning (``n_postings`` >= the largest
document frequency, or ``0``), ``query_cut`` >= the query's positive entries (or ``0``),
``summary_energy = 1.0`` and ``heap_factor <= 1.0``, the summaries are upper bounds of every
doc in their block (uint8 rounded up, plus a 1e-4 relative slack for float32 rounding) and a
block is skipped only when its bound is below ``heap_factor`` times the k-th score, hence
below the k-th score: no doc in it could enter the top k (a tie neither: its bound would
not be below). Results then equal the exact top-k (score desc, doc asc) for non-negative
query weights. (While the k-th score is below ``MIN_PRUNE_SCORE``, 2^-100, nothing is pruned
at all: subnormal products err absolutely, beyond the relative margins.)

Search-time knobs (``query_cut``, ``heap_factor``, ``sorted_terms``) are stored with the
index as defaults and can be overridden per call: ``index.search(q, k, query_cut=5,
heap_factor=0.8)``.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from irbench.errors import CacheError, ConfigError, DataError
from irbench.index import approx_kernels as ak
from irbench.index import base, kernels
from irbench.index.base import atomic_folder, read_header, write_header
from irbench.types import RowBlocks, is_finite_number, is_integer

FORMAT = 3  # 2: summaries stored component-major per posting list; 3: packed forward rows
SLACK = 1.0 + 1e-4  # relative slack on summary bounds (float32 rounding)
#: the smallest largest-doc-weight an index takes: below it the packed weights' unit
#: (max / 131,071) and the summaries' (max / 255) become subnormal float32 numbers, whose
#: rounding the slack no longer covers, and a bound can fall below a doc's score
MIN_MAX_WEIGHT = 1e-30

# name -> (dtype or None = term dtype, ndim)
_ARRAYS = {
    "fwd_indptr": (np.int64, 1),
    "fwd_pack": (np.uint32, 1),
    "fwd_data": (np.float32, 1),
    "term_blocks": (np.int64, 1),
    "blk_ptr": (np.int64, 1),
    "blk_docs": (np.uint32, 1),
    "sum_ptr": (np.int64, 1),
    "sum_scale": (np.float32, 1),
    "comp_ptr": (np.int64, 1),
    "comps": (None, 1),
    "comp_off": (np.uint32, 1),
    "ent_blk": (np.uint16, 1),
    "ent_val": (np.uint8, 1),
}
#: what ``search(..., return_work=True)`` counts per query
WORK_COLUMNS = ("lists", "summary_entries", "block_bounds", "blocks", "doc_rows", "row_entries")
DEFAULTS: dict[str, Any] = {
    "n_postings": None,
    "pruning": "global",
    "max_fraction": 1.5,
    "centroid_fraction": 0.1,
    "summary_energy": 0.4,
    "cluster_terms": 128,
    "doc_cut": 32,
    "query_cut": 10,
    "heap_factor": 0.9,
    "sorted_terms": 1,
}


def default_n_postings(n_docs: int) -> int:
    """Kept postings per term when ``n_postings`` is null: ``2.5 * sqrt(n_docs)``, >= 64.

    Square-root growth keeps the index a shrinking fraction of the collection: 450 at 32k
    docs (Seismic's recall-0.99 setting there), 2,500 at 1M, 7,400 at 8.8M (MS MARCO, where
    Seismic's own default is 3,500).
    """
    return max(64, int(round(2.5 * math.sqrt(max(n_docs, 0)))))


def global_threshold(data: np.ndarray, n_lists: int, n_postings: int) -> np.float32:
    """Seismic's global-threshold pruning: the cut ``tau`` on the weights ``data``
    (float32, all > 0, any order).

    The budget is ``n_postings`` per non-empty list (``n_lists`` of them): ``tau`` is the
    smallest float32 value such that the postings of weight >= ``tau`` fit the budget (just
    above the ``budget + 1``-th largest weight: postings tied there are dropped together;
    if all are tied at the largest weight, that weight). 0 when every posting fits. A term
    then keeps its postings of weight >= ``tau``, at most ``max_fraction * n_postings`` of
    them; as in Seismic, the postings that cap removes are not given back to other terms.
    """
    budget = n_postings * n_lists
    if data.shape[0] <= budget:
        return np.float32(0.0)
    first_out = np.float32(ak.kth_smallest_positive(data, data.shape[0] - budget - 1))
    top = np.float32(data.max())
    return min(np.nextafter(first_out, np.float32(np.inf)), top)


def pack_layout(n_terms: int, max_weight: float) -> tuple[int, float]:
    """``(shift, scale)`` of the packed forward rows: a term id takes the high
    ``32 - shift`` bits of a uint32, its weight the low ``shift`` bits, in units of
    ``scale = max_weight / (2**shift - 1)``, rounded up (17 bits for BERT's 30,522 terms)."""
    term_bits = max(1, (max(n_terms, 1) - 1).bit_length())
    shift = 32 - term_bits
    if shift < 8:
        raise ConfigError(
            f"index=numba_approx: {n_terms} terms leave fewer than 8 bits per packed weight; "
            "at most 16,777,216 terms are supported"
        )
    top = float(max_weight)
    if 0 < top < MIN_MAX_WEIGHT:
        raise DataError(
            f"index=numba_approx: the largest doc weight is {top:.3g}; its float32 bounds lose "
            f"precision below {MIN_MAX_WEIGHT:g}, rescale the vectors (or use index=numba)"
        )
    return shift, (top if top > 0 else 1.0) / ((1 << shift) - 1)


def _term_dtype(n_terms: int) -> np.dtype:
    return np.dtype(np.uint16) if n_terms <= 2**16 else np.dtype(np.int32)


def _readonly(a: np.ndarray) -> np.ndarray:
    v = np.asarray(a).view()
    v.flags.writeable = False
    return v


#: knobs that are counts and knobs that are factors (see :func:`_typed_knobs`)
_COUNT_KNOBS = ("n_postings", "cluster_terms", "doc_cut", "query_cut", "sorted_terms")
_FACTOR_KNOBS = ("max_fraction", "centroid_fraction", "summary_energy", "heap_factor")


def _typed_knobs(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` with its counts as ints and its factors as floats; a ConfigError naming the key
    for anything else (``query_cut=2.5`` or ``'abc'`` is refused, not truncated; a factor must
    be finite; ``n_postings`` may be None)."""
    out = dict(cfg)
    for name in _COUNT_KNOBS:
        v = cfg.get(name)
        if name not in cfg or (v is None and name == "n_postings"):
            continue
        if not is_integer(v):
            raise ConfigError(f"index.{name}={v!r}: expected an integer")
        out[name] = int(v)
    for name in _FACTOR_KNOBS:
        v = cfg.get(name)
        if name not in cfg:
            continue
        if not is_finite_number(v):
            raise ConfigError(f"index.{name}={v!r}: expected a finite number")
        out[name] = float(v)
    return out


def _check_knobs(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` typed (:func:`_typed_knobs`) once every knob is in range; else a ConfigError."""
    cfg = _typed_knobs(cfg)

    def bad(name: str, want: str) -> ConfigError:
        return ConfigError(f"index.{name}={cfg[name]!r}: expected {want}")

    if cfg["n_postings"] is not None and int(cfg["n_postings"]) < 0:
        raise bad("n_postings", "null (auto), 0 (no pruning) or a positive count")
    if cfg["pruning"] not in ("global", "fixed"):
        raise bad("pruning", "'global' or 'fixed'")
    if not float(cfg["max_fraction"]) >= 1:
        raise bad("max_fraction", "a factor >= 1")
    if not 0 < float(cfg["centroid_fraction"]) <= 1:
        raise bad("centroid_fraction", "a fraction in (0, 1]")
    if not 0 < float(cfg["summary_energy"]) <= 1:
        raise bad("summary_energy", "a fraction in (0, 1]")
    if int(cfg["cluster_terms"]) < 1:
        raise bad("cluster_terms", "a positive count")
    if int(cfg["doc_cut"]) < 0:
        raise bad("doc_cut", "0 (= cluster_terms) or a positive count")
    if int(cfg["query_cut"]) < 0:
        raise bad("query_cut", "0 (all terms) or a positive count")
    if int(cfg["sorted_terms"]) < 0:
        raise bad("sorted_terms", "a count >= 0")
    if not float(cfg["heap_factor"]) > 0:
        raise bad("heap_factor", "a positive factor (<= 1.0 with exact summaries = safe)")
    return cfg


def _forward_rows(
    blocks: Callable[[], Iterable[sp.csr_matrix]], n_terms: int, tdt: np.dtype
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The forward index ``(indptr int64, term ids, float32 weights)`` of the positive
    entries of ``blocks()``, canonicalised (sorted terms, duplicates summed): one pass
    counts, a second fills."""
    row_counts = []
    for b in base.read_blocks(blocks, n_terms):
        out = np.empty(b.shape[0], dtype=np.int64)
        ak.positive_row_counts(b.indptr, b.data, out)
        row_counts.append(out)
    n_docs = sum(len(c) for c in row_counts)
    if n_docs >= 2**31:
        raise ConfigError(f"index=numba_approx: {n_docs} docs exceed the int32 doc limit")
    indptr = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(np.concatenate(row_counts) if row_counts else [], out=indptr[1:])
    del row_counts
    indices = np.empty(int(indptr[-1]), dtype=tdt)
    data = np.empty(int(indptr[-1]), dtype=np.float32)
    row = 0
    for b in base.read_blocks(blocks, n_terms):
        end = row + b.shape[0]
        out = np.empty(b.shape[0], dtype=np.int64)
        ak.positive_row_counts(b.indptr, b.data, out)
        # each block fills exactly its rows' span of the first pass, never past it
        if end > n_docs or not np.array_equal(out, np.diff(indptr[row : end + 1])):
            raise base.blocks_changed()
        if (
            ak.append_positive(b.indptr, b.indices, b.data, indptr[row], indptr[end], indices, data)
            < 0
        ):
            raise base.blocks_changed()
        row = end
    if row != n_docs:
        raise base.blocks_changed()
    return indptr, indices, data


def _summaries(fwd_indptr, fwd_indices, fwd_data, blk_ptr, blk_docs, n_terms, energy, n_workers):
    """Every block's summary: ``(sum_ptr, sum_terms, sum_vals, sum_scale)``. Each of
    ``n_workers`` threads summarises every ``n_workers``-th block into its own buffers (a
    block's max is computed once); the summaries are then copied to their places."""
    n_blocks = blk_ptr.shape[0] - 1
    start = np.empty(n_blocks, dtype=np.int64)
    sizes = np.empty(n_blocks, dtype=np.int64)
    sum_scale = np.empty(n_blocks, dtype=np.float32)

    def summarise(w: int):
        return ak.summarise_blocks(
            fwd_indptr, fwd_indices, fwd_data, blk_ptr, blk_docs, n_terms, energy, SLACK, w,
            n_workers, start, sizes, sum_scale,
        )  # fmt: skip

    with ThreadPoolExecutor(n_workers) as pool:  # the kernels release the GIL
        buffers = list(pool.map(summarise, range(n_workers)))
        sum_ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        sum_terms = np.empty(int(sum_ptr[-1]), dtype=fwd_indices.dtype)
        sum_vals = np.empty(int(sum_ptr[-1]), dtype=np.uint8)
        list(pool.map(lambda w: ak.place_summaries(w, n_workers, start, sum_ptr, *buffers[w],
                                                   sum_terms, sum_vals), range(n_workers)))  # fmt: skip
    return sum_ptr, sum_terms, sum_vals, sum_scale


class ApproxIndex:
    """Blocked, summarised, statically pruned posting lists over a forward index."""

    type_name = "numba_approx"
    # search-time knobs: outside the cache key, applied to a loaded index (pipeline.build_index)
    search_keys = ("query_cut", "heap_factor", "sorted_terms")

    def __init__(self, arrays: dict[str, np.ndarray], *, n_docs: int, n_terms: int, cfg: dict):
        self.arrays = arrays
        self._n_docs = int(n_docs)
        self._n_terms = int(n_terms)
        self.cfg = {**DEFAULTS, **cfg}
        self._kernel_arrays = tuple(_readonly(arrays[name]) for name in _ARRAYS)
        self._scratch: tuple[np.ndarray, ...] | None = None
        self._scratch_lock = threading.Lock()
        tb = arrays["term_blocks"]
        self.max_term_blocks = int(np.diff(tb).max()) if len(tb) > 1 else 0
        self._pack_shift = pack_layout(self._n_terms, 0.0)[0]

    # ------------------------------------------------------------------------- properties

    @property
    def n_docs(self) -> int:
        return self._n_docs

    @property
    def n_terms(self) -> int:
        return self._n_terms

    @property
    def nnz(self) -> int:
        """Stored doc entries (the forward index)."""
        return int(self.arrays["fwd_data"].shape[0])

    @property
    def n_blocks(self) -> int:
        return int(self.arrays["blk_ptr"].shape[0]) - 1

    @property
    def n_kept_postings(self) -> int:
        return int(self.arrays["blk_docs"].shape[0])

    @property
    def size_bytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays.values()))

    def __repr__(self) -> str:
        c = self.cfg
        return (
            f"ApproxIndex(n_docs={self.n_docs}, n_terms={self.n_terms}, "
            f"kept_postings={self.n_kept_postings}, blocks={self.n_blocks}, "
            f"n_postings={c['n_postings']}, query_cut={c['query_cut']}, "
            f"heap_factor={c['heap_factor']}, sorted_terms={c['sorted_terms']})"
        )

    def configure(
        self,
        query_cut: int | None = None,
        heap_factor: float | None = None,
        sorted_terms: int | None = None,
    ) -> None:
        """Change the default search-time knobs of a built or loaded index (None keeps)."""
        self.cfg.update(self._search_knobs(query_cut, heap_factor, sorted_terms))

    def _search_knobs(self, query_cut: Any, heap_factor: Any, sorted_terms: Any) -> dict[str, Any]:
        """The search knobs with these (None: the index's) checked and typed."""
        given = {"query_cut": query_cut, "heap_factor": heap_factor, "sorted_terms": sorted_terms}
        knobs = _check_knobs({**self.cfg, **{key: v for key, v in given.items() if v is not None}})
        return {key: knobs[key] for key in given}

    @staticmethod
    def check_options(options: dict[str, Any]) -> None:
        """A ConfigError naming ``index.<key>`` for a knob of the wrong type or out of range,
        checkable before any encoding (``pipeline.check_index_keys``)."""
        _check_knobs({**DEFAULTS, **{k: v for k, v in options.items() if k in DEFAULTS}})

    @staticmethod
    def calibration_knobs(cfg: Any = None) -> tuple[str, ...]:
        """The search knobs :meth:`calibrate` sets (for the config check before any work)."""
        return ("query_cut", "heap_factor")

    def calibrate(
        self,
        queries: sp.csr_matrix,
        k: int,
        target_recall: float = 0.95,
        *,
        exact: np.ndarray | None = None,
        threads: int = 0,
    ):
        """Pick the cheapest ``query_cut`` / ``heap_factor`` whose mean recall@k on
        ``queries`` reaches ``target_recall`` (:func:`irbench.index.tuning.calibrate_approx`),
        make it this index's default and return the :class:`~irbench.index.tuning.Calibration`."""
        from irbench.index.tuning import calibrate_approx

        result = calibrate_approx(self, queries, k, target_recall, exact=exact, threads=threads)
        self.configure(**result.knobs)
        return result

    # ------------------------------------------------------------------------------ build

    @classmethod
    def build(cls, docs: sp.csr_matrix | RowBlocks, **knobs: Any) -> ApproxIndex:
        """Build from a doc matrix (rows = docs, columns = term ids), or from
        :class:`~irbench.types.RowBlocks` by :meth:`build_streaming`; drops weights <= 0.
        Knobs as :meth:`build_streaming`."""
        rows = base.row_blocks(docs)
        return cls.build_streaming(rows.blocks, rows.n_terms, **knobs)

    @classmethod
    def build_streaming(
        cls,
        blocks: Callable[[], Iterable[sp.csr_matrix]],
        n_terms: int,
        *,
        n_postings: int | None = None,
        pruning: str = DEFAULTS["pruning"],
        max_fraction: float = DEFAULTS["max_fraction"],
        centroid_fraction: float = DEFAULTS["centroid_fraction"],
        summary_energy: float = DEFAULTS["summary_energy"],
        cluster_terms: int = DEFAULTS["cluster_terms"],
        doc_cut: int = DEFAULTS["doc_cut"],
        query_cut: int = DEFAULTS["query_cut"],
        heap_factor: float = DEFAULTS["heap_factor"],
        sorted_terms: int = DEFAULTS["sorted_terms"],
        threads: int = 0,
        name: str | None = None,
    ) -> ApproxIndex:
        """Build from consecutive row blocks (docs), read twice: the corpus is held once, as
        the index's forward rows, never as a second CSR copy; ``blocks()`` must give the
        same blocks on both calls. Drops weights <= 0.

        Besides the index, the build holds, for the clustering, each doc's ``doc_cut``
        heaviest terms (8 bytes each) and the term-major postings that may be kept (those
        of weight >= the global-pruning cut; all of them with ``pruning: fixed``).

        ``n_postings``: null = :func:`default_n_postings`, 0 = keep every posting.
        ``threads``: numba threads for the build (0 = all); the layout does not depend on it.
        """
        cfg = _check_knobs(
            {
                "n_postings": n_postings,
                "pruning": pruning,
                "max_fraction": max_fraction,
                "centroid_fraction": centroid_fraction,
                "summary_energy": summary_energy,
                "cluster_terms": cluster_terms,
                "doc_cut": doc_cut,
                "query_cut": query_cut,
                "heap_factor": heap_factor,
                "sorted_terms": sorted_terms,
            }
        )
        tdt = _term_dtype(n_terms)
        fwd_indptr, fwd_indices, fwd_data = _forward_rows(blocks, n_terms, tdt)
        n_docs = fwd_indptr.shape[0] - 1
        shift, scale = pack_layout(n_terms, float(fwd_data.max()) if fwd_data.size else 0.0)

        nt = base.resolve_threads(threads)
        with base.numba_threads(nt):
            counts = np.zeros(n_terms + 1, dtype=np.int64)
            kernels.count_postings(fwd_indptr, fwd_indices, fwd_data, 0, n_docs, counts)
            df = counts[1:].copy()
            p = cfg["n_postings"]
            limit = default_n_postings(n_docs) if p is None else (p if p > 0 else max(1, n_docs))
            cut = np.float32(0.0)  # postings of weight >= cut may be kept: the candidates
            if cfg["pruning"] == "global" and p != 0:
                cut = global_threshold(fwd_data, int((df > 0).sum()), limit)
                if cut > 0:  # else every posting is a candidate: counts stand
                    counts[:] = 0
                    kernels.count_postings(
                        fwd_indptr, fwd_indices, fwd_data, 0, n_docs, counts, cut
                    )
                kept = np.minimum(counts[1:], max(1, int(cfg["max_fraction"] * limit)))
            else:
                kept = np.minimum(df, limit)
            offsets = np.cumsum(counts, dtype=np.int64)
            del df, counts
            # candidates: term-major, doc ids ascending within a term
            doc_ids = np.empty(int(offsets[-1]), dtype=np.uint32)
            weights = np.empty(int(offsets[-1]), dtype=np.float32)
            kernels.scatter_postings(
                fwd_indptr, fwd_indices, fwd_data, 0, n_docs, 0, offsets[:-1].copy(), offsets[1:],
                doc_ids, weights, 1.0, 0.0, cut,
            )  # fmt: skip
            kept_offsets = np.concatenate([[0], np.cumsum(kept)]).astype(np.int64)
            cap = np.where(
                kept > 0, np.minimum(kept, np.ceil(cfg["centroid_fraction"] * kept)), 0
            ).astype(np.int64)
            cap = np.maximum(cap, (kept > 0).astype(np.int64))
            cap_offsets = np.concatenate([[0], np.cumsum(cap)]).astype(np.int64)

            # docs join a centroid by their heaviest doc_cut terms (all cluster_terms if 0)
            m = cfg["cluster_terms"]
            dc = int(cfg["doc_cut"]) if 0 < cfg["doc_cut"] < m else m
            doc_terms = np.empty((n_docs, dc), dtype=np.int32)  # rows padded with -1
            doc_w = np.empty((n_docs, dc), dtype=np.float32)
            ak.doc_sketches(fwd_indptr, fwd_indices, fwd_data, dc, doc_terms, doc_w)

            blk_docs = np.empty(int(kept_offsets[-1]), dtype=np.uint32)
            blk_count = np.zeros(n_terms, dtype=np.int64)
            blk_sizes = np.zeros(int(cap_offsets[-1]), dtype=np.int64)
            ak.build_blocks(
                offsets,
                doc_ids,
                weights,
                fwd_indptr,
                fwd_indices,
                fwd_data,
                m,
                doc_terms,
                doc_w,
                nt,
                kept_offsets,
                cap_offsets,
                blk_docs,
                blk_count,
                blk_sizes,
            )
            del doc_terms, doc_w, doc_ids, weights
            # compact: block b of term t is blk_sizes[cap_offsets[t] + b]
            valid = np.arange(int(cap_offsets[-1])) - np.repeat(cap_offsets[:-1], cap) < np.repeat(
                blk_count, cap
            )
            sizes = blk_sizes[valid]
            blk_ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            term_blocks = np.concatenate([[0], np.cumsum(blk_count)]).astype(np.int64)

            sum_ptr, sum_terms, sum_vals, sum_scale = _summaries(
                fwd_indptr, fwd_indices, fwd_data, blk_ptr, blk_docs, n_terms,
                cfg["summary_energy"], nt,
            )  # fmt: skip
            if len(term_blocks) > 1 and int(np.diff(term_blocks).max()) > 2**16:
                raise ConfigError(
                    "index.centroid_fraction: more than 65,536 blocks in one posting list; "
                    "lower centroid_fraction or n_postings"
                )
            n_comp = np.zeros(n_terms, dtype=np.int64)
            ak.count_summary_components(term_blocks, sum_ptr, sum_terms, nt, n_comp)
            comp_ptr = np.concatenate([[0], np.cumsum(n_comp)]).astype(np.int64)
            comps = np.empty(int(comp_ptr[-1]), dtype=tdt)
            comp_off = np.empty(int(comp_ptr[-1]), dtype=np.uint32)
            ent_blk = np.empty(int(sum_ptr[-1]), dtype=np.uint16)
            ent_val = np.empty(int(sum_ptr[-1]), dtype=np.uint8)
            ak.transpose_summaries(
                term_blocks, sum_ptr, sum_terms, sum_vals, comp_ptr, nt, comps, comp_off,
                ent_blk, ent_val,
            )  # fmt: skip
            del sum_terms, sum_vals
            fwd_pack = np.empty(fwd_data.shape[0], dtype=np.uint32)
            ak.pack_forward(fwd_indices, fwd_data, shift, scale, fwd_pack)
            del fwd_indices
        cfg["pack_scale"] = scale  # the shift follows from n_terms (pack_layout)
        arrays = {
            "fwd_indptr": fwd_indptr,
            "fwd_pack": fwd_pack,
            "fwd_data": fwd_data,
            "term_blocks": term_blocks,
            "blk_ptr": blk_ptr,
            "blk_docs": blk_docs,
            "sum_ptr": sum_ptr,
            "sum_scale": sum_scale,
            "comp_ptr": comp_ptr,
            "comps": comps,
            "comp_off": comp_off,
            "ent_blk": ent_blk,
            "ent_val": ent_val,
        }
        cfg["n_postings_effective"] = int(limit)
        return cls(arrays, n_docs=n_docs, n_terms=n_terms, cfg=cfg)

    # ------------------------------------------------------------------------- save / load

    def header(self) -> dict[str, Any]:
        return {
            "type": self.type_name,
            "format": FORMAT,
            "n_docs": self.n_docs,
            "n_terms": self.n_terms,
            "nnz": self.nnz,
            "n_blocks": self.n_blocks,
            "n_kept_postings": self.n_kept_postings,
            "n_summary_entries": int(self.arrays["ent_val"].shape[0]),
            "n_summary_components": int(self.arrays["comps"].shape[0]),
            "term_dtype": str(self.arrays["comps"].dtype),
            "config": self.cfg,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the folder ``path`` atomically (header.json + one .npy per array)."""
        with atomic_folder(path) as tmp:
            for name in _ARRAYS:
                np.save(tmp / f"{name}.npy", np.asarray(self.arrays[name]))
            write_header(tmp, self.header())

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True) -> ApproxIndex:
        """Load a saved index (memory-mapped read-only by default); raises CacheError."""
        path = Path(path)
        header = read_header(path)
        where = base.check_header(path, header, cls.type_name, FORMAT)
        with base.header_fields(where):
            n_docs = int(header["n_docs"])
            n_terms = int(header["n_terms"])
            n_blocks = int(header["n_blocks"])
            nnz = int(header["nnz"])
            n_kept = int(header["n_kept_postings"])
            n_sum = int(header["n_summary_entries"])
            n_comp = int(header["n_summary_components"])
            tdt = np.dtype(header["term_dtype"])
            cfg = dict(header["config"])
            cfg.setdefault("doc_cut", 0)  # built before doc_cut existed: whole sketches
            pack_scale = float(cfg["pack_scale"])
        if not pack_scale > 0:
            raise CacheError(f"{where}: invalid config.pack_scale; rebuild the index")
        shapes = {
            "fwd_indptr": n_docs + 1,
            "fwd_pack": nnz,
            "fwd_data": nnz,
            "term_blocks": n_terms + 1,
            "blk_ptr": n_blocks + 1,
            "blk_docs": n_kept,
            "sum_ptr": n_blocks + 1,
            "sum_scale": n_blocks,
            "comp_ptr": n_terms + 1,
            "comps": n_comp,
            "comp_off": n_comp,
            "ent_blk": n_sum,
            "ent_val": n_sum,
        }
        expected = {
            name: (dtype if dtype is not None else tdt, (shapes[name],))
            for name, (dtype, _) in _ARRAYS.items()
        }
        arrays = base.load_arrays(path, expected, mmap)
        base.check_offsets(
            path,
            arrays,
            {
                "fwd_indptr": nnz,
                "term_blocks": n_blocks,
                "blk_ptr": n_kept,
                "sum_ptr": n_sum,
                "comp_ptr": n_comp,
            },
        )
        return cls(arrays, n_docs=n_docs, n_terms=n_terms, cfg=cfg)

    # ----------------------------------------------------------------------------- search

    def exact_search(self, queries: sp.csr_matrix, k: int, threads: int = 0):
        """Exact top-k by brute force over the forward index (every doc scored):
        ``(scores, doc_idx)`` as :meth:`search`, with the scores :meth:`search` computes
        and the same order, so that ``search`` with the exactness condition returns the
        same rows. The recall reference of :func:`irbench.index.tuning.calibrate_approx`; one pass
        over the forward index per 16 queries. Like :meth:`search` it ignores query weights
        <= 0 (it is exact for the vectors the index searches, not for negative weights)."""
        k = base.search_k(k)
        q = base.canonical_queries(queries)
        nq = int(q.shape[0])
        out_s = np.full((nq, k), -np.inf, dtype=np.float32)
        out_d = np.full((nq, k), -1, dtype=np.int64)
        if nq == 0 or k == 0 or self.nnz == 0 or q.nnz == 0:
            return out_s, out_d
        n_threads = base.resolve_threads(threads)
        n_workers = max(1, min(n_threads, -(-nq // ak.LANES)))
        with base.numba_threads(n_threads):
            ak.forward_topk(
                self.arrays["fwd_indptr"],
                self.arrays["fwd_pack"],
                self.arrays["fwd_data"],
                np.uint32(self._pack_shift),
                q.indptr.astype(np.int64, copy=False),
                q.indices.astype(np.int64, copy=False),
                q.data.astype(np.float32, copy=False),
                k,
                np.zeros((n_workers, self.n_terms, ak.LANES), dtype=np.float32),
                np.empty((n_workers, ak.LANES, k), dtype=np.float32),
                np.empty((n_workers, ak.LANES, k), dtype=np.int64),
                out_s,
                out_d,
            )
        return out_s, out_d

    def _take_scratch(self, n_workers: int) -> tuple[tuple[np.ndarray, ...], bool]:
        cached = self._scratch_lock.acquire(blocking=False)
        if cached:
            s = self._scratch
            if s is not None and s[0].shape[0] >= n_workers:
                return s, True
            self._scratch = None
        try:
            s = (
                np.zeros((n_workers, self.n_terms), dtype=np.float32),
                np.zeros((n_workers, self.n_docs), dtype=np.int32),
                np.zeros(n_workers, dtype=np.int64),
            )
        except BaseException:
            if cached:
                self._scratch_lock.release()
            raise
        if cached:
            self._scratch = s
        return s, cached

    def search(
        self,
        queries: sp.csr_matrix,
        k: int,
        threads: int = 0,
        *,
        query_cut: int | None = None,
        heap_factor: float | None = None,
        sorted_terms: int | None = None,
        return_work: bool = False,
    ) -> tuple[np.ndarray, ...]:
        """Approximate top-k: ``(scores float32 [nq, k], doc_idx int64 [nq, k])``.

        Rows best-first (score desc, doc index asc), padded with -inf / -1. Scores are exact
        dot products. ``query_cut`` (0 = all terms), ``heap_factor`` and ``sorted_terms``
        default to the values the index was built with. ``threads`` as :meth:`NumbaIndex.search`.
        With ``return_work``, a third array ``int64 [nq, len(WORK_COLUMNS)]`` counts what
        each query read (:data:`WORK_COLUMNS`); it does not depend on ``threads``.
        """
        k = base.search_k(k)
        qc, hf, st = self._search_knobs(query_cut, heap_factor, sorted_terms).values()
        q = base.canonical_queries(queries)
        nq = int(q.shape[0])
        out_s = np.full((nq, k), -np.inf, dtype=np.float32)
        out_d = np.full((nq, k), -1, dtype=np.int64)
        work = np.zeros((nq, len(WORK_COLUMNS)), dtype=np.int64)
        if nq == 0 or k == 0 or self.nnz == 0 or q.nnz == 0:
            return (out_s, out_d, work) if return_work else (out_s, out_d)
        q_indptr = q.indptr.astype(np.int64, copy=False)
        q_indices = q.indices.astype(np.int64, copy=False)
        q_data = q.data.astype(np.float32, copy=False)
        n_threads = base.resolve_threads(threads)
        with base.numba_threads(n_threads):
            n_workers = min(n_threads, nq)
            (qdense, stamp, gens), cached = self._take_scratch(n_workers)
            try:
                heap_s = np.empty((n_workers, k), dtype=np.float32)
                heap_d = np.empty((n_workers, k), dtype=np.int64)
                bounds = np.empty((n_workers, max(self.max_term_blocks, 1)), dtype=np.float32)
                fwd_indptr, fwd_pack, fwd_data, *rest = self._kernel_arrays
                ak.search_batch(
                    fwd_indptr,
                    fwd_pack,
                    fwd_data,
                    np.uint32(self._pack_shift),
                    # 1e-5 above the scale: float32 rounding never lowers a packed bound
                    np.float32(self.cfg["pack_scale"] * (1.0 + 1e-5)),
                    *rest,
                    q_indptr,
                    q_indices,
                    q_data,
                    k,
                    qc if qc > 0 else 2**62,
                    hf,
                    st,
                    qdense[:n_workers],
                    stamp[:n_workers],
                    gens[:n_workers],
                    bounds,
                    heap_s,
                    heap_d,
                    out_s,
                    out_d,
                    work,
                )
            finally:
                if cached:
                    self._scratch_lock.release()
        base.checked_scores(out_s, out_d)
        return (out_s, out_d, work) if return_work else (out_s, out_d)
