"""A local collection in BEIR layout: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

Each file may also be gzip-compressed with a ``.gz`` suffix. As in BEIR's own loader, only the
queries that have qrels in the split are used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from irbench.data.fingerprint import file_fingerprint
from irbench.data.readers import count_lines, read_beir_qrels, read_corpus_jsonl, read_queries_jsonl
from irbench.errors import DataError
from irbench.types import Doc, Qrel, Query


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def beir_splits(path: str | Path) -> list[str]:
    """The splits with a qrels file in a BEIR folder, sorted."""
    qrels = Path(path).expanduser() / "qrels"
    if not qrels.is_dir():
        return []
    names = (p.name.removesuffix(".gz") for p in qrels.iterdir() if p.is_file())
    return sorted({n.removesuffix(".tsv") for n in names if n.endswith(".tsv")})


class BeirDataset:
    """One split of a local BEIR folder."""

    def __init__(self, path: str | Path, split: str = "test", name: str | None = None):
        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            raise DataError(
                "BEIR folder not found (expected corpus.jsonl, queries.jsonl and "
                "qrels/<split>.tsv in it)",
                self.path,
            )
        self.split = split
        self.name = name or self.path.resolve().name
        corpus = _find(self.path, "corpus.jsonl")
        queries = _find(self.path, "queries.jsonl")
        qrels = _find(self.path / "qrels", f"{split}.tsv")
        if corpus is None:
            raise DataError(
                "missing corpus file (expected corpus.jsonl)", self.path / "corpus.jsonl"
            )
        if queries is None:
            raise DataError(
                "missing queries file (expected queries.jsonl)", self.path / "queries.jsonl"
            )
        if qrels is None:
            splits = beir_splits(self.path)
            have = f"splits present: {', '.join(splits)}" if splits else "no qrels/*.tsv found"
            raise DataError(
                f"no qrels for split {split!r} ({have})", self.path / "qrels" / f"{split}.tsv"
            )
        self.corpus_file: Path = corpus
        self.queries_file: Path = queries
        self.qrels_file: Path = qrels
        self._docs_count: int | None = None
        self._fingerprint: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"BeirDataset({str(self.path)!r}, split={self.split!r}, name={self.name!r})"

    def docs_iter(self) -> Iterator[Doc]:
        return read_corpus_jsonl(self.corpus_file)

    def queries_iter(self) -> Iterator[Query]:
        """The queries that have at least one qrel in this split, in ``queries.jsonl`` order."""
        wanted = {q.query_id for q in self.qrels_iter()}
        for query in read_queries_jsonl(self.queries_file):
            if query.query_id in wanted:
                yield query

    def qrels_iter(self) -> Iterator[Qrel]:
        return read_beir_qrels(self.qrels_file)

    def docs_count(self) -> int:
        """Number of non-blank lines of the corpus (counted once, without parsing)."""
        if self._docs_count is None:
            self._docs_count = count_lines(self.corpus_file)
        return self._docs_count

    def fingerprint(self) -> dict[str, str]:
        if self._fingerprint is None:
            self._fingerprint = {
                "docs": file_fingerprint(self.corpus_file),
                "queries": file_fingerprint(self.queries_file),
                "qrels": file_fingerprint(self.qrels_file),
            }
        return self._fingerprint
