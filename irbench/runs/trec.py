"""TREC run files: ``qid Q0 docid rank score tag``, written atomically, read strictly."""

from __future__ import annotations

import codecs
import math
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

from irbench.errors import DataError
from irbench.runs.atomic import atomic_open
from irbench.types import ScoredDoc

_F32 = struct.Struct("f")


def format_score(score: float) -> str:
    """A score that reads back as itself, so the file ranks the hits as irbench did (6
    decimals made distinct dense scores equal, and evaluation then reordered them by doc
    id): 9 significant digits for a float32 value (the index scores), the shortest exact
    form otherwise (fused float64 scores)."""
    try:
        is_f32 = _F32.unpack(_F32.pack(score))[0] == score
    except (OverflowError, struct.error):
        is_f32 = False
    return f"{score:.9g}" if is_f32 else repr(float(score))


def trec_order(hits: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    """``(doc_id, score)`` hits in the order trec_eval (and pytrec_eval) ranks them: score
    descending, ties by doc id *descending*. irbench's evaluation ranks ties this way for every
    measure (:func:`irbench.eval.evaluate`), so a run file written in this order ranks its
    hits as its metrics do."""
    out = sorted(hits, key=lambda h: h[0], reverse=True)
    out.sort(key=lambda h: -h[1])  # stable: tied scores keep the doc order above
    return out


def write_run(
    path: str | os.PathLike, hits: Iterable[tuple[str, list[tuple[str, float]]]], tag: str
) -> None:
    """Write ``(query_id, [(doc_id, score), ...])`` rows (already ranked, see
    :func:`trec_order`) to ``path``; a non-finite score is a DataError."""
    if not tag or any(c.isspace() for c in tag):
        raise DataError(
            f"run tag {tag!r} must be non-empty without spaces (the config's tag=, or --tag)"
        )
    with atomic_open(path) as f:
        for qid, ranked in hits:
            if not all(math.isfinite(score) for _, score in ranked):
                raise DataError(f"query {qid}: a score is not finite; nothing was written", path)
            lines = [
                f"{qid} Q0 {docid} {rank} {format_score(score)} {tag}\n"
                for rank, (docid, score) in enumerate(ranked, start=1)
            ]
            f.writelines(lines)


def read_run(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """Read a TREC run as ``{query_id: {doc_id: score}}`` (the form ir_measures evaluates
    fastest). Malformed lines, non-numeric scores and duplicate (qid, docid) pairs raise
    DataError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError("run file not found", path)
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError("not valid UTF-8", path, data[: exc.start].count(b"\n") + 1) from None
    run: dict[str, dict[str, float]] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise DataError(
                f"expected 6 columns 'qid Q0 docid rank score tag', got {len(parts)}", path, lineno
            )
        qid, _, docid, _, score, _ = parts
        try:
            value = float(score)
        except ValueError:
            raise DataError(f"score {score!r} is not a number", path, lineno) from None
        if not math.isfinite(value):
            raise DataError(f"score {score!r} is not finite; give a finite number", path, lineno)
        hits = run.setdefault(qid, {})
        if docid in hits:
            raise DataError(f"duplicate (query {qid}, doc {docid})", path, lineno)
        hits[docid] = value
    return run


def iter_run(path: str | os.PathLike) -> Iterator[ScoredDoc]:
    """The run as ScoredDoc records (query order of the file, docs as :func:`trec_order`)."""
    for qid, hits in read_run(path).items():
        for docid, score in trec_order(hits.items()):
            yield ScoredDoc(qid, docid, score)
