"""irbench bench train on a tiny random BERT and generated data: both engines train on the same
batches, rows and outputs are written, config mistakes are one-line errors."""

from __future__ import annotations

import json

import pytest

from irbench.errors import ConfigError
from tests.test_train import bert, compose, overrides, toy  # noqa: F401  (fixtures)


def test_bench_train_irbench_only_times_the_requested_steps(toy, bert, tmp_path):  # noqa: F811
    from irbench.bench.train import bench_train

    cfg = compose(*overrides(toy, bert, tmp_path))
    rows, meta = bench_train(cfg, steps=3, warmup=1, rounds=2, peer=False, out_dir=tmp_path / "b")
    mine = [r for r in rows if r["round"] != "all"]
    assert [r["engine"] for r in mine] == ["irbench", "irbench"]
    assert all(r["steps"] == 3 and r["seconds"] > 0 for r in mine)
    total = [r for r in rows if r["round"] == "all"][0]
    assert total["steps"] == 6
    assert total["steps_per_s"] == pytest.approx(6 / sum(r["seconds"] for r in mine), rel=1e-3)
    assert meta["ratio"] is None
    saved = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert len(saved) == 3 and (tmp_path / "b" / "bench.md").is_file()


def test_bench_train_against_sentence_transformers(toy, bert, tmp_path):  # noqa: F811
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("datasets")
    pytest.importorskip("accelerate")
    from irbench.bench.train import PEER, bench_train

    cfg = compose(*overrides(toy, bert, tmp_path))
    rows, meta = bench_train(cfg, steps=2, warmup=1, rounds=1, out_dir=tmp_path / "b")
    engines = [r["engine"] for r in rows if r["round"] != "all"]
    assert engines == [PEER, "irbench"]
    assert all(r["steps"] == 2 for r in rows if r["round"] != "all")
    assert meta["ratio"]["steps_per_s"] > 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (("encoder=splade_doc",), "mlm heads on both sides"),
        (("train.loss.in_batch=false", "train.negatives.per_query=1"), "in_batch=true"),
        (("train.grad_accum=2",), "grad_accum=1"),
    ],
)
def test_bench_train_rejects_workloads_the_peer_cannot_run(toy, bert, tmp_path, extra, message):  # noqa: F811
    from irbench.bench.train import bench_train

    cfg = compose(*overrides(toy, bert, tmp_path), *extra)
    with pytest.raises(ConfigError, match=message):
        bench_train(cfg, steps=1, warmup=1, rounds=1, peer=False, out_dir=tmp_path / "b")


def test_bench_train_needs_a_recipe(toy, bert, tmp_path):  # noqa: F811
    from irbench.bench.train import bench_train
    from irbench.config import compose as plain

    cfg = plain(
        ["dataset=scifact", f"dataset.path={toy}", "encoder=splade", f"encoder.backbone={bert}"]
    )
    with pytest.raises(ConfigError, match="train=splade"):
        bench_train(cfg, steps=1, warmup=1, rounds=1, peer=False)
