"""Reproducibility and crash safety: reproduce, checksummed caches, concurrent runs, doctor."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from typer.testing import CliRunner

from irbench.cli.app import app

runner = CliRunner()


def run_args(beir, *extra):
    return ["run", "dataset=local", "dataset.name=tiny", f"dataset.path={beir}", "k=20", *extra]


def cache_entry(run_dir):
    return json.loads((run_dir / "manifest.json").read_text())["index"]["cache"]


def test_reproduce_reports_identical(beir_dir, workdir):
    assert runner.invoke(app, run_args(beir_dir)).exit_code == 0
    result = runner.invoke(app, ["reproduce", "runs/tiny/bm25.numba"])
    assert result.exit_code == 0, result.output
    assert "run.trec: identical" in result.output and "byte-identical" in result.output


def test_edited_index_is_a_checksum_failure_then_a_rebuild(beir_dir, workdir):
    assert runner.invoke(app, run_args(beir_dir)).exit_code == 0
    run_dir = workdir / "runs/tiny/bm25.numba"
    first = (run_dir / "run.trec").read_bytes()
    weights = np.load(f"{cache_entry(run_dir)}/index/weights.npy", mmap_mode="r+")
    weights[3] = weights[3] * 2 + 1
    weights.flush()
    del weights
    result = runner.invoke(app, ["reproduce", str(run_dir)])
    assert result.exit_code == 1
    assert "checksum mismatch" in result.output and "weights.npy" in result.output
    result = runner.invoke(app, run_args(beir_dir))  # a normal run rebuilds the entry
    assert result.exit_code == 0 and "rebuilding" in result.output
    assert (run_dir / "run.trec").read_bytes() == first


def test_truncated_index_file_is_rebuilt_not_used(beir_dir, workdir):
    assert runner.invoke(app, run_args(beir_dir)).exit_code == 0
    run_dir = workdir / "runs/tiny/bm25.numba"
    first = (run_dir / "run.trec").read_bytes()
    doc_ids = f"{cache_entry(run_dir)}/index/doc_ids.npy"
    with open(doc_ids, "r+b") as f:
        f.truncate(200)
    result = runner.invoke(app, run_args(beir_dir))
    assert result.exit_code == 0 and "checksum mismatch" in result.output
    assert (run_dir / "run.trec").read_bytes() == first


def test_changed_run_file_is_pinpointed(beir_dir, workdir):
    assert runner.invoke(app, run_args(beir_dir)).exit_code == 0
    run_dir = workdir / "runs/tiny/bm25.numba"
    lines = (run_dir / "run.trec").read_text().splitlines()
    qid = lines[0].split()[0]
    a, b = lines[0].split(), lines[1].split()
    a[2], b[2] = b[2], a[2]  # swap the top two docs of the first query
    lines[0], lines[1] = " ".join(a), " ".join(b)
    (run_dir / "run.trec").write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["reproduce", str(run_dir)])
    assert result.exit_code == 1
    assert "run.trec: DIFFERENT" in result.output and "diverged at: retrieve" in result.output
    assert f"changed (1): {qid}" in result.output


def test_cold_and_warm_cache_and_thread_counts_give_the_same_bytes(beir_dir, workdir):
    outputs = []
    for extra in (
        ["threads=1", "cache_dir=c1"],
        ["threads=2", "cache_dir=c1"],
        ["threads=2", "cache_dir=c2"],
    ):
        assert runner.invoke(app, run_args(beir_dir, *extra, "run_dir=r")).exit_code == 0
        outputs.append((workdir / "r/run.trec").read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]


def test_concurrent_runs_sharing_a_cache_entry_both_finish(beir_dir, workdir):
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "irbench.cli.app", *run_args(beir_dir, f"run_dir=r{i}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert (workdir / "r0/run.trec").read_bytes() == (workdir / "r1/run.trec").read_bytes()
    entries = list((workdir / "runs/.cache/index").glob("*/COMPLETE"))
    assert len(entries) == 1
    reused = [
        json.loads((workdir / f"r{i}/manifest.json").read_text())["index"]["reused"]
        for i in range(2)
    ]
    assert sorted(reused) == [False, True]


def test_doctor_reports_environment_and_cache(workdir):
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["packages"]["numpy"] == np.__version__
    assert info["threads"]["cpus"] >= 1 and "numba_threads" in info["threads"]
    assert info["cache"]["path"].endswith(".cache")


def test_reproduce_names_a_change_of_the_code(beir_dir, workdir):
    import json

    assert runner.invoke(app, run_args(beir_dir)).exit_code == 0
    run_dir = workdir / "runs/tiny/bm25.numba"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["git"] = {"commit": "0" * 40, "dirty": False}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    result = runner.invoke(app, ["reproduce", str(run_dir)])
    assert f"git commit: {'0' * 40} ->" in result.output


def test_a_run_with_relative_paths_reproduces_from_another_folder(
    beir_dir, workdir, monkeypatch, tmp_path
):
    import os

    rel = os.path.relpath(beir_dir, workdir)  # dataset.path relative to where the run starts
    assert runner.invoke(app, run_args(rel)).exit_code == 0
    run_dir = workdir / "runs/tiny/bm25.numba"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = runner.invoke(app, ["reproduce", str(run_dir)])
    assert result.exit_code == 0 and "byte-identical" in result.output, result.output
    assert not (elsewhere / "runs").exists()  # the stored relative cache_dir was used
