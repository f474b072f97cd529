"""irbench as PyTerrier transformers: pt.Experiment agrees with `irbench eval` on the same run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from irbench.cli.app import app
from irbench.config import compose
from irbench.pipeline import run as run_pipeline
from tests.conftest import shared_dataset

pt = pytest.importorskip("pyterrier")
ir_measures = pytest.importorskip("ir_measures")

MEASURES = ["nDCG@10", "RR@10", "R@100", "AP"]


def _run(tmp_path: Path, overrides: list[str]) -> Path:
    run_dir = tmp_path / "run"
    cfg = compose([*overrides, f"run_dir={run_dir}", f"cache_dir={tmp_path / 'cache'}",
                   "measures=[" + ",".join(MEASURES) + "]"])  # fmt: skip
    run_pipeline(cfg)
    return run_dir


def _check_agreement(run_dir: Path, qrels_file: Path, tmp_path: Path) -> None:
    from irbench.interop.pyterrier import IrbenchIndex

    evaluated = tmp_path / "eval"
    args = [
        "eval",
        str(run_dir / "run.trec"),
        "--qrels",
        str(qrels_file),
        "--output",
        str(evaluated),
    ]
    for m in MEASURES:
        args += ["-M", m]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    expected = json.loads((evaluated / "metrics.json").read_text())
    assert expected == json.loads((run_dir / "metrics.json").read_text())

    index = IrbenchIndex(run_dir)
    retriever = index.retriever()
    measures = [ir_measures.parse_measure(m) for m in MEASURES]
    df = pt.Experiment([retriever], index.topics(), index.qrels(), eval_metrics=measures,
                       names=["irbench"])  # fmt: skip
    got = df.set_index("name").loc["irbench"]
    for m in MEASURES:
        assert got[m] == pytest.approx(expected[m], abs=1e-12), m
    # composed with a PyTerrier operator: the rank cutoff keeps 5 hits per query
    top5 = (retriever % 5)(index.topics())
    assert top5.groupby("qid").size().max() == 5
    assert {"qid", "query", "docno", "score", "rank"} <= set(top5.columns)


def test_experiment_agrees_with_irbench_eval_on_generated_data(beir_dir, tmp_path):
    run_dir = _run(tmp_path, ["dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir}",
                              "k=100"])  # fmt: skip
    _check_agreement(run_dir, beir_dir / "qrels" / "test.tsv", tmp_path)


def test_retriever_frames_follow_pyterrier_conventions(beir_dir, tmp_path):
    from irbench.interop.pyterrier import IrbenchRetriever

    run_dir = _run(tmp_path, ["dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir}",
                              "k=20"])  # fmt: skip
    retriever = IrbenchRetriever(run_dir, k=7)
    assert isinstance(retriever, pt.Transformer)
    import pandas as pd

    topics = pd.DataFrame({"qid": ["q3", "q1"], "query": ["", ""], "extra": [1, 2]})
    topics.loc[0, "query"] = retriever.index.topics().set_index("qid").loc["q3", "query"]
    topics.loc[1, "query"] = retriever.index.topics().set_index("qid").loc["q1", "query"]
    out = retriever(topics)
    assert list(out["qid"].unique()) == ["q3", "q1"]  # input order kept
    for _, hits in out.groupby("qid"):
        assert list(hits["rank"]) == list(range(len(hits))) and len(hits) <= 7
        assert list(hits["score"]) == sorted(hits["score"], reverse=True)
    assert set(out["extra"]) == {1, 2}
    # same hits as the run file (scores written there with 9 significant digits)
    from irbench.runs.trec import read_run

    run = read_run(run_dir / "run.trec")
    q3 = out[out.qid == "q3"]
    assert list(q3["docno"]) == list(run["q3"])[:7]


@pytest.mark.slow
def test_experiment_agrees_with_irbench_eval_on_scifact(tmp_path):
    path = shared_dataset("scifact")
    run_dir = _run(tmp_path, ["dataset=scifact", f"dataset.path={path}"])
    _check_agreement(run_dir, path / "qrels" / "test.tsv", tmp_path)


def test_a_calibrated_run_is_retrieved_with_its_calibrated_setting(beir_dir, tmp_path):
    from irbench.interop.pyterrier import IrbenchIndex

    run_dir = _run(tmp_path, ["dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir}",
                              "k=10", "index=numba_approx", "index.query_cut=1",
                              "index.heap_factor=0.3", "calibrate.target_recall=0.99"])  # fmt: skip
    knobs = json.loads((run_dir / "manifest.json").read_text())["stages"]["retrieve"]
    knobs = knobs["calibration"]["knobs"]
    assert knobs != {"query_cut": 1, "heap_factor": 0.3}  # calibration changed the setting
    index = IrbenchIndex(run_dir)
    got = index.retriever().transform(index.topics())
    from irbench.runs.trec import read_run

    want = read_run(run_dir / "run.trec")
    for qid, hits in got.groupby("qid"):
        ranked = sorted(want[qid], key=lambda d: -want[qid][d])
        assert hits.sort_values("rank")["docno"].tolist() == ranked


def test_configs_the_retriever_cannot_serve_are_errors(beir_dir, tmp_path):
    from irbench.errors import ConfigError
    from irbench.interop.pyterrier import IrbenchIndex

    run_dir = _run(tmp_path, ["dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir}",
                              "k=10"])  # fmt: skip
    with pytest.raises(ConfigError, match="config group"):
        IrbenchIndex(run_dir, ["index=numba_approx"])
    with pytest.raises(ConfigError, match="nope"):
        IrbenchIndex(run_dir, ["encoder.nope=1"])
    with pytest.raises(ConfigError, match="two indexes"):
        IrbenchIndex(["dataset=local", f"dataset.path={beir_dir}", "fusion=rrf"])


def test_a_run_directory_opens_from_any_working_directory(beir_dir, tmp_path, monkeypatch):
    import os

    from irbench.interop.pyterrier import IrbenchIndex

    start = tmp_path / "start"
    start.mkdir()
    monkeypatch.chdir(start)
    rel = os.path.relpath(beir_dir, start)
    run_pipeline(compose(["dataset=local", "dataset.name=tiny", f"dataset.path={rel}", "k=10",
                          "run_dir=runs/rel", "cache_dir=cache"]))  # fmt: skip
    monkeypatch.chdir(tmp_path)
    index = IrbenchIndex(start / "runs/rel")
    got = index.retriever().transform(index.topics())
    assert len(got) and not (tmp_path / "cache").exists()
