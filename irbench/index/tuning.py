"""Calibrate an approximate index's search knobs to a target recall.

Approximate indexes trade recall for speed through search-time knobs, and the recall a
setting gives changes with the collection (on the synthetic corpora of docs/benchmarks.md,
numba_approx's defaults give recall@10 0.96 at 100k docs and 0.52 at 10M). Calibration
replaces guessing: it measures, on sample queries, the mean recall@k of settings against
the exact top-k over the index's own stored vectors, and picks the cheapest setting that
reaches the target. Two walks:

* :func:`calibrate_approx` -- ``numba_approx`` (:class:`~irbench.index.approx.ApproxIndex`):
  two knobs, ``query_cut`` and ``heap_factor``; the reference is a brute-force pass over
  the forward index (:meth:`~irbench.index.approx.ApproxIndex.exact_search`).
* :func:`calibrate_faiss` -- ``index=faiss`` with an IVF factory (``nprobe``) or an HNSW
  factory (``ef_search``): one knob, recall and cost rising with it; the reference is the
  same index searched exhaustively (every IVF list; the HNSW graph's flat storage). With
  compressed codes (PQ, SQ) the reference is exact over those codes, so calibration
  measures what the search knob loses, not what compression loses.

"Cheapest" is counted, not timed, so that the choice -- and the run files that follow from
it -- are the same on every machine and every run. numba_approx counts the index entries a
query reads (summary entries plus forward-row entries, from ``search(...,
return_work=True)``); on the 18k-doc real and 1M-doc synthetic benchmark corpora the counted
choice was within 7% of the fastest setting by wall time at every target from 0.80 to 0.99
(0.8% on average; docs/index.md). FAISS counts the distances a query computes (FAISS's own
IVF and HNSW statistics).

The numba_approx walk goes down the ``query_cut`` ladder from "every term" and, for each cut,
lowers ``heap_factor`` from where the previous cut reached the target (recall falls with
the cut and rises as ``heap_factor`` falls; cost does the same), until the target is
reached or the walk costs more than the best setting found; it ends at the first cut that
no ``heap_factor`` of the ladder takes to the target. On the benchmark corpora it finds the
full grid's cheapest setting at a quarter to a third of the full grid's search time. The
FAISS walk doubles the knob until the target is reached, then bisects for the smallest value
that reaches it. When no setting reaches the target, the most accurate one evaluated is
chosen and ``reached`` is False.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from irbench.errors import ConfigError, DataError
from irbench.index.approx import WORK_COLUMNS
from irbench.index.base import search_k

#: the ``return_work`` columns a setting's cost adds up
_COST_COLUMNS = [WORK_COLUMNS.index("summary_entries"), WORK_COLUMNS.index("row_entries")]
#: ``query_cut`` ladder (0 = every query term), cheapest first
QUERY_CUTS = (3, 5, 8, 10, 15, 20, 30, 50, 0)
#: ``heap_factor`` ladder, cheapest (fewest blocks visited) first
HEAP_FACTORS = tuple(round(1.0 - 0.05 * i, 2) for i in range(15))  # 1.0 .. 0.3


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of |found ∩ exact| / |exact| (rows -1 padded; queries whose exact
    row is empty are skipped; NaN when all are)."""
    vals = []
    for f, e in zip(found, exact, strict=True):
        e = e[e >= 0]
        if len(e) == 0:
            continue
        vals.append(len(np.intersect1d(f[f >= 0], e)) / len(e))
    return float(np.mean(vals)) if vals else float("nan")


@dataclass(frozen=True)
class Point:
    """One evaluated setting (``knobs``): its mean recall@k and counted cost per query."""

    knobs: dict[str, Any]
    recall: float
    cost: float


