"""Paired tests and Holm correction against scipy / statsmodels on the same vectors."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from irbench.errors import ConfigError
from irbench.eval.significance import aligned, compare, holm, mean_ci, paired_pvalue


def vectors(seed: int, n: int = 50, shift: float = 0.05) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    x = [rng.random() for _ in range(n)]
    return [min(1.0, v + shift * rng.random()) for v in x], x


def test_pvalues_equal_scipy():
    for seed in range(5):
        a, b = vectors(seed)
        # differences rounded to 12 decimals move the t statistic by ~1e-12 at most
        assert paired_pvalue(a, b, "ttest") == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-9)
        assert paired_pvalue(a, b, "wilcoxon") == stats.wilcoxon(a, b).pvalue


def test_wilcoxon_does_not_depend_on_float_residues():
    """2/3 - 1/2 and 1/2 - 1/3 are one difference (1/6) and 0.3 - 0.1 - 0.2 is a zero: the
    signed-rank test sees exact ties and drops zeros, as on the rounded values."""
    x = [2 / 3, 1 / 2, 0.3, 0.9, 0.8, 0.75, 0.6, 0.2]
    y = [1 / 2, 1 / 3, 0.1 + 0.2, 0.5, 0.4, 0.5, 0.5, 0.1]
    assert 2 / 3 - 1 / 2 != 1 / 2 - 1 / 3 and 0.3 - (0.1 + 0.2) != 0  # the residues exist
    clean = [1 / 6, 1 / 6, 0.0, 0.4, 0.4, 0.25, 0.1, 0.1]
    assert paired_pvalue(x, y, "wilcoxon") == stats.wilcoxon(clean).pvalue
    # the t-test too: a 1e-13 residue on otherwise equal vectors is no difference at all
    assert paired_pvalue([0.3, 0.5, 0.1], [0.1 + 0.2, 0.5, 0.1 + 1e-13], "ttest") == 1.0


def test_degenerate_inputs():
    assert paired_pvalue([0.3, 0.5], [0.3, 0.5], "ttest") == 1.0
    assert paired_pvalue([0.3, 0.5], [0.3, 0.5], "wilcoxon") == 1.0
    assert math.isnan(paired_pvalue([0.3], [0.2]))
    with pytest.raises(ConfigError, match="ttest, wilcoxon"):
        paired_pvalue([1, 2], [2, 3], "sign")


def test_holm_equals_statsmodels_and_keeps_nan():
    p = [0.01, 0.04, 0.03, 0.2, 0.004]
    assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]), abs=0)
    out = holm([0.01, float("nan"), 0.04])
    assert math.isnan(out[1])
    assert [out[0], out[2]] == pytest.approx(list(multipletests([0.01, 0.04], method="holm")[1]))


def test_alignment_counts_missing_queries_as_zero():
    qids, x, y = aligned({"q1": 0.5, "q2": 1.0}, {"q2": 0.25, "q3": 0.75})
    assert qids == ["q1", "q2", "q3"]
    assert x == [0.5, 1.0, 0.0] and y == [0.0, 0.25, 0.75]


def test_compare_ci_equals_a_manual_t_interval():
    a, b = vectors(7, n=40)
    pa = {f"q{i}": v for i, v in enumerate(a)}
    pb = {f"q{i}": v for i, v in enumerate(b)}
    c = compare(pa, pb, "nDCG@10", top=3)
    d = [u - v for u, v in zip(a, b, strict=True)]
    n, mean = len(d), sum(d) / len(d)
    se = stats.tstd(d) / math.sqrt(n)
    lo, hi = stats.t.interval(0.95, n - 1, loc=mean, scale=se)
    assert (c.mean_diff, c.ci_low, c.ci_high) == pytest.approx((mean, lo, hi), abs=1e-12)
    assert mean_ci(d, 0.9)[1] == pytest.approx(stats.t.interval(0.9, n - 1, mean, se)[0])
    assert c.p_ttest == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-9)
    assert c.wins + c.ties + c.losses == n
    assert len(c.changes) == 3 and abs(c.changes[0][3]) == max(abs(x) for x in d)
