"""Paired significance tests over per-query values, Holm–Bonferroni correction, run comparison.

Per-query values are ``{query_id: value}`` mappings (one measure). Two systems are compared on
the union of their query ids; a query missing from one system counts as 0 for it (it retrieved
nothing useful), so both vectors always have the same length and order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from irbench.errors import ConfigError

TESTS = ("ttest", "wilcoxon")


def check_test(test: str) -> str:
    if test not in TESTS:
        raise ConfigError(f"unknown significance test '{test}'; choose one of: {', '.join(TESTS)}")
    return test


def aligned(
    a: Mapping[str, float], b: Mapping[str, float]
) -> tuple[list[str], list[float], list[float]]:
    """Query ids (sorted union) and the two value vectors, 0 where a system lacks the query."""
    qids = sorted(set(a) | set(b))
    return qids, [float(a.get(q, 0.0)) for q in qids], [float(b.get(q, 0.0)) for q in qids]


def paired_pvalue(x: Sequence[float], y: Sequence[float], test: str = "ttest") -> float:
    """Two-sided p-value of a paired test: ``scipy.stats.ttest_rel`` or ``wilcoxon``.

    Identical vectors (every difference 0) give p = 1 where scipy would return NaN or raise;
    fewer than two pairs give NaN (no test possible).
    """
    from scipy import stats

    check_test(test)
    if len(x) != len(y):
        raise ValueError(f"paired vectors differ in length: {len(x)} != {len(y)}")
    if len(x) < 2:
        return float("nan")
    # differences rounded to 12 decimals: 2/3 - 1/2 and 1/2 - 1/3 are one difference, and a
    # float residue such as 1e-17 is a zero (Wilcoxon drops it), so neither test depends on
    # noise; ttest_1samp on the differences is ttest_rel on the pairs
    d = [round(u - v, 12) for u, v in zip(x, y, strict=True)]
    if not any(d):
        return 1.0
    if test == "ttest":
        return float(stats.ttest_1samp(d, 0.0).pvalue)
    return float(stats.wilcoxon(d).pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (``statsmodels`` ``multipletests(method="holm")``);
    NaN entries stay NaN and do not count as hypotheses."""
    from statsmodels.stats.multitest import multipletests

    idx = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    out = [float("nan")] * len(pvalues)
    if idx:
        adjusted = multipletests([pvalues[i] for i in idx], method="holm")[1]
        for i, p in zip(idx, adjusted, strict=True):
            out[i] = float(p)
    return out


@dataclass
class Comparison:
    """System A against system B on one measure (difference = A - B)."""

    measure: str
    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    ci_low: float
    ci_high: float
    wins: int  # queries where A > B
    ties: int
    losses: int  # queries where A < B
    p_ttest: float
    p_wilcoxon: float
    changes: list[tuple[str, float, float, float]] = field(default_factory=list)
    # (query_id, value A, value B, A - B), largest |A - B| first

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["changes"] = [
            {"query_id": q, "a": va, "b": vb, "diff": df} for q, va, vb, df in self.changes
        ]
        return d


def mean_ci(diffs: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and t-based confidence interval: ``mean ± t_{(1+c)/2, n-1} · sd / √n``."""
    from scipy import stats

    n = len(diffs)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    mean = sum(diffs) / n
    if n < 2:
        return mean, float("nan"), float("nan")
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * math.sqrt(var / n)
    return mean, mean - half, mean + half


def compare(
    a: Mapping[str, float],
    b: Mapping[str, float],
    measure: str = "",
    top: int = 10,
    tie_tol: float = 1e-9,
    confidence: float = 0.95,
) -> Comparison:
    """Wins/ties/losses, mean difference with its confidence interval, t-test and Wilcoxon
    p-values, and the ``top`` queries whose value changes most."""
    qids, x, y = aligned(a, b)
    diffs = [u - v for u, v in zip(x, y, strict=True)]
    mean, lo, hi = mean_ci(diffs, confidence)
    wins = sum(1 for d in diffs if d > tie_tol)
    losses = sum(1 for d in diffs if d < -tie_tol)
    order = sorted(range(len(qids)), key=lambda i: (-abs(diffs[i]), qids[i]))
    changes = [(qids[i], x[i], y[i], diffs[i]) for i in order[:top] if abs(diffs[i]) > tie_tol]
    n = len(qids)
    return Comparison(
        measure=measure,
        n=n,
        mean_a=sum(x) / n if n else float("nan"),
        mean_b=sum(y) / n if n else float("nan"),
        mean_diff=mean,
        ci_low=lo,
        ci_high=hi,
        wins=wins,
        ties=n - wins - losses,
        losses=losses,
        p_ttest=paired_pvalue(x, y, "ttest"),
        p_wilcoxon=paired_pvalue(x, y, "wilcoxon"),
        changes=changes,
    )
