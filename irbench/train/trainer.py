"""The training loop: AdamW with linear warm-up/decay, gradient accumulation, autocast on GPU,
dev evaluation with early stopping, resumable checkpoints, DDP when ``WORLD_SIZE > 1``.

Layout of ``run_dir`` after ``irbench train``::

    checkpoint/          Hugging Face model + tokenizer (the best dev model, else the last),
                         irbench_encoder.yaml (the encoder config pointing at this folder)
    train/state/         resumable states step-XXXXXXX.pt (model, optimizer, scheduler, RNG,
                         data position, curves so far); the newest ``checkpoint.keep`` kept
    train/curves.csv     one row per logged step: loss terms, regulariser weights, nnz, FLOPS,
                         lr, steps/s, dev measure
    train/curves.png     the same, plotted
    train/summary.json   what the run did (steps, time, last values, best dev value)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irbench.errors import ConfigError, IrbenchError
from irbench.train.settings import TrainSettings, from_config

STATE_FORMAT = 1


class NotRankZero(IrbenchError):
    """A non-zero rank of a distributed run finished its share (not a failure)."""

    exit_code = 0


@dataclass
class TrainResult:
    checkpoint: Path
    steps: int
    reused: bool
    summary: dict[str, Any] = field(default_factory=dict)


# -- distributed ------------------------------------------------------------------------------------
def dist_env() -> tuple[int, int, int]:
    """``(world_size, rank, local_rank)`` from torchrun's environment (1, 0, 0 without)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


def _init_distributed(device: str) -> None:
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


# -- helpers ---------------------------------------------------------------------------------------
#: encoder settings that only steer inference (encoding the corpus and queries after
#: training), per side and at the top: not part of :func:`config_hash`
INFERENCE_ONLY = {"side": ("top_k", "quantize"),
                  "encoder": ("batch_size", "sort_window", "device", "threads", "autocast")}  # fmt: skip


def config_hash(cfg: Any) -> str:
    """What the trained weights depend on: the recipe (minus bookkeeping), the encoder (minus
    :data:`INFERENCE_ONLY` settings) and the dataset (minus the evaluation split: training
    reads ``train.data.split``). Changing what it leaves out reuses a finished training."""
    from omegaconf import OmegaConf

    t = OmegaConf.to_container(cfg.train, resolve=True)
    for k in ("resume", "log_every", "checkpoint", "device", "threads"):
        t.pop(k, None)
    encoder = OmegaConf.to_container(cfg.encoder, resolve=True)
    # a miner or teacher that is the encoder itself ("self") encodes with all its settings
    uses_self = "self" in (
        (t.get("negatives") or {}).get("retriever"),
        (t.get("data") or {}).get("teacher"),
    )
    if not uses_self:
        for k in INFERENCE_ONLY["encoder"]:
            encoder.pop(k, None)
        for side in ("doc", "query"):
            if isinstance(encoder.get(side), dict):
                for k in INFERENCE_ONLY["side"]:
                    encoder[side].pop(k, None)
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    dataset.pop("split", None)
    blob = {"train": t, "encoder": encoder, "dataset": dataset}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:20]


def total_steps(s: TrainSettings, n_queries: int) -> int:
    if s.max_steps is not None:
        return s.max_steps
    return max(1, math.ceil(float(s.epochs) * n_queries / s.batch_size))


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then linear decay to 0 at ``total``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def _tokenize(tok: Any, texts: list[str], max_length: int, device: str):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enc = tok(
            texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt",
            return_token_type_ids=False,
        )  # fmt: skip
    return {k: v.to(device) for k, v in enc.items()}


def _states(folder: Path) -> list[Path]:
    return sorted(folder.glob("step-*.pt")) if folder.is_dir() else []


def _rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _batch_sparsity(q, d) -> dict[str, float]:
    """Average nnz per query/doc of the batch and its FLOPS estimate ``sum_j p_q(j) p_d(j)``."""
    out: dict[str, float] = {}
    if q is not None:
        out["q_nnz"] = float((q > 0).sum(dim=1).float().mean())
    if d is not None:
        out["d_nnz"] = float((d > 0).sum(dim=1).float().mean())
    if q is not None and d is not None:
        out["batch_flops"] = float(((q > 0).float().mean(0) * (d > 0).float().mean(0)).sum())
    return out


