"""TREC-style collections: TREC qrels, TSV or SGML topics, JSONL or TSV corpora.

Formats are detected from the file name (``.jsonl``, ``.tsv``; ``.gz`` is ignored) and, where
that says nothing, from the first non-blank line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from irbench.data.fingerprint import file_fingerprint
from irbench.data.readers import (
    check_id,
    count_lines,
    first_line,
    iter_lines,
    parse_int,
    read_beir_qrels,
    read_corpus_jsonl,
    read_queries_jsonl,
    tsv_rows,
    unique_qrels,
    unique_queries,
)
from irbench.errors import DataError
from irbench.types import Doc, Qrel, Query

_TAG = re.compile(r"<(/?)([A-Za-z]+)>")
_SGML_PREFIX = re.compile(r"^\s*(number|topic|description|narrative)\s*:", re.I)
_CORPUS_HEADER = ("docid", "doc_id", "id", "pid", "_id")


def read_trec_qrels(path: str | Path) -> Iterator[Qrel]:
    """TREC qrels: ``qid iter docid rel`` separated by whitespace."""
    path = Path(path)

    def parse() -> Iterator[tuple[int, Qrel]]:
        for ln, (qid, it, did, rel) in tsv_rows(path, 4, "qid iter docid rel", tab=False):
            yield ln, Qrel(qid, did, parse_int(rel, "relevance", path, ln), it)

    return unique_qrels(parse(), path)


def read_topics_tsv(path: str | Path) -> Iterator[Query]:
    """Topics as ``qid<TAB>text`` (MS MARCO style); an optional header line is skipped."""
    path = Path(path)

    def parse() -> Iterator[tuple[int, Query]]:
        header = ("qid", "query_id", "query-id")
        for ln, (qid, text) in tsv_rows(path, 2, "qid, text", header=header):
            yield ln, Query(check_id(qid, "query id", path, ln), text)

    return unique_queries(parse(), path)


def read_corpus_tsv(path: str | Path) -> Iterator[Doc]:
    """Corpus as ``docid<TAB>text`` (MS MARCO style); an optional header line is skipped."""
    path = Path(path)
    for ln, (doc_id, text) in tsv_rows(path, 2, "docid, text", header=_CORPUS_HEADER):
        yield Doc(check_id(doc_id, "doc id", path, ln), text)


def _clean(parts: list[str]) -> str:
    return " ".join(_SGML_PREFIX.sub("", " ".join(parts), count=1).split())


def read_topics_sgml(path: str | Path, fields: Sequence[str] = ("title",)) -> Iterator[Query]:
    """Classic TREC topics: ``<top> <num> Number: 301 <title> ... <desc> ... </top>``.

    The query text joins the given ``fields`` (tag names such as ``title``, ``desc``, ``narr``).
    """
    path = Path(path)

    def finish(topic: dict[str, list[str]], start: int) -> tuple[int, Query]:
        qid = _clean(topic.get("num", []))
        if not qid:
            raise DataError("topic without a <num>", path, start)
        check_id(qid, "topic number", path, start)
        for f in fields:
            if f not in topic:
                raise DataError(f"topic {qid!r} has no <{f}>", path, start)
        return start, Query(qid, " ".join(t for t in (_clean(topic[f]) for f in fields) if t))

    def parse() -> Iterator[tuple[int, Query]]:
        topic: dict[str, list[str]] | None = None
        tag: str | None = None
        start = 0
        for ln, line in iter_lines(path):
            pos = 0
            for m in [*_TAG.finditer(line), None]:
                chunk = line[pos : m.start() if m else len(line)]
                if topic is None and chunk.strip():
                    raise DataError(f"text outside <top>: {chunk.strip()!r:.40}", path, ln)
                if topic is not None and tag is not None:
                    topic[tag].append(chunk)
                if m is None:
                    break
                pos = m.end()
                closing, name = m.group(1) == "/", m.group(2).lower()
                if name == "top" and not closing:
                    if topic is not None:
                        raise DataError("<top> inside an open topic (missing </top>?)", path, ln)
                    topic, tag, start = {}, None, ln
                elif topic is None:
                    raise DataError(f"<{m.group(1)}{name}> outside <top>", path, ln)
                elif name == "top":
                    yield finish(topic, start)
                    topic, tag = None, None
                else:
                    tag = None if closing else name
                    if tag is not None:
                        topic.setdefault(tag, [])
        if topic is not None:
            raise DataError("<top> is never closed by </top>", path, start)

    return unique_queries(parse(), path)


def _suffix(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    return name.rsplit(".", 1)[-1] if "." in name else ""


def corpus_format(path: str | Path) -> str:
    """``"jsonl"`` or ``"tsv"``."""
    path = Path(path)
    if _suffix(path) in ("jsonl", "json"):
        return "jsonl"
    head = first_line(path)
    if head.upper().startswith("<DOC>"):
        raise DataError("TREC SGML corpora (<DOC>...) are not supported; convert to JSONL", path)
    return "jsonl" if head.startswith("{") and _suffix(path) != "tsv" else "tsv"


def topics_format(path: str | Path) -> str:
    """``"sgml"``, ``"jsonl"`` or ``"tsv"``."""
    path = Path(path)
    head = first_line(path)
    if head.lower().startswith("<top>"):
        return "sgml"
    if _suffix(path) in ("jsonl", "json") or (head.startswith("{") and _suffix(path) != "tsv"):
        return "jsonl"
    return "tsv"


def qrels_format(path: str | Path) -> str:
    """``"trec"`` (``qid iter docid rel``) or ``"beir"`` (TSV with a ``query-id`` header)."""
    fields = first_line(path).split()
    return "trec" if len(fields) == 4 and fields[0].lower() != "query-id" else "beir"


def read_corpus(path: str | Path) -> Iterator[Doc]:
    return (read_corpus_jsonl if corpus_format(path) == "jsonl" else read_corpus_tsv)(path)


def read_topics(path: str | Path, fields: Sequence[str] = ("title",)) -> Iterator[Query]:
    kind = topics_format(path)
    if kind == "sgml":
        return read_topics_sgml(path, fields)
    return (read_queries_jsonl if kind == "jsonl" else read_topics_tsv)(path)


def read_qrels(path: str | Path) -> Iterator[Qrel]:
    return (read_trec_qrels if qrels_format(path) == "trec" else read_beir_qrels)(path)


class TrecDataset:
    """A corpus file, a topics file and (optionally) a qrels file, formats auto-detected.

    ``topic_fields`` picks the SGML topic fields that make the query text: ``"title"`` (the
    default), ``"desc"``, ``"title+desc"``, ...
    """

    def __init__(
        self,
        corpus: str | Path,
        topics: str | Path,
        qrels: str | Path | None = None,
        name: str | None = None,
        topic_fields: str | Sequence[str] = "title",
    ):
        self.corpus = Path(corpus).expanduser()
        self.topics = Path(topics).expanduser()
        self.qrels = Path(qrels).expanduser() if qrels else None
        for p in (self.corpus, self.topics, self.qrels):
            if p is not None and not p.is_file():
                raise DataError("file does not exist", p)
        fields = topic_fields.split("+") if isinstance(topic_fields, str) else topic_fields
        self.topic_fields = tuple(f.strip().lower() for f in fields)
        self.name = name or self.corpus.parent.name or self.corpus.stem
        self._docs_count: int | None = None
        self._fingerprint: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"TrecDataset({str(self.corpus)!r}, {str(self.topics)!r}, {self.qrels!r})"

    def docs_iter(self) -> Iterator[Doc]:
        return read_corpus(self.corpus)

    def queries_iter(self) -> Iterator[Query]:
        return read_topics(self.topics, self.topic_fields)

    def qrels_iter(self) -> Iterator[Qrel]:
        return read_qrels(self.qrels) if self.qrels is not None else iter(())

    def docs_count(self) -> int:
        if self._docs_count is None:
            n = count_lines(self.corpus)
            if corpus_format(self.corpus) == "tsv":  # a header line is not a doc
                n -= first_line(self.corpus).split("\t")[0].strip().lower() in _CORPUS_HEADER
            self._docs_count = n
        return self._docs_count

    def fingerprint(self) -> dict[str, str]:
        if self._fingerprint is None:
            self._fingerprint = {
                "docs": file_fingerprint(self.corpus),
                "queries": file_fingerprint(self.topics),
                "qrels": file_fingerprint(self.qrels) if self.qrels is not None else "",
            }
            if topics_format(self.topics) == "sgml":
                self._fingerprint["topic_fields"] = "+".join(self.topic_fields)
        return self._fingerprint
