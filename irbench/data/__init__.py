"""Test collections behind one protocol (:class:`irbench.types.Dataset`), three adapters.

* :class:`BeirDataset` — a local BEIR folder (``dataset.path``);
* :class:`TrecDataset` — corpus + topics (+ qrels) files (``dataset.corpus``, ``dataset.topics``);
* :class:`IrdsDataset` — anything ``ir_datasets`` knows (``dataset.irds_id``).

:func:`make_dataset` picks one from config values; :func:`check_qrels` counts the
inconsistencies between qrels, queries and the corpus that a run should report.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

from irbench.data.beir import BeirDataset, beir_splits
from irbench.data.fingerprint import file_fingerprint
from irbench.data.irds import IrdsDataset
from irbench.data.readers import (
    count_lines,
    iter_jsonl,
    iter_lines,
    read_beir_corpus,
    read_beir_qrels,
    read_beir_queries,
    read_corpus_jsonl,
    read_jsonl,
    read_queries_jsonl,
)
from irbench.data.trec import (
    TrecDataset,
    read_corpus,
    read_corpus_tsv,
    read_qrels,
    read_topics,
    read_topics_sgml,
    read_topics_tsv,
    read_trec_qrels,
)
from irbench.errors import DataError
from irbench.types import Dataset, Qrel, Query

__all__ = [
    "BeirDataset",
    "IrdsDataset",
    "TrecDataset",
    "beir_splits",
    "check_qrels",
    "count_lines",
    "file_fingerprint",
    "iter_jsonl",
    "iter_lines",
    "make_dataset",
    "queries_with_qrels",
    "read_beir_corpus",
    "read_beir_qrels",
    "read_beir_queries",
    "read_corpus",
    "read_corpus_jsonl",
    "read_corpus_tsv",
    "read_jsonl",
    "read_qrels",
    "read_qrels_file",
    "read_queries_jsonl",
    "read_topics",
    "read_topics_sgml",
    "read_topics_tsv",
    "read_trec_qrels",
]


def make_dataset(
    name: str,
    irds_id: str | None = None,
    path: str | None = None,
    split: str = "test",
    corpus: str | None = None,
    topics: str | None = None,
    qrels: str | None = None,
    topic_fields: str | Sequence[str] = "title",
    **_: Any,
) -> Dataset:
    """The dataset described by a ``dataset`` config group.

    Local files win: ``path`` (a BEIR folder) first, then ``corpus`` + ``topics`` (+ ``qrels``),
    then ``irds_id``. Unknown keys are ignored.
    """
    if path:
        return BeirDataset(path, split=split or "test", name=name)
    if corpus or topics:
        if not (corpus and topics):
            missing = "dataset.topics" if corpus else "dataset.corpus"
            raise DataError(
                f"dataset {name!r}: dataset.corpus and dataset.topics go together; set {missing}"
            )
        return TrecDataset(corpus, topics, qrels, name=name, topic_fields=topic_fields)
    if irds_id:
        return IrdsDataset(irds_id, name=name)
    raise DataError(
        f"dataset {name!r} has no source: set dataset.path=<local BEIR folder>, "
        "dataset.irds_id=<ir_datasets id> or dataset.corpus + dataset.topics"
    )


def check_qrels(
    dataset: Dataset | Iterable[Qrel],
    doc_ids: Collection[str],
    query_ids: Collection[str] | None = None,
) -> dict[str, int]:
    """Count qrels/queries/corpus mismatches.

    Keys: ``qrels_rows``, ``qrels_queries`` (distinct query ids in the qrels),
    ``qrels_unknown_doc_rows`` (rows whose doc is not in ``doc_ids``) and
    ``queries_with_unknown_docs`` (queries with at least one such row). Given a dataset (not
    just its qrels), or its ``query_ids``, also ``queries``, ``queries_without_qrels`` and
    ``qrels_unknown_query_rows`` (rows whose query is not among the dataset's queries).
    """
    query_ids = set(query_ids) if query_ids is not None else None
    if hasattr(dataset, "qrels_iter"):
        if query_ids is None:
            query_ids = {q.query_id for q in dataset.queries_iter()}  # type: ignore[union-attr]
        dataset = dataset.qrels_iter()  # type: ignore[union-attr]
    rows = unknown_doc_rows = unknown_query_rows = 0
    qrels_queries: set[str] = set()
    queries_with_unknown: set[str] = set()
    for qrel in dataset:  # type: ignore[union-attr]
        rows += 1
        qrels_queries.add(qrel.query_id)
        if qrel.doc_id not in doc_ids:
            unknown_doc_rows += 1
            queries_with_unknown.add(qrel.query_id)
        if query_ids is not None and qrel.query_id not in query_ids:
            unknown_query_rows += 1
    report = {
        "qrels_rows": rows,
        "qrels_queries": len(qrels_queries),
        "qrels_unknown_doc_rows": unknown_doc_rows,
        "queries_with_unknown_docs": len(queries_with_unknown),
    }
    if query_ids is not None:
        report["queries"] = len(query_ids)
        report["queries_without_qrels"] = len(query_ids - qrels_queries)
        report["qrels_unknown_query_rows"] = unknown_query_rows
    return report


def read_qrels_file(path: str | Path) -> list[Qrel]:
    """All rows of a qrels file, TREC (``qid iter docid rel``) or BEIR TSV, detected by content."""
    return list(read_qrels(path))


def queries_with_qrels(dataset: Dataset) -> list[Query]:
    """The dataset's queries that have at least one qrel row, in query order."""
    judged = {qrel.query_id for qrel in dataset.qrels_iter()}
    return [q for q in dataset.queries_iter() if q.query_id in judged]
