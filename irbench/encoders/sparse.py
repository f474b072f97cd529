"""Learned sparse encoders of the SPLADE family, composed from config.

An encoder has a ``query`` side and a ``doc`` side; each side is built from parts:

* ``backbone``: a Hugging Face model id or local folder (default: the encoder's ``backbone``);
  sides with the same backbone share one loaded model;
* ``head``: ``mlm`` (vocabulary projection of the masked-LM head, with expansion: SPLADE),
  ``mlp`` (one weight per input token from a ``hidden -> 1`` linear layer, no expansion:
  uniCOIL, DeepImpact), ``binary`` (input tokens with weight 1, no model) or ``idf`` (input
  tokens weighted by a corpus idf table, no model);
* ``pooling``: ``max`` or ``sum`` over the positions (of the same token, for the per-token heads);
* ``activation``: ``log1p_relu``, ``relu``, ``softplus`` or ``identity`` (model heads only);
* ``max_length``: truncation in tokens, special tokens included (null: the model's limit,
  ``min(tokenizer.model_max_length, max_position_embeddings)``, as sentence-transformers does);
* ``top_k``: keep the k highest weights of each vector (ties: lower term id first), null = all;
* ``quantize``: null or a scale s, weights become ``round(w * s) / s`` (after ``top_k``).

Columns are the tokenizer's vocabulary ids; special tokens ([CLS], [SEP], [PAD], [MASK],
[UNK]...) never become terms. See ``docs/encoders.md``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from irbench.encoders import hf
from irbench.encoders.sparse_csr import bm25_idf, term_vectors, top_k
from irbench.encoders.sparse_side import AUTOCASTS, HEADS, SideConfig
from irbench.errors import ConfigError, DataError, IrbenchError
from irbench.types import Doc, Query, query_texts

__all__ = ["FORMAT_VERSION", "HEADS", "SideConfig", "SparseNeuralEncoder"]


#: Version of the vectors and of the saved folder; bump when either changes.
FORMAT_VERSION = 1


class SparseNeuralEncoder:
    """SPLADE-family :class:`~irbench.types.SparseEncoder` with a query and a doc side.

    Models load lazily (on the first encode), so ``config_key()`` and construction are cheap.
    ``encode_corpus`` sorts each window of ``sort_window`` docs by token length, encodes them
    in batches of ``batch_size`` and yields one float32 CSR matrix per window in doc order.
    ``progress`` (optional) is called with the number of docs finished after each batch.

    With an ``idf`` head, :attr:`needs_fit` is true and :meth:`fit` must see the corpus before
    queries (or, for a doc-side idf head, docs) are encoded; :meth:`save` keeps the table.
    """

    kind = "sparse"
    shardable = True

    def __init__(
        self,
        name: str = "splade",
        backbone: str | None = None,
        query: Mapping[str, Any] | None = None,
        doc: Mapping[str, Any] | None = None,
        batch_size: int = 32,
        device: str | None = "auto",
        threads: int = 0,
        autocast: str | None = "auto",
        sort_window: int = 4096,
        chunk_budget: int | None = None,
        progress: Callable[[int], None] | None = None,
        **_: Any,
    ):
        self.name = name
        self.backbone = backbone
        self.query = SideConfig(query, backbone, "encoder.query")
        self.doc = SideConfig(doc, backbone, "encoder.doc")
        for key, value in (("batch_size", batch_size), ("sort_window", sort_window)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"encoder.{key}: expected an integer >= 1, got {value!r}")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ConfigError(
                f"encoder.threads: expected an integer >= 0 (0 = torch's default), got {threads!r}"
            )
        self.batch_size = int(batch_size)
        self.sort_window = int(sort_window)
        self.threads = int(threads)
        self.device_setting = device
        self.device = hf.resolve_device(device)
        if autocast == "auto":
            autocast = "bf16" if self.device.startswith("cuda") else None
        if autocast is not None and autocast not in AUTOCASTS:
            raise ConfigError(
                f"encoder.autocast: unknown value {autocast!r}; use null, auto, bf16 or fp16"
            )
        self.autocast = autocast
        if chunk_budget is None:
            chunk_budget = (1 << 26) if self.device.startswith("cuda") else (1 << 18)
        self.chunk_budget = int(chunk_budget)
        self.progress = progress
        self._sides: dict[str, Any] = {}
        self._models: dict[str, Any] = {}
        self._tokenizers: dict[str, Any] = {}
        self._fingerprints: dict[str, str] = {}
        self.idf: np.ndarray | None = None
        self.idf_docs = 0

    # -- SparseEncoder -----------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self._tokenizer(self.doc))

    @property
    def needs_fit(self) -> bool:
        """True when an ``idf`` head needs corpus statistics (call :meth:`fit` first)."""
        return "idf" in (self.query.head, self.doc.head)

    def fingerprint(self, side: SideConfig) -> str:
        if side.backbone not in self._fingerprints:
            self._fingerprints[side.backbone] = hf.model_fingerprint(
                side.backbone, side.backbone_key
            )
        return self._fingerprints[side.backbone]

    def config_key(self) -> dict[str, Any]:
        """Everything that changes query or doc vectors, with the model fingerprints."""
        return {
            "encoder": "sparse_neural",
            "format": FORMAT_VERSION,
            "query": self.query.key_dict(self.fingerprint(self.query)),
            "doc": self.doc.key_dict(self.fingerprint(self.doc)),
            "autocast": self.autocast,
        }

    def doc_config_key(self) -> dict[str, Any]:
        """What changes the doc vectors only (a finer cache key for encoded corpora)."""
        return {
            "encoder": "sparse_neural",
            "format": FORMAT_VERSION,
            "doc": self.doc.key_dict(self.fingerprint(self.doc)),
            "autocast": self.autocast if self.doc.uses_model else None,
        }

    def fit(self, docs: Iterable[Doc]) -> None:
        """Document frequencies of the doc-side tokens over ``docs`` -> the idf table."""
        tok = self._tokenizer(self.doc)
        special = self._special_mask(tok)
        df = np.zeros(len(special), dtype=np.int64)
        n = 0
        it = iter(docs)
        while window := list(itertools.islice(it, self.sort_window)):
            for ids in self._tokenize(self.doc, [d.full_text() for d in window]):
                u = np.unique(np.asarray(ids, dtype=np.int64))
                df[u[~special[u]]] += 1
            n += len(window)
        self.idf_docs = n
        self.idf = bm25_idf(df, n)

    def encode_corpus(self, docs: Iterable[Doc]) -> Iterator[sp.csr_matrix]:
        """Doc vectors (``doc.full_text()``), one CSR batch per window of docs, in doc order."""
        self._check_fitted(self.doc)
        it = iter(docs)
        while window := list(itertools.islice(it, self.sort_window)):
            yield self._encode(self.doc, [self.doc_text(d) for d in window], report=True)

    @staticmethod
    def doc_text(doc: Doc) -> str:
        """The text a doc is encoded from (title, space, text)."""
        return doc.full_text()

    def effective_max_length(self, side: str = "doc") -> int | None:
        """A side's truncation in tokens: ``max_length``, or the model's limit when null."""
        return self._max_length(self._side(side))

    def token_counts(self, texts: Sequence[str], side: str = "doc") -> np.ndarray:
        """Tokens per text after truncation, special tokens included (what the model sees)."""
        ids = self._tokenize(self._side(side), list(texts))
        return np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))

    def special_token_ids(self) -> np.ndarray:
        """Vocabulary ids of the special tokens (never terms)."""
        return np.flatnonzero(self._special_mask(self._tokenizer(self.doc)))

    def encode_queries(self, queries: Sequence[Query]) -> sp.csr_matrix:
        self._check_fitted(self.query)
        return self._encode(self.query, query_texts(queries))

    def encode_texts(self, texts: Sequence[str], side: str = "doc") -> sp.csr_matrix:
        """Encode raw strings with one side (``"query"`` or ``"doc"``)."""
        cfg = self._side(side)
        self._check_fitted(cfg)
        return self._encode(cfg, list(texts))

    # -- persistence -------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write ``sparse_encoder.json`` (settings, fingerprints) and ``idf.npy`` when fitted."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT_VERSION,
            "name": self.name,
            "config_key": self.config_key(),
            "query": self.query.as_dict(),
            "doc": self.doc.as_dict(),
            "vocab_size": self.vocab_size,
            "idf_docs": self.idf_docs if self.idf is not None else None,
        }
        if self.idf is not None:
            np.save(path / "idf.npy", self.idf)
        (path / "sparse_encoder.json").write_text(
            json.dumps(meta, indent=2) + "\n", encoding="utf-8"
        )

    def load(self, path: Path) -> None:
        """Restore the corpus state (the idf table) from :meth:`save`'s folder and load the query
        side's model. The settings stay those of this encoder; a folder written with other
        doc-side settings is an error."""
        path = Path(path)
        meta_path = path / "sparse_encoder.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(
                "no saved sparse encoder here (sparse_encoder.json missing)", meta_path
            ) from None
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON ({e.msg})", meta_path, e.lineno) from None
        if meta.get("format") != FORMAT_VERSION:
            raise DataError(
                f"format {meta.get('format')!r} is not {FORMAT_VERSION}; re-encode the corpus",
                meta_path,
            )
        saved_doc = meta.get("config_key", {}).get("doc")
        if saved_doc != self.doc.key_dict(self.fingerprint(self.doc)):
            raise DataError(
                "saved with other doc-side settings or model; re-encode the corpus", meta_path
            )
        if (path / "idf.npy").is_file():
            self.idf = np.load(path / "idf.npy").astype(np.float32)
            self.idf_docs = int(meta.get("idf_docs") or 0)
        elif self.needs_fit:
            raise DataError(
                "idf.npy is missing but an idf head needs it; re-encode the corpus", path
            )
        self.warmup("query")

    def warmup(self, side: str = "query") -> None:
        """Load a side's tokenizer and model now (``load()`` does it for the query side), so
        that the first ``encode_queries`` call does not pay for imports and model loading."""
        cfg = self.query if side == "query" else self.doc
        self._tokenizer(cfg)
        if cfg.uses_model:
            self._module(cfg)

    # -- internals ---------------------------------------------------------------------------------
    def _side(self, side: str) -> SideConfig:
        if side not in ("doc", "query"):
            raise ValueError(f"side must be 'doc' or 'query', got {side!r}")
        return self.doc if side == "doc" else self.query

    def _check_fitted(self, side: SideConfig) -> None:
        if side.head == "idf" and self.idf is None:
            raise IrbenchError(
                f"{side.key}.head=idf needs corpus statistics: call fit(docs) over the corpus "
                "(or load(path) of a saved encoder) first"
            )

    def _tokenizer(self, side: SideConfig) -> Any:
        if not self._tokenizers:  # both sides at once: their vocabularies must agree
            for s in (self.query, self.doc):
                if s.backbone not in self._tokenizers:
                    self._tokenizers[s.backbone] = hf.load_tokenizer(s.backbone, s.backbone_key)
            self._check_vocabularies()
        return self._tokenizers[side.backbone]

    def _check_vocabularies(self) -> None:
        toks = list(self._tokenizers.values())
        if len(toks) == 2 and toks[0].get_vocab() != toks[1].get_vocab():
            raise ConfigError(
                f"encoder.query.backbone ({self.query.backbone}) and encoder.doc.backbone "
                f"({self.doc.backbone}) have different vocabularies; use backbones with one tokenizer"
            )

    def _special_mask(self, tok: Any) -> np.ndarray:
        """The tokenizer's special tokens, added ones marked special included (they are not
        all in ``all_special_ids``): never terms."""
        mask = np.zeros(len(tok), dtype=bool)
        added = getattr(tok, "added_tokens_decoder", {}) or {}
        special = set(tok.all_special_ids) | {i for i, t in added.items() if t.special}
        ids = [i for i in special if i is not None and 0 <= i < len(tok)]
        mask[ids] = True
        return mask

    def _max_length(self, side: SideConfig) -> int | None:
        """The side's ``max_length`` (default: the tokenizer's ``model_max_length``), capped on
        a side that runs the model by that and by its position embeddings (as the dense encoder
        caps it): a longer input has no positions to run on."""
        limits = [side.max_length]
        tok_limit = getattr(self._tokenizer(side), "model_max_length", None)
        tok_limit = int(tok_limit) if tok_limit and tok_limit < 1_000_000 else None
        if side.max_length is None or side.uses_model:
            limits.append(tok_limit)  # RoBERTa: 512, below its 514 positions (offset 2)
        if side.uses_model:
            positions = getattr(self._model(side).config, "max_position_embeddings", None)
            limits.append(int(positions) if positions else None)
        known = [x for x in limits if x is not None]
        return min(known) if known else None

    def _tokenize(self, side: SideConfig, texts: list[str]) -> list[np.ndarray]:
        return hf.token_ids(self._tokenizer(side), texts, self._max_length(side))

    def _model(self, side: SideConfig) -> Any:
        """The loaded model of a side's backbone: a masked-LM model when any side with this
        backbone has an ``mlm`` head (an ``mlp`` side then uses its base model)."""
        b = side.backbone
        if b not in self._models:
            hf.set_threads(self.threads)
            mlm = any(s.backbone == b and s.head == "mlm" for s in (self.query, self.doc))
            model = hf.load_model(b, mlm=mlm, key=side.backbone_key)
            self._models[b] = model.to(self.device)
        return self._models[b]

    def _module(self, side: SideConfig) -> Any:
        """The torch module computing a model side's output (cached per side)."""
        name = "q" if side is self.query else "d"
        if name not in self._sides:
            from irbench.encoders.sparse_model import build_module

            vocab = len(self._tokenizer(side))
            self._sides[name] = build_module(
                side, self._model(side), vocab, self.device, self.chunk_budget
            )
        return self._sides[name]

    def _encode(self, side: SideConfig, texts: list[str], report: bool = False) -> sp.csr_matrix:
        tok = self._tokenizer(side)
        vocab = len(tok)
        special = self._special_mask(tok)
        ids = self._tokenize(side, texts)
        if side.head in ("binary", "idf"):
            out = term_vectors(
                ids, special, None if side.head == "binary" else self.idf, side.pooling, vocab
            )
            if report and self.progress:
                self.progress(len(texts))
        else:
            out = self._encode_model(side, ids, special, vocab, report)
        if side.top_k is not None:
            out = top_k(out, side.top_k)
        if side.quantize is not None:
            out.data = (
                np.round(out.data.astype(np.float64) * side.quantize) / side.quantize
            ).astype(np.float32)
            out.eliminate_zeros()
        out.has_sorted_indices = True
        return out

    def _encode_model(
        self, side: SideConfig, ids: list[list[int]], special: np.ndarray, vocab: int, report: bool
    ) -> sp.csr_matrix:
        from irbench.encoders.sparse_model import encode_sorted

        return encode_sorted(
            self._module(side), side.head, side.pooling, ids, special, vocab,
            pad=self._tokenizer(side).pad_token_id or 0, batch_size=self.batch_size,
            device=self.device, autocast=self.autocast,
            progress=self.progress if report else None,
        )  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"SparseNeuralEncoder(name={self.name!r}, query={self.query.as_dict()}, "
            f"doc={self.doc.as_dict()}, device={self.device!r}, autocast={self.autocast!r})"
        )
