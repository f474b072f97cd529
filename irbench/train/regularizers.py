"""Sparsity regularisers of the SPLADE papers, per side, with the quadratic weight warm-up.

For a batch of representations ``w`` (``[N, V]``, non-negative):

* FLOPS (Paria et al. 2020; SPLADE): ``sum_j (mean_i w_ij)^2``, a smooth proxy of the
  expected number of multiplications ``sum_j p_q(j) p_d(j)`` of an inverted-index search;
* L1: ``mean_i sum_j |w_ij|`` (used for queries in "An Efficiency Study for SPLADE Models").

Both depend on the batch the mean is taken over: FLOPS of a term that one doc of ``N`` holds
with weight ``x`` is ``(x / N)^2``, so the same weight regularises less as ``N`` grows. irbench
takes the mean over each process's micro-batch (``docs/training.md`` explains how to carry a
weight across batch sizes and GPU counts).

The weight follows ``lambda * min(1, (t / T)^2)`` (SPLADE v2), ``t`` the optimizer step
(starting at 1), ``T`` = ``train.reg.warmup_steps`` (0 = full weight at once).

IDF-aware FLOPS for inference-free models (Geng et al. 2024, "Towards Competitive Search
Relevance For Inference-Free Learned Sparse Retrievers"): the query side weights its tokens by
idf in the matching function while FLOPS acts on the raw doc weights, so the ranking gradient of
a doc term scales with its idf and its penalty does not: low-idf terms are pruned first. In
irbench that is ``encoder.query.head=idf`` (the idf table is fitted on the corpus) with a doc
FLOPS weight; ``train.reg.doc.idf_aware=true`` asks for exactly that combination.
"""

from __future__ import annotations

import torch


def flops(w: torch.Tensor) -> torch.Tensor:
    return (w.abs().mean(dim=0) ** 2).sum()


def l1(w: torch.Tensor) -> torch.Tensor:
    return w.abs().sum(dim=1).mean()


def warmup_weight(weight: float, step: int, warmup_steps: int) -> float:
    """``weight * min(1, (step / T)^2)``; ``T = 0`` gives the full weight."""
    if warmup_steps <= 0:
        return float(weight)
    return float(weight) * min(1.0, (step / warmup_steps) ** 2)


def regularization(
    reps: torch.Tensor, flops_weight: float, l1_weight: float, step: int, warmup_steps: int
) -> tuple[torch.Tensor, dict[str, float]]:
    """The side's weighted penalty and its parts (unweighted values, for the curves)."""
    total = reps.new_zeros(())
    parts: dict[str, float] = {}
    if flops_weight:
        f = flops(reps)
        total = total + warmup_weight(flops_weight, step, warmup_steps) * f
        parts["flops"] = float(f.detach())
    if l1_weight:
        v = l1(reps)
        total = total + warmup_weight(l1_weight, step, warmup_steps) * v
        parts["l1"] = float(v.detach())
    return total, parts
