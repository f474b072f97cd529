"""Oracle pruning bounds (irbench bench bounds) against dense brute force on random data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from irbench.bench.bounds import (
    blockmax_reads,
    essential_terms,
    kth_scores,
    maxscore_reads,
    pruning_bounds,
)
from irbench.index.reorder import bp_order


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    docs = sp.random(300, 40, density=0.15, format="csr", dtype=np.float32, random_state=rng)
    queries = sp.random(12, 40, density=0.3, format="csr", dtype=np.float32, random_state=rng)
    return docs, queries


def test_kth_scores(data):
    docs, queries = data
    dense = queries.toarray() @ docs.toarray().T
    for k in (1, 10, 300):
        np.testing.assert_allclose(
            kth_scores(docs, queries, k), -np.sort(-dense, 1)[:, k - 1], rtol=1e-6
        )


def test_maxscore_reads_match_brute_force_and_keep_the_top_k(data):
    docs, queries = data
    d, q = docs.toarray(), queries.toarray()
    theta = kth_scores(docs, queries, 10)
    read, total = maxscore_reads(docs, queries, theta)
    mask = essential_terms(docs, queries, theta).toarray()
    for i in range(q.shape[0]):
        terms = np.flatnonzero(q[i])
        essential = _essential(d, q[i], theta[i])
        assert list(np.flatnonzero(mask[i])) == essential
        assert total[i] == (d[:, terms] > 0).sum()
        assert read[i] == (d[:, essential] > 0).sum()
        scores = d @ q[i]
        for doc in np.flatnonzero(scores >= theta[i]):  # the top k hold an essential posting
            assert (d[doc, essential] > 0).any()


def _essential(d, q, theta):
    """Brute-force MaxScore split: the essential terms of query row ``q``."""
    terms = np.flatnonzero(q)
    ub = {t: q[t] * d[:, t].max() for t in terms}
    acc, non_essential = 0.0, set()
    for t in sorted(terms, key=lambda t: (ub[t], list(terms).index(t))):
        acc += ub[t]
        if acc >= theta:
            break
        non_essential.add(t)
    return [t for t in terms if t not in non_essential]


@pytest.mark.parametrize("block", [1, 7, 32])
@pytest.mark.parametrize("combined", [False, True])
def test_blockmax_reads_match_brute_force_and_keep_the_top_k(data, block, combined):
    docs, queries = data
    d, q = docs.toarray(), queries.toarray()
    theta = kth_scores(docs, queries, 5)
    ess = essential_terms(docs, queries, theta) if combined else None
    read, total, bounds = blockmax_reads(docs, queries, theta, block, ess)
    for i in range(q.shape[0]):
        terms = np.flatnonzero(q[i])
        counted = _essential(d, q[i], theta[i]) if combined else terms
        lo = hi = n_bounds = 0  # postings in blocks surely live / live up to rounding at theta
        scores = d @ q[i]
        for b0 in range(0, d.shape[0], block):
            part = d[b0 : b0 + block][:, terms]
            bound = (part.max(axis=0) * q[i, terms]).sum()
            n = (d[b0 : b0 + block][:, counted] > 0).sum()
            n_bounds += (d[b0 : b0 + block][:, counted] > 0).any(axis=0).sum()
            lo += n if bound >= theta[i] * (1 + 1e-5) else 0
            hi += n if bound >= theta[i] * (1 - 1e-5) else 0
            if bound < theta[i] * (1 - 1e-5):
                assert (scores[b0 : b0 + block] < theta[i]).all()
        assert total[i] == (d[:, terms] > 0).sum()
        assert lo <= read[i] <= hi
        assert bounds[i] == n_bounds
        if combined:  # every top-k doc holds an essential posting, so the method finds it
            for doc in np.flatnonzero(scores >= theta[i]):
                assert (d[doc, counted] > 0).any()
    if block == 1:  # one-doc blocks: bound == score, only docs reaching theta are read
        assert read.sum() < total.sum()


def test_pruning_bounds_rows(data):
    docs, queries = data
    rows = pruning_bounds(docs, queries, [10, 100], [16])
    methods = ["maxscore", "blockmax_16", "maxscore_blockmax_16"]
    assert [(r["k"], r["method"]) for r in rows] == [(k, m) for k in (10, 100) for m in methods]
    for r in rows:
        assert 0.0 < r["share"] <= 1.0 and r["speedup_cap"] == pytest.approx(1 / r["share"])
        assert r["speedup_cap_with_bounds"] == pytest.approx(1 / (r["share"] + r["bound_share"]))
        assert (r["bound_share"] == 0.0) == (r["method"] == "maxscore")
    for a, b in zip(rows[:3], rows[3:], strict=True):
        # a larger k lowers the threshold: never fewer postings read
        assert b["share"] >= a["share"]
    for j in (0, 3):  # the combination reads no more than either family alone
        assert rows[j + 2]["share"] <= min(rows[j]["share"], rows[j + 1]["share"])
        assert rows[j + 2]["bound_share"] <= rows[j + 1]["bound_share"]


def test_cli_bench_bounds(tmp_path, data):
    import json

    from typer.testing import CliRunner

    from irbench.bench.index import VectorSet, save_vectors
    from irbench.cli.app import app

    docs, queries = data
    vs = VectorSet(
        "rand", docs, queries, [str(i) for i in range(300)], [f"q{i}" for i in range(12)]
    )
    save_vectors(tmp_path / "v.npz", vs)
    args = ["bench", "bounds", "--vectors", str(tmp_path / "v.npz"), "--k", "5", "--block", "8"]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "out" / "bounds.json").read_text())
    assert saved["rows"] == pruning_bounds(docs, queries, [5], [8])
    assert "| 5 | blockmax_8 |" in (tmp_path / "out" / "bounds.md").read_text()
    res = CliRunner().invoke(app, [*args[:4], "--k", "0"])
    assert res.exit_code == 2 and "positive" in res.output
    res = CliRunner().invoke(app, [*args, "--reorder", "random"])
    assert res.exit_code == 2 and "--reorder 'random'" in res.output
    res = CliRunner().invoke(app, [*args, "--reorder", "bp", "--out", str(tmp_path / "bp")])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "bp" / "bounds.json").read_text())
    assert saved["meta"]["reorder"] == "bp"
    assert saved["rows"] == pruning_bounds(docs[bp_order(docs)], queries, [5], [8])
