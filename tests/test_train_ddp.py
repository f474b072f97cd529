"""The DDP code path of irbench train: two gloo processes on CPU (torchrun), and splade-tiny on
scifact's train split when ../shared is present."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import SHARED_MODELS, shared_dataset
from tests.test_train import make_tiny_bert, make_train_beir, overrides


def test_two_gloo_processes_equal_one_process_accumulating_two_micro_batches(tmp_path):
    from safetensors.torch import load_file

    from irbench.config import compose
    from irbench.train import train

    bert = make_tiny_bert(tmp_path / "bert", dropout=0.0)  # no dropout: the runs can agree
    toy = make_train_beir(tmp_path / "beir")
    common = ["train.max_steps=3", "train.negatives.per_query=1", "train.batch_size=8"]
    ddp = overrides(toy, bert, tmp_path / "ddp", *common)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "IRBENCH_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "irbench.cli.app", "train", *ddp,
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.count("model trained:") == 1  # rank 0 reports
    ddp_dir = tmp_path / "ddp" / "run"
    import json

    summary = json.loads((ddp_dir / "train" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 3

    single = overrides(toy, bert, tmp_path / "one", *common, "train.grad_accum=2")
    result = train(compose(single))
    a = load_file(str(ddp_dir / "checkpoint" / "model.safetensors"))
    b = load_file(str(result.checkpoint / "model.safetensors"))
    start = load_file(str(bert / "model.safetensors"))
    key = "bert.embeddings.word_embeddings.weight"
    assert not torch.equal(a[key], start[key])  # it trained
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k


@pytest.mark.slow
def test_splade_tiny_trains_on_scifact_train_split(tmp_path):
    scifact = shared_dataset("scifact")
    model = SHARED_MODELS / "splade-tiny"
    if not (model / "config.json").is_file():
        pytest.skip(f"{model} is absent")
    from irbench.config import compose
    from irbench.encoders.sparse import SparseNeuralEncoder
    from irbench.train import train

    cfg = compose(
        [
            "train=splade", "dataset=scifact", f"dataset.path={scifact}", "encoder=splade",
            f"encoder.backbone={model}", f"run_dir={tmp_path / 'run'}",
            f"cache_dir={tmp_path / 'cache'}", "train.max_steps=3", "train.batch_size=4",
            "train.negatives.depth=20", "train.doc_max_length=128",
        ]
    )  # fmt: skip
    result = train(cfg)
    assert result.summary["data"]["train_queries"] == 809
    enc = SparseNeuralEncoder(backbone=str(result.checkpoint), device="cpu")
    assert enc.encode_texts(["protein folding in cancer cells"]).nnz > 0
    assert Path(result.checkpoint / "irbench_encoder.yaml").is_file()
