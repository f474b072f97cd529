"""Calibration of numba_approx's search knobs: the brute-force reference, the work counters,
the walk over settings, and `calibrate.target_recall` in the pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from irbench.errors import ConfigError, DataError
from irbench.index.approx import WORK_COLUMNS, ApproxIndex
from irbench.index.numba import NumbaIndex
from irbench.index.tuning import (
    HEAP_FACTORS,
    Calibration,
    _cuts,
    calibrate_approx,
    recall_at_k,
)
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
    cal = calibrate_approx(pruned, queries, 10, target)
    grid = full_grid(pruned, queries, 10, exact, _cuts(queries, (3, 5, 8, 10, 15, 20, 30, 50, 0)))
    feasible = [p for p in grid if p[2] >= target]
    assert feasible, "the fixture must reach the target somewhere"
    cheapest = min(feasible, key=lambda p: p[3])
    assert cal.reached
    assert (cal.knobs["query_cut"], cal.knobs["heap_factor"]) == cheapest[:2]
    # what it reports is what search does
    _, found = pruned.search(queries, 10, **cal.knobs)
    assert cal.recall == pytest.approx(recall_at_k(found, exact)) and cal.recall >= target
    assert len(cal.points) < len(grid) / 2  # the walk evaluates a fraction of the grid


def test_calibration_is_deterministic_and_leaves_the_index_alone(corpus, pruned):
    _, queries = corpus
    before = dict(pruned.cfg)
    a = calibrate_approx(pruned, queries, 10, 0.9, threads=1)
    b = calibrate_approx(pruned, queries, 10, 0.9, threads=2)
    assert a == b and pruned.cfg == before
    # the method form applies it
    index = ApproxIndex.build(corpus[0], n_postings=120, summary_energy=0.4)
    c = index.calibrate(queries, 10, 0.9)
    assert c == a and index.cfg["query_cut"] == a.knobs["query_cut"]
    assert index.cfg["heap_factor"] == a.knobs["heap_factor"]
    assert Calibration.from_dict(json.loads(json.dumps(a.as_dict()))) == a


def test_unreachable_target_takes_the_most_accurate_setting(corpus):
    docs, queries = corpus
    index = ApproxIndex.build(docs, n_postings=4, pruning="fixed")  # recall capped
    cal = calibrate_approx(index, queries, 10, 1.0)
    assert not cal.reached
    best = max(p.recall for p in cal.points)
    assert cal.recall == best < 1.0
    assert "MISSES target 1.0" in cal.describe() and "n_postings" in cal.describe()


def test_exact_settings_reach_recall_one(corpus):
    docs, queries = corpus
    index = ApproxIndex.build(docs, n_postings=0, summary_energy=1.0)
    cal = calibrate_approx(index, queries, 10, 1.0)
    assert cal.reached and cal.recall == 1.0


def test_calibration_rejects_bad_arguments(pruned, corpus):
    _, queries = corpus
    for target in (0, 1.5, -0.1):
        with pytest.raises(ConfigError, match="target_recall"):
            calibrate_approx(pruned, queries, 10, target)
    with pytest.raises(ConfigError, match="k=0"):
        calibrate_approx(pruned, queries, 0, 0.9)
    with pytest.raises(ConfigError, match="at least one query"):
        calibrate_approx(pruned, queries[:0], 10, 0.9)
    with pytest.raises(ConfigError, match="k must be a non-negative integer"):
        calibrate_approx(pruned, queries, 10.5, 0.9)
    for unmatched in (sp.csr_matrix(queries.shape, dtype=np.float32), -queries):
        with pytest.raises(DataError, match="recall cannot be measured"):
            calibrate_approx(pruned, unmatched, 10, 0.9)
    exact = NumbaIndex.build(corpus[0])
    with pytest.raises(ConfigError, match="calibrate_approx needs ApproxIndex, got NumbaIndex"):
        calibrate_approx(exact, queries, 10, 0.9)


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
    assert first["index"].index.cfg["query_cut"] == summary["knobs"]["query_cut"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert (
        manifest["stages"]["retrieve"]["calibration"]["knobs"]["query_cut"]
        == summary["knobs"]["query_cut"]
    )
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
    assert third["calibration"]["knobs"]["query_cut"] == summary["knobs"]["query_cut"]
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


# ---------------------------------------------------------------------------------- FAISS


def _unit(n, dim, seed):
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute(q, d, k):
    """Exact top-k doc indexes by inner product (no ties in random float data)."""
    return np.argsort(-(q @ d.T), axis=1, kind="stable")[:, :k]


@pytest.fixture(scope="module")
def dense():
    return _unit(4000, 24, 1), _unit(60, 24, 2)


@pytest.mark.parametrize("factory", ["IVF32,Flat", "HNSW8", "PCA16,IVF16,Flat", "Flat"])
def test_faiss_exact_search_is_brute_force_over_the_stored_vectors(dense, factory):
    from irbench.index.faiss import FaissIndex

    docs, queries = dense
    index = FaissIndex.build(docs, factory=factory, nprobe=1, ef_search=10, seed=0)
    found = index.exact_search(queries, 10)[1]
    if factory.startswith("PCA"):  # exact in the projected space: every list probed
        probe_all = FaissIndex.build(docs, factory=factory, nprobe=16, seed=0)
        np.testing.assert_array_equal(found, probe_all.search(queries, 10)[1])
    else:
        np.testing.assert_array_equal(found, _brute(queries, docs, 10))
    # the configured knobs are untouched
    assert index.nprobe == 1 and index.ef_search == 10


def test_faiss_counted_search_counts_the_probed_lists_and_the_centroids(dense):
    import faiss

    from irbench.index.faiss import FaissIndex

    docs, queries = dense
    index = FaissIndex.build(docs, factory="IVF32,Flat", nprobe=32, seed=0)
    ivf = faiss.extract_index_ivf(index.cpu_index)
    sizes = np.array([ivf.invlists.list_size(i) for i in range(ivf.nlist)])
    for nprobe in (1, 3, 32):
        found, cost = index.counted_search(queries, 10, nprobe=nprobe)
        _, lists = ivf.quantizer.search(queries, nprobe)
        # the codes of the probed lists, plus the flat quantizer's 32 centroids
        assert cost == pytest.approx(sizes[lists].sum() / len(queries) + 32)
        # the per-call knob is the knob's search
        index.configure(nprobe=nprobe)
        np.testing.assert_array_equal(found, index.search(queries, 10)[1])


@pytest.mark.parametrize("target", [0.6, 0.9, 0.99])
def test_faiss_calibration_finds_the_smallest_nprobe(dense, target):
    from irbench.index.faiss import FaissIndex
    from irbench.index.tuning import calibrate_faiss

    docs, queries = dense
    index = FaissIndex.build(docs, factory="IVF32,Flat", nprobe=5, seed=0)
    truth = _brute(queries, docs, 10)
    recalls = {}
    for nprobe in range(1, 33):
        index.configure(nprobe=nprobe)
        recalls[nprobe] = recall_at_k(index.search(queries, 10)[1], truth)
    index.configure(nprobe=5)
    smallest = min(v for v, r in recalls.items() if r >= target)
    cal = calibrate_faiss(index, queries, 10, target)
    assert cal.reached and cal.knobs == {"nprobe": smallest}
    assert cal.recall == recalls[smallest] and index.nprobe == 5  # left alone
    assert len(cal.points) <= 2 * 5 + 1  # doubling then bisection over 1..32
    assert "distances computed" in cal.describe()
    # the method applies it; determinism across thread counts
    again = index.calibrate(queries, 10, target, threads=1)
    assert again == cal and index.nprobe == smallest
    assert Calibration.from_dict(json.loads(json.dumps(cal.as_dict()))) == cal


def test_faiss_hnsw_calibration_reaches_the_target_with_the_least_ef(dense):
    from irbench.index.faiss import FaissIndex
    from irbench.index.tuning import calibrate_faiss

    docs, queries = dense
    index = FaissIndex.build(docs, factory="HNSW4", ef_search=16, ef_construction=8)
    truth = _brute(queries, docs, 10)
    cal = calibrate_faiss(index, queries, 10, 0.97, threads=2)
    ef = cal.knobs["ef_search"]
    assert cal.reached and ef > 10  # HNSW4 at ef = k misses 0.97 on this data
    index.configure(ef_search=ef)
    assert recall_at_k(index.search(queries, 10)[1], truth) == cal.recall >= 0.97
    below = [p for p in cal.points if p.knobs["ef_search"] < ef]
    assert below and all(p.recall < 0.97 for p in below)
    assert any(p.knobs["ef_search"] == ef - 1 for p in below)  # bisected to the unit
    assert calibrate_faiss(index, queries, 10, 0.97, threads=1) == cal


def test_faiss_calibration_misses_and_refuses_cleanly(dense):
    from irbench.index.faiss import FaissIndex
    from irbench.index.tuning import calibrate_faiss

    docs, queries = dense
    index = FaissIndex.build(docs, factory="IVF8,Flat", seed=0)
    wrong = np.roll(_brute(queries, docs, 10), 1, axis=0)  # a reference no setting meets
    cal = calibrate_faiss(index, queries, 10, 0.9, exact=wrong)
    assert not cal.reached and cal.recall == max(p.recall for p in cal.points)
    assert "MISSES target 0.9" in cal.describe() and "every list probed" in cal.describe()
    with pytest.raises(ConfigError, match="no search knob to calibrate"):
        calibrate_faiss(FaissIndex.build(docs, factory="Flat"), queries, 10, 0.9)
    with pytest.raises(ConfigError, match="target_recall"):
        calibrate_faiss(index, queries, 10, 0.0)
    approx = ApproxIndex.build(sp.csr_matrix(np.abs(docs)))
    with pytest.raises(
        ConfigError, match="needs FaissIndex, got ApproxIndex; use calibrate_approx"
    ):
        calibrate_faiss(approx, queries, 10, 0.9)


@pytest.mark.parametrize(
    ("factory", "metric"),
    [("IVF16,PQ4x4,RFlat", "ip"), ("IMI2x3,Flat", "l2"), ("IVF16_HNSW4,Flat", "ip"),
     ("OPQ4,IVF16,PQ4x4", "ip")],
)  # fmt: skip
def test_faiss_calibration_through_wrappers_and_quantizers(dense, factory, metric):
    """Refine, pre-transform, IMI and HNSW quantizers each take their own SearchParameters."""
    from irbench.index.faiss import FaissIndex
    from irbench.index.tuning import calibrate_faiss

    docs, queries = dense
    index = FaissIndex.build(docs, factory=factory, metric=metric, nprobe=1, seed=0)
    exact = index.exact_search(queries, 10)[1]
    if "PQ" not in factory:  # flat codes: every list probed is brute force
        order = (
            (queries @ docs.T)
            if metric == "ip"
            else -((queries**2).sum(1)[:, None] - 2 * queries @ docs.T + (docs**2).sum(1)[None, :])
        )
        assert recall_at_k(exact, np.argsort(-order, axis=1, kind="stable")[:, :10]) == 1.0
    cal = calibrate_faiss(index, queries, 10, 0.9)
    assert cal.reached and cal.knobs["nprobe"] > 1
    index.configure(**cal.knobs)
    assert recall_at_k(index.search(queries, 10)[1], exact) == cal.recall >= 0.9


def test_calibration_knobs_from_the_factory_string():
    from irbench.index.faiss import FaissIndex

    knobs = FaissIndex.calibration_knobs
    for ivf in ("IVF1024,Flat", "OPQ16,IVF256,PQ16", "IVF256_HNSW32,PQ8", "IMI2x8,Flat"):
        assert knobs({"factory": ivf}) == ("nprobe",)
    assert knobs({"factory": "HNSW32"}) == ("ef_search",)
    steering = FaissIndex.steering_keys
    assert steering({"factory": "HNSW32"}) == ("ef_search",)  # nprobe does not apply
    assert steering({"factory": "IVF64,Flat"}) == ("nprobe",)
    assert steering({"factory": "IVF64_HNSW8,Flat"}) == ("nprobe", "ef_search")
    assert steering({"factory": "Flat"}) == ()
    assert knobs({"factory": "Flat"}) == knobs({"factory": "PQ16"}) == ()
    assert ApproxIndex.calibration_knobs() == ("query_cut", "heap_factor")


# ----------------------------------------------------------------- calibrate.split, FAISS


def _split_train(beir_dir):
    """Queries q0-q19 move to qrels/train.tsv; q20-q39 stay in test."""
    qrels = beir_dir / "qrels"
    header, *rows = (qrels / "test.tsv").read_text().splitlines()
    train = [r for r in rows if int(r.split("\t")[0][1:]) < 20]
    test = [r for r in rows if r not in train]
    (qrels / "train.tsv").write_text("\n".join([header, *train]) + "\n")
    (qrels / "test.tsv").write_text("\n".join([header, *test]) + "\n")


def test_pipeline_calibrates_on_another_split(beir_dir, tmp_path):
    from irbench.pipeline import run

    _split_train(beir_dir)
    unpruned = ("index=numba_approx", "index.n_postings=0", "index.summary_energy=1.0")
    held = _cfg(beir_dir, tmp_path, "calibrate.target_recall=0.9", "calibrate.split=train",
                "calibrate.queries=0", index=unpruned)  # fmt: skip
    _, objects = run(held)
    summary = objects["calibration"]
    assert summary["split"] == "train" and summary["n_queries"] == 20
    assert summary["evaluated_queries_seen"] == 0 and summary["reached"]
    # tuned on the evaluated queries instead: all of them are seen, and the cache key differs
    same = _cfg(beir_dir, tmp_path, "calibrate.target_recall=0.9", "calibrate.queries=0",
                index=unpruned)  # fmt: skip
    _, objects = run(same)
    assert objects["calibration"]["evaluated_queries_seen"] == 20
    assert not objects["calibration"]["cached"]
    assert len(list((tmp_path / "cache" / "calibration").iterdir())) == 2
    # a search setting that is not calibrated is part of the key too
    _, objects = run(_cfg(beir_dir, tmp_path, "calibrate.target_recall=0.9",
                          "calibrate.queries=0", index=(*unpruned, "index.sorted_terms=0")))  # fmt: skip
    assert not objects["calibration"]["cached"]
    assert len(list((tmp_path / "cache" / "calibration").iterdir())) == 3


def test_pipeline_checks_calibration_settings_first(beir_dir, tmp_path):
    from irbench.pipeline import check_calibration

    cfg = _cfg(beir_dir, tmp_path, "calibrate.target_recall=0.9", "calibrate.split=dev")
    with pytest.raises(
        ConfigError, match=r"calibrate.split=dev: .* no qrels/dev.tsv \(splits: test\)"
    ):
        check_calibration(cfg)
    trec = _cfg(beir_dir, tmp_path, "calibrate.target_recall=0.9", "calibrate.split=train",
                "dataset.path=null", "dataset.corpus=c.jsonl", "dataset.topics=t.tsv")  # fmt: skip
    with pytest.raises(ConfigError, match="only a BEIR folder .* or an ir_datasets dataset"):
        check_calibration(trec)

    def irds(split, irds_id="beir/scifact/test"):
        return _cfg(beir_dir, tmp_path, "calibrate.target_recall=0.9", f"calibrate.split={split}",
                    "dataset.path=null", f"dataset.irds_id={irds_id}")  # fmt: skip

    assert check_calibration(irds("beir/scifact/train")) == (0.9, 500)  # the registry only
    with pytest.raises(ConfigError, match="calibrate.split=train: not an ir_datasets id"):
        check_calibration(irds("train"))
    with pytest.raises(ConfigError, match="not a query set over beir/scifact/test's corpus"):
        check_calibration(irds("beir/nfcorpus/train"))
    flat = _cfg(beir_dir, tmp_path, "calibrate.target_recall=0.9", index=("index=faiss",))
    with pytest.raises(ConfigError, match="index=faiss with index.factory=Flat has no search"):
        check_calibration(flat)


@pytest.fixture(scope="module")
def dense_model(tmp_path_factory):
    from tests.conftest import WORDS, save_tiny_bert

    # the beir_dir fixture's words: docs embed apart (an all-[UNK] corpus would tie)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    return save_tiny_bert(tmp_path_factory.mktemp("bert"), vocab, hidden=32, masked_lm=False)


def test_fused_runs_check_every_input_before_running_any(beir_dir, tmp_path):
    from irbench.pipeline import run

    fused = ("fusion=rrf", "encoder@fusion.second.encoder=bm25", "index@fusion.second.index=numba")
    # the exact first input would run first; the second one's bad split stops both
    approx_second = _cfg(beir_dir, tmp_path, "calibrate.target_recall=0.9", "calibrate.split=dev",
                         *fused[:2], "index@fusion.second.index=numba_approx",
                         index=("index=numba",))  # fmt: skip
    with pytest.raises(ConfigError, match="calibrate.split=dev"):
        run(approx_second)
    assert not (tmp_path / "run" / "inputs").exists()  # nothing ran
    neither = _cfg(beir_dir, tmp_path, "calibrate.target_recall=0.9", *fused,
                   index=("index=numba",))  # fmt: skip
    with pytest.raises(ConfigError, match="neither fused input has search knobs"):
        run(neither)
    assert not (tmp_path / "run" / "inputs").exists()


def test_dense_pipeline_calibrates_nprobe(beir_dir, tmp_path, dense_model):
    from irbench.pipeline import run

    dense = ("encoder=dense", f"encoder.backbone={dense_model}", "encoder.device=cpu",
             "index=faiss", "index.factory='IVF16,Flat'", "index.nprobe=1", "index.seed=0")  # fmt: skip
    cfg = _cfg(beir_dir, tmp_path, "calibrate.target_recall=0.95", "calibrate.queries=0",
               "threads=1", index=dense)  # fmt: skip
    _, objects = run(cfg)
    summary, index = objects["calibration"], objects["index"].index
    assert summary["reached"] and summary["recall"] >= 0.95 and summary["n_queries"] == 40
    assert index.nprobe == summary["knobs"]["nprobe"] > 1
    # ef_search does not steer an IVF with a flat quantizer: the cached calibration is reused
    other = _cfg(beir_dir, tmp_path, "calibrate.target_recall=0.95", "calibrate.queries=0",
                 "threads=1", index=(*dense, "index.ef_search=7"))  # fmt: skip
    _, again = run(other)
    assert again["calibration"]["cached"] and again["calibration"]["knobs"] == summary["knobs"]
    # the run is the calibrated nprobe's: same as a run configured with it by hand
    by_hand = _cfg(beir_dir, tmp_path, "threads=1", f"run_dir={tmp_path / 'by-hand'}",
                   index=(*dense, f"index.nprobe={index.nprobe}"))  # fmt: skip
    run(by_hand)
    assert (tmp_path / "run" / "run.trec").read_bytes().replace(b"faiss", b"") == (
        tmp_path / "by-hand" / "run.trec"
    ).read_bytes().replace(b"faiss", b"")
