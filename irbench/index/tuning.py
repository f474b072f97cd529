"""Calibrate an approximate index's search knobs to a target recall.

A Seismic-class index trades recall for speed through two search-time knobs, ``query_cut``
and ``heap_factor``, and the recall a setting gives falls as the collection grows (on the
synthetic corpora of docs/benchmarks.md, 0.96 at 100k docs and 0.52 at 10M with the
defaults). :func:`calibrate` replaces guessing: it measures, on sample queries, the mean
recall@k of settings against the exact top-k (brute force over the index's own forward
index, :meth:`~irbench.index.approx.ApproxIndex.exact_search`) and picks the cheapest
setting that reaches the target.

"Cheapest" is counted, not timed, so that the choice -- and the run files that follow from
it -- are the same on every machine and every run: the cost of a setting is the mean number
of index entries a query reads (summary entries plus forward-row entries, from
``search(..., return_work=True)``). On the 18k-doc real and 1M-doc synthetic benchmark
corpora the counted choice was within 7% of the fastest setting by wall time at every
target from 0.80 to 0.99 (0.8% on average; docs/index.md).

The search walks the ``query_cut`` ladder downwards from "every term" and, for each cut,
lowers ``heap_factor`` from where the previous cut reached the target (recall falls with
the cut and rises as ``heap_factor`` falls; cost does the same), until the target is
reached or the walk costs more than the best setting found; it ends at the first cut that
no ``heap_factor`` of the ladder takes to the target. On the benchmark corpora it finds the
full grid's cheapest setting at a quarter to a third of the full grid's search time. When
no setting reaches the target (static pruning caps recall), the most accurate one evaluated
is chosen and ``reached`` is False.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from irbench.errors import ConfigError
from irbench.index.approx import WORK_COLUMNS

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
    """One evaluated setting: its mean recall@k and counted cost (entries read per query)."""

    query_cut: int
    heap_factor: float
    recall: float
    cost: float


@dataclass
class Calibration:
    """The chosen setting and every setting evaluated on the way."""

    target_recall: float
    k: int
    n_queries: int
    query_cut: int
    heap_factor: float
    recall: float
    cost: float
    reached: bool
    points: list[Point] = field(default_factory=list)

    @property
    def knobs(self) -> dict[str, Any]:
        """The chosen setting, as ``configure``/``search`` keywords."""
        return {"query_cut": self.query_cut, "heap_factor": self.heap_factor}

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["points"] = [asdict(p) for p in self.points]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        """The inverse of :meth:`as_dict`."""
        fields = {f for f in cls.__dataclass_fields__ if f != "points"}
        return cls(
            **{key: d[key] for key in fields}, points=[Point(**p) for p in d.get("points", [])]
        )

    def describe(self) -> str:
        """One line: the setting, its recall, and a hint when the target was missed."""
        line = (
            f"query_cut={self.query_cut} heap_factor={self.heap_factor}: "
            f"recall@{self.k} {self.recall:.3f} on {self.n_queries} queries, "
            f"{self.cost:,.0f} entries read per query ({len(self.points)} settings evaluated)"
        )
        if self.reached:
            return f"{line}; reaches target {self.target_recall}"
        return (
            f"{line}; MISSES target {self.target_recall}: static pruning caps recall, "
            "rebuild with a larger index.n_postings"
        )


def _cuts(queries: sp.csr_matrix, query_cuts: tuple[int, ...]) -> list[int]:
    """The ladder without cuts that traverse every term of every query (0 stands for them)."""
    positive = np.diff((queries > 0).tocsr().indptr)
    widest = int(positive.max()) if len(positive) else 0
    cuts = [c for c in query_cuts if 0 < c < widest]
    if any(c == 0 or c >= widest for c in query_cuts):
        cuts.append(0)
    return cuts


def calibrate(
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
    k = int(k)
    if not 0 < float(target_recall) <= 1:
        raise ConfigError(f"target_recall={target_recall}: give a fraction in (0, 1]")
    if k < 1:
        raise ConfigError(f"k={k}: calibration needs k >= 1")
    queries = sp.csr_matrix(queries)
    if queries.shape[0] == 0:
        raise ConfigError("calibration needs at least one query")
    if exact is None:
        exact = index.exact_search(queries, k, threads=threads)[1]
    exact = np.asarray(exact)[:, :k]

    points: list[Point] = []

    def evaluate(qc: int, hf: float) -> Point:
        _, found, work = index.search(
            queries, k, threads=threads, query_cut=qc, heap_factor=hf, return_work=True
        )
        cost = float(work[:, _COST_COLUMNS].sum()) / queries.shape[0]
        p = Point(int(qc), float(hf), recall_at_k(found, exact), cost)
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
    reached = best is not None
    if best is None:  # most accurate, then cheapest
        best = max(points, key=lambda p: (np.nan_to_num(p.recall, nan=-1.0), -p.cost))
    return Calibration(
        target_recall=float(target_recall),
        k=k,
        n_queries=int(queries.shape[0]),
        query_cut=best.query_cut,
        heap_factor=best.heap_factor,
        recall=best.recall,
        cost=best.cost,
        reached=reached,
        points=points,
    )
