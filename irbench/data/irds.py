"""A collection loaded through ``ir_datasets`` (imported lazily, on first use).

Records are mapped to irbench's :class:`Doc`, :class:`Query` and :class:`Qrel`. The
fingerprint names the ids and the ir_datasets version instead of hashing the download.
A download that fails (no network) becomes a one-line :class:`DataError` pointing at
``dataset.path``, which reads a local BEIR copy instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from irbench.errors import DataError
from irbench.types import Doc, Qrel, Query

T = TypeVar("T")
# ir_datasets reports a failed download as RuntimeError("All download sources failed", ...)
# or lets requests' ConnectionError (an OSError) through; EOFError: a truncated archive.
DOWNLOAD_ERRORS: tuple[type[BaseException], ...] = (OSError, RuntimeError, EOFError)


def _irds() -> Any:
    try:
        import ir_datasets
    except ImportError as e:
        raise DataError(f"ir_datasets is not installed ({e}); pip install ir_datasets") from None
    return ir_datasets


def _strings(record: Any, skip: tuple[str, ...]) -> str:
    fields = getattr(record, "_fields", ())
    values = (getattr(record, f) for f in fields if f not in skip)
    return " ".join(v for v in values if isinstance(v, str) and v)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def to_doc(record: Any) -> Doc:
    """``title`` and ``text`` when present, else ``default_text()``, else all string fields."""
    fields = getattr(record, "_fields", ())
    title = _str(record.title) if "title" in fields else ""
    if "text" in fields:
        return Doc(str(record.doc_id), _str(record.text), title)
    if hasattr(record, "default_text"):
        return Doc(str(record.doc_id), _str(record.default_text()))
    return Doc(str(record.doc_id), _strings(record, ("doc_id",)))


def to_query(record: Any) -> Query:
    """``text``, else ``title`` (TREC topics), else ``default_text()``, else all string fields."""
    fields = getattr(record, "_fields", ())
    for name in ("text", "title"):
        if name in fields:
            return Query(str(record.query_id), _str(getattr(record, name)))
    if hasattr(record, "default_text"):
        return Query(str(record.query_id), _str(record.default_text()))
    return Query(str(record.query_id), _strings(record, ("query_id",)))


def to_qrel(record: Any) -> Qrel:
    try:
        relevance = int(record.relevance)
    except (TypeError, ValueError):
        raise DataError(
            f"qrel ({record.query_id}, {record.doc_id}) has a non-integer relevance "
            f"{record.relevance!r}"
        ) from None
    iteration = _str(getattr(record, "iteration", "0")) or "0"
    return Qrel(str(record.query_id), str(record.doc_id), relevance, iteration)


class IrdsDataset:
    """``ir_datasets.load(irds_id)`` seen through the :class:`~irbench.types.Dataset` protocol."""

    def __init__(self, irds_id: str, name: str | None = None):
        irds = _irds()
        self.irds_id = irds_id
        self.name = name or irds_id
        try:
            self._ds = irds.load(irds_id)
        except KeyError:
            raise DataError(self._unknown_hint(irds)) from None
        for what in ("docs", "queries"):
            if not getattr(self._ds, f"has_{what}")():
                kids = [i for i in self._ids(irds) if i.startswith(irds_id + "/")][:5]
                eg = f", e.g. {', '.join(kids)}" if kids else ""
                raise DataError(
                    f"ir_datasets id {irds_id!r} has no {what}; set dataset.irds_id to an id "
                    f"with docs, queries and qrels{eg}"
                )
        self.version = str(getattr(irds, "__version__", "unknown"))
        self._parents = {what: self._parent(irds, what) for what in ("docs", "queries", "qrels")}

    def __repr__(self) -> str:
        return f"IrdsDataset({self.irds_id!r})"

    @staticmethod
    def _ids(irds: Any) -> list[str]:
        try:
            return sorted(irds.registry)
        except Exception:  # registry API varies across versions; the hint is optional
            return []

    def _unknown_hint(self, irds: Any) -> str:
        close = difflib.get_close_matches(self.irds_id, self._ids(irds), n=3, cutoff=0.6)
        alt = f"did you mean {', '.join(map(repr, close))}? " if close else ""
        return (
            f"unknown ir_datasets id {self.irds_id!r}; {alt}ids are listed at "
            "https://ir-datasets.com (e.g. 'beir/scifact/test'), or set dataset.path=<local BEIR "
            "folder>"
        )

    def _parent(self, irds: Any, what: str) -> str:
        try:
            return str(getattr(irds, f"{what}_parent_id")(self.irds_id))
        except Exception:  # not registered (a test double) or an older ir_datasets
            return self.irds_id

    def _download_error(self, e: BaseException) -> DataError:
        detail = str(e.args[0]) if e.args and isinstance(e.args[0], str) else str(e)
        detail = " ".join(detail.split())[:160]
        return DataError(
            f"ir_datasets could not download {self.irds_id!r} ({type(e).__name__}: {detail}); "
            "without network access set dataset.path=<local BEIR folder> instead"
        )

    def _stream(
        self, make: Callable[[], Iterable[Any]], convert: Callable[[Any], T]
    ) -> Iterator[T]:
        """Convert records one by one; only ir_datasets' own failures are translated."""
        it: Iterator[Any] | None = None
        while True:
            try:
                if it is None:
                    it = iter(make())
                record = next(it)
            except StopIteration:
                return
            except DOWNLOAD_ERRORS as e:
                raise self._download_error(e) from e
            yield convert(record)

    def docs_iter(self) -> Iterator[Doc]:
        return self._stream(self._ds.docs_iter, to_doc)

    def queries_iter(self) -> Iterator[Query]:
        return self._stream(self._ds.queries_iter, to_query)

    def qrels_iter(self) -> Iterator[Qrel]:
        if not self._ds.has_qrels():
            return iter(())
        return self._stream(self._ds.qrels_iter, to_qrel)

    def docs_count(self) -> int | None:
        """From ir_datasets' metadata; None where it is unknown without downloading."""
        try:
            n = self._ds.docs_count()
        except Exception:  # best effort: a count is only used for progress and sizing
            return None
        return int(n) if n is not None else None

    def fingerprint(self) -> dict[str, str]:
        tag = f"@ir_datasets-{self.version}"
        return {
            "irds_id": self.irds_id,
            "ir_datasets": self.version,
            **{what: f"irds:{parent}{tag}" for what, parent in self._parents.items()},
        }
