"""Encoded corpora in resumable, shardable chunks under ``cache_dir/encoded/<key>/``.

The corpus is cut into chunks of ``chunk_size`` docs in corpus order. Each chunk is encoded
into a temporary folder and renamed into place with a completion marker, so an interrupted run
resumes at the first missing chunk. With ``num_shards = N`` a process encodes only the chunks
``c`` with ``c % N == shard``; chunks are read in corpus order whatever process wrote them,
merged into one matrix (:func:`merge_chunks`) or one at a time (:func:`stream_chunks`).
"""

from __future__ import annotations

import itertools
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from irbench.errors import CacheError, ConfigError, DataError
from irbench.runs.cache import is_complete, seal, verify
from irbench.types import DenseBlocks, RowBlocks

META = "meta.json"


@dataclass
class ChunkPlan:
    n_docs: int
    chunk_size: int
    shard: int | None
    num_shards: int

    @property
    def n_chunks(self) -> int:
        return max(1, -(-self.n_docs // self.chunk_size))

    def mine(self, chunk: int) -> bool:
        return self.shard is None or chunk % self.num_shards == self.shard


def chunk_dir(entry: Path, chunk: int) -> Path:
    return entry / f"chunk-{chunk:06d}"


def check_encode(encode_cfg: Any) -> tuple[int, int, int | None]:
    """``(chunk_size, num_shards, shard)`` of the ``encode`` config; ConfigError if invalid."""

    from irbench.config import config_int

    def integer(key: str) -> int:  # SLURM-style ${oc.env:...} values are strings of digits
        return config_int(encode_cfg.get(key), f"encode.{key}", digits_ok=True)

    chunk_size, num_shards = integer("chunk_size"), integer("num_shards")
    shard = None if encode_cfg.get("shard") is None else integer("shard")
    if chunk_size < 1:
        raise ConfigError(f"encode.chunk_size must be >= 1, got {chunk_size}")
    if num_shards < 1:
        raise ConfigError(f"encode.num_shards must be >= 1, got {num_shards}")
    if shard is not None and not (0 <= shard < num_shards):
        raise ConfigError(f"encode.shard must be in [0, {num_shards}), got {shard}")
    return chunk_size, num_shards, shard


def plan(encode_cfg: Any, n_docs: int) -> ChunkPlan:
    chunk_size, num_shards, shard = check_encode(encode_cfg)
    return ChunkPlan(n_docs, chunk_size, shard, num_shards)


def save_vectors(folder: Path, vectors: Any) -> None:
    import scipy.sparse as sp

    if sp.issparse(vectors):
        sp.save_npz(
            folder / "vectors.npz", sp.csr_matrix(vectors, dtype=np.float32), compressed=False
        )
    else:
        np.save(folder / "vectors.npy", np.ascontiguousarray(vectors, dtype=np.float32))


def load_vectors(folder: Path) -> Any:
    import scipy.sparse as sp

    if (folder / "vectors.npz").is_file():
        return sp.load_npz(folder / "vectors.npz").tocsr()
    if (folder / "vectors.npy").is_file():
        return np.load(folder / "vectors.npy", mmap_mode="r")
    raise CacheError(f"{folder}: no vectors file; delete the folder to re-encode it")


def stack(batches: list[Any], width: int | None) -> Any:
    import scipy.sparse as sp

    if batches and sp.issparse(batches[0]):
        return sp.vstack(batches, format="csr", dtype=np.float32)
    if batches:
        return np.vstack(batches).astype(np.float32, copy=False)
    return sp.csr_matrix((0, width or 0), dtype=np.float32)


def chunk_ok(folder: Path, doc_ids: list[str]) -> bool:
    """A sealed chunk whose files pass their checksums and that holds exactly ``doc_ids``.

    The doc ids tie a chunk to this layout: a chunk written with another ``chunk_size`` (the
    entry's key does not depend on it) holds other docs and is re-encoded, never merged."""
    if not is_complete(folder) or verify(folder):
        return False
    try:
        return (folder / "docnos.txt").read_text("utf-8").splitlines() == doc_ids
    except (OSError, UnicodeDecodeError):
        return False


def encode_chunks(
    entry: Path,
    encoder: Any,
    docs: Iterable[Any],
    chunk_plan: ChunkPlan,
    on_corrupt: str = "rebuild",
) -> dict[str, Any]:
    """Encode this process's missing chunks; returns counts of what was done and what is left.

    A sealed chunk that fails its checksums is encoded again (``on_corrupt="rebuild"``) or is
    a CacheError (``"error"``: ``irbench reproduce`` reports an edited cache)."""
    from irbench.runs.atomic import atomic_dir

    entry.mkdir(parents=True, exist_ok=True)
    done = 0
    others: dict[int, list[str]] = {}  # other shards' chunks not done yet: their doc ids
    encode_s = 0.0
    it = iter(docs)
    for chunk in range(chunk_plan.n_chunks):
        chunk_docs = list(itertools.islice(it, chunk_plan.chunk_size))
        target = chunk_dir(entry, chunk)
        doc_ids = [d.doc_id for d in chunk_docs]
        if chunk_ok(target, doc_ids):
            continue
        if on_corrupt == "error" and is_complete(target) and (problems := verify(target)):
            raise CacheError(f"{problems[0]}; the encoded corpus was edited or truncated")
        if not chunk_plan.mine(chunk):
            others[chunk] = doc_ids
            continue
        t0 = time.perf_counter()
        vectors = stack(
            list(encoder.encode_corpus(chunk_docs)), getattr(encoder, "vocab_size", None)
        )
        encode_s += time.perf_counter() - t0
        if vectors.shape[0] != len(chunk_docs):
            raise CacheError(
                f"encoder returned {vectors.shape[0]} vectors for {len(chunk_docs)} docs"
            )
        with atomic_dir(target) as tmp:
            save_vectors(tmp, vectors)
            (tmp / "docnos.txt").write_text("".join(d.doc_id + "\n" for d in chunk_docs), "utf-8")
            seal(tmp, {"docs": len(chunk_docs)})
        done += 1
    if next(it, None) is not None:
        raise DataError("the corpus has more docs than its count said; was it modified meanwhile?")
    # checked again now: other shards may have finished while this one was encoding
    missing = [c for c, ids in others.items() if not chunk_ok(chunk_dir(entry, c), ids)]
    return {"chunks": chunk_plan.n_chunks, "encoded": done, "missing": len(missing),
            "encode_s": round(encode_s, 3)}  # fmt: skip


def open_chunks(entry: Path, n_chunks: int) -> tuple[list[Path], list[str]]:
    """The chunk folders in corpus order, each complete and passing its checksums, and all
    doc ids; duplicate ids are an error."""
    folders, docnos = [], []
    for chunk in range(n_chunks):
        folder = chunk_dir(entry, chunk)
        if not is_complete(folder):
            raise CacheError(f"{folder} is incomplete; encode the missing shards first")
        problems = verify(folder)
        if problems:
            raise CacheError(f"{problems[0]}; run again to re-encode that chunk")
        folders.append(folder)
        docnos.extend((folder / "docnos.txt").read_text("utf-8").splitlines())
    check_unique(docnos)
    return folders, docnos


def merge_chunks(entry: Path, n_chunks: int) -> tuple[Any, list[str]]:
    """All chunks in corpus order, as one matrix and the doc ids."""
    folders, docnos = open_chunks(entry, n_chunks)
    if all((f / "vectors.npz").is_file() for f in folders):
        _sparse_width(entry, folders)
    return stack([load_vectors(f) for f in folders], None), docnos


def stream_chunks(entry: Path, n_chunks: int) -> tuple[Any, list[str]]:
    """Like :func:`merge_chunks`, but chunks come one at a time on each pass, so an index
    builds from them without a merged copy: sparse chunks as
    :class:`~irbench.types.RowBlocks`, dense ones (memory-mapped) as
    :class:`~irbench.types.DenseBlocks`."""
    folders, docnos = open_chunks(entry, n_chunks)
    if folders and all((f / "vectors.npy").is_file() for f in folders):
        return _dense_chunks(entry, folders), docnos
    if not all((f / "vectors.npz").is_file() for f in folders):
        return stack([load_vectors(f) for f in folders], None), docnos
    width = _sparse_width(entry, folders)

    def blocks() -> Iterator[Any]:
        for f in folders:  # a chunk may have changed since open_chunks checked it
            try:
                vectors = load_vectors(f)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
                raise CacheError(
                    f"{f}: cannot read the vectors ({e}); run again to re-encode it"
                ) from None
            if vectors.shape[1] != width:
                raise CacheError(
                    f"{f}: {vectors.shape[1]} terms, not {width} as when checked; "
                    "run again to re-encode it"
                )
            yield vectors

    return RowBlocks(blocks, width), docnos


def _dense_chunks(entry: Path, folders: list[Path]) -> DenseBlocks:
    """The dense chunks as :class:`~irbench.types.DenseBlocks` (shapes read from the
    ``.npy`` headers; each chunk memory-mapped when a pass reaches it)."""
    try:
        files = DenseBlocks.from_npy([f / "vectors.npy" for f in folders])
    except ValueError as e:
        raise CacheError(
            f"{entry}: dense chunks: {e}; delete the folder to re-encode the corpus"
        ) from None

    def blocks() -> Iterator[Any]:
        for f in folders:
            try:
                yield np.load(f / "vectors.npy", mmap_mode="r")
            except (OSError, ValueError) as e:
                raise CacheError(
                    f"{f}: cannot read the vectors ({e}); run again to re-encode it"
                ) from None

    return DenseBlocks(blocks, files.n_rows, files.dim)


def _sparse_width(entry: Path, folders: list[Path]) -> int:
    """The one vocabulary size of the sparse chunks (read from their headers only)."""
    widths = set()
    for f in folders:
        with np.load(f / "vectors.npz") as z:
            widths.add(int(z["shape"][1]))
    if len(widths) > 1:
        raise CacheError(
            f"{entry}: chunks of {len(widths)} different vocabulary sizes {sorted(widths)}; "
            "delete the folder to re-encode the corpus"
        )
    return widths.pop() if widths else 0


def check_unique(docnos: list[str]) -> None:
    if len(set(docnos)) != len(docnos):
        seen: set[str] = set()
        for d in docnos:
            if d in seen:
                raise DataError(f"duplicate doc id '{d}' in the corpus; doc ids must be unique")
            seen.add(d)


def iter_with_ids(docs: Iterable[Any], docnos: list[str]) -> Iterator[Any]:
    """Pass docs through while recording their ids in order."""
    for doc in docs:
        docnos.append(doc.doc_id)
        yield doc
