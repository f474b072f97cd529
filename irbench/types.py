"""Records and protocols shared by every irbench package.

Records reuse ir_datasets / ir_measures field names (``doc_id``, ``query_id``,
``relevance``, ``score``). Protocols are the only contracts between packages:

* a :class:`Dataset` streams docs, queries and qrels and has a content fingerprint;
* a :class:`SparseEncoder` turns docs into batches of sparse vectors
  (``scipy.sparse.csr_matrix``, float32, columns = vocabulary ids) and queries into one;
* an :class:`Index` builds from sparse doc vectors, saves, loads and searches batches of queries;
  sparse indexes also build from :class:`RowBlocks`, a corpus read block by block, and FAISS
  from :class:`DenseBlocks`, its dense counterpart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:  # heavy imports only for type checkers
    import numpy as np
    import scipy.sparse as sp


def is_integer(value: Any) -> bool:
    """An integer (Python or numpy), not a bool: what a count or a k may be."""
    import numbers

    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """A finite real number (Python or numpy), not a bool and not a numeric string."""
    import math
    import numbers

    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


class Doc(NamedTuple):
    doc_id: str
    text: str
    title: str = ""

    def full_text(self) -> str:
        """Title and text joined the BEIR way (title first), as indexed by Pyserini 'flat'."""
        return f"{self.title} {self.text}" if self.title else self.text


class Query(NamedTuple):
    query_id: str
    text: str


def query_texts(queries: Iterable[Query | str]) -> list[str]:
    """The texts of ``queries``: :class:`Query` records (or ``(id, text)`` pairs) or plain
    strings, as a Python user may pass them to an encoder's ``encode_queries``."""
    if isinstance(queries, str):
        raise TypeError("give a list of queries, not one string (its characters would be queries)")
    texts = []
    for q in queries:
        if isinstance(q, str):
            texts.append(q)
        elif isinstance(getattr(q, "text", None), str):  # Query, ir_datasets records...
            texts.append(q.text)
        elif isinstance(q, tuple) and len(q) == 2 and isinstance(q[1], str):
            texts.append(q[1])
        else:
            raise TypeError(f"a query must be a Query, an (id, text) pair or a string, got {q!r}")
    return texts


class Qrel(NamedTuple):
    query_id: str
    doc_id: str
    relevance: int
    iteration: str = "0"


class ScoredDoc(NamedTuple):
    query_id: str
    doc_id: str
    score: float


@runtime_checkable
class Dataset(Protocol):
    """A test collection: streamed docs, queries and qrels of one split."""

    name: str

    def docs_iter(self) -> Iterator[Doc]: ...

    def queries_iter(self) -> Iterator[Query]: ...

    def qrels_iter(self) -> Iterator[Qrel]: ...

    def docs_count(self) -> int | None: ...

    def fingerprint(self) -> dict[str, str]:
        """Content hashes: ``{"docs": ..., "queries": ..., "qrels": ...}``."""
        ...


@runtime_checkable
class SparseEncoder(Protocol):
    """Encodes text into sparse vectors over a fixed vocabulary."""

    kind: str  # "sparse"

    @property
    def vocab_size(self) -> int: ...

    def encode_corpus(self, docs: Iterable[Doc]) -> Iterator[sp.csr_matrix]:
        """Yield doc vectors in corpus order, in batches (rows = docs)."""
        ...

    def encode_queries(self, queries: Sequence[Query]) -> sp.csr_matrix: ...

    def save(self, path: Path) -> None:
        """Persist state needed to encode queries later (e.g. BM25's vocabulary and idf)."""
        ...

    def load(self, path: Path) -> None: ...

    def config_key(self) -> dict[str, Any]:
        """Everything that changes the doc vectors (for cache keys and manifests)."""
        ...


@dataclass(frozen=True)
class RowBlocks:
    """A sparse doc matrix given as consecutive row blocks, never held whole: each call of
    ``blocks()`` yields them again from the first (CSR, float32, ``n_terms`` columns at most).
    Sparse indexes build from it in two passes holding one block at a time (see
    ``NumbaIndex.build_streaming``)."""

    blocks: Callable[[], Iterable[sp.csr_matrix]]
    n_terms: int


@dataclass(frozen=True)
class DenseBlocks:
    """A dense doc matrix ``[n_rows, dim]`` given as consecutive row blocks (e.g. the
    memory-mapped chunks of the encoded cache), never held whole: each call of ``blocks()``
    yields them again from the first. ``index=faiss`` builds from it one block at a time
    (``FaissIndex.build``)."""

    blocks: Callable[[], Iterable[np.ndarray]]
    n_rows: int
    dim: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_rows, self.dim)

    @classmethod
    def from_npy(cls, files: Sequence[str | Path]) -> DenseBlocks:
        """``.npy`` files of ``[rows, dim]`` arrays, in order (shapes read from their
        headers; each file memory-mapped when a pass reaches it). ValueError when there are
        none or their shapes do not stack."""
        import numpy as np

        paths = [Path(f) for f in files]
        shapes = [np.load(f, mmap_mode="r").shape for f in paths]
        dims = {s[1] for s in shapes if len(s) == 2}
        if len(dims) != 1 or any(len(s) != 2 for s in shapes):
            raise ValueError(f"arrays of shapes {sorted(set(shapes))} do not stack as [rows, dim]")
        return cls(
            lambda: (np.load(f, mmap_mode="r") for f in paths), sum(s[0] for s in shapes),
            dims.pop(),
        )  # fmt: skip


@runtime_checkable
class Index(Protocol):
    """Builds from doc vectors (sparse: CSR or :class:`RowBlocks`; dense: an array or
    :class:`DenseBlocks`), saves, loads and searches."""

    @classmethod
    def build(cls, docs: Any, **cfg: Any) -> Index: ...

    @classmethod
    def load(cls, path: Path) -> Index: ...

    def save(self, path: Path) -> None: ...

    def search(
        self, queries: sp.csr_matrix, k: int, threads: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k per query: ``(scores float32 [nq, k], doc_idx int64 [nq, k])``.

        Rows are sorted by score descending, ties by doc index ascending; rows with fewer
        than k matching (or, for approximate indexes, reached) docs are padded with index -1
        and score -inf.
        """
        ...
