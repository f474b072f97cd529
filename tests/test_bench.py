"""`irbench bench bm25` on a small generated collection (fast; no timing assertions)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from irbench.bench import timing
from irbench.bench.bm25 import COLUMNS
from irbench.bench.timing import thread_settings
from irbench.cli.app import app

runner = CliRunner()


def read_run(path: Path) -> dict[str, list[str]]:
    hits: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        qid, _, docid, *_ = line.split()
        hits.setdefault(qid, []).append(docid)
    return hits


def test_bench_bm25_writes_rows_per_engine_k_threads(beir_dir, workdir):
    pytest.importorskip("bm25s")
    out = workdir / "bench"
    result = runner.invoke(
        app,
        [
            "bench",
            "bm25",
            "dataset=local",
            "dataset.name=tiny",
            f"dataset.path={beir_dir}",
            "--k",
            "10",
            "--k",
            "1000",
            "--out",
            str(out),
            "--min-seconds",
            "0.01",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "bench.json").read_text())
    assert (out / "bench.md").is_file()
    assert (out / "recall_latency.png").read_bytes()[:4] == b"\x89PNG"
    assert all(list(r) == COLUMNS for r in rows)
    expected = {
        (e, k, t) for e in ("irbench", "bm25s") for k in (10, 1000) for t in thread_settings()
    }
    assert sorted((r["engine"], r["k"], r["threads"]) for r in rows) == sorted(expected)
    for r in rows:
        assert r["corpus"] == "tiny"
        assert r["recall"] == 1.0  # both engines are exact: each top k is its own ranking
        assert r["qps"] > 0 and r["p50_ms"] > 0 and r["build_s"] >= 0 and r["size_mb"] > 0
        assert 0.1 < r["ndcg@10"] <= 1.0
    ndcg = {r["engine"]: r["ndcg@10"] for r in rows}
    assert ndcg["irbench"] == pytest.approx(ndcg["bm25s"], abs=0.05)

    ir = read_run(out / "irbench.trec")
    bm = read_run(out / "bm25s.trec")
    common = [q for q in ir if ir[q] and bm.get(q)]
    agree = sum(ir[q][0] == bm[q][0] for q in common)
    assert len(common) >= 30 and agree >= 0.8 * len(common), (agree, len(common))
    assert "irbench / bm25s" in result.output


def test_timing_helpers():
    calls = []
    times = timing.repeat(lambda: calls.append(1), min_repeats=3, min_seconds=0.0)
    assert len(times) == 3 and len(calls) == 4  # one warm-up call
    assert timing.qps(10, [0.5, 1.0, 2.0]) == pytest.approx(10.0)
    lat = timing.latencies(lambda x: x, [1, 2, 3], min_seconds=0.0)
    assert len(lat) == 3
    stats = timing.latency_stats([0.001, 0.002, 0.003])
    assert stats["p50_ms"] == pytest.approx(2.0) and stats["mean_ms"] == pytest.approx(2.0)
    m = timing.machine()
    assert m["cores"] >= 1 and m["cpu"]


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs CPU affinity (Linux) and at least 2 CPUs",
)
def test_pinned_confines_every_thread_and_restores():
    """A "1 thread" timing must hold native pools started earlier to one CPU as well."""
    allowed = os.sched_getaffinity(0)
    stop = threading.Event()
    seen: list[int] = []
    worker = threading.Thread(target=stop.wait)  # an existing thread, like a peer's pool
    worker.start()
    try:
        with timing.pinned(1) as n:
            assert n == 1
            assert len(os.sched_getaffinity(worker.native_id)) == 1
            assert len(os.sched_getaffinity(0)) == 1
            late = threading.Thread(target=lambda: seen.append(len(os.sched_getaffinity(0))))
            late.start()
            late.join()
        assert seen == [1]  # threads started inside inherit it
        assert os.sched_getaffinity(0) == allowed
        assert os.sched_getaffinity(worker.native_id) == allowed
    finally:
        stop.set()
        worker.join()


def test_repeat_interleaved_reports_cpu_seconds_per_call():
    cpu: list[list[float]] = []

    def spin():
        t0 = time.process_time()
        while time.process_time() - t0 < 0.01:
            pass

    secs = timing.repeat_interleaved(
        [spin, lambda: None], min_repeats=3, min_seconds=0.0, cpu_out=cpu
    )
    assert [len(c) for c in cpu] == [len(s) for s in secs] == [3, 3]
    assert all(c >= 0.009 for c in cpu[0])  # the busy loop's own CPU time
    assert sum(cpu[1]) < sum(cpu[0])


def test_interleaved_timing_stops_at_the_shared_budget():
    """A no-op beside a 10 ms call: rounds stop once both together spent min_seconds each
    (about 0.1 s), not when the no-op alone reaches 0.05 s (thousands of rounds)."""
    slow = lambda *_: time.sleep(0.01)  # noqa: E731
    fast = lambda *_: None  # noqa: E731
    secs = timing.repeat_interleaved([slow, fast], min_repeats=2, min_seconds=0.05)
    assert 2 <= len(secs[0]) == len(secs[1]) <= 15
    assert sum(secs[1]) < 0.05 <= sum(secs[0]) + sum(secs[1]) + 0.05
    lat = timing.latencies_interleaved([slow, fast], [range(3), range(3)], min_seconds=0.05)
    assert 3 <= len(lat[0]) == len(lat[1]) <= 15
    both = timing.repeat_interleaved([slow, slow], min_repeats=1, min_seconds=0.05)
    assert all(sum(s) >= 0.05 for s in both)  # each still gets its own min_seconds


def test_bench_bm25_exact_scores_refuse_a_changed_corpus(beir_dir):
    """The recall reference is re-encoded from the dataset: a doc count that differs from the
    cached index's is a one-line ConfigError, not misaligned scores."""
    from irbench.bench.bm25 import _irbench_exact_scores
    from irbench.config import compose
    from irbench.errors import ConfigError
    from irbench.pipeline import load_dataset

    cfg = compose(["dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir}"])
    dataset = load_dataset(cfg)
    n_docs = sum(1 for _ in dataset.docs_iter())
    queries = list(dataset.queries_iter())[:3]
    scores = list(_irbench_exact_scores(cfg, dataset, queries, n_docs))
    assert len(scores) == 3 and all(s.shape == (n_docs,) for s in scores)
    with pytest.raises(ConfigError, match="rebuild the index"):
        next(_irbench_exact_scores(cfg, dataset, queries, n_docs + 1))
