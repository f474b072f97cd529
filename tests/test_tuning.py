"""Calibration of numba_approx's search knobs: the brute-force reference, the work counters,
the walk over settings, and `calibrate.target_recall` in the pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from irbench.errors import ConfigError
from irbench.index.approx import WORK_COLUMNS, ApproxIndex
from irbench.index.numba import NumbaIndex
from irbench.index.tuning import HEAP_FACTORS, Calibration, _cuts, calibrate, recall_at_k
from tests.test_index_approx import EXACT, clustered, exact_dot

COL = {name: i for i, name in enumerate(WORK_COLUMNS)}


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(11)
    docs, queries = clustered(rng, 2500, 1200, nnz=40, n_queries=60)
    docs.sort_indices()
    return docs, queries


@pytest.fixture(scope="module")
def pruned(corpus):
    return ApproxIndex.build(corpus[0], n_postings=120, summary_energy=0.4)


def reference_topk(docs, queries, k):
    """Every doc scored by :func:`exact_dot` (positive query weights), best first, ties by
    doc; docs of score 0 left out."""
    out = np.full((queries.shape[0], k), -1, np.int64)
    scores = np.full((queries.shape[0], k), -np.inf, np.float32)
    q = queries.toarray().astype(np.float32)
    for i in range(queries.shape[0]):
        s = np.array([exact_dot(docs, d, q[i]) for d in range(docs.shape[0])], np.float32)
        hit = np.nonzero(s > 0)[0]
        order = hit[np.lexsort((hit, -s[hit]))][:k]
        out[i, : len(order)] = order
        scores[i, : len(order)] = s[order]
    return scores, out


# ------------------------------------------------------------------- the exact reference


@pytest.mark.parametrize("k", [1, 7, 40])
def test_exact_search_equals_brute_force(k):
    rng = np.random.default_rng(k)
    docs, queries = clustered(rng, 300, 200, nnz=20, n_queries=37)  # 3 batches, one partial
    docs.sort_indices()
    docs = docs.tolil()
    docs[5, :] = 0  # an empty doc
    docs = docs.tocsr()
    docs.eliminate_zeros()
    queries = queries.tolil()
    queries[0, 3] = -2.0  # ignored, as by search()
    queries[1, :] = 0  # no terms: no hits
    queries = queries.tocsr()
    index = ApproxIndex.build(docs, n_postings=30)
    want_s, want_d = reference_topk(docs, queries, k)
    for threads in (1, 2):
        got_s, got_d = index.exact_search(queries, k, threads=threads)
        np.testing.assert_array_equal(got_d, want_d)
        np.testing.assert_array_equal(got_s, want_s)
    assert (got_d[1] == -1).all()


def test_exact_search_is_the_exact_index_and_unpruned_search(corpus, pruned):
    docs, queries = corpus
    s, d = pruned.exact_search(queries, 10)
    es, ed = NumbaIndex.build(docs).search(queries, 10)
    np.testing.assert_array_equal(d, ed)
    np.testing.assert_array_equal(s, es)
    us, ud = ApproxIndex.build(docs, **EXACT).search(queries, 10)
    np.testing.assert_array_equal(d, ud)


# --------------------------------------------------------------------------- work counts


def test_work_counts_what_an_unpruned_query_reads(corpus):
    """One term, k above the collection, nothing pruned: every doc holding the term is read
    once and scored exactly (no packed-row filter before the heap is full), every block of
    the term visited, one summary entry per block."""
    docs, _ = corpus
    index = ApproxIndex.build(docs, **EXACT)
    col = docs.tocsc()
    for t in (3, 40, 777):
        holders = col.indices[col.indptr[t] : col.indptr[t + 1]]
        q = sp.csr_matrix(([1.5], ([0], [t])), shape=(1, docs.shape[1]))
        _, _, work = index.search(q, docs.shape[0] + 5, return_work=True)
        n_blocks = int(np.diff(index.arrays["term_blocks"])[t])
        assert work[0, COL["lists"]] == 1
        assert work[0, COL["blocks"]] == work[0, COL["block_bounds"]] == n_blocks
        assert work[0, COL["summary_entries"]] == n_blocks
        assert work[0, COL["doc_rows"]] == len(holders)
        assert work[0, COL["row_entries"]] == np.diff(docs.indptr)[holders].sum()


def test_work_does_not_depend_on_threads_and_follows_the_knobs(corpus, pruned):
    _, queries = corpus
    w1 = pruned.search(queries, 10, threads=1, return_work=True)[2]
    w2 = pruned.search(queries, 10, threads=2, return_work=True)[2]
    np.testing.assert_array_equal(w1, w2)
    assert w1.shape == (queries.shape[0], len(WORK_COLUMNS)) and (w1 >= 0).all()
    cut = pruned.search(queries, 10, query_cut=2, return_work=True)[2]
    assert (cut[:, COL["lists"]] <= 2).all()
    cheap = pruned.search(queries, 10, heap_factor=1.0, return_work=True)[2].sum(0)
    dear = pruned.search(queries, 10, heap_factor=0.3, return_work=True)[2].sum(0)
    assert dear[COL["row_entries"]] > cheap[COL["row_entries"]]
    # the default return is unchanged
    assert len(pruned.search(queries, 10)) == 2


# ------------------------------------------------------------------------------ calibrate


def full_grid(index, queries, k, exact, cuts):
    points = []
    for qc in cuts:
        for hf in HEAP_FACTORS:
            _, found, work = index.search(
                queries, k, query_cut=qc, heap_factor=hf, return_work=True
            )
            cost = (work[:, COL["summary_entries"]] + work[:, COL["row_entries"]]).mean()
            points.append((qc, hf, recall_at_k(found, exact), cost))
    return points


@pytest.mark.parametrize("target", [0.8, 0.9, 0.95])
def test_calibration_finds_the_cheapest_setting_of_the_grid(corpus, pruned, target):
    docs, queries = corpus
    exact = pruned.exact_search(queries, 10)[1]
    cal = calibrate(pruned, queries, 10, target)
    grid = full_grid(pruned, queries, 10, exact, _cuts(queries, (3, 5, 8, 10, 15, 20, 30, 50, 0)))
    feasible = [p for p in grid if p[2] >= target]
    assert feasible, "the fixture must reach the target somewhere"
    cheapest = min(feasible, key=lambda p: p[3])
    assert cal.reached
    assert (cal.query_cut, cal.heap_factor) == cheapest[:2]
    # what it reports is what search does
    _, found = pruned.search(queries, 10, **cal.knobs)
    assert cal.recall == pytest.approx(recall_at_k(found, exact)) and cal.recall >= target
    assert len(cal.points) < len(grid) / 2  # the walk evaluates a fraction of the grid


def test_calibration_is_deterministic_and_leaves_the_index_alone(corpus, pruned):
    _, queries = corpus
    before = dict(pruned.cfg)
    a = calibrate(pruned, queries, 10, 0.9, threads=1)
    b = calibrate(pruned, queries, 10, 0.9, threads=2)
    assert a == b and pruned.cfg == before
    # the method form applies it
    index = ApproxIndex.build(corpus[0], n_postings=120, summary_energy=0.4)
    c = index.calibrate(queries, 10, 0.9)
    assert c == a and index.cfg["query_cut"] == a.query_cut
    assert index.cfg["heap_factor"] == a.heap_factor
    assert Calibration.from_dict(json.loads(json.dumps(a.as_dict()))) == a


def test_unreachable_target_takes_the_most_accurate_setting(corpus):
    docs, queries = corpus
    index = ApproxIndex.build(docs, n_postings=4, pruning="fixed")  # recall capped
    cal = calibrate(index, queries, 10, 1.0)
    assert not cal.reached
    best = max(p.recall for p in cal.points)
    assert cal.recall == best < 1.0
    assert "MISSES target 1.0" in cal.describe() and "n_postings" in cal.describe()


def test_exact_settings_reach_recall_one(corpus):
    docs, queries = corpus
    index = ApproxIndex.build(docs, n_postings=0, summary_energy=1.0)
    cal = calibrate(index, queries, 10, 1.0)
    assert cal.reached and cal.recall == 1.0


def test_calibration_rejects_bad_arguments(pruned, corpus):
    _, queries = corpus
    for target in (0, 1.5, -0.1):
        with pytest.raises(ConfigError, match="target_recall"):
            calibrate(pruned, queries, 10, target)
    with pytest.raises(ConfigError, match="k=0"):
        calibrate(pruned, queries, 0, 0.9)
    with pytest.raises(ConfigError, match="at least one query"):
        calibrate(pruned, queries[:0], 10, 0.9)


def test_cut_ladder_drops_cuts_that_take_every_term():
    q = sp.csr_matrix(np.array([[1, 2, 0, 3, 1], [0, 1, 0, 0, 0]], np.float32))
    assert _cuts(q, (3, 5, 8, 0)) == [3, 0]
    assert _cuts(q, (1, 2)) == [1, 2]
    assert _cuts(q, (2, 4)) == [2, 0]


# ------------------------------------------------------------------------------- pipeline


def _cfg(beir_dir, tmp_path, *extra, index=("index=numba_approx", "index.n_postings=40")):
    from irbench.config import compose

    return compose([
        "dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir}", "encoder=bm25",
        *index, f"cache_dir={tmp_path / 'cache'}", f"run_dir={tmp_path / 'run'}", "k=20",
        *extra,
    ])  # fmt: skip


def test_pipeline_calibrates_caches_and_records(beir_dir, tmp_path):
    from irbench.pipeline import run

    cfg = _cfg(beir_dir, tmp_path, "calibrate.target_recall=0.9", "calibrate.queries=30")
    _, first = run(cfg)
    summary = first["calibration"]
    assert summary["n_queries"] == 30 and summary["k"] == 20 and not summary["cached"]
    assert first["index"].index.cfg["query_cut"] == summary["query_cut"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"]["retrieve"]["calibration"]["query_cut"] == summary["query_cut"]
    run_file = (tmp_path / "run" / "run.trec").read_bytes()
    cache_file = tmp_path / "cache" / "calibration"
    assert [p.suffix for p in cache_file.iterdir()] == [".json"]
    # again: the cached calibration, the same run file
    _, second = run(cfg)
    assert second["calibration"]["cached"]
    assert (tmp_path / "run" / "run.trec").read_bytes() == run_file
    # a damaged cache file is recalibrated, to the same result
    next(cache_file.iterdir()).write_text("{not json")
    _, third = run(cfg)
    assert not third["calibration"]["cached"]
    assert third["calibration"]["query_cut"] == summary["query_cut"]
    assert (tmp_path / "run" / "run.trec").read_bytes() == run_file


def test_pipeline_rejects_calibrating_an_exact_index(beir_dir, tmp_path):
    from irbench.pipeline import run

    with pytest.raises(ConfigError, match="index=numba has no search knobs"):
        run(_cfg(beir_dir, tmp_path, "calibrate.target_recall=0.9", index=("index=numba",)))
    with pytest.raises(ConfigError, match="target_recall=1.5"):
        run(_cfg(beir_dir, tmp_path, "calibrate.target_recall=1.5"))


def test_cli_prints_the_calibration_and_reports_bad_settings_in_one_line(beir_dir, workdir):
    from typer.testing import CliRunner

    from irbench.cli.app import app

    runner = CliRunner()
    base = ["run", "dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir}", "k=20"]
    unpruned = ["index=numba_approx", "index.n_postings=0", "index.summary_energy=1.0"]
    ok = runner.invoke(app, [*base, *unpruned, "calibrate.target_recall=0.9"])
    assert ok.exit_code == 0, ok.output
    assert "calibrated: query_cut=" in ok.output and "reaches target 0.9" in ok.output
    doctor = runner.invoke(app, ["doctor", "--json"])
    assert json.loads(doctor.output)["cache"]["entries"]["calibrations"] == 1
    bad = runner.invoke(app, [*base, "calibrate.target_recall=0.9"])  # index=numba
    assert bad.exit_code != 0 and "Traceback" not in bad.output
    assert "index=numba has no search knobs" in bad.output
