"""``index=faiss``: dense vectors in a FAISS index built from an ``index_factory`` string.

``factory`` is any FAISS factory string (``Flat`` exact; ``HNSW32``; ``IVF1024,Flat``;
``IVF1024,PQ32``; ``OPQ16,IVF256,PQ16``...) over the inner product (``metric: ip``, the
default) or the L2 distance (``metric: l2``, scored as ``-distance`` so that larger is better).
Indexes that need training (IVF, PQ, SQ...) are trained on ``train_size`` docs drawn with
``seed`` (when null, as many as FAISS's own training keeps for IVF-Flat, IVF-PQ and PQ, with
PCA/OPQ: :func:`default_train_size`; all docs for other types or when fewer). Search-time
knobs ``nprobe`` (IVF) and ``ef_search`` (HNSW) are applied wherever the index has them;
``ef_construction`` (HNSW) applies while building.

Results follow the :class:`irbench.types.Index` contract: rows sorted by score descending, ties
by doc index ascending, padded with -1 / -inf. FAISS itself breaks ties arbitrarily; here every
row is re-sorted by ``(-score, idx)``, and for exhaustive indexes (``Flat``, ``PQ``, ``SQ``)
a tie that straddles the k-th place is resolved by searching deeper, so ``Flat`` returns
exactly the top k by ``(-score, idx)``. Saved as ``header.json`` + ``index.faiss``, memory-mapped
on load where FAISS supports it (flat codes, HNSW storage, IVF lists).

``calibrate.target_recall`` sets the search knob from measurement (:meth:`FaissIndex.calibrate`,
:func:`irbench.index.tuning.calibrate_faiss`): ``nprobe`` for IVF factories, ``ef_search`` for
HNSW ones, the smallest value whose recall@k against the index's exhaustive search reaches
the target.

GPU FAISS (a ``faiss-gpu`` build) is used when ``gpu`` is true, or ``auto`` and a GPU is
visible and the index type has a GPU version (not HNSW); the saved file is always the CPU form.
HNSW graphs built with several threads depend on thread scheduling (FAISS adds in parallel):
rebuilds may differ slightly; searching one saved index is deterministic.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from irbench.errors import CacheError, ConfigError
from irbench.index.base import atomic_folder, check_finite, read_header, search_k, write_header
from irbench.types import DenseBlocks, is_integer

FORMAT = 1
INDEX_FILE = "index.faiss"
METRICS = {"ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}
_PAD = np.float32(-3.0e38)  # FAISS marks missing hits with -FLT_MAX (ip) / +FLT_MAX (l2)
#: rows per ``add`` call while building (the batches do not depend on the input's blocks)
ADD_BATCH = 1 << 16
#: the largest ``ef_search`` calibration tries (or k, when larger)
EF_SEARCH_MAX = 4096
#: ``distance_compute_blas_threshold`` during searches: 0, so every batch, one query
#: included, computes flat distances (exhaustive indexes, IVF coarse quantizers) with one BLAS
#: matrix product. FAISS's default (queries x dim >= 128,000 in 1.15; 333 queries at dim 384)
#: scans the docs once per query below it, which is 3-22x slower per query from 4-8 queries
#: on (an ad hoc sweep on this project's 2-core machine, 5k-200k docs, d 64-384) and gives
#: distances that differ in the last bits, so a query's scores and tie order would depend on
#: the batch it was searched in (the last, short batch of a run; one query at a time from
#: PyTerrier). With BLAS always, a query's row is the same in any batch (tested: batches of
#: 1-13 against one of 40; an ad hoc check on 300 random queries covered batches of 1-257).
BLAS_THRESHOLD = 0
_blas_cond = threading.Condition()
_blas_users = 0  # searches inside blas_threshold() now
_blas_value = 0  # the value they run with
_blas_saved = 0  # the setting before the first of them
_blas_local = threading.local()  # this thread's depth inside blas_threshold()


@contextlib.contextmanager
def blas_threshold(value: int) -> Iterator[None]:
    """``faiss.cvar.distance_compute_blas_threshold``, a process-wide setting, equal to
    ``value`` while the block runs. Safe across threads: searches asking for the same value
    run together (the first saves the setting, the last restores it); one asking for
    another value waits until they are done, so that no search's distances (BLAS or not,
    which differ in the last bits) depend on what another thread runs. A thread already
    inside keeps the value it holds (no self-deadlock when nested)."""
    global _blas_users, _blas_value, _blas_saved
    value = int(value)
    nested = getattr(_blas_local, "depth", 0) > 0
    entered = False
    try:
        with _blas_cond:
            while not nested and _blas_users and _blas_value != value:
                _blas_cond.wait()
            if _blas_users == 0:
                _blas_saved = faiss.cvar.distance_compute_blas_threshold
                faiss.cvar.distance_compute_blas_threshold = value
                _blas_value = value
            _blas_users += 1
            entered = True
        _blas_local.depth = getattr(_blas_local, "depth", 0) + 1
        yield
    finally:
        if entered:
            _blas_local.depth -= 1
            with _blas_cond:
                _blas_users -= 1
                if _blas_users == 0:
                    faiss.cvar.distance_compute_blas_threshold = _blas_saved
                    _blas_cond.notify_all()


def _one_line(exc: BaseException | None) -> str:
    """The useful part of a FAISS error ("Error in <function> at <file>:<line>: <message>")."""
    text = " ".join(str(exc).split())
    if "Error: " in text:
        text = text.rsplit("Error: ", 1)[1]
    elif text.startswith("Error in ") and " at " in text:
        text = text.split(" at ", 1)[1].split(": ", 1)[-1]
    return text[:200]


def _gpu_wanted(gpu: Any, base: Any) -> bool:
    """Whether to search (and build) on GPU FAISS: ``gpu`` is false, true or ``"auto"``."""
    if gpu is None or gpu is False:
        return False
    if gpu is not True and gpu != "auto":
        raise ConfigError(f"index.gpu: expected true, false or auto, got {gpu!r}")
    n_gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    hnsw = isinstance(base, faiss.IndexHNSW)
    if gpu == "auto":
        return n_gpus > 0 and not hnsw
    if n_gpus == 0:
        raise ConfigError(
            "index.gpu=true: no GPU FAISS here (faiss-cpu or no visible GPU); use index.gpu=auto"
        )
    if hnsw:
        raise ConfigError("index.gpu=true: FAISS has no GPU HNSW; use index.gpu=auto or false")
    return True


def _to_gpu(index: Any) -> Any:
    try:
        return faiss.index_cpu_to_all_gpus(index)
    except (RuntimeError, AttributeError):  # type without a GPU version: stay on the CPU
        return index


class FaissIndex:
    """A FAISS index plus the knobs and bookkeeping of the :class:`~irbench.types.Index` API."""

    type_name = "faiss"
    #: part of the index cache key: bumped when the same config builds a different index
    #: (2: ``train_size: null`` samples :func:`default_train_size` rows, not every row)
    build_version = 2
    #: settings that only steer search: not part of the index cache key (see ``configure``)
    search_keys = ("nprobe", "ef_search")

    def __init__(
        self,
        index: Any,
        *,
        factory: str,
        metric: str = "ip",
        nprobe: int | None = None,
        ef_search: int | None = None,
        gpu: Any = False,
        file_bytes: int | None = None,
        mmap: bool = False,
    ):
        self.cpu_index = index
        self.factory = factory
        self.metric = metric
        self.nprobe = None if nprobe is None else int(nprobe)  # numpy ints: JSON headers
        self.ef_search = None if ef_search is None else int(ef_search)
        self.gpu = gpu
        self.mmap = mmap
        self._file_bytes = file_bytes
        base = faiss.downcast_index(index)
        self._exhaustive = isinstance(base, faiss.IndexFlatCodes)
        self.index = _to_gpu(index) if _gpu_wanted(gpu, base) else index
        self.on_gpu = self.index is not index
        self._apply_knobs()

    # ------------------------------------------------------------------------- properties

    @property
    def n_docs(self) -> int:
        return int(self.cpu_index.ntotal)

    @property
    def exhaustive(self) -> bool:
        """Whether a search scans every stored code (Flat, PQ, SQ...): exact over them."""
        return self._exhaustive

    @property
    def dim(self) -> int:
        return int(self.cpu_index.d)

    @property
    def size_bytes(self) -> int:
        """Bytes of the serialised index (the ``index.faiss`` file once saved or loaded)."""
        if self._file_bytes is None:
            self._file_bytes = int(faiss.serialize_index(self.cpu_index).nbytes)
        return self._file_bytes

    def __repr__(self) -> str:
        return (
            f"FaissIndex(factory={self.factory!r}, metric={self.metric!r}, n_docs={self.n_docs}, "
            f"dim={self.dim}, nprobe={self.nprobe}, ef_search={self.ef_search}, gpu={self.on_gpu})"
        )

    def configure(self, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Change the search-time knobs of a built or loaded index (None keeps the value)."""
        for key, value in (("nprobe", nprobe), ("ef_search", ef_search)):
            if value is not None and not (is_integer(value) and value >= 1):
                raise ConfigError(f"index.{key}: expected an integer >= 1 or null, got {value!r}")
        if nprobe is not None:
            self.nprobe = int(nprobe)
        if ef_search is not None:
            self.ef_search = int(ef_search)
        self._apply_knobs()

    def _apply_knobs(self) -> None:
        """Set nprobe / efSearch wherever the index (or a sub-index) has them."""
        if self.on_gpu:
            space = faiss.GpuParameterSpace()
        else:
            space = faiss.ParameterSpace()
        for name, value in (("nprobe", self.nprobe), ("efSearch", self.ef_search)):
            if value is None:
                continue
            try:
                space.set_index_parameter(self.index, name, int(value))
            except RuntimeError:  # the index has no such parameter (e.g. nprobe on Flat)
                pass

    # ------------------------------------------------------------------------ calibration

    @staticmethod
    def calibration_knobs(cfg: Any) -> tuple[str, ...]:
        """The knob :meth:`calibrate` sets for the factory of the index config ``cfg``:
        ``nprobe`` for IVF factories, ``ef_search`` for HNSW ones, none otherwise (checked
        from the factory string, before any work is done)."""
        factory = str((cfg or {}).get("factory") or "")
        if re.search(r"(^|,)(IVF|IMI)", factory):
            return ("nprobe",)
        if factory.startswith("HNSW"):
            return ("ef_search",)
        return ()

    @staticmethod
    def steering_keys(cfg: Any) -> tuple[str, ...]:
        """The search keys that change results for the factory of ``cfg``: ``nprobe`` for
        IVF factories (with ``ef_search`` when the coarse quantizer is an HNSW graph),
        ``ef_search`` for HNSW ones, none otherwise (part of a calibration's cache key when
        not calibrated themselves)."""
        factory = str((cfg or {}).get("factory") or "")
        knobs = FaissIndex.calibration_knobs(cfg)
        if "nprobe" in knobs:
            return ("nprobe", "ef_search") if "_HNSW" in factory else ("nprobe",)
        return knobs

    def _ivf(self) -> Any:
        """The IndexIVF inside (also under a pre-transform such as OPQ or PCA), or None."""
        return faiss.try_extract_index_ivf(faiss.downcast_index(self.cpu_index))

    def calibration_range(self, k: int) -> tuple[str, int, int, str]:
        """``(knob, lowest, highest, advice when even the highest misses)`` for
        :func:`~irbench.index.tuning.calibrate_faiss`; ConfigError for other index types."""
        ivf = self._ivf()
        if ivf is not None:
            return "nprobe", 1, int(ivf.nlist), "recall stays below it with every list probed"
        if isinstance(faiss.downcast_index(self.cpu_index), faiss.IndexHNSW):
            high = max(int(k), min(self.n_docs, EF_SEARCH_MAX))
            hint = (
                "the graph caps recall: rebuild with more links (e.g. HNSW64) or a larger "
                "index.ef_construction"
            )
            return "ef_search", int(k), high, hint
        raise ConfigError(
            f"index.factory={self.factory!r}: no search knob to calibrate; calibration "
            "supports IVF factories (nprobe) and HNSW factories (ef_search)"
        )

    def search_params(self, nprobe: int | None = None, ef_search: int | None = None) -> Any:
        """Per-call FAISS SearchParameters for ``nprobe`` (IVF; an IVF's HNSW quantizer gets
        ``ef_search``) or ``ef_search`` (HNSW), through pre-transform and refine wrappers;
        None when nothing applies."""
        if nprobe is None and ef_search is None:
            return None
        return search_parameters(self.cpu_index, nprobe, ef_search)

    def _cpu(self) -> FaissIndex:
        """This index searched on the CPU: itself, or a CPU twin of a GPU index
        (calibration needs FAISS's CPU counters, and GPU IVF caps nprobe at 2048)."""
        if not self.on_gpu:
            return self
        return FaissIndex(
            self.cpu_index, factory=self.factory, metric=self.metric,
            nprobe=self.nprobe, ef_search=self.ef_search,
        )  # fmt: skip

    def counted_search(
        self, queries: np.ndarray, k: int, threads: int = 0, **knobs: Any
    ) -> tuple[np.ndarray, float]:
        """``(doc_idx [nq, k], distances computed per query)`` with the search knobs
        ``knobs`` for this call only, searched on the CPU: FAISS's IVF and HNSW counters
        (codes scanned in the probed lists, HNSW distances, an HNSW coarse quantizer's
        included) plus, for an IVF with a flat coarse quantizer, its ``nlist`` centroid
        distances per query."""
        cpu = self._cpu()
        faiss.cvar.indexIVF_stats.reset()
        faiss.cvar.hnsw_stats.reset()
        _, idx = cpu.search(queries, k, threads, params=cpu.search_params(**knobs))
        ndis = int(faiss.cvar.indexIVF_stats.ndis) + int(faiss.cvar.hnsw_stats.ndis)
        ivf = self._ivf()
        flat_quantizer = ivf is not None and isinstance(
            faiss.downcast_index(ivf.quantizer), faiss.IndexFlat
        )
        return idx, ndis / max(1, len(idx)) + (int(ivf.nlist) if flat_quantizer else 0)

    def exact_search(
        self, queries: np.ndarray, k: int, threads: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """The top-k of an exhaustive search over the index's own codes, on the CPU: every
        IVF list probed, an HNSW graph's flat storage scanned, an exhaustive index as it is.
        The recall reference of :meth:`calibrate` (exact over the doc vectors for
        ``...,Flat`` and ``HNSW`` factories; over the compressed codes for PQ / SQ ones)."""
        cpu = self._cpu()
        ivf = self._ivf()
        if ivf is not None:
            nlist = int(ivf.nlist)
            return cpu.search(queries, k, threads, params=cpu.search_params(nlist, nlist))
        base = faiss.downcast_index(self.cpu_index)
        if isinstance(base, faiss.IndexHNSW):
            flat = FaissIndex(base.storage, factory=f"{self.factory} storage", metric=self.metric)
            return flat.search(queries, k, threads)
        return cpu.search(queries, k, threads)

    def calibrate(
        self,
        queries: np.ndarray,
        k: int,
        target_recall: float = 0.95,
        *,
        exact: np.ndarray | None = None,
        threads: int = 0,
    ):
        """Set ``nprobe`` (IVF) or ``ef_search`` (HNSW) to the smallest value whose mean
        recall@k on ``queries`` reaches ``target_recall``
        (:func:`irbench.index.tuning.calibrate_faiss`) and return the
        :class:`~irbench.index.tuning.Calibration`."""
        from irbench.index.tuning import calibrate_faiss

        result = calibrate_faiss(self, queries, k, target_recall, exact=exact, threads=threads)
        self.configure(**result.knobs)
        return result

    # ------------------------------------------------------------------------------ build

    @staticmethod
    def check(dim: int, *, factory: str = "Flat", metric: str = "ip", **_: Any) -> Any:
        """The empty FAISS index for ``factory`` at width ``dim``; a :class:`ConfigError` when
        FAISS cannot make it (cheap: call it before encoding a corpus to fail early)."""
        if metric not in METRICS:
            raise ConfigError(f"index.metric={metric!r}: expected 'ip' or 'l2'")
        if not isinstance(factory, str) or not factory.strip():
            raise ConfigError(
                f"index.factory: expected a FAISS index_factory string, got {factory!r}"
            )
        try:
            index = faiss.index_factory(int(dim), factory, METRICS[metric])
        except RuntimeError as e:
            raise ConfigError(
                f"index.factory={factory!r}: FAISS cannot build it for dim {dim} ({_one_line(e)}); "
                "e.g. Flat, HNSW32, IVF256,Flat, IVF256,PQ16"
            ) from None
        if isinstance(faiss.downcast_index(index), faiss.IndexIDMap | faiss.IndexIDMap2):
            raise ConfigError(
                f"index.factory={factory!r}: an IDMap index needs ids with every vector, and "
                "this index numbers the docs itself; leave IDMap out"
            )
        return index

    @classmethod
    def build(
        cls,
        docs: np.ndarray | DenseBlocks,
        *,
        factory: str = "Flat",
        metric: str = "ip",
        nprobe: int | None = 32,
        ef_search: int | None = 128,
        ef_construction: int | None = None,
        train_size: int | None = None,
        seed: int = 0,
        gpu: Any = False,
        progress: Any = None,
        name: str | None = None,
    ) -> FaissIndex:
        """Build from a float32 doc matrix ``[n_docs, dim]`` (row = internal doc index) or
        from :class:`~irbench.types.DenseBlocks`, read one block at a time: the training
        sample (``train_size`` rows drawn with ``seed``; when null,
        :func:`default_train_size`) is gathered first, then the
        rows are added in batches of ``ADD_BATCH`` whatever the blocks' sizes, so the index
        is the same as from the merged matrix and the vectors are never held whole (unless
        training needs them all)."""
        for key, value in (("nprobe", nprobe), ("ef_search", ef_search),
                           ("ef_construction", ef_construction), ("train_size", train_size)):  # fmt: skip
            if value is not None and not (is_integer(value) and value >= 1):
                raise ConfigError(f"index.{key}: expected an integer >= 1 or null, got {value!r}")
        blocks = _dense_blocks(docs)
        n, dim = blocks.shape
        if dim < 1:
            raise ConfigError("index=faiss: the doc vectors have no dimensions")
        index = cls.check(dim, factory=factory, metric=metric)
        base = faiss.downcast_index(index)
        if ef_construction is not None and isinstance(base, faiss.IndexHNSW):
            base.hnsw.efConstruction = int(ef_construction)
        _seed_clustering(index, seed)
        work = _to_gpu(index) if _gpu_wanted(gpu, base) else index
        if not work.is_trained:
            size = default_train_size(index) if train_size is None else train_size
            if size is None and n and work is index and minmax_quantizer(index) is not None:
                sample = _column_range(blocks)  # trains exactly as every row would
            else:
                sample = _gather(blocks, training_rows(n, size, seed))
            try:
                work.train(sample)
            except RuntimeError as e:
                raise ConfigError(
                    f"index.factory={factory!r}: training on {len(sample)} vectors failed "
                    f"({_one_line(e)}); use fewer lists/centroids or more index.train_size"
                ) from None
            del sample
        added = 0
        for batch in _batches(blocks, ADD_BATCH):
            work.add(batch)
            added += len(batch)
            if progress is not None:
                progress(added, n)
        if work is not index:
            index = faiss.index_gpu_to_cpu(work)
        return cls(
            index, factory=factory, metric=metric, nprobe=nprobe, ef_search=ef_search, gpu=gpu
        )

    # ------------------------------------------------------------------------- save / load

    def header(self) -> dict[str, Any]:
        return {
            "type": self.type_name,
            "format": FORMAT,
            "factory": self.factory,
            "metric": self.metric,
            "dim": self.dim,
            "n_docs": self.n_docs,
            "nprobe": self.nprobe,
            "ef_search": self.ef_search,
            "gpu": self.gpu,
            "file": INDEX_FILE,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the folder ``path`` atomically (header.json + index.faiss)."""
        with atomic_folder(path) as tmp:
            faiss.write_index(self.cpu_index, str(tmp / INDEX_FILE))
            write_header(tmp, self.header())
            self._file_bytes = (tmp / INDEX_FILE).stat().st_size

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True) -> FaissIndex:
        """Load a saved index, memory-mapped where FAISS allows it; raises CacheError."""
        path = Path(path)
        header = read_header(path)
        where = path / "header.json"
        if header.get("type") != cls.type_name:
            raise CacheError(f"{where}: index type {header.get('type')!r} is not 'faiss'")
        if header.get("format") != FORMAT:
            raise CacheError(
                f"{where}: index format {header.get('format')!r} unsupported "
                f"(expected {FORMAT}); rebuild the index"
            )
        try:
            factory = str(header["factory"])
            metric = str(header["metric"])
            dim = int(header["dim"])
            n_docs = int(header["n_docs"])
        except (KeyError, TypeError, ValueError) as e:
            raise CacheError(
                f"{where}: bad or missing header key ({e}); rebuild the index"
            ) from None
        if metric not in METRICS:
            raise CacheError(f"{where}: unknown metric {metric!r}; rebuild the index")
        file = path / INDEX_FILE
        if not file.is_file():
            raise CacheError(f"{file}: missing; rebuild the index")
        flags = [faiss.IO_FLAG_MMAP_IFC, faiss.IO_FLAG_MMAP, 0] if mmap else [0]
        index, mapped, error = None, False, None
        for flag in flags:
            try:
                index = faiss.read_index(str(file), flag)
                mapped = flag != 0
                break
            except RuntimeError as e:  # this index type cannot be mapped (or a bad file)
                error = e
        if index is None:
            raise CacheError(f"{file}: unreadable ({_one_line(error)}); rebuild the index")
        if (
            int(index.ntotal) != n_docs
            or int(index.d) != dim
            or index.metric_type != METRICS[metric]
        ):
            raise CacheError(f"{file}: does not match the header; rebuild the index")
        return cls(
            index,
            factory=factory,
            metric=metric,
            nprobe=header.get("nprobe"),
            ef_search=header.get("ef_search"),
            gpu=header.get("gpu", False),
            file_bytes=file.stat().st_size,
            mmap=mapped,
        )

    # ----------------------------------------------------------------------------- search

    def _raw_search(
        self, q: np.ndarray, k: int, params: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """FAISS search, rows re-sorted by (-score, idx), padding as (-inf, -1)."""
        d, i = self.index.search(q, k) if params is None else self.index.search(q, k, params=params)
        from irbench.index.rows import settle_rows

        scores = np.asarray(d, dtype=np.float32)  # FAISS's own fresh arrays: written in place
        idx = np.asarray(i, dtype=np.int64)
        bad = np.empty(len(idx), dtype=np.bool_)
        settle_rows(scores, idx, _PAD, self.metric == "l2", bad)
        # FAISS gives rows best first; only the order within runs of equal scores (and any
        # row out of order) needs fixing: re-sort just the rows that break (score desc, idx
        # asc), padding (-inf, -1) last
        rows = np.flatnonzero(bad)
        if len(rows):
            key = np.where(idx[rows] < 0, np.iinfo(np.int64).max, idx[rows])
            order = np.lexsort((key, -scores[rows]), axis=-1)
            scores[rows] = np.take_along_axis(scores[rows], order, 1)
            idx[rows] = np.take_along_axis(idx[rows], order, 1)
        return scores, idx

    def search(
        self, queries: np.ndarray, k: int, threads: int = 0, *, params: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k: ``(scores float32 [nq, k], doc_idx int64 [nq, k])``, best first (score
        desc, doc index asc), padded with -inf / -1. ``threads`` > 0 sets FAISS's OpenMP
        thread count for this call, 0 = all; ``params``: FAISS SearchParameters for this
        call (see :meth:`search_params`)."""
        k = search_k(k)
        q = np.ascontiguousarray(np.asarray(queries), dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or (q.shape[0] and q.shape[1] != self.dim):
            raise ConfigError(
                f"index=faiss: query vectors of shape {q.shape} do not match the index dim "
                f"{self.dim}; was the index built with another encoder?"
            )
        nq, n = int(q.shape[0]), self.n_docs
        check_finite(q, "query vectors")

        def padded() -> tuple[np.ndarray, np.ndarray]:
            return np.full((nq, k), -np.inf, np.float32), np.full((nq, k), -1, np.int64)

        if nq == 0 or k == 0 or n == 0:
            return padded()
        old = faiss.omp_get_max_threads()
        if threads and threads > 0:
            faiss.omp_set_num_threads(int(threads))
        try:
            with blas_threshold(BLAS_THRESHOLD):
                if not self._exhaustive:
                    s, d = self._raw_search(q, min(k, n), params)
                    if s.shape[1] == k:
                        return s, d
                    out_s, out_d = padded()
                    out_s[:, : s.shape[1]], out_d[:, : d.shape[1]] = s, d
                    return out_s, out_d
                # exhaustive: one extra hit shows whether a tie straddles the k-th place; if
                # so the row is searched deeper until the tie group ends (or all docs are in)
                out_s, out_d = padded()
                depth = min(k + 1, n)
                rows = np.arange(nq)
                while len(rows):
                    s, d = self._raw_search(q[rows], depth)
                    keep = min(k, depth)
                    out_s[rows, :keep], out_d[rows, :keep] = s[:, :keep], d[:, :keep]
                    if depth >= n or depth <= k:
                        break
                    # deeper only while the deepest hit is still tied with the k-th: then
                    # the tie group may go on past it; else it ended inside this depth
                    tie = (d[:, -1] >= 0) & (s[:, -1] == s[:, k - 1])
                    rows = rows[tie]
                    depth = min(2 * depth, n)
                return out_s, out_d
        finally:
            if threads and threads > 0:
                faiss.omp_set_num_threads(old)


def default_train_size(index: Any) -> int | None:
    """Training rows when ``train_size`` is null: as many as FAISS's own training keeps
    anyway, for index types whose training subsamples -- k-means (``max_points_per_centroid``,
    256, per IVF list or PQ centroid, at least 65,536), PCA (1,000 per input dimension), OPQ
    (``max_train_points``); None (every row) for anything else, e.g. scalar quantizers, whose
    value ranges come from every row they are given (a min/max one is trained from one
    streaming pass: :func:`minmax_quantizer`). Gathering more would only hold memory for
    FAISS to subsample."""
    per = int(faiss.ClusteringParameters().max_points_per_centroid)
    sizes = [per * 256]
    base = faiss.downcast_index(index)
    if isinstance(base, faiss.IndexPreTransform):
        for i in range(base.chain.size()):
            vt = faiss.downcast_VectorTransform(base.chain.at(i))
            if isinstance(vt, faiss.PCAMatrix):
                sizes.append(int(vt.max_points_per_d) * int(vt.d_in))
            elif isinstance(vt, faiss.OPQMatrix):
                sizes.append(int(vt.max_train_points))
            else:
                return None
        base = faiss.downcast_index(base.index)
    if isinstance(base, faiss.IndexIVF):
        sizes.append(per * int(base.nlist))
        if isinstance(base, faiss.IndexIVFPQ):
            sizes.append(per * int(base.pq.ksub))
        elif not isinstance(base, faiss.IndexIVFFlat):
            return None
    elif isinstance(base, faiss.IndexPQ):
        sizes.append(per * int(base.pq.ksub))
    else:
        return None
    return max(sizes)


def training_rows(n: int, size: int | None, seed: int) -> np.ndarray | None:
    """The sorted rows of a ``size``-row training sample of ``n`` docs drawn with ``seed``;
    None (every row) when ``size`` is None or at least ``n``."""
    if size is None or size >= n:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def _seed_clustering(index: Any, seed: int) -> None:
    """Seed the k-means of IVF coarse quantizers and PQ codebooks (FAISS defaults to 1234)."""
    base = faiss.downcast_index(index)
    ivf = faiss.try_extract_index_ivf(base) if hasattr(faiss, "try_extract_index_ivf") else None
    if ivf is not None:
        ivf.cp.seed = int(seed)
        pq = getattr(ivf, "pq", None)
        if pq is not None:
            pq.cp.seed = int(seed)
    pq = getattr(base, "pq", None)
    if pq is not None and hasattr(pq, "cp"):
        pq.cp.seed = int(seed)


def search_parameters(index: Any, nprobe: int | None, ef_search: int | None) -> Any:
    """SearchParameters for ``index`` (see :meth:`FaissIndex.search_params`). Nested parameters
    go through the constructors, whose Python wrappers keep them alive (an attribute set
    afterwards would leave FAISS a dangling pointer)."""
    d = faiss.downcast_index(index)
    if isinstance(d, faiss.IndexPreTransform):
        inner = search_parameters(d.index, nprobe, ef_search)
        return None if inner is None else faiss.SearchParametersPreTransform(index_params=inner)
    if isinstance(d, faiss.IndexRefine):
        inner = search_parameters(d.base_index, nprobe, ef_search)
        if inner is None:
            return None
        return faiss.IndexRefineSearchParameters(k_factor=d.k_factor, base_index_params=inner)
    if isinstance(d, faiss.IndexIVF):
        nprobe = int(nprobe or d.nprobe)
        hnsw = isinstance(faiss.downcast_index(d.quantizer), faiss.IndexHNSW)
        if ef_search is not None and hnsw:  # IMI and flat quantizers take no parameters
            quantizer = faiss.SearchParametersHNSW(efSearch=int(ef_search))
            return faiss.SearchParametersIVF(nprobe=nprobe, quantizer_params=quantizer)
        return faiss.SearchParametersIVF(nprobe=nprobe)
    if isinstance(d, faiss.IndexHNSW) and ef_search is not None:
        return faiss.SearchParametersHNSW(efSearch=int(ef_search))
    return None


def _dense_blocks(docs: Any) -> DenseBlocks:
    """``docs`` as :class:`~irbench.types.DenseBlocks` (a matrix becomes one block)."""
    if isinstance(docs, DenseBlocks):
        return docs
    x = np.ascontiguousarray(np.asarray(docs), dtype=np.float32)
    if x.ndim != 2:
        raise ConfigError(f"index=faiss needs a [n_docs, dim] matrix, got shape {x.shape}")
    return DenseBlocks(lambda: iter([x]), int(x.shape[0]), int(x.shape[1]))


def _checked(blocks: DenseBlocks) -> Any:
    """The blocks of one pass, each checked to be ``[rows, dim]``; their rows must add up
    to ``n_rows``."""
    seen = 0
    for block in blocks.blocks():
        b = np.asarray(block)
        if b.ndim != 2 or b.shape[1] != blocks.dim:
            raise ConfigError(
                f"index=faiss: a doc block of shape {b.shape}, expected [rows, {blocks.dim}]"
            )
        check_finite(b, "doc vectors")
        seen += len(b)
        yield b
    if seen != blocks.n_rows:
        raise ConfigError(f"index=faiss: the doc blocks hold {seen} rows, not {blocks.n_rows}")


def minmax_quantizer(index: Any) -> Any | None:
    """The scalar quantizer (plain, or an HNSW graph's storage) that a min/max range statistic
    trains, or None. Its training keeps only each dimension's min and max over the rows, so
    two rows holding them train it exactly as the whole corpus would, without a copy of it
    (FAISS ``ScalarQuantizer::train``, ``RS_minmax``)."""
    base = faiss.downcast_index(index)
    if isinstance(base, faiss.IndexHNSW):
        base = faiss.downcast_index(base.storage)
    if (
        isinstance(base, faiss.IndexScalarQuantizer)
        and base.sq.rangestat == faiss.ScalarQuantizer.RS_minmax
    ):
        return base
    return None


def _column_range(blocks: DenseBlocks) -> np.ndarray:
    """``[per-dimension min, per-dimension max]`` over every row, in one streaming pass."""
    lo = np.full(blocks.dim, np.inf, dtype=np.float32)
    hi = np.full(blocks.dim, -np.inf, dtype=np.float32)
    for b in _checked(blocks):
        if len(b):
            np.minimum(lo, b.min(axis=0), out=lo)
            np.maximum(hi, b.max(axis=0), out=hi)
    return np.stack([lo, hi])


def _gather(blocks: DenseBlocks, rows: np.ndarray | None) -> np.ndarray:
    """The rows ``rows`` (sorted doc indexes; None = all) as one float32 matrix."""
    parts, offset = [], 0
    for b in _checked(blocks):
        if rows is None:
            parts.append(b)
        else:
            lo, hi = np.searchsorted(rows, [offset, offset + len(b)])
            parts.append(b[rows[lo:hi] - offset])
        offset += len(b)
    return _joined(parts) if parts else np.empty((0, blocks.dim), dtype=np.float32)


def _batches(blocks: DenseBlocks, step: int) -> Any:
    """The rows of one pass in contiguous float32 batches of ``step`` rows (the last one
    shorter), whatever the blocks' sizes."""
    pending: list[np.ndarray] = []
    have = 0
    for b in _checked(blocks):
        while len(b):
            take = min(step - have, len(b))
            pending.append(b[:take])
            have, b = have + take, b[take:]
            if have == step:
                yield _joined(pending)
                pending, have = [], 0
    if have:
        yield _joined(pending)


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """``parts`` stacked as one contiguous float32 matrix (no copy of a lone part that is one)."""
    out = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return np.ascontiguousarray(out, dtype=np.float32)
