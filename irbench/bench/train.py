"""``irbench bench train``: training steps/s of irbench's trainer against sentence-transformers'
``SparseEncoderTrainer`` on the same model, examples, batch, loss and regulariser weights, in
one process.

* **Workload.** The ``train`` recipe of the config (``train=splade ...``) fixes the examples:
  irbench's :class:`~irbench.train.data.TrainingData` (qrels positives, mined hard negatives)
  cut into ``warmup + steps`` batches of ``train.batch_size``. Both engines train on exactly
  those batches in that order (the peer gets a sequential batch sampler): query, positive and
  ``train.negatives.per_query`` negatives per example, with in-batch negatives.
* **Peer.** ``SparseEncoder(backbone)`` + ``SpladeLoss(SparseMultipleNegativesRankingLoss)``
  with ``train.reg.doc.flops`` / ``train.reg.query.flops`` as its FLOPS regulariser weights,
  run by ``SparseEncoderTrainer`` (AdamW, linear schedule, the recipe's lr, weight decay and
  gradient clipping; no evaluation, logging or saving), ``max_seq_length`` = the recipe's
  ``doc_max_length``.
* **irbench.** :func:`irbench.train.train` with the same recipe, evaluation and checkpoints off,
  in a temporary run folder.
* **Timing.** Wall time from the end of optimizer step ``warmup`` to the end of the last step
  (data collation and tokenisation included for both); engines alternate for ``rounds``
  rounds, so slow spells of a shared machine fall on both. steps/s = timed steps / seconds
  summed over rounds.

Outputs in ``out_dir``: ``bench.json`` (rows, keys :data:`COLUMNS`), ``bench.md``, ``meta.json``.
"""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from irbench.bench import timing
from irbench.errors import ConfigError

COLUMNS = ["engine", "round", "steps", "batch_size", "seconds", "steps_per_s", "examples_per_s"]
PEER = "sentence-transformers"
INSTALL_HINT = "pip install 'irbench[bench]'"


def _peer_modules():
    try:
        import datasets  # noqa: F401
        from sentence_transformers.sparse_encoder import (
            SparseEncoder,
            SparseEncoderTrainer,
            SparseEncoderTrainingArguments,
        )
        from sentence_transformers.sparse_encoder.losses import (
            SparseMultipleNegativesRankingLoss,
            SpladeLoss,
        )
    except ImportError as exc:
        return None, f"{PEER} trainer unavailable ({exc.name or exc}); {INSTALL_HINT}"
    return (
        SparseEncoder, SparseEncoderTrainer, SparseEncoderTrainingArguments, SpladeLoss,
        SparseMultipleNegativesRankingLoss,
    ), None  # fmt: skip


def _check(cfg: Any, s: Any) -> None:
    enc = cfg.encoder
    if enc.get("doc", {}).get("head") != "mlm" or enc.get("query", {}).get("head") != "mlm":
        raise ConfigError(
            f"irbench bench train compares SPLADE training (mlm heads on both sides); "
            f"encoder={enc.name} has query.head={enc.get('query', {}).get('head')}, "
            f"doc.head={enc.get('doc', {}).get('head')} (use encoder=splade)"
        )
    if s.loss != "infonce" or not s.in_batch:
        raise ConfigError(
            "irbench bench train times the peer's SpladeLoss(SparseMultipleNegativesRankingLoss):"
            " use train.loss.name=infonce with train.loss.in_batch=true"
        )
    if s.grad_accum != 1:
        raise ConfigError(
            "irbench bench train: set train.grad_accum=1 (the peer has no equivalent here)"
        )


