"""``cfg.train`` read into plain, validated values; every mistake is a one-line ConfigError."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from irbench.errors import ConfigError
from irbench.train.losses import LOSSES

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _num(node: Any, key: str, path: str, kind=float, minimum=None, allow_none=False):
    value = node.get(key) if node is not None else None
    if value is None and allow_none:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or (minimum is not None and value < minimum):
        what = "an integer" if kind is int else "a number"
        bound = f" >= {minimum}" if minimum is not None else ""
        none = "null or " if allow_none else ""
        raise ConfigError(f"train.{path}{key}: expected {none}{what}{bound}, got {value!r}")
    return kind(value)


@dataclass
class SideReg:
    flops: float = 0.0
    l1: float = 0.0
    idf_aware: bool = False


@dataclass
class TrainSettings:
    name: str
    split: str
    min_relevance: int
    max_queries: int | None
    dev_queries: int
    dev_split: str | None
    triples: str | None
    teacher_scores: str | None
    teacher: str | None
    teacher_backbone: str | None
    miner_backbone: str | None
    negatives: int
    miner: str
    depth: int
    skip: int
    loss: str
    in_batch: bool
    temperature: float
    reg_warmup: int
    reg_query: SideReg
    reg_doc: SideReg
    lr: float
    weight_decay: float
    lr_warmup: int
    max_grad_norm: float | None
    batch_size: int
    grad_accum: int
    max_steps: int | None
    epochs: float | None
    query_max_length: int
    doc_max_length: int
    seed: int
    precision: str
    device: str
    threads: int
    eval_every: int
    eval_measure: str
    eval_depth: int
    patience: int | None
    checkpoint_every: int
    keep: int
    resume: bool
    log_every: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def distillation(self) -> bool:
        return self.loss in ("margin_mse", "kl")


def from_config(cfg: Any) -> TrainSettings:
    """Read and check ``cfg.train`` (a DictConfig or dict)."""
    t = cfg.get("train")
    if not t:
        raise ConfigError("no training recipe in the config; add train=splade (see conf/train/)")
    data = t.get("data") or {}
    neg = t.get("negatives") or {}
    loss = t.get("loss") or {}
    reg = t.get("reg") or {}
    optim = t.get("optim") or {}
    ev = t.get("eval") or {}
    ck = t.get("checkpoint") or {}

    def side(name: str) -> SideReg:
        node = reg.get(name) or {}
        unknown = sorted(set(node) - {"flops", "l1", "idf_aware"})
        if unknown:
            raise ConfigError(
                f"train.reg.{name}.{unknown[0]}: unknown key; valid keys: flops, l1, idf_aware"
            )
        return SideReg(
            flops=_num(node, "flops", f"reg.{name}.", minimum=0),
            l1=_num(node, "l1", f"reg.{name}.", minimum=0),
            idf_aware=bool(node.get("idf_aware", False)),
        )

    loss_name = loss.get("name", "infonce")
    if loss_name not in LOSSES:
        raise ConfigError(
            f"train.loss.name: unknown loss {loss_name!r}; use one of {', '.join(LOSSES)}"
        )
    precision = t.get("precision", "auto")
    if precision not in PRECISIONS:
        raise ConfigError(
            f"train.precision: unknown value {precision!r}; use one of {', '.join(PRECISIONS)}"
        )
    s = TrainSettings(
        name=str(t.get("name", "train")),
        split=str(data.get("split", "train")),
        min_relevance=_num(data, "min_relevance", "data.", int, minimum=1),
        max_queries=_num(data, "max_queries", "data.", int, minimum=1, allow_none=True),
        dev_queries=_num(data, "dev_queries", "data.", int, minimum=0),
        dev_split=None if data.get("dev_split") in (None, "") else str(data.get("dev_split")),
        triples=data.get("triples"),
        teacher_scores=data.get("teacher_scores"),
        teacher=None if data.get("teacher") in (None, "") else str(data.get("teacher")),
        teacher_backbone=data.get("teacher_backbone") or None,
        miner_backbone=neg.get("backbone") or None,
        negatives=_num(neg, "per_query", "negatives.", int, minimum=0),
        miner=str(neg.get("retriever", "bm25")),
        depth=_num(neg, "depth", "negatives.", int, minimum=1),
        skip=_num(neg, "skip", "negatives.", int, minimum=0),
        loss=loss_name,
        in_batch=bool(loss.get("in_batch", True)),
        temperature=_num(loss, "temperature", "loss.", minimum=1e-6),
        reg_warmup=_num(reg, "warmup_steps", "reg.", int, minimum=0),
        reg_query=side("query"),
        reg_doc=side("doc"),
        lr=_num(optim, "lr", "optim.", minimum=0),
        weight_decay=_num(optim, "weight_decay", "optim.", minimum=0),
        lr_warmup=_num(optim, "warmup_steps", "optim.", int, minimum=0),
        max_grad_norm=_num(optim, "max_grad_norm", "optim.", minimum=0, allow_none=True),
        batch_size=_num(t, "batch_size", "", int, minimum=1),
        grad_accum=_num(t, "grad_accum", "", int, minimum=1),
        max_steps=_num(t, "max_steps", "", int, minimum=1, allow_none=True),
        epochs=_num(t, "epochs", "", minimum=0, allow_none=True),
        query_max_length=_num(t, "query_max_length", "", int, minimum=2),
        doc_max_length=_num(t, "doc_max_length", "", int, minimum=2),
        seed=_num(t, "seed", "", int),
        precision=precision,
        device=str(t.get("device", "auto")),
        threads=_num(t, "threads", "", int, minimum=0),
        eval_every=_num(ev, "every", "eval.", int, minimum=0),
        eval_measure=str(ev.get("measure", "nDCG@10")),
        eval_depth=_num(ev, "depth", "eval.", int, minimum=1),
        patience=_num(ev, "patience", "eval.", int, minimum=1, allow_none=True),
        checkpoint_every=_num(ck, "every", "checkpoint.", int, minimum=0),
        keep=_num(ck, "keep", "checkpoint.", int, minimum=1),
        resume=bool(t.get("resume", True)),
        log_every=_num(t, "log_every", "", int, minimum=1),
    )
    if s.max_steps is None and not s.epochs:
        raise ConfigError("train.max_steps and train.epochs are both null; set one of them")
    if s.max_steps is not None and s.epochs:
        raise ConfigError("train.max_steps and train.epochs are both set; set the other to null")
    if s.distillation and not (s.teacher_scores or s.teacher):
        raise ConfigError(
            f"train.loss.name={s.loss} distils teacher scores; set train.data.teacher_scores=FILE "
            "(lines 'qid docid score') or train.data.teacher=ENCODER_PRESET"
        )
    if s.teacher_scores and s.teacher:
        raise ConfigError(
            "train.data.teacher_scores and train.data.teacher are both set; keep one of them"
        )
    if s.distillation and s.negatives < 1:
        raise ConfigError(f"train.loss.name={s.loss} needs train.negatives.per_query >= 1")
    if not s.in_batch and s.negatives < 1 and s.loss == "infonce":
        raise ConfigError(
            "train.loss.in_batch=false with train.negatives.per_query=0 leaves no negatives; "
            "set one of them"
        )
    if s.eval_every and not (s.dev_queries or s.dev_split):
        raise ConfigError(
            "train.eval.every is set but there are no dev queries; set train.data.dev_queries=N "
            "(held out of the training queries) or train.data.dev_split=SPLIT"
        )
    if s.dev_queries and s.dev_split:
        raise ConfigError(
            "train.data.dev_queries and train.data.dev_split are both set; keep one of them"
        )
    if s.reg_query.idf_aware:
        raise ConfigError("train.reg.query.idf_aware: idf-aware FLOPS is a doc-side setting")
    from irbench.eval.measures import parse_measures

    parse_measures([s.eval_measure])
    return s
