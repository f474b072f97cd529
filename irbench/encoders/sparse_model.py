"""The model sides of :class:`~irbench.encoders.sparse.SparseNeuralEncoder`: building the torch
module of an ``mlm`` or ``mlp`` head and running it over length-sorted batches."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from irbench.encoders import hf
from irbench.encoders.sparse_csr import dense_to_csr
from irbench.encoders.sparse_side import MLP_CHECKPOINT_LAYER, SideConfig
from irbench.errors import ConfigError

__all__ = ["build_module", "encode_sorted"]

log = logging.getLogger(__name__)


def build_module(side: SideConfig, model: Any, vocab: int, device: str, chunk_budget: int) -> Any:
    """``FusedMLMHead`` (``mlm``) or ``TokenWeightHead`` (``mlp``) over a loaded model, in eval
    mode, under ``DataParallel`` when ``device="cuda"`` and several GPUs are visible."""
    import torch

    from irbench.encoders import sparse_heads as heads

    if side.head == "mlm":
        if not hasattr(model, "get_output_embeddings") or model.get_output_embeddings() is None:
            raise ConfigError(
                f"{side.backbone_key}: '{side.backbone}' has no masked-LM head; use head=mlp"
            )
        try:
            module = heads.FusedMLMHead(model, vocab, side.pooling, side.activation, chunk_budget)
        except ValueError as exc:
            raise ConfigError(
                f"{side.backbone_key}: cannot split the MLM head of '{side.backbone}' ({exc})"
            ) from None
    else:
        body = model.base_model if model.base_model is not model else model
        state = hf.checkpoint_tensors(side.backbone, MLP_CHECKPOINT_LAYER)
        if state is None:
            log.warning("%s.head=mlp: no trained '%s' layer in %s; using an untrained one (seed %d)",
                        side.key, MLP_CHECKPOINT_LAYER, side.backbone, side.seed)  # fmt: skip
        linear = heads.mlp_linear(model, state, side.seed).to(device)
        module = heads.TokenWeightHead(body, linear, side.activation)
    module.eval()
    if device == "cuda" and torch.cuda.device_count() > 1:
        module = torch.nn.DataParallel(module)
    return module


def autocast_context(device: str, autocast: str | None) -> Any:
    import torch

    if autocast is None:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if autocast == "bf16" else torch.float16
    return torch.autocast(device.split(":")[0], dtype=dtype)


def encode_sorted(
    module: Any,
    head: str,
    pooling: str,
    ids: list[list[int]],
    special: np.ndarray,
    vocab: int,
    *,
    pad: int,
    batch_size: int,
    device: str,
    autocast: str | None,
    progress: Callable[[int], None] | None = None,
) -> sp.csr_matrix:
    """Vectors of tokenized texts, in input order: the texts are sorted by length (longest
    first, so that padding stays small), run in batches under ``torch.inference_mode``, and the
    rows put back in order. Special-token columns are dropped.

    On CPU, batches run concurrently in ``torch.get_num_threads()`` worker threads, each with
    single-threaded torch ops (:func:`irbench.encoders.hf.map_batches`): the fused projection
    is many small ops, and OpenMP teams that meet at a barrier after every op lose most of
    their time as soon as another process shares the cores (measured 14 vs 95 GFLOP/s on 2
    shared cores); independent workers do not.
    """
    import torch

    from irbench.encoders.sparse_heads import pool_tokens

    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    order = np.argsort(-lengths, kind="stable")
    special_t = torch.as_tensor(special, device=device)
    batches = [order[s : s + batch_size] for s in range(0, len(ids), batch_size)]

    def run(rows: np.ndarray, single_thread: bool) -> sp.csr_matrix:
        if single_thread:
            torch.set_num_threads(1)  # this worker's OpenMP team (per-thread setting)
        width = int(lengths[rows].max())
        batch = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            batch[r, : lengths[i]] = torch.as_tensor(ids[i])
            mask[r, : lengths[i]] = 1
        batch, mask = batch.to(device), mask.to(device)
        with torch.inference_mode(), autocast_context(device, autocast):  # both thread-local
            if head == "mlm":
                dense = module(batch, mask).float()
            else:
                weights = module(batch, mask)
                keep = mask.bool() & ~special_t[batch]
                dense = pool_tokens(batch, weights, keep, vocab, pooling)
            dense[:, special_t] = 0.0
            return dense_to_csr(dense, vocab)

    parts = hf.map_batches(run, batches, device, progress, [len(rows) for rows in batches])
    if not parts:
        return sp.csr_matrix((0, vocab), dtype=np.float32)
    stacked = sp.vstack(parts, format="csr", dtype=np.float32)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return stacked[inverse]
