"""Ranking losses over query and doc representations (any dot-product encoder).

Scores are dot products ``s(q, d) = q . d``. A batch holds ``B`` queries, their positives
``P`` (``[B, V]``) and ``n`` hard negatives each (``N``, ``[B * n, V]``, query ``i``'s at rows
``i * n ... i * n + n - 1``).

* :func:`infonce`: cross-entropy of the positive against the query's own hard negatives and,
  with ``in_batch``, every other doc of the batch (other queries' positives and negatives);
  docs known to be relevant to the query (``mask``) are left out of its denominator.
* :func:`margin_mse`: MarginMSE (Hofstätter et al.): ``(s(q,p) - s(q,n) - (t_p - t_n))^2``.
* :func:`kl_distillation`: KL(teacher || student) over each query's ``[positive, negatives]``
  softmax distribution.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def own_scores(q: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """``[B, 1 + n]``: each query's score for its positive, then its own negatives."""
    b = q.shape[0]
    s_pos = (q * pos).sum(-1, keepdim=True)
    if neg is None or neg.shape[0] == 0:
        return s_pos
    n = neg.shape[0] // b
    s_neg = torch.einsum("bv,bnv->bn", q, neg.view(b, n, -1))
    return torch.cat([s_pos, s_neg], dim=1)


def infonce(
    q: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor | None,
    in_batch: bool = True,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of each query's positive. ``mask`` (``[B, B + B*n]``, bool, true =
    leave out) removes known-relevant docs other than the positive from the denominators."""
    b = q.shape[0]
    if not in_batch:
        scores = own_scores(q, pos, neg) / temperature
        return F.cross_entropy(scores, torch.zeros(b, dtype=torch.long, device=q.device))
    docs = pos if neg is None or neg.shape[0] == 0 else torch.cat([pos, neg], dim=0)
    scores = (q @ docs.T) / temperature
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    return F.cross_entropy(scores, torch.arange(b, device=q.device))


def margin_mse(
    q: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, teacher: torch.Tensor
) -> torch.Tensor:
    """``teacher``: ``[B, 1 + n]`` scores (positive first) of the same pairs."""
    s = own_scores(q, pos, neg)
    student = s[:, :1] - s[:, 1:]
    target = teacher[:, :1] - teacher[:, 1:]
    return F.mse_loss(student, target.to(student.dtype))


def kl_distillation(
    q: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    teacher: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    s = own_scores(q, pos, neg) / temperature
    t = teacher.to(s.dtype) / temperature
    return F.kl_div(F.log_softmax(s, dim=1), F.log_softmax(t, dim=1), log_target=True,
                    reduction="batchmean")  # fmt: skip


LOSSES = ("infonce", "margin_mse", "kl")
