"""Torch parts of the sparse neural encoders: activations, the fused MLM vocabulary projection and
the per-token heads.

The ``mlm`` head never builds the ``[batch, length, vocab]`` logits tensor. The MLM model runs
once with its decoder (the ``hidden -> vocab`` linear layer) swapped for an identity, which
yields the transformed hidden states ``t`` (``[batch, length, hidden]``); the decoder is then
applied to groups of docs and vocabulary slices sized to stay in the CPU cache (or in a GPU
memory budget), with masking and pooling fused:

* ``max`` pooling: every activation is monotone non-decreasing, so
  ``max_l act(t_l . w_v + b_v) = act(max_l (t_l . w_v + b_v))``; padded positions get ``-inf``
  and the activation is applied to the ``[batch, vocab]`` maxima only;
* ``sum`` pooling: ``sum_l mask_l * act(t_l . w_v + b_v)`` per slice.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

ACTIVATIONS = ("log1p_relu", "relu", "softplus", "identity")
POOLINGS = ("max", "sum")


def activate(x: torch.Tensor, name: str) -> torch.Tensor:
    if name == "log1p_relu":
        return torch.log1p(torch.relu(x))
    if name == "relu":
        return torch.relu(x)
    if name == "softplus":
        return nn.functional.softplus(x)
    if name == "identity":
        return x
    raise ValueError(f"unknown activation {name!r}")


class _Identity(nn.Module):
    """Stands in for the MLM decoder: returns the transformed hidden states."""

    def __init__(self, in_features: int):
        super().__init__()
        self.in_features = in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _parent_and_name(model: nn.Module, target: nn.Module) -> tuple[nn.Module, str]:
    for module in model.modules():
        for child_name, child in module.named_children():
            if child is target:
                return module, child_name
    raise ValueError("the output embeddings are not a submodule of the model")


def split_mlm(model: nn.Module) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """``(trunk, weight [V, H], bias [V])``: ``trunk(**inputs).logits`` are the hidden states the
    decoder would project. Done once per model (the decoder is swapped for an identity in place);
    checked against the unmodified model on a short input."""
    cached = getattr(model, "_irbench_split", None)
    if cached is not None:
        return cached
    decoder = model.get_output_embeddings()
    if not isinstance(decoder, nn.Linear):
        raise ValueError(f"the MLM decoder is a {type(decoder).__name__}, not a Linear layer")
    weight = decoder.weight.detach()
    bias = decoder.bias
    bias = torch.zeros(weight.shape[0]) if bias is None else bias.detach()
    probe = {
        "input_ids": torch.tensor([[1, 2, 3, 4, 5]]) % weight.shape[0],
        "attention_mask": torch.ones(1, 5, dtype=torch.long),
    }
    device = weight.device
    probe = {k: v.to(device) for k, v in probe.items()}
    with torch.inference_mode():
        expected = model(**probe).logits.float()
        parent, name = _parent_and_name(model, decoder)
        setattr(parent, name, _Identity(weight.shape[1]))
        hidden = model(**probe).logits.float()
        got = hidden @ weight.float().T + bias.float()
    if hidden.shape[-1] != weight.shape[1] or not torch.allclose(
        got, expected, atol=1e-3, rtol=1e-3
    ):
        setattr(parent, name, decoder)  # something follows the decoder: refuse rather than differ
        raise ValueError("the model does more after its decoder than a linear projection")
    model._irbench_split = (model, weight, bias)  # type: ignore[assignment]
    return model, weight, bias


class FusedMLMHead(nn.Module):
    """``forward(input_ids, attention_mask) -> [batch, vocab]`` pooled SPLADE-style weights.

    ``budget`` is the number of logits computed per step (``rows x vocab slice``); docs are
    grouped so that a group has at most ``sqrt(budget)`` token rows (one doc at least).
    ``vocab_size`` trims or zero-pads the model's output vocabulary to the tokenizer's.
    """

    def __init__(
        self,
        model: nn.Module,
        vocab_size: int,
        pooling: str = "max",
        activation: str = "log1p_relu",
        budget: int = 1 << 18,
    ):
        super().__init__()
        trunk, weight, bias = split_mlm(model)
        self.trunk = trunk
        n = min(vocab_size, weight.shape[0])
        self.register_buffer("weight", weight[:n], persistent=False)
        self.register_buffer("bias", bias[:n], persistent=False)
        self.vocab_size = vocab_size
        self.pooling = pooling
        self.activation = activation
        self.budget = int(budget)

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.trunk(input_ids=input_ids, attention_mask=attention_mask).logits

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        t = self.hidden(input_ids, attention_mask)
        return fused_project(
            t, attention_mask, self.weight, self.bias, self.pooling, self.activation,
            self.budget, self.vocab_size,
        )  # fmt: skip


def fused_project(
    t: torch.Tensor,
    attention_mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    pooling: str,
    activation: str,
    budget: int,
    vocab_size: int | None = None,
) -> torch.Tensor:
    """Pooled ``act(t @ weight.T + bias)`` over the unmasked positions, slice by slice."""
    b, length, h = t.shape
    n_vocab = weight.shape[0]
    out_cols = vocab_size or n_vocab
    dtype = torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else t.dtype
    out = torch.zeros(b, out_cols, dtype=dtype, device=t.device)
    if b == 0 or length == 0:
        return out
    weight = weight.to(t.dtype)
    bias = bias.to(t.dtype)
    mask = attention_mask.bool()
    if pooling == "max":
        neg = torch.zeros(b, length, 1, dtype=t.dtype, device=t.device)
        neg.masked_fill_(~mask[..., None], float("-inf"))
    else:
        keep = mask[:, None, :].to(t.dtype)  # [b, 1, L] for a batched mat-vec over positions
    # the last valid position + 1 of each row: groups are cut to their longest row
    ends = (mask * torch.arange(1, length + 1, device=t.device)).amax(dim=1).tolist()
    rows_cap = max(1, math.isqrt(budget))  # about square steps: rows x vocab slice
    i = 0
    while i < b:
        j, width = i + 1, max(1, ends[i])
        while j < b and (j + 1 - i) * max(width, ends[j]) <= rows_cap:
            width = max(width, ends[j])
            j += 1
        rows = (j - i) * width
        x = t[i:j, :width].reshape(rows, h)
        padded = not bool(mask[i:j, :width].all())
        step = max(64, (budget // rows) // 64 * 64)
        for s in range(0, n_vocab, step):
            e = min(n_vocab, s + step)
            logits = torch.addmm(bias[s:e], x, weight[s:e].T).view(j - i, width, e - s)
            if pooling == "max":
                if padded:
                    logits += neg[i:j, :width]
                out[i:j, s:e] = torch.amax(logits, dim=1)
            else:
                vals = activate(logits, activation)
                out[i:j, s:e] = torch.bmm(keep[i:j, :, :width], vals).squeeze(1)
        i = j
    if pooling == "max":
        out[:, :n_vocab] = activate(out[:, :n_vocab], activation)
    out[~mask.any(dim=1)] = 0.0  # a row without positions has no terms
    return out


def naive_project(
    logits: torch.Tensor, attention_mask: torch.Tensor, pooling: str, activation: str
) -> torch.Tensor:
    """The reference computation on full ``[batch, length, vocab]`` logits (tests, checks)."""
    vals = activate(logits.float(), activation)
    mask = attention_mask.bool()[..., None]
    if pooling == "max":
        return vals.masked_fill(~mask, float("-inf")).amax(dim=1)
    return (vals * mask).sum(dim=1)


class TokenWeightHead(nn.Module):
    """``forward(input_ids, attention_mask) -> [batch, length]``: one weight per input token,
    ``act(linear(hidden))`` (uniCOIL / DeepImpact style; no expansion)."""

    def __init__(self, body: nn.Module, linear: nn.Linear, activation: str):
        super().__init__()
        self.body = body
        self.linear = linear
        self.activation = activation

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        w = self.linear(hidden.to(self.linear.weight.dtype)).squeeze(-1)
        return activate(w.float(), self.activation)


def pool_tokens(
    input_ids: torch.Tensor,
    weights: torch.Tensor,
    keep: torch.Tensor,
    vocab_size: int,
    pooling: str,
) -> torch.Tensor:
    """Dense ``[batch, vocab]`` from per-position weights: positions with the same token id are
    combined by ``max`` or ``sum``; positions where ``keep`` is false are ignored."""
    b = input_ids.shape[0]
    ids = torch.where(keep, input_ids, torch.full_like(input_ids, vocab_size)).long()
    out = torch.zeros(b, vocab_size + 1, dtype=torch.float32, device=input_ids.device)
    reduce = "amax" if pooling == "max" else "sum"
    out.scatter_reduce_(1, ids, weights.float(), reduce=reduce, include_self=False)
    return out[:, :vocab_size]


def mlp_linear(model: Any, state: dict[str, torch.Tensor] | None, seed: int) -> nn.Linear:
    """The ``hidden -> 1`` term-weight layer: from ``state`` (``weight``/``bias``) when given,
    else initialised from ``seed`` (untrained, deterministic: weights N(0, 0.02), bias 1)."""
    hidden = int(model.config.hidden_size)
    linear = nn.Linear(hidden, 1)
    if state is not None:
        linear.load_state_dict(
            {"weight": state["weight"].reshape(1, hidden), "bias": state["bias"].reshape(1)}
        )
    else:
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            linear.weight.normal_(0.0, 0.02, generator=gen)
            linear.bias.fill_(1.0)  # untrained: about a binary bag of words, with noise
    return linear.eval()