def _peer_round(mods, cfg: Any, s: Any, examples: list[Any], docs: dict[str, str], warmup: int,
                device: str, tmp: Path) -> tuple[float, int]:  # fmt: skip
    """Seconds for the timed steps of one peer run, and the number of timed steps."""
    import torch
    from datasets import Dataset
    from sentence_transformers.base.sampler import DefaultBatchSampler
    from torch.utils.data import SequentialSampler
    from transformers import TrainerCallback

    SparseEncoder, Trainer, Args, SpladeLoss, MNRL = mods
    cols: dict[str, list[str]] = {
        "query": [e.query for e in examples],
        "positive": [docs[e.pos] for e in examples],
    }
    for j in range(s.negatives):
        cols[f"negative_{j + 1}"] = [docs[e.negs[j]] for e in examples]
    dataset = Dataset.from_dict(cols)
    torch.manual_seed(s.seed)
    model = SparseEncoder(str(cfg.encoder.backbone), device=device)
    model.max_seq_length = s.doc_max_length
    loss = SpladeLoss(
        model, MNRL(model, scale=1.0 / s.temperature),
        document_regularizer_weight=s.reg_doc.flops, query_regularizer_weight=s.reg_query.flops,
    )  # fmt: skip
    marks: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            marks.append(time.perf_counter())

    def sequential(ds, **kw):  # noqa: ANN001
        kw.pop("generator", None)
        return DefaultBatchSampler(SequentialSampler(ds), **{**kw, "generator": None})

    args = Args(
        output_dir=str(tmp / "peer"), per_device_train_batch_size=s.batch_size,
        max_steps=len(examples) // s.batch_size, learning_rate=s.lr, weight_decay=s.weight_decay,
        warmup_steps=0, lr_scheduler_type="linear", max_grad_norm=s.max_grad_norm or 0.0,
        save_strategy="no", eval_strategy="no", logging_strategy="no", report_to="none",
        disable_tqdm=True, seed=s.seed, dataloader_num_workers=0, dataloader_drop_last=True,
        use_cpu=device == "cpu", batch_sampler=sequential,
    )  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=dataset, loss=loss, callbacks=[Clock()])
    trainer.train()
    steps = len(marks) - warmup
    seconds = marks[-1] - marks[warmup - 1]
    del trainer, model, loss
    gc.collect()
    return seconds, steps


def _irbench_round(
    cfg: Any, s: Any, n_steps: int, warmup: int, tmp: Path, k: int
) -> tuple[float, int]:
    from omegaconf import OmegaConf, open_dict

    from irbench.train import train

    run = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    with open_dict(run):
        run.run_dir = str(tmp / f"irbench-{k}")
        run.train.max_steps = n_steps
        run.train.epochs = None
        run.train.resume = False
        run.train.eval.every = 0
        run.train.checkpoint.every = 0
        run.train.log_every = 10**9
        run.train.optim.warmup_steps = 0
    marks: list[float] = []
    train(run, {}, on_step=lambda step: marks.append(time.perf_counter()))
    gc.collect()
    return marks[-1] - marks[warmup - 1], len(marks) - warmup


