"""End to end on the real collections in ../shared (skipped where absent)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from irbench.cli.app import app
from tests.conftest import shared_dataset

runner = CliRunner()
pytestmark = pytest.mark.slow


def test_bm25_on_scifact_reproduces_pyserini_flat(workdir):
    path = shared_dataset("scifact")
    args = ["run", "dataset=scifact", f"dataset.path={path}", "encoder=bm25", "index=numba"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run_dir = workdir / "runs/scifact/bm25.numba"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # Pyserini BEIR regressions, Lucene BM25 "flat": nDCG@10 0.6789, R@100 0.9253
    assert metrics["nDCG@10"] == pytest.approx(0.6789, abs=0.002)
    assert metrics["R@100"] == pytest.approx(0.9253, abs=0.002)
    first = (run_dir / "run.trec").read_bytes()
    result = runner.invoke(app, args)
    assert result.exit_code == 0
    assert (run_dir / "run.trec").read_bytes() == first
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["index"]["reused"] is True
    assert manifest["index"]["n_docs"] == 5183
    assert manifest["stages"]["retrieve"]["queries"] == 300


@pytest.mark.parametrize("name, floor", [("vaswani", 0.40), ("cranfield", 0.28)])
def test_bm25_on_classic_collections(workdir, name, floor):
    path = shared_dataset(name)
    result = runner.invoke(app, ["run", f"dataset={name}", f"dataset.path={path}", "k=100"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((workdir / f"runs/{name}/bm25.numba/metrics.json").read_text())
    assert metrics["nDCG@10"] > floor


def test_minilm_on_scifact_reproduces_mteb_and_calibrates_faiss_on_train_queries(workdir):
    """Flat search reproduces the published nDCG@10; IVF's nprobe calibrated on the train
    queries holds recall@10 against Flat on the held-out test queries."""
    from tests.test_dense_faiss import MINILM

    if not MINILM.is_dir():
        pytest.skip(f"{MINILM} not found (../shared/models is absent)")
    path = shared_dataset("scifact")
    base = ["run", "dataset=scifact", f"dataset.path={path}", "encoder=dense",
            f"encoder.backbone={MINILM}", "index=faiss", "k=10"]  # fmt: skip
    flat = runner.invoke(app, [*base, "run_dir=runs/flat"])
    assert flat.exit_code == 0, flat.output
    metrics = json.loads((workdir / "runs/flat/metrics.json").read_text())
    assert metrics["nDCG@10"] == pytest.approx(0.6451, abs=0.002)  # MTEB: 0.6451
    calibrated = [*base, "index.factory='IVF64,Flat'", "calibrate.target_recall=0.95",
                  "calibrate.split=train", "calibrate.queries=0", "run_dir=runs/ivf"]  # fmt: skip
    ivf = runner.invoke(app, calibrated)  # the encoded corpus comes from the cache
    assert ivf.exit_code == 0, ivf.output
    assert "calibrated on split train: nprobe=" in ivf.output
    manifest = json.loads((workdir / "runs/ivf/manifest.json").read_text())
    cal = manifest["stages"]["retrieve"]["calibration"]
    assert cal["reached"] and cal["n_queries"] == 809 and cal["evaluated_queries_seen"] == 0
    assert 1 < cal["knobs"]["nprobe"] < 64

    def top(run_dir):
        hits: dict[str, set[str]] = {}
        for line in (workdir / run_dir / "run.trec").read_text().splitlines():
            qid, _, docid, *_ = line.split()
            hits.setdefault(qid, set()).add(docid)
        return hits

    exact, found = top("runs/flat"), top("runs/ivf")
    recall = sum(len(exact[q] & found.get(q, set())) / len(exact[q]) for q in exact) / len(exact)
    assert len(exact) == 300 and recall >= 0.93  # 0.948 measured; tuned on other queries
