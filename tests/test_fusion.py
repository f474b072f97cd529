"""Fusion on toy runs against hand-computed RRF and interpolation scores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from irbench.cli.app import app
from irbench.data.fingerprint import file_fingerprint
from irbench.errors import ConfigError, DataError
from irbench.fusion import fuse_runs, fuse_to_run_dir, normalize
from irbench.runs.trec import read_run, write_run

A = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d5": 1.0}}
B = {"q1": {"d3": 0.9, "d4": 0.5, "d1": 0.1}, "q3": {"d9": 2.0}}


def test_rrf_by_hand():
    fused = fuse_runs([A, B], method="rrf", rrf_k=60)
    q1 = fused["q1"]
    expect = {
        "d1": 1 / 61 + 1 / 63,
        "d2": 1 / 62,
        "d3": 1 / 63 + 1 / 61,
        "d4": 1 / 62,
    }
    assert q1 == pytest.approx(expect, abs=1e-15)
    # d1 and d3 tie exactly, as do d2 and d4: ties go to the larger doc id (trec_eval's order)
    assert list(q1) == ["d3", "d1", "d4", "d2"]
    assert fused["q2"] == {"d5": 1 / 61} and fused["q3"] == {"d9": 1 / 61}
    assert list(fused) == ["q1", "q2", "q3"]  # first-seen query order


def test_rrf_ranks_break_input_ties_by_doc_id():
    # as trec_eval ranks the input run: c, then the tied b before a
    tied = {"q": {"b": 1.0, "a": 1.0, "c": 2.0}}
    fused = fuse_runs([tied], method="rrf", rrf_k=0)
    assert fused["q"] == {"c": 1.0, "b": 1 / 2, "a": 1 / 3}
    assert list(fused["q"]) == ["c", "b", "a"]


def test_interpolation_minmax_by_hand():
    fused = fuse_runs([A, B], method="interpolate", alpha=0.3, norm="minmax")
    # A q1: d1 1, d2 .5, d3 0 ; B q1: d3 1, d4 .5, d1 0 ; docs a run missed get 0
    expect = {
        "d1": 0.3 * 1.0 + 0.7 * 0.0,
        "d2": 0.3 * 0.5 + 0.7 * 0.0,
        "d3": 0.3 * 0.0 + 0.7 * 1.0,
        "d4": 0.3 * 0.0 + 0.7 * 0.5,
    }
    assert fused["q1"] == pytest.approx(expect, abs=1e-15)
    assert list(fused["q1"]) == ["d3", "d4", "d1", "d2"]
    # one hit: minmax gives 1.0; a query only one run has gets only that run's weight
    assert fused["q2"] == {"d5": pytest.approx(0.3)}
    assert fused["q3"] == {"d9": pytest.approx(0.7)}


def test_interpolation_zscore_by_hand():
    fused = fuse_runs([A, B], method="interpolate", alpha=0.5, norm="zscore")
    sd_a = math.sqrt(((3 - 2) ** 2 + 0 + (1 - 2) ** 2) / 3)
    za = {"d1": 1 / sd_a, "d2": 0.0, "d3": -1 / sd_a}
    mb = 1.5 / 3
    sd_b = math.sqrt(((0.9 - mb) ** 2 + (0.5 - mb) ** 2 + (0.1 - mb) ** 2) / 3)
    zb = {"d3": (0.9 - mb) / sd_b, "d4": (0.5 - mb) / sd_b, "d1": (0.1 - mb) / sd_b}
    floor_a = min(za.values())
    expect = {d: 0.5 * za.get(d, floor_a) + 0.5 * zb.get(d, min(zb.values())) for d in
              ("d1", "d2", "d3", "d4")}  # fmt: skip
    assert fused["q1"] == pytest.approx(expect, abs=1e-12)
    assert normalize({"x": 2.0, "y": 2.0}, "zscore") == {"x": 0.0, "y": 0.0}


def test_cutoff_weights_and_errors():
    assert len(fuse_runs([A, B], k=2)["q1"]) == 2
    w = fuse_runs([A, B], method="rrf", weights=[2.0, 0.0], rrf_k=60)["q1"]
    assert w["d1"] == pytest.approx(2 / 61) and w["d4"] == 0.0
    three = fuse_runs([A, B, A], method="interpolate", weights=[1, 1, 1])
    assert three["q1"]["d1"] == pytest.approx(2.0)
    with pytest.raises(ConfigError, match="one weight per run"):
        fuse_runs([A, B, A], method="interpolate")
    with pytest.raises(ConfigError, match="unknown fusion method"):
        fuse_runs([A, B], method="combsum")
    with pytest.raises(ConfigError, match="normalisation"):
        fuse_runs([A, B], method="interpolate", norm="rank")
    with pytest.raises(ConfigError, match="alpha"):
        fuse_runs([A, B], method="interpolate", alpha=1.5)
    for bad in ({"rrf_k": "60"}, {"k": 2.5}, {"k": True}, {"weights": ["1", 1]}):
        with pytest.raises(ConfigError, match=f"{next(iter(bad))} must be"):
            fuse_runs([A, B], **bad)
    with pytest.raises(ConfigError, match="alpha must be a finite number"):
        fuse_runs([A, B], method="interpolate", alpha="0.5")
    with pytest.raises(ConfigError, match="weights must be a finite number"):
        fuse_runs([A, B], weights=[float("nan"), 1.0])


def test_fuse_cli_writes_a_deterministic_trec_run(tmp_path):
    for name, run in (("a.trec", A), ("b.trec", B)):
        write_run(tmp_path / name, [(q, list(h.items())) for q, h in run.items()], "x")
    out = tmp_path / "fused.trec"
    runner = CliRunner()
    args = ["fuse", str(tmp_path / "a.trec"), str(tmp_path / "b.trec"), "--rrf-k", "60"]
    result = runner.invoke(app, [*args, "--output", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0] == f"q1 Q0 d3 1 {1 / 61 + 1 / 63!r} rrf"  # float64: exact; d3 ties d1
    assert [line.split()[2] for line in lines[:4]] == ["d3", "d1", "d4", "d2"]
    first = out.read_bytes()
    assert runner.invoke(app, [*args, "--output", str(out)]).exit_code == 0
    assert out.read_bytes() == first
    assert read_run(out)["q3"] == {"d9": pytest.approx(1 / 61, abs=1e-6)}
    bad = runner.invoke(app, args)
    assert bad.exit_code == 2 and "--output" in bad.output


def test_fused_run_directory_goes_on_the_leaderboard(tmp_path):
    from irbench.report.leaderboard import build
    from tests.test_report import make_run_dir, toy_qrels

    a = make_run_dir(tmp_path / "runs/alpha/bm25.numba", "alpha", quality=0.8)
    b = make_run_dir(tmp_path / "runs/alpha/dense.faiss", "alpha", encoder="dense",
                     index="faiss", quality=1.0, seed=3)  # fmt: skip
    qrels = tmp_path / "qrels.txt"
    qrels.write_text(
        "".join(f"{q.query_id} 0 {q.doc_id} {q.relevance}\n" for q in toy_qrels("alpha"))
    )
    for run in (a, b):  # the inputs were judged on this very file
        _set_qrels_fingerprint(run, file_fingerprint(qrels))
    out, metrics = fuse_to_run_dir([a, b], tmp_path / "runs/alpha/rrf", qrels=qrels)
    assert set(metrics) == {"nDCG@10", "RR@10", "R@100"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fusion"]["method"] == "rrf" and len(manifest["fusion"]["inputs"]) == 2
    stats = json.loads((out / "stats.json").read_text())
    assert stats["ms_per_query"] == 3.0 and stats["index_mb"] == 6.0  # sums of the inputs
    lb = build([tmp_path / "runs"], baseline="bm25")
    row = next(r for r in lb.rows if r.name == "rrf(bm25+dense)")
    assert row.cells["alpha"].value == metrics["nDCG@10"] and row.cells["alpha"].p is not None
    # the same fusion through the library on the run files gives the same run.trec
    fused = fuse_runs([read_run(a / "run.trec"), read_run(b / "run.trec")])
    write_run(tmp_path / "x.trec", [(q, list(h.items())) for q, h in fused.items()], "rrf")
    assert (tmp_path / "x.trec").read_bytes() == (out / "run.trec").read_bytes()
    # `irbench reproduce` says what to do with it, in one line
    from typer.testing import CliRunner

    from irbench.cli.app import app

    result = CliRunner().invoke(app, ["reproduce", str(out)])
    assert result.exit_code == 2 and "made by `irbench fuse`" in result.output
    assert "Traceback" not in result.output


def _set_qrels_fingerprint(run: Path, value: str) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["dataset"]["fingerprint"]["qrels"] = value
    (run / "manifest.json").write_text(json.dumps(manifest))


def test_a_fused_run_dir_records_the_qrels_it_was_judged_on(tmp_path):
    """--qrels other than the inputs': the manifest names them, so the leaderboard leaves the
    fused run out of the inputs' column (it showed a value from other qrels, marked against
    the baseline's)."""
    from irbench.report.leaderboard import build
    from tests.test_report import make_run_dir, toy_qrels

    a = make_run_dir(tmp_path / "runs/alpha/bm25.numba", "alpha", quality=0.8)
    b = make_run_dir(tmp_path / "runs/alpha/dense.faiss", "alpha", encoder="dense",
                     index="faiss", quality=1.0, seed=3)  # fmt: skip
    full = toy_qrels("alpha")
    cut = tmp_path / "cut.txt"
    cut.write_text("".join(f"{q.query_id} 0 {q.doc_id} {q.relevance}\n" for q in full[:10]))
    out, _ = fuse_to_run_dir([a, b], tmp_path / "runs/alpha/rrf", qrels=cut)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"]["fingerprint"]["qrels"] == file_fingerprint(cut)
    lb = build([tmp_path / "runs"], baseline="bm25")
    assert "rrf(bm25+dense)" not in {r.name for r in lb.rows}
    assert any("other qrels" in note for note in lb.notes)
    again, _ = fuse_to_run_dir([out, a], tmp_path / "again", qrels=cut)  # same docs: it fuses
    assert (again / "run.trec").is_file()
    for bad in ({"k": "abc"}, {"weights": ["x", 1]}, {"rrf_k": None}):  # one-line errors
        with pytest.raises(ConfigError, match=f"{next(iter(bad))} must be"):
            fuse_to_run_dir([a, b], tmp_path / "bad", qrels=cut, **bad)