def bench_train(
    cfg: Any,
    steps: int = 20,
    warmup: int = 2,
    rounds: int = 2,
    peer: bool = True,
    out_dir: Path | None = None,
    command: str | None = None,
    echo: Callable[[str], None] = print,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Time ``steps`` training steps (after ``warmup``) of irbench and the peer, ``rounds``
    times each, alternating; returns the rows and the meta (ratio, machine, settings, notes)."""
    from irbench.encoders import hf
    from irbench.train import data as tdata
    from irbench.train.settings import from_config

    if not cfg.get("train"):
        raise ConfigError("irbench bench train needs a recipe: add train=splade")
    if steps < 1 or warmup < 1 or rounds < 1:
        raise ConfigError("irbench bench train: --steps, --warmup and --rounds must be >= 1")
    s = from_config(cfg)
    _check(cfg, s)
    device = hf.resolve_device(s.device, "train.device")
    hf.set_threads(s.threads)
    notes: list[str] = []
    mods = None
    if peer:
        mods, why = _peer_modules()
        if why:
            notes.append(why)
    data = tdata.load(cfg, s, {})
    n_steps = warmup + steps
    examples = [e for i in range(n_steps) for e in data.batch(i * s.batch_size, s.batch_size)]
    if s.query_max_length < s.doc_max_length:
        notes.append(
            f"the peer cuts queries at max_seq_length={s.doc_max_length} tokens, irbench at "
            f"train.query_max_length={s.query_max_length}"
        )
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="irbench-bench-train-") as td:
        tmp = Path(td)
        for r in range(rounds):
            order = ["irbench", PEER] if r % 2 else [PEER, "irbench"]
            for engine in order:
                if engine == PEER and mods is None:
                    continue
                echo(f"round {r + 1}/{rounds}: {engine}, {n_steps} steps")
                if engine == PEER:
                    sec, n = _peer_round(mods, cfg, s, examples, data.docs, warmup, device, tmp)
                else:
                    sec, n = _irbench_round(cfg, s, n_steps, warmup, tmp, r)
                rows.append(_row(engine, r + 1, n, s.batch_size, sec))
    totals = {}
    for engine in dict.fromkeys(r["engine"] for r in rows):
        mine = [r for r in rows if r["engine"] == engine]
        n, sec = sum(r["steps"] for r in mine), sum(r["seconds"] for r in mine)
        totals[engine] = _row(engine, "all", n, s.batch_size, sec)
    ratio = None
    if PEER in totals and "irbench" in totals:
        per_round = [
            a["steps_per_s"] / b["steps_per_s"]
            for a, b in zip(
                [r for r in rows if r["engine"] == "irbench"],
                [r for r in rows if r["engine"] == PEER],
                strict=False,
            )
        ]
        ratio = {
            "steps_per_s": totals["irbench"]["steps_per_s"] / totals[PEER]["steps_per_s"],
            "per_round_median": statistics.median(per_round),
        }
    rows += list(totals.values())
    meta = {
        "corpus": str(cfg.dataset.name), "encoder": str(cfg.encoder.name),
        "backbone": str(cfg.encoder.backbone), "device": device, "steps": steps,
        "warmup": warmup, "rounds": rounds, "batch_size": s.batch_size,
        "negatives_per_query": s.negatives, "in_batch": s.in_batch, "lr": s.lr,
        "flops_query": s.reg_query.flops, "flops_doc": s.reg_doc.flops,
        "query_max_length": s.query_max_length, "doc_max_length": s.doc_max_length,
        "ratio": ratio, "machine": timing.machine(), "load_before": list(load_before),
        "load_after": list(os.getloadavg()) if hasattr(os, "getloadavg") else [],
        "command": command, "notes": notes,
    }  # fmt: skip
    out = (
        Path(out_dir)
        if out_dir
        else Path("runs/bench") / meta["corpus"] / f"train-{meta['encoder']}"
    )
    write_outputs(out, rows, meta)
    meta["out_dir"] = str(out)
    return rows, meta


def _row(engine: str, rnd: Any, steps: int, batch: int, seconds: float) -> dict[str, Any]:
    sps = steps / seconds if seconds > 0 else float("nan")
    return {"engine": engine, "round": rnd, "steps": steps, "batch_size": batch,
            "seconds": round(seconds, 3), "steps_per_s": sps, "examples_per_s": sps * batch}  # fmt: skip


def to_markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    head = (
        f"train · {meta['corpus']} · encoder={meta['encoder']} ({meta['backbone']}) · "
        f"batch {meta['batch_size']} · {meta['negatives_per_query']} hard negative(s) + in-batch · "
        f"{meta['device']} · {timing.describe_machine(meta['machine'])}\n\n"
    )
    lines = [
        "| engine | round | steps | seconds | steps/s | examples/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['engine']} | {r['round']} | {r['steps']} | {r['seconds']:.1f} | "
            f"{r['steps_per_s']:.3f} | {r['examples_per_s']:.2f} |"
        )
    tail = ""
    if meta["ratio"]:
        tail = f"\nirbench / {PEER}: {meta['ratio']['steps_per_s']:.2f}x steps/s\n"
    if meta.get("command"):
        tail += f"\n`{meta['command']}`\n"
    return head + "\n".join(lines) + "\n" + tail


def write_outputs(out: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    import json

    from irbench.runs.atomic import write_json, write_text

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "bench.json", rows)
    write_text(out / "bench.md", to_markdown(rows, meta))
    write_text(out / "meta.json", json.dumps(meta, indent=2, default=str) + "\n")
