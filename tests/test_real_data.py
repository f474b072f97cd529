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
