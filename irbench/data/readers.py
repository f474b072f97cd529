"""Strict streaming readers: lines, JSONL, TSV rows, BEIR corpus/queries/qrels (TREC formats:
:mod:`irbench.data.trec`). A malformed line raises :class:`DataError` naming file and 1-based
line. Gzip input (by magic bytes) is read transparently; CRLF, a UTF-8 BOM and blank lines are
accepted; empty doc or query text is kept as ``""``; ids must be non-empty without whitespace.
"""

from __future__ import annotations

import codecs
import gzip
import json
import re
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from irbench.errors import DataError
from irbench.types import Doc, Qrel, Query

DOC_ID_KEYS = ("_id", "id", "docno", "doc_id")
DOC_TEXT_KEYS = ("text", "contents")
QUERY_ID_KEYS = ("_id", "id", "qid", "query_id")
QUERY_TEXT_KEYS = ("text", "query")
_INT = re.compile(r"[+-]?[0-9]{1,18}")


def _open(path: Path) -> BinaryIO:
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
        return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")
    except FileNotFoundError:
        raise DataError("file does not exist", path) from None
    except IsADirectoryError:
        raise DataError("expected a file, found a directory", path) from None
    except OSError as e:
        raise DataError(f"cannot read file ({e.strerror or e})", path) from None


