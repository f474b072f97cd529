"""``irbench bench index``: vector files, the harness on tiny data, the CLI (no timing asserts)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from irbench.bench import peers, timing
from irbench.bench.index import (
    APPROX_SEARCH,
    COLUMNS,
    VectorSet,
    approx_grid,
    bench_index,
    concat,
    default_engines,
    load_vectors,
    recall_at_k,
    save_vectors,
)
from irbench.cli.app import app
from irbench.errors import ConfigError, DataError


def tiny(name="tiny", n_docs=300, n_queries=12, n_terms=200, seed=0, term_space="") -> VectorSet:
    rng = np.random.default_rng(seed)

    def csr(rows, nnz):
        m = sp.random(rows, n_terms, density=nnz / n_terms, random_state=rng, dtype=np.float32)
        m.data = m.data + np.float32(0.05)
        return m.tocsr()

    docs, queries = csr(n_docs, 20), csr(n_queries, 6)
    docnos = [f"d{i}" for i in range(n_docs)]
    qids = [f"q{i}" for i in range(n_queries)]
    qrels = [(f"q{i}", f"d{(7 * i) % n_docs}", 1) for i in range(n_queries)]
    return VectorSet(name, docs, queries, docnos, qids, qrels, term_space)


def test_vectors_round_trip_and_concat(tmp_path):
    a = tiny("a", seed=1, term_space="a 200-term tokenizer vocabulary")
    b = tiny("b", n_docs=50, n_terms=180, seed=2)
    save_vectors(tmp_path / "a.npz", a)
    back = load_vectors(tmp_path / "a.npz")
    assert back.name == "a" and back.docnos == a.docnos and back.qids == a.qids
    assert back.qrels == a.qrels and back.term_space == a.term_space
    assert (back.docs != a.docs).nnz == 0 and (back.queries != a.queries).nnz == 0
    both = concat([back, b])
    assert both.name == "a+b" and both.docs.shape == (350, 200)
    assert both.docnos[0] == "a/d0" and both.docnos[-1] == "b/d49"
    assert both.qrels[-1][0].startswith("b/") and len(both.qrels) == 24
    with pytest.raises(ConfigError):
        concat([a, a])
    b.term_space = "the bm25 vocabulary of b"  # known and different: term ids not shared
    with pytest.raises(ConfigError, match="term spaces"):
        concat([back, b, tiny("c", term_space="the bm25 vocabulary of c")])
    b.term_space = ""
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(DataError):
        load_vectors(tmp_path / "bad.npz")
    good = (tmp_path / "a.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(good[: len(good) // 2])  # a truncated download
    with pytest.raises(DataError):
        load_vectors(tmp_path / "cut.npz")
    with pytest.raises(DataError):
        VectorSet("x", a.docs, a.queries, a.docnos[:-1], a.qids)


def test_recall_at_k():
    exact = np.array([[1, 2, 3], [4, -1, -1], [-1, -1, -1]])
    found = np.array([[3, 9, 1], [-1, -1, -1], [5, 6, 7]])
    assert recall_at_k(found, exact) == pytest.approx((2 / 3 + 0) / 2)


def test_recall_is_tie_aware():
    """Every doc a copy of one of 5: scores tie in groups of 8. The exact engines break ties
    their own ways (argpartition, PISA) and must all score 1.0; a set overlap with the
    reference's choice gave them 0.88-0.90."""
    from irbench.bench.index import tie_aware_recall
    from irbench.index.numba import NumbaIndex

    base = tiny(n_docs=5, n_queries=10)
    docs = sp.vstack([base.docs] * 8).tocsr()
    queries = base.queries
    ref_s, ref_d = NumbaIndex.build(docs).search(queries, 6)
    shuffled = np.where(ref_d >= 0, (ref_d + 5) % 40, -1)  # the next copy: same score
    assert (recall_at_k(shuffled, ref_d) < 1.0) and tie_aware_recall(
        shuffled, ref_s, ref_d, docs, queries
    ) == 1.0
    lower = np.full_like(ref_d, -1)  # a worse answer still scores below 1
    lower[:, :1] = ref_d[:, :1]
    got = tie_aware_recall(lower, ref_s, ref_d, docs, queries)
    valid = (ref_d >= 0).sum(axis=1)
    assert got == pytest.approx(np.mean(1 / valid[valid > 0]))