# -- the loop --------------------------------------------------------------------------------------
def train(cfg: Any, record: dict[str, Any] | None = None, on_step=None) -> TrainResult:
    """Train ``cfg.encoder`` with the ``cfg.train`` recipe on ``cfg.dataset``; returns where the
    Hugging Face checkpoint is. A finished run with the same config is reused; an interrupted
    one resumes from its newest state (``train.resume``). ``on_step(step)`` is called after
    each optimizer step (tests use it to simulate a crash)."""
    import torch

    from irbench.encoders import hf
    from irbench.pipeline import make_encoder, seed_everything
    from irbench.runs.atomic import atomic_open, write_json
    from irbench.train import curves
    from irbench.train import data as tdata
    from irbench.train.losses import infonce, kl_distillation, margin_mse
    from irbench.train.model import TrainableSparse
    from irbench.train.regularizers import regularization, warmup_weight

    record = record if record is not None else {}
    s = from_config(cfg)
    world, rank, local_rank = dist_env()
    device = hf.resolve_device(s.device, "train.device")
    if device == "cuda" and world > 1:
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    if device.startswith("cuda"):
        precision = "bf16" if s.precision == "auto" else s.precision
    else:
        if s.precision in ("bf16", "fp16"):
            raise ConfigError(
                f"train.precision={s.precision} needs a GPU (autocast is GPU-only here); "
                "use train.precision=auto or fp32"
            )
        precision = "fp32"
    per_step = world * s.grad_accum
    if s.batch_size % per_step:
        raise ConfigError(
            f"train.batch_size={s.batch_size} must be divisible by processes x grad_accum "
            f"({world} x {s.grad_accum})"
        )
    micro = s.batch_size // per_step
    if world > 1:
        _init_distributed(device)
    hf.set_threads(s.threads)

    run_dir = Path(cfg.run_dir)
    out_dir = run_dir / "train"
    state_dir = out_dir / "state"
    ckpt_dir = run_dir / "checkpoint"
    chash = config_hash(cfg)
    summary_path = out_dir / "summary.json"
    if summary_path.is_file() and (ckpt_dir / "config.json").is_file():
        done = json.loads(summary_path.read_text())
        if done.get("config_hash") == chash and done.get("finished"):
            record.update(reused=True, checkpoint=str(ckpt_dir), **done.get("last", {}))
            return TrainResult(ckpt_dir, int(done.get("steps", 0)), True, done if rank == 0 else {})

    seed_everything(s.seed)
    encoder = make_encoder(cfg)
    if getattr(encoder, "kind", None) != "sparse" or not hasattr(encoder, "doc"):
        raise ConfigError(
            f"encoder={cfg.encoder.name} cannot be trained by irbench train; use a learned sparse "
            "encoder (encoder=splade, splade_doc, unicoil, deepimpact)"
        )
    if s.reg_doc.idf_aware and encoder.query.head != "idf":
        raise ConfigError(
            "train.reg.doc.idf_aware=true weights query terms by idf in the matching function; "
            "set encoder.query.head=idf (an inference-free encoder such as splade_doc)"
        )
    t0 = time.perf_counter()
    data_record: dict[str, Any] = {}
    if rank == 0 or world == 1:
        data = tdata.load(cfg, s, data_record)
        _barrier(world)
    else:
        _barrier(world)  # rank 0 mines (and caches) the negatives first
        data = tdata.load(cfg, s, data_record)
    record["data"] = data_record
    hf.set_threads(s.threads)  # mining searches with numba threads, which resets torch's
    data_s = time.perf_counter() - t0
    idf = None
    if encoder.query.head == "idf":
        from irbench.pipeline import load_dataset

        encoder.fit(load_dataset(cfg).docs_iter())
        idf = torch.from_numpy(encoder.idf)
    seed_everything(s.seed)
    model = TrainableSparse(encoder, idf).to(device)
    model.train()
    tok = model.tokenizer
    steps = total_steps(s, len(data))

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": s.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=s.lr,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda st: lr_factor(st, s.lr_warmup, steps)
    )
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    net: Any = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(
            model,
            device_ids=[local_rank] if device.startswith("cuda") else None,
            find_unused_parameters="mlp" in model.heads,
        )

    start, history, best, bad_evals = 0, [], None, 0
    window: dict[str, float] = {"n": 0}  # sums since the last logged row (rows hold means)
    states = _states(state_dir)
    if states and s.resume:
        state = torch.load(states[-1], map_location=device, weights_only=False)
        if state.get("config_hash") != chash:
            raise ConfigError(
                f"{states[-1]} was written by another training config; delete {state_dir} or "
                "set run_dir=... (or train.resume=false to start over)"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        start, history = int(state["step"]), list(state["history"])
        best, bad_evals = state.get("best"), int(state.get("bad_evals", 0))
        window = dict(state.get("window", window))
        record["resumed_from"] = str(states[-1])
    if rank == 0:  # checkpoint/ is about to be rewritten: no summary may vouch for it meanwhile
        summary_path.unlink(missing_ok=True)

    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    is_main = rank == 0
    query_trains = _trainable(encoder.query)  # else no query penalty is applied
    progress = curves.Progress(steps, start, enabled=is_main)
    measure_key = str(_parse_measure(s.eval_measure))
    step = start
    stopped_early = False
    tick = time.perf_counter()
    ticks_at = start
    if s.eval_every and start == 0:  # the starting point of the dev curve
        value = evaluate_dev(model, data, s, device, measure_key)
        row0 = {"step": 0, f"dev_{measure_key}": round(value, 6)}
        if is_main:
            history.append(row0)
            progress.log(row0, measure_key)
    train_t0 = time.perf_counter()
    tick = train_t0
    try:
        while step < steps:
            step += 1
            logs: dict[str, float] = {}
            for a in range(s.grad_accum):
                position = ((step - 1) * s.grad_accum + a) * world * micro + rank * micro
                batch = data.batch(position, micro)
                q_in = _tokenize(tok, [e.query for e in batch], s.query_max_length, device)
                doc_ids = [e.pos for e in batch] + [d for e in batch for d in e.negs]
                d_in = _tokenize(tok, [data.docs[d] for d in doc_ids], s.doc_max_length, device)
                sync = world == 1 or a == s.grad_accum - 1
                ctx = net.no_sync() if not sync else _null()
                with ctx:
                    with torch.autocast(
                        device_type="cuda" if device.startswith("cuda") else "cpu",
                        dtype=autocast_dtype or torch.bfloat16,
                        enabled=autocast_dtype is not None,
                    ):
                        q_rep, d_rep = net(q_in, d_in)
                    q_rep, d_rep = q_rep.float(), d_rep.float()
                    pos, neg = d_rep[: len(batch)], d_rep[len(batch) :]
                    if s.loss == "infonce":
                        mask = _relevant_mask(data, batch, doc_ids, device)
                        rank_loss = infonce(q_rep, pos, neg, s.in_batch, s.temperature, mask)
                    else:
                        teacher = torch.tensor([e.teacher for e in batch], device=device)
                        if s.loss == "margin_mse":
                            rank_loss = margin_mse(q_rep, pos, neg, teacher)
                        else:
                            rank_loss = kl_distillation(q_rep, pos, neg, teacher, s.temperature)
                    reg_q, parts_q = regularization(
                        q_rep, s.reg_query.flops if query_trains else 0.0,
                        s.reg_query.l1 if query_trains else 0.0, step, s.reg_warmup,
                    )  # fmt: skip
                    reg_d, parts_d = regularization(
                        d_rep, s.reg_doc.flops, s.reg_doc.l1, step, s.reg_warmup
                    )
                    loss = rank_loss + reg_q + reg_d
                    scaler.scale(loss / s.grad_accum).backward()
                _add(logs, "loss", float(loss.detach()) / s.grad_accum)
                _add(logs, "rank_loss", float(rank_loss.detach()) / s.grad_accum)
                _add(logs, "reg_query", float(reg_q.detach()) / s.grad_accum)
                _add(logs, "reg_doc", float(reg_d.detach()) / s.grad_accum)
                for k, v in parts_q.items():
                    _add(logs, f"{k}_query", v / s.grad_accum)
                for k, v in parts_d.items():
                    _add(logs, f"{k}_doc", v / s.grad_accum)
                for k, v in _batch_sparsity(q_rep.detach(), d_rep.detach()).items():
                    _add(logs, k, v / s.grad_accum)
            if s.max_grad_norm is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), s.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            now = time.perf_counter()
            row: dict[str, Any] = {"step": step, "epoch": round(step * s.batch_size / len(data), 4),
                                   "lr": lr}  # fmt: skip
            for side, reg, on in (("query", s.reg_query, query_trains), ("doc", s.reg_doc, True)):
                row[f"lambda_{side}_flops"] = (
                    warmup_weight(reg.flops, step, s.reg_warmup) if on else 0.0
                )
                if reg.l1 and on:
                    row[f"lambda_{side}_l1"] = warmup_weight(reg.l1, step, s.reg_warmup)
            for k, v in logs.items():
                window[k] = window.get(k, 0.0) + v
            window["n"] += 1
            row["steps_per_s"] = round((step - ticks_at) / max(now - tick, 1e-9), 4)
            row["elapsed_s"] = round(now - train_t0, 2)
            evaluated = False
            if s.eval_every and (step % s.eval_every == 0 or step == steps):
                value = evaluate_dev(model, data, s, device, measure_key)
                row[f"dev_{measure_key}"] = round(value, 6)
                evaluated = True
                if best is None or value > best["value"]:
                    best = {"value": value, "step": step}
                    bad_evals = 0
                    if is_main:
                        save_checkpoint(model, cfg, ckpt_dir)
                else:
                    bad_evals += 1
                tick, ticks_at = time.perf_counter(), step  # eval time is not training speed
            if is_main and (step % s.log_every == 0 or step == steps or evaluated or step == 1):
                n = window.pop("n")
                row.update({k: round(v / n, 6) for k, v in window.items()})
                window = {"n": 0}
                history.append(row)
                progress.log(row, measure_key)
            progress.update(
                step, {"loss": logs.get("loss", 0.0), "steps_per_s": row["steps_per_s"]}
            )
            stop = s.patience is not None and bad_evals >= s.patience
            if (
                s.checkpoint_every
                and (step % s.checkpoint_every == 0)
                and step < steps
                and not stop
            ):
                if is_main:
                    state = {
                        "format": STATE_FORMAT, "config_hash": chash, "step": step,
                        "position": step * s.batch_size, "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "rng": _rng_state(), "history": history, "best": best,
                        "bad_evals": bad_evals, "window": window,
                        "scaler": scaler.state_dict(),  # fp16 loss scale (empty otherwise)
                    }  # fmt: skip
                    state_dir.mkdir(parents=True, exist_ok=True)
                    with atomic_open(state_dir / f"step-{step:07d}.pt", "wb") as f:
                        torch.save(state, f)
                    for old in _states(state_dir)[: -s.keep]:
                        old.unlink()
                _barrier(world)
            if on_step is not None:
                on_step(step)
            if stop:
                stopped_early = True
                break
    finally:
        progress.close()
    train_s = time.perf_counter() - train_t0
    if is_main:
        if best is None:
            save_checkpoint(model, cfg, ckpt_dir)
        last = {k: v for k, v in history[-1].items() if k != "step"} if history else {}
        done_steps = step
        speed = [r["steps_per_s"] for r in history if r.get("steps_per_s")]
        summary = {
            "config_hash": chash,
            "finished": True,
            "steps": done_steps,
            "total_steps": steps,
            "stopped_early": stopped_early,
            "examples": done_steps * s.batch_size,
            "processes": world,
            "device": device,
            "precision": precision,
            "data_s": round(data_s, 2),
            "train_s": round(train_s, 2),
            "steps_per_s": round((done_steps - start) / max(train_s, 1e-9), 4),
            "median_logged_steps_per_s": sorted(speed)[len(speed) // 2] if speed else None,
            "best": best,
            "checkpoint": str(ckpt_dir),
            "last": last,
            "data": data_record,
        }
        curves.write(out_dir, history, measure_key)
        write_json(summary_path, summary)
        for old in _states(state_dir):
            old.unlink()
        record.update(summary)
    _barrier(world)
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    summary = json.loads(summary_path.read_text()) if is_main else {}
    return TrainResult(ckpt_dir, step, False, summary)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _add(d: dict[str, float], k: str, v: float) -> None:
    d[k] = d.get(k, 0.0) + v


def _trainable(side: Any) -> bool:
    return side.uses_model


def _parse_measure(name: str) -> Any:
    from irbench.eval.measures import parse_measures

    return parse_measures([name])[0]


def _relevant_mask(data, batch, doc_ids, device):
    """True where a batch doc is relevant to a query but is not that query's own positive
    (a false in-batch negative): left out of the InfoNCE denominator."""
    import torch

    b = len(batch)
    mask = torch.zeros(b, len(doc_ids), dtype=torch.bool)
    any_hit = False
    for i, e in enumerate(batch):
        rel = data.qrels.get(e.qid, {})
        if not rel:
            continue
        for j, d in enumerate(doc_ids):
            if j != i and d in rel and rel[d] >= data.s.min_relevance:
                mask[i, j] = True
                any_hit = True
    return mask.to(device) if any_hit else None


# -- dev evaluation --------------------------------------------------------------------------------
def evaluate_dev(model, data, s: TrainSettings, device: str, measure_key: str) -> float:
    """Rerank each dev query's top ``eval.depth`` miner hits with the current model and compute
    ``eval.measure`` against the split's qrels."""
    import scipy.sparse as sp
    import torch

    from irbench.eval import evaluate
    from irbench.types import Qrel

    was_training = model.training
    model.eval()
    tok = model.tokenizer
    pool = sorted({d for q in data.dev for d in q.ranked[: s.eval_depth]})
    row_of = {d: i for i, d in enumerate(pool)}
    parts = []
    with torch.inference_mode():
        order = sorted(range(len(pool)), key=lambda i: len(data.docs[pool[i]]))
        chunks = []
        for i in range(0, len(order), 32):
            idx = order[i : i + 32]
            enc = _tokenize(tok, [data.docs[pool[j]] for j in idx], s.doc_max_length, device)
            _, d = model(None, enc)
            chunks.append((idx, sp.csr_matrix(d.float().cpu().numpy())))
        parts = [None] * len(pool)
        for idx, m in chunks:
            for r, j in enumerate(idx):
                parts[j] = m[r]
        docs = sp.vstack(parts, format="csr") if parts else None
        enc = _tokenize(tok, [q.text for q in data.dev], s.query_max_length, device)
        q, _ = model(enc, None)
        qm = sp.csr_matrix(q.float().cpu().numpy())
    run: dict[str, dict[str, float]] = {}
    for i, qq in enumerate(data.dev):
        cand = [d for d in qq.ranked[: s.eval_depth]]
        if not cand:
            continue
        rows = [row_of[d] for d in cand]
        scores = (docs[rows] @ qm[i].T).toarray().ravel()
        run[qq.qid] = {d: float(v) for d, v in zip(cand, scores, strict=True)}
    qrels = [
        Qrel(qq.qid, d, g) for qq in data.dev for d, g in data.dev_qrels.get(qq.qid, {}).items()
    ]
    if was_training:
        model.train()
    result = evaluate(run, qrels, [s.eval_measure])
    return float(result.aggregate.get(measure_key, next(iter(result.aggregate.values()))))


# -- checkpoints -----------------------------------------------------------------------------------
def save_checkpoint(model: Any, cfg: Any, folder: Path) -> None:
    """Hugging Face folder (model + tokenizer) with ``irbench_encoder.yaml`` beside the weights:
    the encoder config with its backbone(s) pointing at this folder. Built in a temporary
    sibling and renamed into place."""
    from omegaconf import OmegaConf

    from irbench.runs.atomic import atomic_dir

    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp)
        enc = point_encoder(OmegaConf.to_container(cfg.encoder, resolve=True), str(folder))
        (tmp / "irbench_encoder.yaml").write_text(
            "# irbench encoder config of this checkpoint: irbench run encoder="
            f"{enc.get('name')} encoder.backbone={folder}\n" + OmegaConf.to_yaml(enc),
            encoding="utf-8",
        )


def point_encoder(enc: dict[str, Any], backbone: str) -> dict[str, Any]:
    """An encoder config dict whose backbone (and sides that used it) is ``backbone``."""
    old = enc.get("backbone")
    enc = dict(enc)
    enc["backbone"] = backbone
    for side in ("query", "doc"):
        node = enc.get(side)
        if isinstance(node, dict) and node.get("backbone") in (None, old):
            enc[side] = {**node, "backbone": backbone}
    return enc


def train_then_point(cfg: Any, record: dict[str, Any]) -> Any:
    """For ``irbench run train=...``: train (or reuse the finished run), then return a copy of
    the config whose encoder reads the checkpoint."""
    from omegaconf import OmegaConf, open_dict

    result = train(cfg, record)
    world, rank, _ = dist_env()
    if world > 1 and rank != 0:
        raise NotRankZero(f"rank {rank} finished training; rank 0 indexes and evaluates")
    new = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    with open_dict(new):
        new.encoder = point_encoder(
            OmegaConf.to_container(new.encoder, resolve=True), str(result.checkpoint)
        )
    record["checkpoint"] = str(result.checkpoint)
    print(f"irbench: trained model: {result.checkpoint}", file=sys.stderr)
    return new