@dataclass
class Calibration:
    """The chosen setting and every setting evaluated on the way."""

    target_recall: float
    k: int
    n_queries: int
    #: the chosen setting, as ``configure`` / ``search`` keywords
    knobs: dict[str, Any]
    recall: float
    cost: float
    reached: bool
    #: what ``cost`` counts, per query
    cost_unit: str = "entries read"
    #: the advice printed when the target is missed
    miss_hint: str = ""
    points: list[Point] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["points"] = [asdict(p) for p in self.points]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        """The inverse of :meth:`as_dict`."""
        fields = {f for f in cls.__dataclass_fields__ if f != "points"}
        return cls(
            **{key: d[key] for key in fields if key in d},
            points=[Point(**p) for p in d.get("points", [])],
        )

    def describe(self) -> str:
        """One line: the setting, its recall, and a hint when the target was missed."""
        setting = " ".join(f"{key}={value}" for key, value in self.knobs.items())
        evaluated = f"{len(self.points)} setting" + ("" if len(self.points) == 1 else "s")
        line = (
            f"{setting}: recall@{self.k} {self.recall:.3f} on {self.n_queries} queries, "
            f"{self.cost:,.0f} {self.cost_unit} per query ({evaluated} evaluated)"
        )
        if self.reached:
            return f"{line}; reaches target {self.target_recall}"
        return f"{line}; MISSES target {self.target_recall}" + (
            f": {self.miss_hint}" if self.miss_hint else ""
        )


def _cuts(queries: sp.csr_matrix, query_cuts: tuple[int, ...]) -> list[int]:
    """The ladder without cuts that traverse every term of every query (0 stands for them)."""
    positive = np.diff((queries > 0).tocsr().indptr)
    widest = int(positive.max()) if len(positive) else 0
    cuts = [c for c in query_cuts if 0 < c < widest]
    if any(c == 0 or c >= widest for c in query_cuts):
        cuts.append(0)
    return cuts


def _check_index(index: Any, cls: type, name: str, other: str) -> None:
    """A ConfigError when ``index`` is not the kind the calibration ``name`` tunes."""
    if not isinstance(index, cls):
        raise ConfigError(
            f"{name} needs {cls.__name__}, got {type(index).__name__}; use {other} for it"
        )


def _check_reference(exact: np.ndarray) -> None:
    """A DataError when no calibration query has an exact hit: recall is then undefined and
    every setting would "miss" with advice that cannot help."""
    if exact.size == 0 or (exact[:, 0] < 0).all():
        raise DataError(
            f"none of the {exact.shape[0]} calibration queries matches any doc exactly, so "
            "recall cannot be measured; check the queries (empty, or only weights <= 0?)"
        )


def _check(target_recall: float, k: int, n_queries: int) -> None:
    if not 0 < float(target_recall) <= 1:
        raise ConfigError(f"target_recall={target_recall}: give a fraction in (0, 1]")
    if k < 1:
        raise ConfigError(f"k={k}: calibration needs k >= 1")
    if n_queries == 0:
        raise ConfigError("calibration needs at least one query")


def _result(points, best, reached, target_recall, k, n_queries, **extra) -> Calibration:
    """The :class:`Calibration` choosing ``best`` (None: the most accurate, then cheapest)."""
    if best is None:
        best = max(points, key=lambda p: (np.nan_to_num(p.recall, nan=-1.0), -p.cost))
    return Calibration(
        target_recall=float(target_recall),
        k=int(k),
        n_queries=int(n_queries),
        knobs=dict(best.knobs),
        recall=best.recall,
        cost=best.cost,
        reached=reached,
        points=points,
        **extra,
    )


