"""Trainable SPLADE-family encoders: the same query/doc sides as
:class:`~irbench.encoders.sparse.SparseNeuralEncoder`, as torch modules with gradients.

* ``mlm`` sides run the masked-LM model with its decoder swapped for an identity (as the
  inference encoder does) and project the transformed hidden states onto the vocabulary in
  slices. With ``max`` pooling the projection is a custom autograd function,
  :class:`MaxProject`: the forward pass keeps only the ``[batch, vocab]`` maxima and their
  positions, never the ``[batch, length, vocab]`` logits, and the backward pass is sparse: a
  vocabulary column gets a gradient only where the activation lets one through
  (``log1p(relu(x))`` is flat for ``x <= 0``), i.e. for the terms of the output vector.
* ``mlp`` sides: one weight per input token, ``act(linear(hidden))``, pooled per token id.
* ``binary`` / ``idf`` sides have no parameters: token ids become fixed vectors.

Special tokens never become terms, as at inference time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from irbench.encoders.sparse_heads import _Identity, _parent_and_name, activate, pool_tokens
from irbench.errors import ConfigError


class MaxProject(torch.autograd.Function):
    """``max_l (t[b, l] . W[v] + bias[v])`` over unmasked positions -> ``[batch, vocab]``.

    Saves the argmax positions (int64, ``[batch, vocab]``) instead of the logits; the backward
    pass scatters the nonzero output gradients to those positions."""

    @staticmethod
    def forward(ctx, t, mask, weight, bias, budget: int):  # type: ignore[override]
        b, length, h = t.shape
        n_vocab = weight.shape[0]
        mask = mask.bool()
        neg = torch.zeros(b, length, 1, dtype=t.dtype, device=t.device)
        neg.masked_fill_(~mask[..., None], float("-inf"))
        values = torch.empty(b, n_vocab, dtype=torch.float32, device=t.device)
        index = torch.empty(b, n_vocab, dtype=torch.long, device=t.device)
        w = weight.to(t.dtype)
        # groups of texts x vocabulary slices of about `budget` logits (cache-sized on CPU);
        # the bias is constant over positions, so it is added to the maxima
        group = max(1, math.isqrt(budget) // max(1, length))
        for i in range(0, b, group):
            j = min(b, i + group)
            x = t[i:j].reshape((j - i) * length, h)
            padded = not bool(mask[i:j].all())
            step = max(64, (budget // x.shape[0]) // 64 * 64)
            for s in range(0, n_vocab, step):
                e = min(n_vocab, s + step)
                logits = (x @ w[s:e].T).view(j - i, length, e - s)
                if padded:
                    logits += neg[i:j]
                v, k = logits.max(dim=1)
                values[i:j, s:e] = v
                index[i:j, s:e] = k
        values += bias.float()
        ctx.save_for_backward(t, weight, index)
        return values

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        t, weight, index = ctx.saved_tensors
        bi, vi = grad.nonzero(as_tuple=True)
        g = grad[bi, vi]
        pos = index[bi, vi]
        dt = dw = db = None
        if ctx.needs_input_grad[0]:
            dt = torch.zeros(t.shape, dtype=torch.float32, device=t.device)
            dt.index_put_((bi, pos), g[:, None] * weight[vi].float(), accumulate=True)
            dt = dt.to(t.dtype)
        if ctx.needs_input_grad[2]:
            dw = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
            dw.index_add_(0, vi, g[:, None] * t[bi, pos].float())
            dw = dw.to(weight.dtype)
        if ctx.needs_input_grad[3]:
            db = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device)
            db.index_add_(0, vi, g)
        return dt, None, dw, db, None


def project_max(t, mask, weight, bias, budget: int = 1 << 18) -> torch.Tensor:
    return MaxProject.apply(t, mask, weight, bias, budget)


class MLMHeadSide(nn.Module):
    """``forward(input_ids, attention_mask) -> [batch, vocab]`` with gradients (SPLADE side).

    Owns the masked-LM model; its decoder is swapped for an identity while training and put
    back by :meth:`restore_decoder` (for ``save_pretrained``)."""

    def __init__(self, model: nn.Module, vocab_size: int, pooling: str, activation: str):
        super().__init__()
        decoder = model.get_output_embeddings()
        if not isinstance(decoder, nn.Linear):
            raise ConfigError(
                f"the backbone's MLM decoder is a {type(decoder).__name__}, not a Linear layer; "
                "an mlm head cannot be trained on it"
            )
        self._parent, self._name = _parent_and_name(model, decoder)
        self.model = model
        self.decoder = decoder
        self.vocab_size = int(vocab_size)
        self.pooling = pooling
        self.activation = activation
        self.swap_decoder()

    def swap_decoder(self) -> None:
        setattr(self._parent, self._name, _Identity(self.decoder.weight.shape[1]))

    def restore_decoder(self) -> None:
        setattr(self._parent, self._name, self.decoder)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        t = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        n = min(self.vocab_size, self.decoder.weight.shape[0])
        weight = self.decoder.weight[:n]
        bias = self.decoder.bias
        bias = torch.zeros(n, device=t.device) if bias is None else bias[:n]
        if self.pooling == "max":
            budget = (1 << 26) if t.is_cuda else (1 << 18)  # logits per step
            out = project_max(t, attention_mask, weight, bias, budget)
            out = activate(out, self.activation)
            out = torch.where(attention_mask.bool().any(dim=1, keepdim=True), out, 0.0)
        else:
            logits = torch.matmul(t, weight.to(t.dtype).T) + bias.to(t.dtype)
            vals = activate(logits.float(), self.activation)
            out = (vals * attention_mask[..., None].float()).sum(dim=1)
        if n < self.vocab_size:
            out = nn.functional.pad(out, (0, self.vocab_size - n))
        return out


class TokenHeadSide(nn.Module):
    """``mlp`` side: ``act(linear(hidden))`` per input token, pooled per token id."""

    def __init__(self, body: nn.Module, linear: nn.Linear, vocab_size: int, pooling: str, act: str):
        super().__init__()
        self.body = body
        self.linear = linear
        self.vocab_size = int(vocab_size)
        self.pooling = pooling
        self.activation = act

    def forward(self, input_ids, attention_mask, keep):
        hidden = self.body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        w = activate(self.linear(hidden.float()).squeeze(-1), self.activation)
        return pool_tokens(input_ids, w, keep, self.vocab_size, self.pooling)


class TrainableSparse(nn.Module):
    """Query and doc sides of a sparse encoder config as one module (one DDP wrapper).

    ``forward(q, d)`` takes tokenized batches (dicts with ``input_ids`` and
    ``attention_mask``; either may be None) and returns ``(q_reps, d_reps)``, dense
    ``[batch, vocab]`` float32 tensors with special-token columns at 0."""

    def __init__(self, encoder: Any, idf: torch.Tensor | None = None):
        super().__init__()
        from irbench.encoders import hf
        from irbench.encoders.sparse_heads import mlp_linear
        from irbench.encoders.sparse_side import MLP_CHECKPOINT_LAYER

        q, d = encoder.query, encoder.doc
        if q.uses_model and d.uses_model and q.backbone != d.backbone:
            raise ConfigError(
                "training sides with two different backbones is not supported; "
                "set encoder.query.backbone and encoder.doc.backbone to one model"
            )
        self.backbone = d.backbone if d.uses_model else q.backbone
        self.tokenizer = hf.load_tokenizer(self.backbone, d.backbone_key)
        vocab = len(self.tokenizer)
        self.vocab_size = vocab
        special = torch.zeros(vocab, dtype=torch.bool)
        ids = [i for i in self.tokenizer.all_special_ids if i is not None and 0 <= i < vocab]
        special[ids] = True
        self.register_buffer("special", special, persistent=False)
        self.register_buffer("keep_cols", (~special).float(), persistent=False)
        self.register_buffer(
            "idf", idf.float() if idf is not None else torch.ones(vocab), persistent=False
        )
        self.sides_cfg = {"query": q, "doc": d}
        self.model: nn.Module | None = None
        self.heads = nn.ModuleDict()
        if not (q.uses_model or d.uses_model):
            raise ConfigError(
                "neither encoder side runs a model (heads binary/idf); nothing to train"
            )
        mlm = "mlm" in (q.head, d.head)
        self.model = hf.load_model(self.backbone, mlm=mlm, key=d.backbone_key)
        self.mlm_side: MLMHeadSide | None = None
        for name, side in self.sides_cfg.items():
            if side.head == "mlm":
                if self.mlm_side is None:
                    self.mlm_side = MLMHeadSide(self.model, vocab, side.pooling, side.activation)
                elif (side.pooling, side.activation) != (
                    self.mlm_side.pooling,
                    self.mlm_side.activation,
                ):
                    raise ConfigError(
                        "both mlm sides must share pooling and activation to be trained together"
                    )
                self.heads[name] = self.mlm_side
            elif side.head == "mlp":
                body = self.model.base_model if mlm else self.model
                state = hf.checkpoint_tensors(self.backbone, MLP_CHECKPOINT_LAYER)
                linear = mlp_linear(body, state, side.seed)
                if "mlp" not in self.heads:
                    self.heads["mlp"] = TokenHeadSide(
                        body, linear, vocab, side.pooling, side.activation
                    )
                self.heads[name] = self.heads["mlp"]

    # -- forward --------------------------------------------------------------------------------
    def encode(self, side: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        cfg = self.sides_cfg[side]
        ids, mask = batch["input_ids"], batch["attention_mask"]
        keep = mask.bool() & ~self.special[ids.clamp(max=self.vocab_size - 1)]
        if cfg.head == "mlm":
            out = self.heads[side](ids, mask)
        elif cfg.head == "mlp":
            out = self.heads[side](ids, mask, keep)
        else:  # binary / idf: fixed vectors
            ones = torch.ones(ids.shape, dtype=torch.float32, device=ids.device)
            out = pool_tokens(ids, ones, keep, self.vocab_size, cfg.pooling)
            if cfg.head == "idf":
                out = out * self.idf
        return out * self.keep_cols

    def forward(self, q: dict | None, d: dict | None):
        qr = self.encode("query", q) if q is not None else None
        dr = self.encode("doc", d) if d is not None else None
        return qr, dr

    # -- persistence ----------------------------------------------------------------------------
    def save_pretrained(self, folder: Path) -> None:
        """The backbone in Hugging Face format (decoder restored), the tokenizer, and a trained
        ``mlp`` layer as ``tok_proj`` in ``model.safetensors`` (where the encoder loads it)."""
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

        if self.mlm_side is not None:
            self.mlm_side.restore_decoder()
        disable_progress_bars()
        try:
            self.model.save_pretrained(folder, safe_serialization=True)
        finally:
            enable_progress_bars()
            if self.mlm_side is not None:
                self.mlm_side.swap_decoder()
        self.tokenizer.save_pretrained(folder)
        if "mlp" in self.heads:
            from safetensors.torch import load_file, save_file

            path = Path(folder) / "model.safetensors"
            tensors = load_file(str(path))
            linear = self.heads["mlp"].linear
            tensors["tok_proj.weight"] = linear.weight.detach().cpu().contiguous()
            tensors["tok_proj.bias"] = linear.bias.detach().cpu().contiguous()
            save_file(tensors, str(path), metadata={"format": "pt"})