def test_recall_from_full_scores_against_a_brute_force_count():
    """recalls_from_scores: ties with the k-th count, zero scores never do, queries with no
    positive score are skipped; checked against a direct count on random integer scores."""
    from irbench.bench.index import recalls_from_scores

    def recall_from_scores(found, exact, k):
        return recalls_from_scores({k: found}, exact)[k]

    rng = np.random.default_rng(7)
    scores = rng.integers(0, 6, size=(40, 30)).astype(np.float64)  # many ties, many zeros
    scores[3] = 0.0  # no hit: skipped
    scores[4, :] = 0.0
    scores[4, [2, 5]] = [1.0, 3.0]  # fewer positive docs than k
    k = 5
    found = np.array([rng.permutation(30)[: int(rng.integers(0, k + 1))] for _ in scores],
                     dtype=object)  # fmt: skip
    found = np.array([np.pad(f.astype(np.int64), (0, k - len(f)), constant_values=-1)
                      for f in found])  # fmt: skip
    want = []
    for s, f in zip(scores, found, strict=True):
        pos = np.sort(s[s > 0])[::-1]
        if len(pos) == 0:
            continue
        n = min(k, len(pos))
        kth = pos[n - 1]
        want.append(min(sum(s[d] >= kth for d in set(f.tolist()) if d >= 0), n) / n)
    assert recall_from_scores(found, iter(scores), k) == pytest.approx(np.mean(want))
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    assert recall_from_scores(best, iter(scores), k) == 1.0
    assert np.isnan(recall_from_scores(best[:1] * 0, iter(np.zeros((1, 30))), k))


def test_harness_on_tiny_data(tmp_path, monkeypatch):
    vs = tiny()
    pins = []
    real_pinned = timing.pinned

    def spy(n):
        pins.append(n)
        return real_pinned(n)

    monkeypatch.setattr(timing, "pinned", spy)
    rows, meta = bench_index(
        vs, ks=(5, 50), threads=(1, 2), min_seconds=0.0, min_repeats=1, out_dir=tmp_path,
        echo=lambda _: None,
    )  # fmt: skip
    engines = {r["key"] for r in rows}
    assert {"numba", "numba_approx", "taat", "splade_taat", "scipy"} <= engines
    for key in ("pisa", "seismic", "bmp"):  # peers present or skipped with a note
        assert key in engines or any(key in n.lower() for n in meta["notes"])
    for r in rows:
        assert r["corpus"] == "tiny" and r["qps"] > 0 and 0.0 <= r["recall"] <= 1.0
        if r["key"] in ("numba", "taat", "splade_taat", "scipy"):
            assert r["recall"] == 1.0
        if r["threads"] == 1:
            assert r["p50_ms"] is not None
        assert r["cores_used"] > 0
    assert {r["threads"] for r in rows if r["key"] == "numba"} == {1, 2}
    for key in ("taat", "splade_taat"):  # single-threaded only
        assert {r["threads"] for r in rows if r["key"] == key} == {1}
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert len(saved) == len(rows) and list(saved[0]) == COLUMNS
    assert (tmp_path / "bench.md").read_text().count("\n| ") >= len(rows)
    assert (tmp_path / "recall_latency.png").stat().st_size > 0
    assert {"TAAT per query", "naver/splade scorer"} <= {r["vs"] for r in meta["ratios"]}
    assert pins == [1, 1]  # the threads=1 timings of each k run on one CPU


@pytest.mark.parametrize("key", ["taat", "splade_taat"])
def test_per_query_scorers_match_brute_force(tmp_path, key):
    rng = np.random.default_rng(3)
    docs = sp.random(400, 60, density=0.1, format="csr", dtype=np.float32, random_state=rng)
    keep = np.ones(60, dtype=np.float32)
    keep[7] = 0
    docs = sp.csr_matrix(docs @ sp.diags(keep))  # a term without postings ...
    docs.eliminate_zeros()
    queries = sp.random(20, 60, density=0.3, format="csr", dtype=np.float32, random_state=rng)
    ask = sp.csr_matrix((np.ones(20), (np.arange(20), np.full(20, 7))), shape=(20, 60))
    queries = sp.csr_matrix(queries @ sp.diags(keep) + ask)  # ... that every query asks for
    eng = peers.ENGINES[key]()
    eng.build(docs, tmp_path)
    got = eng.batch(eng.prepare(queries), 10, 1)
    scores = (queries @ docs.T).toarray()
    for q in range(queries.shape[0]):
        want = np.flatnonzero(scores[q] > 0)
        want = want[np.lexsort((want, -scores[q][want]))][:10]
        assert got[q][got[q] >= 0].tolist() == want.tolist()  # same docs, same ranking


def test_missing_peer_is_skipped_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setattr(peers.Pisa, "missing", classmethod(lambda cls: "PISA: not installed"))
    rows, meta = bench_index(
        tiny(), ks=(5,), only=["numba", "pisa"], threads=(1,), min_seconds=0.0, min_repeats=1,
        latency=False, echo=lambda _: None,
    )  # fmt: skip
    assert {r["key"] for r in rows} == {"numba"}
    assert any("PISA: not installed" in n for n in meta["notes"])
    with pytest.raises(ConfigError):
        bench_index(tiny(), only=["nope"], echo=lambda _: None)