def test_a_failed_fusion_writes_nothing_and_never_replaces_another_folder(tmp_path):
    from tests.test_report import make_run_dir, toy_qrels

    a = make_run_dir(tmp_path / "a", "alpha")
    b = make_run_dir(tmp_path / "b", "alpha", encoder="dense", index="faiss", seed=3)
    unjudged = tmp_path / "other.txt"
    unjudged.write_text("nobody 0 d1 1\n")
    with pytest.raises(DataError, match="other.txt"):
        fuse_to_run_dir([a, b], tmp_path / "out", qrels=unjudged)
    assert not (tmp_path / "out").exists()
    before = (a / "run.trec").read_bytes()
    with pytest.raises(ConfigError, match="not an earlier fused run directory"):
        fuse_to_run_dir([a, b], a)  # a run directory of another kind
    assert (a / "run.trec").read_bytes() == before
    good = tmp_path / "qrels.txt"
    good.write_text(
        "".join(f"{q.query_id} 0 {q.doc_id} {q.relevance}\n" for q in toy_qrels("alpha"))
    )
    first, _ = fuse_to_run_dir([a, b], tmp_path / "f", qrels=good)
    again, _ = fuse_to_run_dir([a, b], first, method="interpolate", qrels=good)  # replaced
    assert json.loads((again / "manifest.json").read_text())["fusion"]["method"] == "interpolate"


def test_fusion_of_different_datasets_is_refused(tmp_path):
    from tests.test_report import make_run_dir

    a = make_run_dir(tmp_path / "a", "alpha")
    b = make_run_dir(tmp_path / "b", "beta")
    with pytest.raises(ConfigError, match="different datasets"):
        fuse_to_run_dir([a, b], tmp_path / "out", qrels=Path("unused"))
