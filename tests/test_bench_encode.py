"""`irbench bench encode` on tiny random BERTs (fast; no network, no timing assertions)."""

# ruff: noqa: F811  (the tiny_bert fixture is imported from test_sparse_encoders)
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from irbench.bench.encode import COLUMNS, doc_flops, max_abs_diff, model_dims, select
from irbench.cli.app import app
from tests.test_sparse_encoders import tiny_bert  # noqa: F401  (fixture)

runner = CliRunner()


def _has_st() -> bool:
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


def invoke(*args: str):
    return runner.invoke(app, ["bench", "encode", *args], catch_exceptions=False)


def read(out: Path) -> tuple[list[dict], dict]:
    rows = json.loads((out / "bench.json").read_text())
    meta = json.loads((out / "meta.json").read_text())
    assert (out / "bench.md").is_file()
    return rows, meta


# -- pieces ------------------------------------------------------------------------------------
def test_doc_flops_follow_the_formula():
    dims = {"H": 128, "I": 512, "layers": 2, "V": 30522}
    n = 300
    layer = 8 * n * 128**2 + 4 * n * n * 128 + 4 * n * 128 * 512
    got = doc_flops(np.array([n]), dims, "mlm")[0]
    assert got == pytest.approx(2 * layer + 2 * n * 128**2 + 2 * n * 128 * 30522)
    assert doc_flops(np.array([n]), dims, "dense")[0] == pytest.approx(2 * layer)
    # the vocabulary projection is most of splade-tiny's work (~2.3 GFLOP at 300 tokens)
    assert 2.3e9 < got - 2 * layer < 2.4e9


def test_model_dims_reads_bert_and_distilbert_names():
    from transformers import BertConfig, DistilBertConfig

    assert model_dims(BertConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3)) == {
        "H": 32, "I": 64, "layers": 3, "V": 30522,
    }  # fmt: skip
    d = model_dims(DistilBertConfig(dim=48, hidden_dim=96, n_layers=2, n_heads=2))
    assert (d["H"], d["I"], d["layers"]) == (48, 96, 2)


def test_select_stratified_and_first():
    lengths = np.array([5, 50, 10, 40, 20, 30, 1, 60])
    assert select(lengths, None, "stratified").tolist() == list(range(8))
    assert select(lengths, 3, "first").tolist() == [0, 1, 2]
    picks = select(lengths, 4, "stratified")
    assert picks.tolist() == sorted(picks.tolist()) and len(set(picks.tolist())) == 4
    # one doc from each quarter of the length distribution
    assert sorted(lengths[picks].tolist()) == [5, 20, 40, 60]


def test_max_abs_diff_sparse_ignores_special_columns():
    import scipy.sparse as sp

    ours = sp.csr_matrix(np.array([[0.0, 1.0, 0.5], [0.0, 0.0, 2.0]], dtype=np.float32))
    theirs = sp.csr_matrix(np.array([[0.7, 1.0, 0.5], [0.0, 0.0, 2.25]], dtype=np.float32))
    diff, dropped = max_abs_diff(ours, theirs, np.array([0]))
    assert diff == pytest.approx(0.25) and dropped == 1
    assert max_abs_diff(np.ones((2, 3)), np.ones((2, 3)))[0] == 0.0


# -- the command -------------------------------------------------------------------------------
def test_bench_encode_sparse(tiny_bert, beir_dir, workdir):
    out = workdir / "bench"
    result = invoke(
        "dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir}", "encoder=splade",
        f"encoder.backbone={tiny_bert}", "encoder.batch_size=4", "--docs", "24", "--slice", "10",
        "--scale", "1", "--scale", "2", "--probe-seconds", "0.001", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows, meta = read(out)
    assert all(list(r)[: len(COLUMNS)] == COLUMNS for r in rows)
    modes = [(r["engine"], r["mode"]) for r in rows]
    assert ("irbench", "interleaved") in modes
    assert [r["docs"] for r in rows if r["mode"].startswith("stream")] == [24, 48]
    assert meta["docs"] == 24 and len(meta["rounds"]) == 3  # slices of 10, 10, 4
    assert meta["flop_limit"]["gflops_median"] > 0 and meta["flop_limit"]["by_shape"]
    for r in rows:
        assert r["docs_per_s"] > 0 and r["gflops"] > 0 and r["pct_of_limit"] > 0
        assert r["peak_rss_mb"] is None or r["peak_rss_mb"] > 0
    if _has_st():
        peer = next(r for r in rows if r["engine"] == "sentence-transformers")
        assert peer["max_abs_diff"] < 1e-4, peer
        assert meta["ratio"]["docs_per_s"] > 0
    else:
        assert any("not installed" in n for n in meta["notes"])


def test_bench_encode_dense(tiny_bert, beir_dir, workdir):
    out = workdir / "bench"
    result = invoke(
        "dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir}", "encoder=dense",
        f"encoder.backbone={tiny_bert}", "encoder.batch_size=4", "--docs", "12", "--select",
        "first", "--probe-seconds", "0.001", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows, meta = read(out)
    assert meta["kind"] == "dense" and meta["docs"] == 12
    if _has_st():
        peer = next(r for r in rows if r["engine"] == "sentence-transformers")
        assert peer["max_abs_diff"] < 1e-4, peer


def test_no_peer_for_heads_sentence_transformers_lacks(tiny_bert, beir_dir, workdir):
    out = workdir / "bench"
    result = invoke(
        "dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir}", "encoder=unicoil",
        f"encoder.backbone={tiny_bert}", "--docs", "8", "--probe-seconds", "0.001",
        "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows, meta = read(out)
    assert [r["engine"] for r in rows] == ["irbench"]
    if _has_st():
        assert any("mlp/max/relu" in n for n in meta["notes"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["encoder=bm25"], "not a neural encoder"),
        (["encoder=splade", "--select", "longest"], "--select 'longest'"),
        (["encoder=splade", "--docs", "0"], "--docs 0"),
        (["encoder=splade_doc", "encoder.doc.head=binary"], "runs no model"),
    ],
)
def test_user_mistakes_are_one_line_errors(tiny_bert, beir_dir, workdir, args, message):
    backbone = [] if "encoder=bm25" in args else [f"encoder.backbone={tiny_bert}"]
    result = runner.invoke(
        app,
        ["bench", "encode", "dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir}",
         *backbone, *args],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


# -- FAISS search-time knobs and the index cache ----------------------------------------------
def test_faiss_search_knobs_reuse_the_cached_index(tiny_bert, beir_dir, tmp_path):
    from irbench.config import compose
    from irbench.pipeline import build_index

    def handle(*extra: str):
        return build_index(compose([
            "dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir}", "encoder=dense",
            f"encoder.backbone={tiny_bert}", "encoder.device=cpu", "index=faiss",
            "index.factory=HNSW8", f"cache_dir={tmp_path / 'cache'}", *extra,
        ]))  # fmt: skip

    first = handle("index.ef_search=16")
    second = handle("index.ef_search=64", "index.nprobe=4")
    assert not first.reused and second.reused and second.path == first.path
    assert second.index.ef_search == 64 and second.index.nprobe == 4
    third = handle("index.ef_construction=20")  # a build-time setting: a new index
    assert not third.reused and third.path != first.path