def test_cli_bench_index_and_vectors(tmp_path):
    save_vectors(tmp_path / "v.npz", tiny())
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        ["bench", "index", "--vectors", str(tmp_path / "v.npz"), "--engine", "numba",
         "--engine", "numba_approx", "--k", "5", "--threads", "1", "--min-seconds", "0",
         "--no-latency", "--max-queries", "5", "--n-postings", "40", "--query-cut", "3",
         "--query-cut", "5", "--out", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "bench.json").read_text())
    assert {r["engine"] for r in saved} == {"irbench numba", "irbench numba_approx"}
    assert sorted(r["setting"] for r in saved if r["engine"] == "irbench numba_approx") == [
        "n_postings 40, query_cut 3, heap_factor 0.9",
        "n_postings 40, query_cut 5, heap_factor 0.9",
    ]
    assert "irbench numba" in res.output
    res = CliRunner().invoke(app, ["bench", "index", "--vectors", str(tmp_path / "missing.npz")])
    assert res.exit_code != 0


def test_approximate_builds_and_grid_from_options():
    approx = lambda engines: [(k, b, g) for k, b, g in engines if k in ("numba_approx", "seismic")]  # noqa: E731
    default = approx(default_engines(10_000))
    assert [b["n_postings"] for _, b, _ in default] == [150, 250, 150, 250]
    assert all(g == APPROX_SEARCH for _, _, g in default)
    grid = approx_grid([10, 20], [0.8])
    assert grid == [{"query_cut": 10, "heap_factor": 0.8}, {"query_cut": 20, "heap_factor": 0.8}]
    assert approx_grid(None, [0.7]) == [{"query_cut": 10, "heap_factor": 0.7}]
    assert approx_grid(None, None) is None
    chosen = approx(default_engines(10_000, [4000], grid))
    assert chosen == [
        ("numba_approx", {"n_postings": 4000}, grid),
        ("seismic", {"n_postings": 4000}, grid),
    ]
    for bad in (lambda: approx_grid([-1], None), lambda: approx_grid(None, [1.5])):
        with pytest.raises(ConfigError):
            bad()
    with pytest.raises(ConfigError, match="n-postings"):
        default_engines(10_000, [0])


@pytest.mark.parametrize("key", ["pisa", "seismic", "bmp"])
def test_peers_time_their_own_call_and_convert_apart(tmp_path, key):
    """A peer's batch returns its own output (the timed call); doc rows come from rows(),
    untimed. PISA's size counts what its search reads, after the compression of its build."""
    cls = peers.ENGINES[key]
    if cls.missing():
        pytest.skip(cls.missing())
    vs = tiny(n_docs=200, n_queries=8)
    eng = cls(**({"n_postings": 200} if key == "seismic" else {}))
    with peers.quiet_native_output():
        peers.timed_build(eng, vs.docs, tmp_path / key)
        prep = eng.prepare(vs.queries)
        raw = eng.batch(prep, 5, 1)
    assert not isinstance(raw, np.ndarray)  # no conversion inside the timed call
    found = eng.rows(raw, prep, 5)
    assert found.shape == (8, 5) and found.dtype == np.int64 and (found >= 0).any()
    if key == "pisa":
        files = {f.name: f.stat().st_size for f in (tmp_path / key).rglob("*") if f.is_file()}
        assert any(n.startswith("quantized.") for n in files) and "inv.docs" in files
        assert eng.size_bytes == sum(
            s
            for n, s in files.items()
            if n.startswith("quantized.") or n in peers.PISA_SEARCH_FILES
        )
    if key == "seismic":
        assert eng.ingest_seconds is not None and eng.build_seconds is not None


def test_synthetic_vectors_keep_their_term_space(tmp_path):
    from irbench.bench.synth import Synthesizer

    real = tiny(term_space="a 200-term tokenizer vocabulary")
    made = Synthesizer(real, seed=0).vector_set(real.docs)
    assert made.term_space == real.term_space
    with pytest.raises(ConfigError, match="term spaces"):
        concat([made, tiny("other", term_space="the bm25 vocabulary of other")])


def test_bench_index_refuses_a_file_as_out_before_any_work(tmp_path):
    save_vectors(tmp_path / "v.npz", tiny())
    (tmp_path / "afile").write_text("x")
    res = CliRunner().invoke(app, ["bench", "index", "--vectors", str(tmp_path / "v.npz"),
                                   "--engine", "numba", "--out", str(tmp_path / "afile")])  # fmt: skip
    assert res.exit_code == 2 and "a file is there" in res.output and "timing" not in res.output
