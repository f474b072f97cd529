"""Settings of one side (query or doc) of a :class:`~irbench.encoders.sparse.SparseNeuralEncoder`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from irbench.errors import ConfigError
from irbench.types import is_integer

__all__ = ["ACTIVATIONS", "AUTOCASTS", "HEADS", "POOLINGS", "SIDE_KEYS", "SideConfig"]

HEADS = ("mlm", "mlp", "binary", "idf")
MODEL_HEADS = ("mlm", "mlp")
POOLINGS = ("max", "sum")
ACTIVATIONS = ("log1p_relu", "relu", "softplus", "identity")
AUTOCASTS = ("bf16", "fp16")
SIDE_KEYS = ("backbone", "head", "pooling", "activation", "max_length", "top_k", "quantize", "seed")
MLP_CHECKPOINT_LAYER = "tok_proj"  # uniCOIL's term-weight layer


class SideConfig:
    """One side's validated settings; ``key`` names it in errors (``encoder.query``)."""

    def __init__(self, spec: Mapping[str, Any] | None, default_backbone: Any, key: str):
        spec = dict(spec or {})
        unknown = sorted(set(spec) - set(SIDE_KEYS))
        if unknown:
            raise ConfigError(
                f"{key}.{unknown[0]}: unknown key; valid keys: {', '.join(SIDE_KEYS)}"
            )
        self.key = key
        backbone = spec.get("backbone") or default_backbone
        if backbone is None or not str(backbone).strip():
            raise ConfigError(
                f"{key}.backbone: no model given; set encoder.backbone=org/name or =path/to/model"
            )
        self.backbone = str(backbone)
        same = backbone == default_backbone
        self.backbone_key = "encoder.backbone" if same else f"{key}.backbone"
        self.head = _choice(spec.get("head", "mlm"), HEADS, f"{key}.head")
        self.pooling = _choice(spec.get("pooling", "max"), POOLINGS, f"{key}.pooling")
        act = spec.get("activation", "log1p_relu" if self.head == "mlm" else "relu")
        self.activation = _choice(
            "identity" if act is None else act, ACTIVATIONS, f"{key}.activation"
        )
        self.max_length = _opt_int(spec.get("max_length"), f"{key}.max_length", minimum=2)
        self.top_k = _opt_int(spec.get("top_k"), f"{key}.top_k", minimum=1)
        q = spec.get("quantize")
        if q is not None:
            try:
                q = -1.0 if isinstance(q, bool | str) else float(q)
            except (TypeError, ValueError):
                q = -1.0
            if not q > 0:
                raise ConfigError(
                    f"{key}.quantize: expected null or a positive scale, got {spec['quantize']!r}"
                )
        self.quantize = q
        self.seed = _opt_int(spec.get("seed"), f"{key}.seed", minimum=0) or 0

    @property
    def uses_model(self) -> bool:
        return self.head in MODEL_HEADS

    def key_dict(self, fingerprint: str) -> dict[str, Any]:
        """The settings that change this side's vectors (irrelevant ones left out)."""
        d: dict[str, Any] = {
            "backbone": fingerprint,
            "head": self.head,
            "pooling": self.pooling,
            "max_length": self.max_length,
            "top_k": self.top_k,
            "quantize": self.quantize,
        }
        if self.uses_model:
            d["activation"] = self.activation
        if self.head == "mlp":
            d["mlp"] = f"{MLP_CHECKPOINT_LAYER}|init:normal(0,0.02)+1,seed={self.seed}"
        if self.head == "idf":
            d["idf"] = "ln(1+(N-df+0.5)/(df+0.5)),doc tokens"
        return d

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SIDE_KEYS}


def _choice(value: Any, options: Sequence[str], key: str) -> str:
    if value not in options:
        raise ConfigError(f"{key}: unknown value {value!r}; use one of {', '.join(options)}")
    return str(value)


def _opt_int(value: Any, key: str, minimum: int) -> int | None:
    if value is None:
        return None
    if not is_integer(value) or value < minimum:
        raise ConfigError(f"{key}: expected null or an integer >= {minimum}, got {value!r}")
    return int(value)
