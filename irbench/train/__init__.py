"""Training of learned sparse encoders: losses, regularisers, training data, the loop.

No CLI or Hydra code here: :func:`train` takes a composed config (with a ``train`` node, see
``conf/train/``) and returns where the Hugging Face checkpoint was written. See
``docs/training.md``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["train", "train_then_point"]


def train(cfg: Any, record: dict[str, Any] | None = None, on_step=None):
    from irbench.train.trainer import train as _train

    return _train(cfg, record, on_step)


def train_then_point(cfg: Any, record: dict[str, Any]):
    from irbench.train.trainer import train_then_point as _tp

    return _tp(cfg, record)
