"""``encoder=dense``: bi-encoders (sentence-transformers style) producing one vector per text.

A Hugging Face backbone (hub id or local folder) runs over the tokenised text; its last hidden
states are pooled (``cls``: the first token; ``mean``: the average over non-padding tokens,
as sentence-transformers' ``Pooling`` computes it) and optionally L2-normalised (then the inner
product is the cosine). e5/bge-style models take a ``query_prefix`` / ``doc_prefix`` ("query: ",
"passage: ") prepended to the text. Docs are encoded as ``title + " " + text`` stripped (BEIR,
sentence-transformers and MTEB alike), each side truncated at its own max length.

Texts are tokenised once, sorted by token length within windows of ``sort_window`` texts and
encoded in batches of ``batch_size`` (little padding), under ``torch.inference_mode``; the
original order is restored before vectors are returned. On CPU the batches run in
``torch.get_num_threads()`` worker threads with single-threaded torch ops each
(:func:`irbench.encoders.hf.map_batches`). On GPU, bf16 autocast is on by default
(``autocast: auto``); on CPU it is off: it changes the vectors, and on the project's AVX2
machine torch's bf16 matmul ran 9-97x slower than fp32 (``docs/encoders.md``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from irbench.encoders import hf
from irbench.errors import ConfigError, DataError
from irbench.types import Doc, Query, query_texts

FORMAT_VERSION = 1
POOLINGS = ("cls", "mean")
AUTOCASTS = ("bf16", "fp16")
BACKBONE_KEY = "encoder.backbone"
META_FILE = "dense_encoder.json"


def _opt_length(value: Any, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ConfigError(
            f"{key}: expected an integer >= 2 or null (the model's limit), got {value!r}"
        )
    return int(value)


def _positive(value: Any, key: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def pool(hidden: Any, mask: Any, pooling: str) -> Any:
    """``cls``: ``hidden[:, 0]``; ``mean``: sum of unmasked token states / max(count, 1e-9)
    (sentence-transformers' formula), computed in float32."""
    import torch

    if pooling == "cls":
        return hidden[:, 0].float()
    m = mask.unsqueeze(-1).to(torch.float32)
    summed = (hidden.float() * m).sum(dim=1)
    return summed / m.sum(dim=1).clamp(min=1e-9)


class DenseEncoder:
    """Dense bi-encoder: texts -> float32 vectors ``[n, dim]``.

    Models load lazily (on the first encode or ``dim``), so construction and ``config_key()``
    stay cheap. ``encode_corpus`` yields one array per window of ``sort_window`` docs in doc
    order. ``progress`` (optional) is called with the number of docs done after each batch.
    """

    kind = "dense"
    shardable = True

    def __init__(
        self,
        name: str = "dense",
        backbone: str = "sentence-transformers/all-MiniLM-L6-v2",
        pooling: str = "mean",
        normalize: bool = True,
        query_prefix: str = "",
        doc_prefix: str = "",
        max_length: int | None = 256,
        query_max_length: int | None = None,
        doc_max_length: int | None = None,
        batch_size: int = 32,
        device: str | None = "auto",
        threads: int = 0,
        autocast: str | None = "auto",
        sort_window: int = 4096,
        progress: Callable[[int], None] | None = None,
        **_: Any,
    ):
        if pooling not in POOLINGS:
            raise ConfigError(f"encoder.pooling: unknown value {pooling!r}; use cls or mean")
        if not isinstance(normalize, bool):
            raise ConfigError(f"encoder.normalize: expected true or false, got {normalize!r}")
        for key, value in (("query_prefix", query_prefix), ("doc_prefix", doc_prefix)):
            if not isinstance(value, str):
                raise ConfigError(f"encoder.{key}: expected a string, got {value!r}")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ConfigError(
                f"encoder.threads: expected an integer >= 0 (0 = torch's default), got {threads!r}"
            )
        self.name = name
        self.backbone = backbone
        self.pooling = pooling
        self.normalize = normalize
        self.query_prefix = query_prefix
        self.doc_prefix = doc_prefix
        self.max_length = _opt_length(max_length, "encoder.max_length")
        ql = _opt_length(query_max_length, "encoder.query_max_length")
        dl = _opt_length(doc_max_length, "encoder.doc_max_length")
        self.query_max_length = ql if ql is not None else self.max_length
        self.doc_max_length = dl if dl is not None else self.max_length
        self.batch_size = _positive(batch_size, "encoder.batch_size")
        self.sort_window = _positive(sort_window, "encoder.sort_window")
        self.threads = int(threads)
        self.device = hf.resolve_device(device)
        if autocast == "auto":
            autocast = "bf16" if self.device.startswith("cuda") else None
        if autocast is not None and autocast not in AUTOCASTS:
            raise ConfigError(
                f"encoder.autocast: unknown value {autocast!r}; use null, auto, bf16 or fp16"
            )
        self.autocast = autocast
        self.progress = progress
        self._model: Any = None
        self._module: Any = None
        self._tokenizer: Any = None
        self._fingerprint: str | None = None

    # -- properties ------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Vector width (the backbone's hidden size)."""
        return int(self._load_model().config.hidden_size)

    @property
    def fingerprint(self) -> str:
        """``sha256:...`` of a local model folder's files, ``<hub id>[@commit]`` otherwise."""
        if self._fingerprint is None:
            self._fingerprint = hf.model_fingerprint(self.backbone, BACKBONE_KEY)
        return self._fingerprint

    # -- cache keys --------------------------------------------------------------------------------
    def doc_config_key(self) -> dict[str, Any]:
        """What changes the doc vectors."""
        return {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "model": self.fingerprint,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "doc_prefix": self.doc_prefix,
            "doc_max_length": self.doc_max_length,
            "autocast": self.autocast,
        }

    def config_key(self) -> dict[str, Any]:
        """What changes the doc or the query vectors (cache keys, manifests)."""
        return {
            **self.doc_config_key(),
            "query_prefix": self.query_prefix,
            "query_max_length": self.query_max_length,
        }

    # -- encoding ----------------------------------------------------------------------------------
    def encode_corpus(self, docs: Iterable[Doc]) -> Iterator[np.ndarray]:
        """Yield float32 ``[n, dim]`` arrays in doc order (one per ``sort_window`` docs; one
        ``[0, dim]`` array for an empty corpus). Text: ``(title + " " + text).strip()``."""
        it = iter(docs)
        yielded = False
        while True:
            window = []
            for doc in it:
                window.append(self.doc_text(doc))
                if len(window) == self.sort_window:
                    break
            if not window:
                break
            yield self._encode(window, self.doc_max_length, report=True)
            yielded = True
        if not yielded:
            yield np.zeros((0, self.dim), dtype=np.float32)

    def doc_text(self, doc: Doc) -> str:
        """The text a doc is encoded from: ``doc_prefix + (title + " " + text).strip()``."""
        return self.doc_prefix + doc.full_text().strip()

    def effective_max_length(self, side: str = "doc") -> int | None:
        """A side's truncation in tokens, capped by the model's and the tokenizer's limits."""
        if side not in ("doc", "query"):
            raise ValueError(f"side must be 'doc' or 'query', got {side!r}")
        return self._limit(self.doc_max_length if side == "doc" else self.query_max_length)

    def token_counts(self, texts: Sequence[str], side: str = "doc") -> np.ndarray:
        """Tokens per (already prefixed) text after truncation, special tokens included."""
        length = self.doc_max_length if side == "doc" else self.query_max_length
        ids = self._tokenize(list(texts), length)
        return np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))

    def encode_queries(self, queries: Sequence[Query]) -> np.ndarray:
        """float32 ``[n, dim]`` in query order."""
        texts = [self.query_prefix + t.strip() for t in query_texts(queries)]
        return self._encode(texts, self.query_max_length)

    def encode_texts(self, texts: Sequence[str], side: str = "doc") -> np.ndarray:
        """Encode raw strings as docs or queries (prefix and max length of that side)."""
        if side not in ("doc", "query"):
            raise ValueError(f"side must be 'doc' or 'query', got {side!r}")
        prefix = self.doc_prefix if side == "doc" else self.query_prefix
        length = self.doc_max_length if side == "doc" else self.query_max_length
        return self._encode([prefix + str(t).strip() for t in texts], length)

    # -- persistence -------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write ``dense_encoder.json`` (the settings and the model fingerprint)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT_VERSION,
            "name": self.name,
            "backbone": str(self.backbone),
            "dim": self.dim,
            "config_key": self.config_key(),
        }
        (path / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    def load(self, path: Path) -> None:
        """Check that the folder from :meth:`save` was written with this encoder's doc-side
        settings and model (there is no other state to restore)."""
        file = Path(path) / META_FILE
        try:
            meta = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"no saved dense encoder here ({META_FILE} missing)", file) from None
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON ({e.msg})", file, e.lineno) from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
            got = meta.get("format") if isinstance(meta, dict) else None
            raise DataError(f"format {got!r} is not {FORMAT_VERSION}; re-encode the corpus", file)
        saved = meta.get("config_key", {})
        mine = self.doc_config_key()
        if {k: saved.get(k) for k in mine} != mine:
            raise DataError(
                "saved with other doc-side settings or model; re-encode the corpus", file
            )

    # -- internals ---------------------------------------------------------------------------------
    def _load_tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = hf.load_tokenizer(self.backbone, BACKBONE_KEY)
        return self._tokenizer

    def _load_model(self) -> Any:
        if self._model is None:
            import torch

            hf.set_threads(self.threads)
            model = hf.load_model(self.backbone, mlm=False, key=BACKBONE_KEY).to(self.device)
            self._model = model
            module = model
            if self.device == "cuda" and torch.cuda.device_count() > 1:
                module = torch.nn.DataParallel(model)
            self._module = module
        return self._model

    def _limit(self, max_length: int | None) -> int | None:
        """The side's max length, capped by the model's position embeddings and the
        tokenizer's ``model_max_length``."""
        limits = [max_length]
        tok_limit = getattr(self._load_tokenizer(), "model_max_length", None)
        if tok_limit and tok_limit < 1_000_000:
            limits.append(int(tok_limit))
        positions = getattr(self._load_model().config, "max_position_embeddings", None)
        if positions:
            limits.append(int(positions))
        known = [x for x in limits if x is not None]
        return min(known) if known else None

    def _tokenize(self, texts: list[str], max_length: int | None) -> list[np.ndarray]:
        return hf.token_ids(self._load_tokenizer(), texts, self._limit(max_length))

    def _autocast(self) -> Any:
        if self.autocast is None:
            return contextlib.nullcontext()
        import torch

        dtype = torch.bfloat16 if self.autocast == "bf16" else torch.float16
        return torch.autocast(self.device.split(":")[0], dtype=dtype)

    def _encode(self, texts: list[str], max_length: int | None, report: bool = False) -> np.ndarray:
        import torch

        model = self._load_model()
        dim = int(model.config.hidden_size)
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        ids = self._tokenize(texts, max_length)
        pad = self._load_tokenizer().pad_token_id or 0
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        order = np.argsort(-lengths, kind="stable")  # longest first: little padding
        batches = [order[s : s + self.batch_size] for s in range(0, len(ids), self.batch_size)]

        def run(rows: np.ndarray, single_thread: bool) -> np.ndarray:
            if single_thread:
                torch.set_num_threads(1)  # this worker's OpenMP team (per-thread setting)
            width = max(int(lengths[rows].max()), 1)
            batch = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                batch[r, : lengths[i]] = torch.as_tensor(ids[i], dtype=torch.long)
                mask[r, : lengths[i]] = 1
            batch, mask = batch.to(self.device), mask.to(self.device)
            with torch.inference_mode(), self._autocast():  # both thread-local
                hidden = self._module(input_ids=batch, attention_mask=mask)[0]
                vecs = pool(hidden, mask, self.pooling)
                if self.normalize:
                    vecs = torch.nn.functional.normalize(vecs, p=2, dim=1)
            return vecs.float().cpu().numpy()

        parts = hf.map_batches(
            run, batches, self.device, self.progress if report else None,
            [len(rows) for rows in batches],
        )  # fmt: skip
        out = np.empty((len(ids), dim), dtype=np.float32)
        for rows, vecs in zip(batches, parts, strict=True):
            out[rows] = vecs
        return out

    def __repr__(self) -> str:
        return (
            f"DenseEncoder(backbone={str(self.backbone)!r}, pooling={self.pooling!r}, "
            f"normalize={self.normalize}, device={self.device!r}, autocast={self.autocast!r})"
        )
