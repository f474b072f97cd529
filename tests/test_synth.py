"""Synthetic corpora (irbench synth) and the streaming scale benchmark, on small random data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from irbench.bench import timing
from irbench.bench.index import VectorSet, recall_at_k
from irbench.bench.scale import (
    COLUMNS,
    JSON_COLUMNS,
    bench_scale,
    build_synthetic_index,
    growth,
    to_markdown,
)
from irbench.bench.synth import CHUNK, Synthesizer, synthesize
from irbench.errors import ConfigError
from irbench.index.approx import ApproxIndex
from irbench.index.numba import NumbaIndex


@pytest.fixture(scope="module")
def real():
    rng = np.random.default_rng(3)
    n_docs, n_terms = 600, 300
    # Zipf-like term popularity, varied doc lengths, term-dependent weight scales
    pop = 1.0 / np.arange(1, n_terms + 1) ** 0.8
    pop /= pop.sum()
    rows = []
    for _ in range(n_docs):
        nnz = int(rng.integers(5, 60))
        terms = np.unique(rng.choice(n_terms, size=nnz, p=pop))
        weights = rng.gamma(2.0, 0.5 + terms / n_terms).astype(np.float32) + 0.01
        rows.append((terms, weights))
    indptr = np.cumsum([0] + [len(t) for t, _ in rows])
    docs = sp.csr_matrix(
        (np.concatenate([w for _, w in rows]), np.concatenate([t for t, _ in rows]), indptr),
        shape=(n_docs, n_terms),
    )
    queries = sp.random(7, n_terms, density=0.05, format="csr", dtype=np.float32, random_state=1)
    return VectorSet(
        "toy", docs, queries, [str(i) for i in range(n_docs)], [f"q{i}" for i in range(7)]
    )


@pytest.mark.parametrize("share", [0.0, 0.65])
def test_any_block_equals_the_rows_of_one_generation(real, share):
    synth = Synthesizer(real, seed=5, parent_share=share)
    n = 2 * CHUNK + 123
    whole = synth.block(0, n)
    part = synth.block(CHUNK, n)
    assert (abs(part - whole[CHUNK:]) > 0).nnz == 0 and part.nnz == whole[CHUNK:].nnz
    stacked = sp.vstack(list(synth.blocks(n, block_docs=CHUNK))).tocsr()
    np.testing.assert_array_equal(stacked.indptr, whole.indptr)
    np.testing.assert_array_equal(stacked.indices, whole.indices)
    np.testing.assert_array_equal(stacked.data, whole.data)
    other = Synthesizer(real, seed=6, parent_share=share).block(0, CHUNK)
    assert (abs(other - whole[:CHUNK]) > 0).nnz > 0
    with pytest.raises(ValueError, match="multiple"):
        synth.block(1, 10)


def test_statistics_follow_the_real_corpus(real):
    docs = real.docs
    out = synthesize(real, 3 * CHUNK, seed=0, echo=lambda _: None).docs
    assert out.has_canonical_format
    real_nnz, out_nnz = docs.nnz / docs.shape[0], out.nnz / out.shape[0]
    assert abs(out_nnz - real_nnz) / real_nnz < 0.05
    f_real = np.diff(docs.tocsc().indptr) / docs.shape[0]
    f_out = np.diff(out.tocsc().indptr) / out.shape[0]
    common = f_real > 0.05  # frequent terms: clipping at p = 1 is rare, sampling error small
    np.testing.assert_allclose(f_out[common], f_real[common], rtol=0.15)
    assert not f_out[f_real == 0].any()  # terms absent from the real corpus never appear
    csc_real, csc_out = docs.tocsc(), out.tocsc()
    for t in np.flatnonzero(common)[:20]:  # every weight is one of the term's real weights
        real_w = set(csc_real.data[csc_real.indptr[t] : csc_real.indptr[t + 1]].tolist())
        assert set(csc_out.data[csc_out.indptr[t] : csc_out.indptr[t + 1]].tolist()) <= real_w


@pytest.mark.parametrize("quantize", [None, "uint8"])
def test_streamed_synthetic_index_equals_a_direct_build(real, tmp_path, quantize):
    synth = Synthesizer(real, seed=1)
    n = 2 * CHUNK + 7
    streamed, gen_s = build_synthetic_index(synth, n, quantize, spill_dir=str(tmp_path))
    direct = NumbaIndex.build(synth.block(0, n), quantize=quantize)
    assert gen_s > 0 and list(tmp_path.iterdir()) == []  # spilled blocks are removed
    for name in ("offsets", "doc_ids", "weights"):
        np.testing.assert_array_equal(getattr(streamed, name), getattr(direct, name))


def test_bench_scale_rows(real, tmp_path):
    rows = bench_scale(real, [CHUNK, 3 * CHUNK], min_seconds=0.0, echo=lambda _: None)
    assert [r["docs"] for r in rows] == [CHUNK, 3 * CHUNK]
    assert [r["engine"] for r in rows] == ["numba", "numba"]
    assert rows[0]["postings"] < rows[1]["postings"]
    assert all(r["qps_1"] > 0 and r["p50_ms"] > 0 and r["size_mb"] >= 0 for r in rows)
    assert all(set(r) == set(COLUMNS) for r in rows)
    json.dumps(rows)  # bench.json material
    assert len(growth(rows)) == 1


def test_bench_scale_times_one_thread_on_one_cpu():
    import os

    from irbench.bench.scale import _timings

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    seen: dict[int, set[int]] = {}

    def search(q, k, threads):
        seen.setdefault(threads, set()).add(len(os.sched_getaffinity(0)))
        return None

    before = os.sched_getaffinity(0)
    queries = sp.random(3, 10, density=0.5, format="csr", random_state=0)
    row = _timings(search, queries, 10, min_seconds=0.0)
    assert seen[1] == {1}  # the batch and the one-query timings
    assert os.sched_getaffinity(0) == before and row["queries"] == 3
    if row["threads_all"] > 1:
        assert seen[row["threads_all"]] == {len(before)}
    else:  # one thread in all: the 1-thread figures stand for both
        assert set(seen) == {1} and row["qps_all"] == row["qps_1"]


# n_postings 0, query_cut 0, energy 1, heap_factor 1: numba_approx's exactness condition
EXACT_APPROX = {"n_postings": 0, "query_cut": 0, "summary_energy": 1.0, "heap_factor": 1.0}


@pytest.mark.parametrize("parent_share", [0.0, 0.65])
def test_bench_scale_approx_rows_and_recall(real, parent_share):
    kw = {"min_seconds": 0.0, "echo": lambda _: None, "parent_share": parent_share}
    n = 2 * CHUNK
    rows = bench_scale(real, [n], approx=EXACT_APPROX, **kw)
    assert [r["engine"] for r in rows] == ["numba", "numba_approx"]
    exact, approx = rows
    assert exact["recall"] is None and approx["recall"] == 1.0
    assert approx["postings"] == exact["postings"]  # the same docs, read back
    # lossy: the recall of an index built directly on the same generated docs
    knobs = {"n_postings": 4, "query_cut": 1}
    lossy = bench_scale(real, [n], approx=knobs, **kw)[1]
    docs = Synthesizer(real, seed=0, parent_share=parent_share).block(0, n)
    want = recall_at_k(
        ApproxIndex.build(docs, **knobs).search(real.queries, 10)[1],
        NumbaIndex.build(docs).search(real.queries, 10)[1],
    )
    assert 0.0 < lossy["recall"] < 1.0 and lossy["recall"] == want
    assert lossy["postings"] == exact["postings"] == docs.nnz and lossy["size_mb"] > 0
    lines = growth(bench_scale(real, [CHUNK, n], approx={}, **kw))
    assert [line.split(":")[0] for line in lines] == ["numba", "numba_approx"]


def test_bench_scale_calibrated_row_is_scored_on_held_out_queries(real):
    from irbench.index.tuning import calibrate_approx

    kw = {"min_seconds": 0.0, "echo": lambda _: None}
    n = 2 * CHUNK
    knobs = {"n_postings": 30}
    rows = bench_scale(real, [n], approx=knobs, target_recall=0.9, **kw)
    assert [r["engine"] for r in rows] == ["numba", "numba_approx", "numba_approx calibrated"]
    row = rows[2]
    nq = real.queries.shape[0]
    perm = np.random.default_rng(0).permutation(nq)
    tune, held = np.sort(perm[: nq // 2]), np.sort(perm[nq // 2 :])
    docs = Synthesizer(real, seed=0).block(0, n)
    index = ApproxIndex.build(docs, **knobs)
    exact = NumbaIndex.build(docs).search(real.queries, 10)[1]
    cal = calibrate_approx(index, real.queries[tune], 10, 0.9, exact=exact[tune])
    qc, hf = cal.knobs["query_cut"], cal.knobs["heap_factor"]
    assert row["setting"].startswith(f"query_cut={qc} heap_factor={hf}")
    found = index.search(real.queries[held], 10, **cal.knobs)[1]
    assert row["queries"] == len(held) and row["recall"] == recall_at_k(found, exact[held])
    assert "held-out half" in to_markdown(rows, {"source": "x", "machine": "m"})


def test_bench_scale_checks_approx_knobs_first(real):
    said = []
    with pytest.raises(ConfigError, match="heap_factor"):
        bench_scale(real, [CHUNK], approx={"heap_factor": -1.0}, echo=said.append)
    assert said == []  # before any corpus was generated or indexed


def test_cli_bench_scale(real, tmp_path, monkeypatch):
    from irbench.bench import scale
    from irbench.bench.index import save_vectors
    from irbench.cli.app import app

    save_vectors(tmp_path / "real.npz", real)
    seen = {}
    original = scale.bench_scale

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(scale, "bench_scale", spy)
    out = tmp_path / "out"
    base = ["bench", "scale", "--from", str(tmp_path / "real.npz"), "--docs", str(CHUNK),
            "--min-seconds", "0", "--out", str(out)]  # fmt: skip
    res = CliRunner().invoke(app, base + ["--parent-share", "0.5", "--approx", "--query-cut", "3"])
    assert res.exit_code == 0, res.output
    assert seen["parent_share"] == 0.5 and seen["approx"] == {"query_cut": 3}
    saved = json.loads((out / "bench.json").read_text())
    n_all = timing.all_threads()
    threads = [1, n_all] if n_all > 1 else [1]
    engines = [(e, t) for e in ("numba", "numba_approx") for t in threads]
    assert [(r["engine"], r["threads"]) for r in saved] == engines
    assert all(list(r) == JSON_COLUMNS for r in saved)
    assert all(r["docs"] == CHUNK and r["qps"] > 0 and r["cores_used"] > 0 for r in saved)
    assert all((r["p50_ms"] is None) == (r["threads"] > 1) for r in saved)
    assert all(r["queries"] == real.queries.shape[0] for r in saved)
    assert saved[0]["recall"] is None and 0.0 <= saved[-1]["recall"] <= 1.0
    assert json.loads((out / "meta.json").read_text())["parent_share"] == 0.5
    assert "numba_approx" in (out / "bench.md").read_text()
    assert (out / "growth.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = CliRunner().invoke(app, base + ["--query-cut", "3"])  # knob without --approx
    assert res.exit_code != 0 and "--approx" in res.output


def test_parent_share_keeps_statistics_and_adds_cooccurrence(real):
    n = 3 * CHUNK
    out = synthesize(real, n, seed=0, echo=lambda _: None, parent_share=0.65).docs
    indep = synthesize(real, n, seed=0, echo=lambda _: None).docs
    assert out.has_canonical_format
    docs = real.docs
    # per-doc nnz and frequent-term df stay those of the real corpus
    real_nnz, out_nnz = docs.nnz / docs.shape[0], out.nnz / out.shape[0]
    assert abs(out_nnz - real_nnz) / real_nnz < 0.05
    f_real = np.diff(docs.tocsc().indptr) / docs.shape[0]
    f_out = np.diff(out.tocsc().indptr) / out.shape[0]
    common = f_real > 0.05
    np.testing.assert_allclose(f_out[common], f_real[common], rtol=0.15)
    assert not f_out[f_real == 0].any()

    # co-occurrence: a doc holds a large share of one real doc's exact (term, weight) entries
    # (its parent); independent draws match some real doc's entries only by chance
    owners = {}
    for r in range(docs.shape[0]):
        row = docs[r]
        for key in zip(row.indices.tolist(), row.data.tolist(), strict=True):
            owners.setdefault(key, []).append(r)

    def parent_coverage(m):
        best = []
        for d in range(200):
            row = m[d]
            hits = np.zeros(docs.shape[0])
            for key in zip(row.indices.tolist(), row.data.tolist(), strict=True):
                hits[owners.get(key, [])] += 1
            best.append(np.max(hits / np.diff(docs.indptr)))
        return float(np.mean(best))

    assert 0.5 < parent_coverage(out) < 0.8  # about parent_share
    assert parent_coverage(indep) < 0.25


def test_parent_share_zero_is_the_independent_corpus(real):
    a = Synthesizer(real, seed=2).block(0, CHUNK)
    b = Synthesizer(real, seed=2, parent_share=0.0).block(0, CHUNK)
    assert (abs(a - b) > 0).nnz == 0
    with pytest.raises(ValueError, match="parent_share"):
        Synthesizer(real, parent_share=1.0)
