"""Evaluation with ir_measures: parse measure names, per-query and aggregate values."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from irbench.errors import ConfigError
from irbench.types import Qrel, ScoredDoc


def parse_measures(names: Sequence[str]) -> list[Any]:
    """ir_measures objects for names such as ``nDCG@10``; unknown names are a ConfigError."""
    import ir_measures

    if isinstance(names, str):  # one name, not its characters
        names = [names]
    out = []
    for name in names:
        try:
            measure = ir_measures.parse_measure(str(name))
        except (ValueError, NameError, SyntaxError, TypeError, AttributeError):
            raise ConfigError(
                f"unknown measure '{name}'; use ir_measures names such as "
                "nDCG@10, RR@10, R@100, P@10, AP, Judged@10"
            ) from None
        try:
            measure.validate_params()
        except (AssertionError, ValueError, TypeError) as exc:
            text = str(exc) or "invalid parameters"
            hint = (
                "cutoffs and relevance levels are integers, e.g. nDCG@10, P(rel=2)@10"
                if "cutoff" in text or "rel=" in text
                else "see the parameters ir_measures documents for it"
            )
            raise ConfigError(f"measure '{name}': {text}; {hint}") from None
        params = getattr(measure, "params", {})
        for key, low in (("cutoff", 1), ("rel", 1)):
            value = params.get(key)
            if value is not None and (isinstance(value, bool) or not low <= int(value) < 2**31):
                # pytrec_eval aborts the whole process on a cutoff of 0 (and takes C ints)
                raise ConfigError(
                    f"measure '{name}': {key} must be an integer from {low} to 2**31 - 1, e.g. "
                    "nDCG@10, P(rel=2)@10"
                )
        _dry_run(measure, str(name))
        out.append(measure)
    if not out:
        raise ConfigError("measures is empty; give at least one, e.g. measures=[nDCG@10]")
    return out


def _dry_run(measure: Any, name: str) -> None:
    """Compute ``measure`` on a one-query toy run, so that parameters its provider rejects
    (e.g. non-integer gains) are a ConfigError before any work, not a traceback after it."""
    import ir_measures

    try:
        list(ir_measures.iter_calc([measure], {"q": {"d": 1, "e": 0}}, {"q": {"d": 1.0, "e": 0.5}}))
    except Exception as exc:  # noqa: BLE001 -- any provider failure is this measure's fault
        text = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise ConfigError(f"measure '{name}': ir_measures cannot compute it ({text})") from None


@dataclass
class Evaluation:
    aggregate: dict[str, float]
    per_query: list[tuple[str, str, float]]  # (query_id, measure, value)
    n_queries_qrels: int
    n_queries_run: int
    n_queries_evaluated: int
    notes: list[str] = field(default_factory=list)


def evaluate(
    run: Iterable[ScoredDoc] | dict[str, dict[str, float]],
    qrels: Iterable[Qrel],
    measures: Sequence[str],
) -> Evaluation:
    """Aggregate and per-query values, keyed by ir_measures' canonical names.

    Per-query values are computed once and aggregated with each measure's own aggregator,
    exactly as ``ir_measures.calc_aggregate`` does. Queries with qrels but no hits in the run
    get 0 from ir_measures and count in the averages (as ``trec_eval -c``); the note says how
    many. Tied scores are ranked as trec_eval ranks them (doc id descending,
    :func:`irbench.runs.trec.trec_order`) for every measure: ir_measures' providers differ
    there (pytrec_eval breaks ties by doc id descending, its msmarco and judged providers, which
    compute ``RR@k`` and ``Judged@k``, ascending), so a query with ties is handed to them as
    its ranks.
    """
    import ir_measures

    parsed = parse_measures(measures)
    qrels_dd: dict[str, dict[str, int]] = {}
    for q in qrels:
        qrels_dd.setdefault(q.query_id, {})[q.doc_id] = int(q.relevance)
    if not isinstance(run, dict):
        run_dd: dict[str, dict[str, float]] = {}
        for r in run:
            run_dd.setdefault(r.query_id, {})[r.doc_id] = float(r.score)
        run = run_dd
    run = {qid: _tie_free(hits) for qid, hits in run.items()}
    evaluated = set(qrels_dd) & set(run)
    aggregators = {m: m.aggregator() for m in parsed}
    per_query = []
    if evaluated:
        for pq in ir_measures.iter_calc(parsed, qrels_dd, run):
            aggregators[pq.measure].add(pq.value)
            per_query.append((pq.query_id, str(pq.measure), float(pq.value)))
    per_query.sort()
    # no judged query in the run: each counts as 0, as above; without qrels nothing is defined
    empty = 0.0 if qrels_dd else float("nan")
    aggregate = {str(m): float(aggregators[m].result()) if evaluated else empty for m in parsed}
    notes = []
    missing = len(set(qrels_dd) - set(run))
    if missing:
        notes.append(
            f"{missing} of {len(qrels_dd)} queries with qrels have no hits (each counts as 0 in the averages)"
        )
    return Evaluation(aggregate, per_query, len(qrels_dd), len(run), len(evaluated), notes)


def _tie_free(hits: dict[str, float]) -> dict[str, float]:
    """``hits`` as is without ties; else each doc's place in :func:`trec_order` as its score
    (n, n - 1, ... 1), so that every ir_measures provider sees one ranking."""
    if len(set(hits.values())) == len(hits):
        return hits
    from irbench.runs.trec import trec_order

    ordered = trec_order(hits.items())
    return {doc: float(len(ordered) - i) for i, (doc, _) in enumerate(ordered)}


def check_evaluable(result: Evaluation, run: str, qrels: str) -> None:
    """DataError when nothing could be evaluated: no judgements, or no judged query in the
    run (a wrong qrels file or split, or an empty run); ``run`` / ``qrels`` name the inputs."""
    from irbench.errors import DataError

    if result.n_queries_qrels == 0:
        raise DataError(f"{qrels}: no relevance judgements; give the qrels of this collection")
    if result.n_queries_evaluated == 0:
        what = "is empty" if result.n_queries_run == 0 else (
            f"has {result.n_queries_run} queries, none of them among the "
            f"{result.n_queries_qrels} judged in {qrels}"
        )  # fmt: skip
        raise DataError(f"{run} {what}; check the run file and the qrels file or split")