def _raw_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    lineno = 0
    with _open(path) as f:
        try:
            for lineno, raw in enumerate(f, 1):  # noqa: B007 (lineno is used below)
                yield lineno, raw
        except (OSError, EOFError, zlib.error) as e:  # corrupt or truncated gzip stream
            raise DataError(f"corrupt or truncated file ({e})", path, lineno + 1) from None


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` with the line ending removed; bytes must be UTF-8."""
    path = Path(path)
    for lineno, raw in _raw_lines(path):
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[3:]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"invalid UTF-8 (byte {e.start})", path, lineno) from None
        yield lineno, line


def count_lines(path: str | Path) -> int:
    """Number of non-blank lines, read as raw bytes (cheap: no decoding or parsing)."""
    return sum(not raw.isspace() for _, raw in _raw_lines(Path(path)))


def first_line(path: str | Path) -> str:
    """The first non-blank line of a file ("" if none), for format sniffing."""
    for _, line in iter_lines(path):
        if line.strip():
            return line.strip()
    return ""


def iter_jsonl(path: str | Path, required: Sequence[str] = ("_id",)) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)``; each line is a JSON object whose ``required`` keys are strings."""
    for ln, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON ({e.msg} at column {e.colno})", path, ln) from None
        except (ValueError, RecursionError) as e:  # huge ints, deep nesting
            raise DataError(f"invalid JSON ({type(e).__name__})", path, ln) from None
        if not isinstance(obj, dict):
            raise DataError(f"expected a JSON object, got {type(obj).__name__}", path, ln)
        for key in required:
            if key not in obj:
                raise DataError(f"missing key {key!r}", path, ln)
            if not isinstance(obj[key], str):
                raise DataError(f"{key!r} must be a string, got {obj[key]!r:.40}", path, ln)
        yield ln, obj


def read_jsonl(path: str | Path, required: Sequence[str] = ("_id",)) -> Iterator[dict]:
    """Yield the JSON objects of a JSONL file (see :func:`iter_jsonl`)."""
    return (obj for _, obj in iter_jsonl(path, required))


def check_id(value: object, name: str, path: Path, ln: int) -> str:
    """A record id: a non-empty string without whitespace (TREC run files split on it)."""
    if not isinstance(value, str) or not value:
        raise DataError(f"{name} must be a non-empty string, got {value!r:.40}", path, ln)
    if value.split() != [value]:
        raise DataError(f"{name} {value!r:.40} contains whitespace", path, ln)
    return _encodable(value, name, path, ln)


def _encodable(value: str, name: str, path: Path, ln: int) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(f"{name} contains a lone surrogate (\\ud800-\\udfff)", path, ln) from None
    return value


def _get_id(obj: dict, keys: Sequence[str], path: Path, ln: int) -> str:
    for key in keys:
        if key in obj:
            return check_id(obj[key], repr(key), path, ln)
    raise DataError(f"missing id key (one of {', '.join(map(repr, keys))})", path, ln)


def _get_text(obj: dict, keys: Sequence[str], path: Path, ln: int, optional: bool) -> str:
    for key in keys:
        if key in obj:
            value = obj[key]
            if value is None:
                return ""
            if not isinstance(value, str):
                raise DataError(f"{key!r} must be a string, got {value!r:.40}", path, ln)
            return _encodable(value, repr(key), path, ln)
    if optional:
        return ""
    raise DataError(f"missing text key (one of {', '.join(map(repr, keys))})", path, ln)


def read_corpus_jsonl(path: str | Path) -> Iterator[Doc]:
    """BEIR corpus (``_id``, ``title``, ``text``) or ``{"id"/"docno"/"doc_id", "text"/"contents", "title"?}``.

    A missing or null title is ""; a null text is "".
    """
    path = Path(path)
    for ln, obj in iter_jsonl(path, required=()):
        doc_id = _get_id(obj, DOC_ID_KEYS, path, ln)
        text = _get_text(obj, DOC_TEXT_KEYS, path, ln, optional=False)
        yield Doc(doc_id, text, _get_text(obj, ("title",), path, ln, optional=True))


read_beir_corpus = read_corpus_jsonl


def unique_queries(queries: Iterator[tuple[int, Query]], path: Path) -> Iterator[Query]:
    seen: dict[str, int] = {}
    for ln, q in queries:
        if q.query_id in seen:
            raise DataError(
                f"duplicate query id {q.query_id!r} (first on line {seen[q.query_id]})", path, ln
            )
        seen[q.query_id] = ln
        yield q


def read_queries_jsonl(path: str | Path) -> Iterator[Query]:
    """BEIR queries (``_id``, ``text``); also accepts ``id``/``qid``/``query_id`` and ``query``."""
    path = Path(path)

    def parse() -> Iterator[tuple[int, Query]]:
        for ln, obj in iter_jsonl(path, required=()):
            qid = _get_id(obj, QUERY_ID_KEYS, path, ln)
            yield ln, Query(qid, _get_text(obj, QUERY_TEXT_KEYS, path, ln, optional=False))

    return unique_queries(parse(), path)


read_beir_queries = read_queries_jsonl


def tsv_rows(
    path: Path, ncols: int, what: str, tab: bool = True, header: Sequence[str] = ()
) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, fields)`` of non-blank lines with exactly ``ncols`` columns.

    The first non-blank line is skipped when its first field is one of ``header``.
    """
    first = True
    for ln, line in iter_lines(path):
        if not line.strip():
            continue
        fields = [f.strip() for f in (line.split("\t") if tab else line.split())]
        if first and fields[0].lower() in header:
            first = False
            continue
        first = False
        if len(fields) != ncols:
            sep = "tab-separated" if tab else "whitespace-separated"
            raise DataError(
                f"expected {ncols} {sep} columns ({what}), found {len(fields)}", path, ln
            )
        yield ln, fields


def parse_int(value: str, what: str, path: Path, ln: int) -> int:
    if not _INT.fullmatch(value):
        raise DataError(f"{what} must be an integer, got {value!r:.40}", path, ln)
    return int(value)


def unique_qrels(rows: Iterator[tuple[int, Qrel]], path: Path) -> Iterator[Qrel]:
    seen: dict[tuple[str, str], int] = {}
    for ln, q in rows:
        key = (q.query_id, q.doc_id)
        if key in seen:
            raise DataError(
                f"duplicate qrel for query {q.query_id!r}, doc {q.doc_id!r} "
                f"(first on line {seen[key]})",
                path,
                ln,
            )
        seen[key] = ln
        yield q


def read_beir_qrels(path: str | Path) -> Iterator[Qrel]:
    """BEIR qrels TSV: header ``query-id<TAB>corpus-id<TAB>score``, then integer-scored rows."""
    path = Path(path)

    def parse() -> Iterator[tuple[int, Qrel]]:
        cols = "query-id, corpus-id, score; TREC qrels have 4: 'qid 0 docid rel'"
        for ln, (qid, did, score) in tsv_rows(
            path, 3, cols, header=("query-id", "query_id", "qid")
        ):
            qid, did = check_id(qid, "query-id", path, ln), check_id(did, "corpus-id", path, ln)
            yield ln, Qrel(qid, did, parse_int(score, "score", path, ln))

    return unique_qrels(parse(), path)