def calibrate_approx(
    index: Any,
    queries: sp.csr_matrix,
    k: int,
    target_recall: float = 0.95,
    *,
    exact: np.ndarray | None = None,
    threads: int = 0,
    query_cuts: tuple[int, ...] = QUERY_CUTS,
    heap_factors: tuple[float, ...] = HEAP_FACTORS,
) -> Calibration:
    """The cheapest ``(query_cut, heap_factor)`` whose mean recall@k on ``queries`` reaches
    ``target_recall`` (see the module doc). ``index`` is an
    :class:`~irbench.index.approx.ApproxIndex`; ``exact`` (doc indexes ``[nq, >= k]``,
    -1 padded) is the reference top-k, computed by brute force when None. The index is
    not changed: apply the result with ``index.configure(**calibration.knobs)``.
    """
    from irbench.index.approx import ApproxIndex

    _check_index(index, ApproxIndex, "calibrate_approx", "calibrate_faiss (index=faiss)")
    k = search_k(k)
    queries = sp.csr_matrix(queries)
    _check(target_recall, k, queries.shape[0])
    if exact is None:
        exact = index.exact_search(queries, k, threads=threads)[1]
    exact = np.asarray(exact)[:, :k]
    _check_reference(exact)

    points: list[Point] = []

    def evaluate(qc: int, hf: float) -> Point:
        _, found, work = index.search(
            queries, k, threads=threads, query_cut=qc, heap_factor=hf, return_work=True
        )
        cost = float(work[:, _COST_COLUMNS].sum()) / queries.shape[0]
        knobs = {"query_cut": int(qc), "heap_factor": float(hf)}
        p = Point(knobs, recall_at_k(found, exact), cost)
        points.append(p)
        return p

    best: Point | None = None
    start = 0  # heap_factors[start:] may still reach the target at the next cut
    for qc in reversed(_cuts(queries, tuple(query_cuts))):  # the most accurate cut first
        for i in range(start, len(heap_factors)):
            p = evaluate(qc, heap_factors[i])
            if p.recall >= target_recall:
                if best is None or p.cost < best.cost:
                    best = p
                start = i  # a smaller cut needs a heap_factor at most this one
                break
            start = i + 1  # missed here: a smaller cut misses too
            if best is not None and p.cost >= best.cost:
                break  # lower heap factors cost more still
        else:
            break  # no heap factor reaches the target at this cut, nor at smaller cuts
    return _result(
        points, best, best is not None, target_recall, k, queries.shape[0],
        cost_unit="entries read",
        miss_hint="static pruning caps recall, rebuild with a larger index.n_postings",
    )  # fmt: skip


def calibrate_faiss(
    index: Any,
    queries: np.ndarray,
    k: int,
    target_recall: float = 0.95,
    *,
    exact: np.ndarray | None = None,
    threads: int = 0,
) -> Calibration:
    """The smallest value of a FAISS index's search knob (``nprobe`` for IVF, ``ef_search``
    for HNSW: :meth:`~irbench.index.faiss.FaissIndex.calibration_range`) whose mean
    recall@k on ``queries`` reaches ``target_recall``, against ``exact`` (doc indexes
    ``[nq, >= k]``; the index's exhaustive search when None). The knob is doubled from its
    lowest value until the target is reached, then bisected between the last miss and the
    first hit; recall and cost are taken to rise with the knob (true of ``nprobe``, whose
    probed lists only grow; nearly so of ``ef_search``). Cost is the distances computed per
    query. The index is not changed: apply the result with ``index.configure(**knobs)``.
    """
    from irbench.index.faiss import FaissIndex

    _check_index(index, FaissIndex, "calibrate_faiss", "calibrate_approx (index=numba_approx)")
    k = search_k(k)
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim == 1:
        queries = queries[None, :]
    _check(target_recall, k, queries.shape[0])
    name, low, high, hint = index.calibration_range(k)
    if exact is None:
        exact = index.exact_search(queries, k, threads=threads)[1]
    exact = np.asarray(exact)[:, :k]
    _check_reference(exact)
    points: list[Point] = []
    seen: dict[int, Point] = {}

    def hits(value: int) -> bool:
        if value not in seen:
            found, cost = index.counted_search(queries, k, threads=threads, **{name: value})
            seen[value] = Point({name: int(value)}, recall_at_k(found, exact), cost)
            points.append(seen[value])
        return seen[value].recall >= target_recall

    miss, value = low - 1, low
    while not hits(value) and value < high:  # double until the target is reached
        miss, value = value, min(2 * value, high)
    if seen[value].recall >= target_recall:
        hit = value
        while hit - miss > 1:  # bisect: miss never reaches, hit does
            middle = (miss + hit) // 2
            miss, hit = (miss, middle) if hits(middle) else (middle, hit)
        best = seen[hit]
    else:
        best = None
    return _result(
        points, best, best is not None, target_recall, k, queries.shape[0],
        cost_unit="distances computed", miss_hint=hint,
    )  # fmt: skip
