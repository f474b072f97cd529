"""irbench indexes as PyTerrier transformers (PyTerrier 1.x; no Java needed).

>>> from irbench.interop.pyterrier import IrbenchIndex
>>> index = IrbenchIndex("runs/scifact/bm25.numba")          # a run directory, a config or overrides
>>> bm25 = index.retriever()                                 # a pt.Transformer: Q -> R
>>> from ir_measures import R, nDCG
>>> pt.Experiment([bm25, bm25 % 10], index.topics(), index.qrels(), [nDCG @ 10, R @ 100])

The retriever runs :func:`irbench.pipeline.search` on the index that
:func:`irbench.pipeline.build_index` builds or finds in the cache for the config, so its
results are those of ``irbench run`` with the same config: same encoder, index, ``k``, BEIR
self-hit rule and, with ``calibrate.target_recall``, the same calibrated search setting. A
fused run (``fusion=...``) has two indexes: open each input's run directory instead. Output
frames have PyTerrier's columns ``qid, query, docno, score, rank`` (rank from 0) and compose with other transformers (``>>``, ``%``, ``+``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from irbench.errors import ConfigError, IrbenchError

try:
    import pyterrier as pt
except ImportError as exc:  # pragma: no cover - pyterrier is a dependency
    raise IrbenchError(
        f"PyTerrier is not installed ({exc}); pip install 'python-terrier>=1.0'"
    ) from None

import pandas as pd


def load_config(source: Any, overrides: list[str] | None = None) -> Any:
    """A composed irbench config from a run directory (its resolved ``config.yaml``), a config
    file, a config object, or a list of Hydra overrides."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(source, DictConfig):
        cfg = source.copy()
    elif isinstance(source, list | tuple):
        from irbench.config import compose

        cfg = compose([*source, *(overrides or [])])
        overrides = None
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        path = path / "config.yaml" if path.is_dir() else path
        if not path.is_file():
            raise ConfigError(f"{path}: no such config (give a run directory or its config.yaml)")
        from irbench.config import load_stored_config

        # relative paths are relative to where the run was started
        cfg = load_stored_config(path)
    else:
        raise ConfigError(
            f"cannot make an irbench config from {type(source).__name__}; give a run directory, "
            "a config.yaml, a config object or a list of overrides"
        )
    if overrides:
        from irbench.config import GROUPS

        groups = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in GROUPS]
        if groups:
            raise ConfigError(
                f"{groups[0]}: a config group cannot be changed on a stored config; give the "
                "overrides list itself as the source, e.g. IrbenchIndex(['dataset=...', ...])"
            )
        OmegaConf.set_struct(cfg, True)
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
        except Exception as exc:  # omegaconf's errors: an unknown key
            raise ConfigError(
                f"overrides {list(overrides)}: {' '.join(str(exc).split())}"
            ) from None
        OmegaConf.set_struct(cfg, False)
    if cfg.get("fusion"):
        raise ConfigError(
            "a fused run has two indexes: open each input's run directory (RUN_DIR/inputs/...) "
            "and fuse their results, e.g. with irbench.fusion.fuse_runs"
        )
    return cfg


class IrbenchIndex:
    """An irbench index (built or reused from the cache on first use) and its dataset;
    a factory of retrievers."""

    def __init__(self, source: Any, overrides: list[str] | None = None):
        self.cfg = load_config(source, overrides)
        self._handle = None

    @property
    def handle(self):
        """The index, encoder and doc ids; calibrated as ``irbench run`` does when the config
        asks for a recall target (the cached calibration, or calibrated now)."""
        if self._handle is None:
            from irbench.pipeline import build_index, calibrate_search, check_calibration

            handle = build_index(self.cfg)
            if check_calibration(self.cfg) is not None:
                calibrate_search(self.cfg, handle, list(self._dataset().queries_iter()))
            self._handle = handle
        return self._handle

    def retriever(self, k: int | None = None, threads: int | None = None) -> IrbenchRetriever:
        return IrbenchRetriever(self, k=k, threads=threads)

    def _dataset(self):
        from irbench.pipeline import load_dataset

        return load_dataset(self.cfg)

    def topics(self) -> pd.DataFrame:
        """The split's queries as a PyTerrier topics frame ``(qid, query)``."""
        rows = [(q.query_id, q.text) for q in self._dataset().queries_iter()]
        return pd.DataFrame(rows, columns=["qid", "query"])

    def qrels(self) -> pd.DataFrame:
        """The split's judgements as a PyTerrier qrels frame ``(qid, docno, label)``."""
        rows = [(q.query_id, q.doc_id, int(q.relevance)) for q in self._dataset().qrels_iter()]
        return pd.DataFrame(rows, columns=["qid", "docno", "label"])

    def __repr__(self) -> str:
        return (
            f"IrbenchIndex({self.cfg.dataset.name}, {self.cfg.encoder.name}.{self.cfg.index.name})"
        )


class IrbenchRetriever(pt.Transformer):
    """Q -> R: irbench retrieval as a PyTerrier transformer.

    ``source`` is an :class:`IrbenchIndex` or anything :func:`load_config` takes (a run
    directory, a config, overrides); ``k`` and ``threads`` override the config's.
    """

    def __init__(self, source: Any, k: int | None = None, threads: int | None = None):
        super().__init__()
        self.index = source if isinstance(source, IrbenchIndex) else IrbenchIndex(source)
        self.k = k
        self.threads = threads

    def _cfg(self) -> Any:
        cfg = self.index.cfg.copy()
        if self.k is not None:
            cfg.k = int(self.k)
        if self.threads is not None:
            cfg.threads = int(self.threads)
        return cfg

    def transform(self, topics: pd.DataFrame) -> pd.DataFrame:
        from irbench.pipeline import search
        from irbench.types import Query

        if "qid" not in topics.columns or "query" not in topics.columns:
            raise ConfigError(
                f"topics need columns 'qid' and 'query'; got {', '.join(map(str, topics.columns))}"
            )
        first = topics.drop_duplicates("qid")
        queries = [Query(str(q), str(t)) for q, t in zip(first["qid"], first["query"], strict=True)]
        results = search(self._cfg(), self.index.handle, queries)
        rows = [
            (qid, docno, score, rank)
            for qid, ranked in results
            for rank, (docno, score) in enumerate(ranked)
        ]
        hits = pd.DataFrame(rows, columns=["qid", "docno", "score", "rank"])
        extra = first.assign(qid=first["qid"].astype(str))
        extra = extra[[c for c in extra.columns if c not in ("docno", "score", "rank")]]
        out = extra.merge(hits, on="qid", how="inner")
        return out.reset_index(drop=True)

    def __repr__(self) -> str:
        return f"IrbenchRetriever({self.index!r}, k={self.k or self.index.cfg.k})"


__all__ = ["IrbenchIndex", "IrbenchRetriever", "load_config"]
