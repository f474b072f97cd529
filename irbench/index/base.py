"""Index registry, on-disk headers and atomic folder saves.

Every saved index is a folder with a ``header.json`` whose ``"type"`` key names the index
class in :data:`INDEX_TYPES`; :func:`load_index` dispatches on it. Classes are imported lazily
(import path strings) so that importing this module never pulls in numba or faiss.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from irbench.errors import CacheError, ConfigError, DataError
from irbench.types import RowBlocks, is_integer

if TYPE_CHECKING:
    from irbench.types import Index

HEADER = "header.json"


def resolve_threads(threads: int) -> int:
    """A search/build ``threads`` argument as a Numba thread count: 0 (or less) = all of
    ``NUMBA_NUM_THREADS``, otherwise capped at it."""
    import numba

    max_threads = int(numba.config.NUMBA_NUM_THREADS)
    return min(int(threads), max_threads) if threads and threads > 0 else max_threads


def is_csr(m: Any) -> bool:
    """csr_matrix or csr_array (``sp.isspmatrix_csr`` is False for the latter)."""
    import scipy.sparse as sp

    return sp.issparse(m) and m.format == "csr"


def canonical_csr(docs: Any) -> Any:
    """``docs`` as CSR with sorted, summed duplicates (copied only when needed)."""
    import scipy.sparse as sp

    docs = docs if is_csr(docs) else sp.csr_matrix(docs)
    if not docs.has_canonical_format:
        docs = docs.copy()
        docs.sum_duplicates()
    return docs


def search_k(k: Any) -> int:
    """``k`` as a non-negative int; a ConfigError for anything else. A float such as 2.7, a
    string or a bool is refused rather than truncated."""
    if not is_integer(k):
        raise ConfigError(f"k must be a non-negative integer, got {k!r}")
    if k < 0:
        raise ConfigError(f"k={k}: must be >= 0")
    return int(k)


def check_finite(values: Any, what: str) -> None:
    """DataError when ``values`` (an array) holds NaN or an infinity: scores would be NaN or
    out of order (``what`` names the vectors, e.g. "query vectors")."""
    import numpy as np

    if values.size and not np.isfinite(values).all():
        raise DataError(f"{what} hold NaN or infinite weights; check the encoder's output")


def checked_scores(scores: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """``scores`` (a search's output, ``docs`` its doc indexes), or a DataError when a hit's
    score is not finite: finite vectors whose products overflow float32 give inf, or NaN
    (inf - inf), which no order ranks and no run file can hold. Padding (-inf at doc -1)
    is left alone."""
    if not np.isfinite(scores[docs >= 0]).all():
        raise DataError(
            "a query's dot products overflow float32 (infinite or NaN scores); rescale the doc "
            "or query vectors to weights well below 1e19"
        )
    return scores


def canonical_queries(queries: Any) -> Any:
    """Query vectors as :func:`canonical_csr`, checked to be finite as float32 (the indexes
    score in float32, where a huge float64 weight becomes infinite)."""
    q = canonical_csr(queries)
    check_finite(q.data.astype(np.float32, copy=False), "query vectors")
    return q


def row_blocks(docs: Any) -> RowBlocks:
    """``docs`` as :class:`~irbench.types.RowBlocks`: as is, or a doc matrix as one canonical
    CSR block."""
    if isinstance(docs, RowBlocks):
        return docs
    docs = canonical_csr(docs)
    return RowBlocks(lambda: iter([docs]), int(docs.shape[1]))


def read_blocks(blocks: Callable[[], Iterable[Any]], n_terms: int) -> Iterator[Any]:
    """One pass of a streaming build over ``blocks()``: each block canonical CSR, checked
    to have at most ``n_terms`` columns."""
    for block in blocks():
        b = canonical_csr(block)
        if b.shape[1] > n_terms:
            raise DataError(
                f"a doc block has {b.shape[1]} columns but the index was given {n_terms} terms; "
                "pass the vocabulary size as n_terms"
            )
        if b.nnz and not 0 <= int(b.indices.min()) <= int(b.indices.max()) < b.shape[1]:
            raise DataError(
                f"a doc block has term ids outside [0, {b.shape[1]}); its CSR arrays are corrupt"
            )
        check_finite(b.data, "doc vectors")
        yield b


def blocks_changed() -> DataError:
    """The error of a streaming build whose second read differs from its first."""
    return DataError(
        "the doc blocks changed between the two reads of a streaming build; blocks() must "
        "give the same blocks each time (was the encoded cache modified meanwhile?)"
    )


@contextmanager
def numba_threads(n: int | None) -> Iterator[None]:
    """Run Numba's parallel kernels on ``n`` threads inside the block and restore the previous
    count after it; ``None`` (or the current count) changes nothing. Numba is imported here,
    not at module import."""
    if n is None:
        yield
        return
    import numba

    old = numba.get_num_threads()
    if old != n:
        numba.set_num_threads(n)
    try:
        yield
    finally:
        if numba.get_num_threads() != old:
            numba.set_num_threads(old)


#: index type name -> ``"module:Class"``; the class has ``build``, ``load`` and ``search``.
INDEX_TYPES: dict[str, str] = {
    "numba": "irbench.index.numba:NumbaIndex",
    "faiss": "irbench.index.faiss:FaissIndex",
    "numba_approx": "irbench.index.approx:ApproxIndex",
}


def _import_class(spec: str) -> type:
    module_name, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def index_class(name: str) -> type:
    """The index class registered as ``name`` (raises :class:`ConfigError` if unknown)."""
    spec = INDEX_TYPES.get(name)
    if spec is None:
        known = ", ".join(sorted(INDEX_TYPES))
        raise ConfigError(f"index={name!r}: unknown index type (known: {known})")
    return _import_class(spec)


def write_header(path: str | os.PathLike, header: dict[str, Any]) -> None:
    """Write ``header.json`` into the folder ``path``."""
    text = json.dumps(header, indent=2, sort_keys=True)
    (Path(path) / HEADER).write_text(text + "\n", encoding="utf-8")


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """Read ``header.json`` from the folder ``path`` (raises :class:`CacheError`)."""
    file = Path(path) / HEADER
    if not Path(path).is_dir():
        raise CacheError(f"{path}: index folder not found; build the index first")
    try:
        header = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CacheError(f"{file}: index header missing; rebuild the index") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CacheError(f"{file}: unreadable index header ({e}); rebuild the index") from None
    if not isinstance(header, dict):
        raise CacheError(f"{file}: index header is not a JSON object; rebuild the index")
    return header


def check_header(path: Path, header: dict[str, Any], type_name: str, fmt: int) -> Path:
    """Raise :class:`CacheError` unless a saved index's header has this type and format;
    returns the header file (for messages)."""
    where = path / HEADER
    if header.get("type") != type_name:
        raise CacheError(f"{where}: index type {header.get('type')!r} is not {type_name!r}")
    if header.get("format") != fmt:
        raise CacheError(
            f"{where}: index format {header.get('format')!r} unsupported "
            f"(expected {fmt}); rebuild the index"
        )
    return where


@contextmanager
def header_fields(where: Path) -> Iterator[None]:
    """Turn a missing or malformed header key read inside the block into a CacheError."""
    try:
        yield
    except (KeyError, TypeError, ValueError) as e:
        raise CacheError(f"{where}: bad or missing header key ({e}); rebuild the index") from None


def load_arrays(
    path: Path, expected: dict[str, tuple[Any, tuple[int, ...]]], mmap: bool
) -> dict[str, np.ndarray]:
    """``name.npy`` for each ``name -> (dtype, shape)`` (memory-mapped read-only if ``mmap``);
    raises CacheError on an unreadable file or a dtype / shape other than expected."""
    arrays = {}
    for name, (dtype, shape) in expected.items():
        file = path / f"{name}.npy"
        want = np.dtype(dtype)
        try:
            arr = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CacheError(f"{file}: unreadable ({msg}); rebuild the index") from None
        if arr.dtype != want or arr.shape != shape:
            raise CacheError(
                f"{file}: {arr.dtype}{list(arr.shape)} does not match the header "
                f"({want}{list(shape)}); rebuild the index"
            )
        arrays[name] = arr
    return arrays


def check_offsets(path: Path, arrays: dict[str, np.ndarray], totals: dict[str, int]) -> None:
    """Each offsets array ``name`` must start at 0, end at ``totals[name]`` and never fall."""
    for name, total in totals.items():
        a = arrays[name]
        if a[0] != 0 or a[-1] != total or np.any(np.diff(a) < 0):
            raise CacheError(f"{path / (name + '.npy')}: offsets inconsistent; rebuild the index")


def load_index(path: str | os.PathLike) -> Index:
    """Load the index saved in the folder ``path``, whatever its type."""
    header = read_header(path)
    kind = header.get("type")
    spec = INDEX_TYPES.get(kind) if isinstance(kind, str) else None
    if spec is None:
        known = ", ".join(sorted(INDEX_TYPES))
        raise CacheError(
            f"{Path(path) / HEADER}: unknown index type {kind!r} (known: {known}); rebuild the index"
        )
    return _import_class(spec).load(path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a sibling temp folder ``<path>.tmp-<pid>``; on success move it to ``path``.

    ``path`` must be new, an empty folder or an index folder (``header.json``): anything else
    is a ConfigError, never replaced. An existing index is first renamed aside
    (``<path>.old-<pid>``) and deleted only after the new folder is in place, so ``path`` holds
    either the old or the new complete folder, never a half-written one. On an exception the
    temp folder is removed and ``path`` is left untouched. No fsync: this guards against
    crashes of the process, not of the machine.
    """
    path = Path(path)
    if (
        path.is_symlink()
        or path.is_file()
        or (path.is_dir() and any(path.iterdir()) and not (path / HEADER).is_file())
    ):
        raise ConfigError(
            f"{path}: exists and is not an index folder; give a new or empty folder "
            "(an index is saved over an older index only)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    old = path.with_name(f"{path.name}.old-{os.getpid()}")
    _remove(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove(old)
    if path.exists() or path.is_symlink():
        os.replace(path, old)
    os.replace(tmp, path)
    _remove(old)
