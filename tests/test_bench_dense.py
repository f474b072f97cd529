"""``irbench bench dense``: the harness on tiny dense data, the child builds, the synthetic
corpus and the CLI (no timing asserts)."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest
from typer.testing import CliRunner

from irbench.bench import dense
from irbench.cli.app import app
from irbench.errors import ConfigError, DataError
from irbench.index.faiss import FaissIndex


def unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def toy(tmp_path: Path, n: int = 1200, nq: int = 15, dim: int = 16) -> dense.DenseSet:
    x = unit(n, dim, 0)
    files = dense.write_chunks([x[:500], x[500:]], tmp_path / "docs")
    qids = [f"q{i}" for i in range(nq)]
    qrels = [(f"q{i}", f"d{(11 * i) % n}", 1) for i in range(nq)]
    return dense.DenseSet("toy", files, unit(nq, dim, 1), [f"d{i}" for i in range(n)], qids, qrels)


def test_dense_set_checks_and_blocks(tmp_path):
    ds = toy(tmp_path)
    assert (ds.n_docs, ds.dim) == (1200, 16)
    np.testing.assert_array_equal(np.vstack(list(ds.blocks().blocks())), ds.matrix())
    with pytest.raises(DataError, match="1200 doc vectors for 3 ids"):
        dense.DenseSet("bad", ds.files, ds.queries, ["a", "b", "c"], ds.qids)
    with pytest.raises(DataError, match="docs of dim 16"):
        dense.DenseSet("bad", ds.files, ds.queries[:, :4], ds.docnos, ds.qids)


def test_grids_and_defaults():
    assert dense.default_nlist(5183) == 64 and dense.default_nlist(1_000_000) == 1024
    assert dense.default_nlist(100) == 2  # at most n / 39 lists
    assert dense.default_factories(5183) == ["Flat", "IVF64,Flat", "HNSW32"]
    assert dense.search_grid("IVF8,Flat") == [{"nprobe": n} for n in (1, 2, 4, 8)]
    assert dense.search_grid("OPQ8,IVF16,PQ8", nprobe=[3]) == [{"nprobe": 3}]
    assert dense.search_grid("HNSW32", ef_search=[40]) == [{"ef_search": 40}]
    assert dense.search_grid("Flat") == [{}]
    engines = dense.default_engines(1000, ["Flat", "HNSW8"])
    assert [e[0] for e in engines] == ["irbench", "faiss", "irbench", "faiss", "numpy",
                                       "sentence_transformers"]  # fmt: skip
    with pytest.raises(ConfigError, match="--nprobe"):
        dense.default_engines(1000, nprobe=[0])
    with pytest.raises(ConfigError, match="--train-size"):
        dense.default_engines(1000, train_size=0)


def test_both_builds_make_the_same_index(tmp_path):
    """irbench (streamed from the chunks) and FAISS directly (stacked) build byte-identical
    IVF indexes from the same sample and seed, each in its own process with its memory."""
    ds = toy(tmp_path)
    params = {"factory": "IVF8,Flat", "train_size": 600, "seed": 3}
    a = dense.build_in_child("irbench", ds, params, tmp_path / "a")
    b = dense.build_in_child("faiss", ds, params, tmp_path / "b.faiss")
    for info in (a, b):
        assert info["build_s"] > 0
        if Path("/proc/self/status").exists():
            assert info["peak_rss_mb"] >= info["base_rss_mb"] > 0
    ours = FaissIndex.load(tmp_path / "a").cpu_index
    theirs = faiss.read_index(str(tmp_path / "b.faiss"))
    for index in (ours, theirs):  # nprobe is saved with the index; irbench sets its own
        faiss.extract_index_ivf(index).nprobe = 1
    assert bytes(faiss.serialize_index(ours)) == bytes(faiss.serialize_index(theirs))
    with pytest.raises(RuntimeError, match="unknown build kind"):
        dense.build_in_child("nope", ds, params, tmp_path / "c")
    # train_size null: both take index=faiss's default sample (here every row)
    plain = {"factory": "IVF8,PQ4", "seed": 1}
    dense.build_in_child("irbench", ds, plain, tmp_path / "p")
    dense.build_in_child("faiss", ds, plain, tmp_path / "q.faiss")
    ours = FaissIndex.load(tmp_path / "p").cpu_index
    theirs = faiss.read_index(str(tmp_path / "q.faiss"))
    for index in (ours, theirs):
        faiss.extract_index_ivf(index).nprobe = 1
    assert bytes(faiss.serialize_index(ours)) == bytes(faiss.serialize_index(theirs))


def test_bench_dense_rows_recall_and_outputs(tmp_path):
    ds = toy(tmp_path)
    engines = dense.default_engines(ds.n_docs, ["Flat", "IVF8,Flat"], nprobe=[1, 8], seed=2)
    out = tmp_path / "out"
    rows, meta = dense.bench_dense(
        ds, ks=(5, 50), engines=engines, only=["irbench", "faiss", "numpy"], threads=[1],
        min_seconds=0.0, min_repeats=1, latency=True, out_dir=out, echo=lambda m: None,
    )  # fmt: skip
    assert {r["engine"] for r in rows} == {"irbench faiss", "faiss", "numpy"}
    assert len(rows) == 2 * (1 + 1 + 2 + 2 + 1)  # ks x (Flat x 2, IVF x 2 settings x 2, numpy)
    by = {(r["engine"], r["setting"], r["k"]): r for r in rows}
    for k in (5, 50):
        assert by[("irbench faiss", "Flat", k)]["recall"] == 1.0
        assert by[("numpy", "exact; queries @ docs.T, argpartition", k)]["recall"] == 1.0
        assert by[("irbench faiss", "IVF8,Flat; nprobe 8", k)]["recall"] == 1.0  # all lists
        low = by[("irbench faiss", "IVF8,Flat; nprobe 1", k)]["recall"]
        assert low < 1.0 and by[("faiss", "IVF8,Flat; nprobe 1", k)]["recall"] == low
    assert all(r["p50_ms"] is not None and r["qps"] > 0 for r in rows)
    assert all(r["build_rss_mb"] is not None for r in rows if r["engine"] != "numpy")
    saved = json.loads((out / "bench.json").read_text())
    assert len(saved) == len(rows) and list(saved[0]) == dense.COLUMNS
    vs = {r["vs"] for r in meta["ratios"]}
    assert "numpy exact" in vs and "FAISS directly (same index; lowest ratio)" in vs
    assert any(v.startswith("irbench Flat (exact); IVF8,Flat") for v in vs)
    assert [m["factory"] for m in meta["memory"]] == ["Flat", "IVF8,Flat"]
    md = (out / "bench.md").read_text()
    assert md.startswith("# Dense search: toy") and "growth irbench / FAISS" in md
    assert (out / "recall_latency.png").stat().st_size > 0
    with pytest.raises(ConfigError, match="unknown"):
        dense.bench_dense(ds, engines=engines, only=["pisa"], echo=lambda m: None)


def test_synthesize(tmp_path, monkeypatch):
    monkeypatch.setattr(dense, "CHUNK_ROWS", 300)
    real = toy(tmp_path)
    syn = dense.synthesize(real, 1000, tmp_path / "s", noise=0.5, seed=4)
    assert (syn.n_docs, len(syn.files), syn.dim) == (1000, 4, 16)
    x = syn.matrix()
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    nearest = (x @ real.matrix().T).max(axis=1)  # each doc stays near its parent
    assert nearest.min() > 0.7 and nearest.max() < 1.0
    again = dense.synthesize(real, 1000, tmp_path / "s2", noise=0.5, seed=4).matrix()
    np.testing.assert_array_equal(x, again)
    same = dense.synthesize(real, 50, tmp_path / "s3", noise=0.0).matrix()
    np.testing.assert_allclose((same @ real.matrix().T).max(axis=1), 1.0, atol=1e-5)
    assert syn.qrels == [] and syn.qids == real.qids
    with pytest.raises(ConfigError):
        dense.synthesize(real, 0, tmp_path / "s4")


def test_cli_bench_dense(tmp_path, beir_dir, monkeypatch):
    from tests.conftest import save_tiny_bert
    from tests.test_dense_faiss import WORDS

    monkeypatch.chdir(tmp_path)
    model = save_tiny_bert(tmp_path / "bert", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
                                               *WORDS], hidden=32, masked_lm=False)  # fmt: skip
    common = ["dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir}", "encoder=dense",
              f"encoder.backbone={model}", "encoder.device=cpu"]  # fmt: skip
    runner = CliRunner()
    res = runner.invoke(app, ["bench", "dense", *common, "--factory", "Flat", "--factory",
                              "IVF4,Flat", "--nprobe", "1", "--engine", "irbench", "--engine",
                              "faiss", "--k", "5", "--threads", "1", "--min-seconds", "0",
                              "--no-latency", "--docs", "900", "--out", "o"])  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "o" / "bench.json").read_text())
    assert {r["corpus"] for r in rows} == {"tiny-synth900"} and len(rows) == 4
    assert "growth irbench / FAISS" in res.output
    bad = runner.invoke(app, ["bench", "dense", "dataset=local", f"dataset.path={beir_dir}"])
    assert bad.exit_code != 0 and "needs a dense encoder" in bad.output
    assert isinstance(bad.exception, SystemExit)  # a handled one-line error, not a crash
    for args, msg in ((["--engine", "pisa"], "unknown"), (["--k", "0"], "k values >= 1"),
                      (["--factory", "IVF4,Nope"], "index.factory='IVF4,Nope'")):  # fmt: skip
        res = runner.invoke(app, ["bench", "dense", *common, *args, "--out", "x"])
        assert res.exit_code != 0 and msg in res.output, res.output
        assert isinstance(res.exception, SystemExit)
    assert not (tmp_path / "x").exists()
