"""The experiment as plain functions: index -> retrieve -> evaluate, usable from Python.

Each function takes a composed config (``irbench.config.compose([...])``) and a ``record``
dict that collects provenance for ``manifest.json``. The CLI is a thin shell around these.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irbench.errors import CacheError, ConfigError, DataError, IrbenchError
from irbench.types import RowBlocks

INDEX_FORMAT = 3  # 2: entries carry doc_df.npy; 3: checksummed completion marker
ENCODED_FORMAT = 2  # 2: checksummed chunks
CALIBRATION_FORMAT = 2  # bump when irbench.index.tuning changes its ladders or its cost


@dataclass
class IndexHandle:
    path: Path
    index: Any
    encoder: Any
    docnos: list[str]
    reused: bool
    info: dict[str, Any]


def seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def effective_threads(threads: int) -> int:
    return threads if threads > 0 else (os.cpu_count() or 1)


def load_dataset(cfg: Any):
    from omegaconf import OmegaConf

    from irbench.data import make_dataset

    return make_dataset(**OmegaConf.to_container(cfg.dataset, resolve=True))


def _component_cfg(node: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True)


def make_encoder(cfg: Any):
    from irbench.config import instantiate

    return instantiate(cfg.encoder)


def _batching(encoder: Any) -> dict[str, int]:
    """What decides a neural encoder's batches (``batch_size``, ``sort_window``), hence the
    float rounding of its vectors (padding, matmul shapes): part of the cache keys, although
    not of ``config_key()``."""
    return {
        k: int(getattr(encoder, k)) for k in ("batch_size", "sort_window") if hasattr(encoder, k)
    }


def _encoded_entry(cfg: Any, encoder: Any, fingerprint: dict[str, str]) -> Path:
    from irbench.runs.cache import content_key

    key = content_key(
        ENCODED_FORMAT,
        fingerprint.get("docs", fingerprint),
        encoder.config_key(),
        _batching(encoder),
    )
    return Path(cfg.cache_dir) / "encoded" / f"{cfg.dataset.name}.{cfg.encoder.name}.{key}"


def _index_entry(cfg: Any, encoder: Any, fingerprint: dict[str, str]) -> Path:
    from irbench.runs.cache import content_key

    search_only = {"name", *search_time_keys(cfg.index)}
    index_cfg = {k: v for k, v in _component_cfg(cfg.index).items() if k not in search_only}
    parts = [INDEX_FORMAT, fingerprint.get("docs", fingerprint), encoder.config_key(), index_cfg]
    version = getattr(_index_owner(cfg.index), "build_version", None)
    if version is not None:  # the index class changed what the same config builds
        parts.append({"build_version": version})
    if getattr(encoder, "shardable", False):
        # chunk boundaries decide the encoder's batches, hence the float rounding of the vectors
        parts.append({"chunk_size": int(cfg.encode.chunk_size), **_batching(encoder)})
    key = content_key(*parts)
    name = f"{cfg.dataset.name}.{cfg.encoder.name}.{cfg.index.name}.{key}"
    return Path(cfg.cache_dir) / "index" / name


def _index_owner(index_cfg: Any) -> Any:
    """The class whose classmethod ``_target_`` names (None if it names none)."""
    from hydra.utils import get_method

    try:
        return getattr(get_method(str(index_cfg.get("_target_"))), "__self__", None)
    except Exception:  # an unknown target fails later, with instantiate's own message
        return None


def check_index_keys(index_cfg: Any) -> None:
    """ConfigError naming ``index.<key>`` for a key the index's build does not take (a typo
    such as ``+index.n_posting=0``), before any encoding; builds that take ``**kwargs`` are
    not checked."""
    import inspect

    owner = _index_owner(index_cfg)
    build = getattr(owner, "build", None)
    if build is None:
        return

    def named(fn: Any) -> tuple[set[str], bool]:  # (parameter names, takes **kwargs)
        params = inspect.signature(fn).parameters.values()
        return {p.name for p in params}, any(p.kind is p.VAR_KEYWORD for p in params)

    taken, open_ended = named(build)
    if open_ended:  # build(docs, **knobs) hands them on to build_streaming
        stream = getattr(owner, "build_streaming", None)
        if stream is None or named(stream)[1]:
            return
        taken |= named(stream)[0]
    unknown = sorted(k for k in index_cfg if not str(k).startswith("_") and k not in taken)
    if unknown:
        hidden = {"docs", "blocks", "n_terms", "progress", "knobs", "cls"}
        valid = ", ".join(sorted(taken - hidden))
        raise ConfigError(
            f"index.{unknown[0]}: not an option of index={index_cfg.get('name')}; valid: {valid}"
        )
    check_options = getattr(owner, "check_options", None)
    if check_options is not None:  # types and ranges, where the index class can tell them
        check_options({str(k): index_cfg[k] for k in index_cfg if not str(k).startswith("_")})


def calibration_knobs(index_cfg: Any) -> tuple[str, ...]:
    """The search knobs ``calibrate.target_recall`` sets for this index config (the index
    class's ``calibration_knobs``; empty when it has none to calibrate)."""
    knobs = getattr(_index_owner(index_cfg), "calibration_knobs", None)
    return tuple(knobs(index_cfg)) if knobs is not None else ()


def search_time_keys(index_cfg: Any) -> tuple[str, ...]:
    """Index settings that only steer search (the index class's ``search_keys``, e.g. FAISS
    ``nprobe``/``ef_search``): left out of the cache key, applied to the loaded index."""
    return tuple(getattr(_index_owner(index_cfg), "search_keys", ()))


class ShardsPending(IrbenchError):
    """This process encoded its shard; other shards are still missing (not a failure)."""

    exit_code = 0


def corpus_source(dataset: Any) -> str:
    """The corpus file of a local dataset, or the dataset's name (for messages)."""
    for attr in ("corpus_file", "corpus"):
        path = getattr(dataset, attr, None)
        if isinstance(path, Path):
            return str(path)
    return f"dataset '{dataset.name}'"


def _encode_corpus(
    cfg: Any,
    dataset: Any,
    encoder: Any,
    fingerprint: dict[str, str],
    stream: bool = False,
    on_corrupt: str = "rebuild",
):
    """:func:`_read_corpus`; a corpus without docs, or a corpus error that names no file
    (a duplicate doc id), is reported with the corpus file. An encoder that needs corpus
    statistics (``needs_fit``: an ``idf`` head) is fitted on the corpus: before encoding when
    its doc side uses them, else once the vectors are all there (so that a shard which only
    encodes its chunks does not pay for it)."""

    def fit() -> None:
        from irbench.progress import track

        docs = dataset.docs_iter()
        encoder.fit(track(docs, "corpus statistics", total=dataset.docs_count()))

    needs_fit = getattr(encoder, "needs_fit", False)
    doc_side = needs_fit and getattr(getattr(encoder, "doc", None), "head", None) == "idf"
    if doc_side:
        fit()
    try:
        vectors, docnos, info = _read_corpus(cfg, dataset, encoder, fingerprint, stream, on_corrupt)
    except DataError as exc:
        if exc.path is not None:
            raise
        raise DataError(str(exc), corpus_source(dataset)) from None
    if needs_fit and not doc_side:
        fit()
    if not docnos:
        raise DataError(
            "the corpus has no docs; check the dataset's corpus", corpus_source(dataset)
        )
    return vectors, docnos, info


def _read_corpus(
    cfg: Any,
    dataset: Any,
    encoder: Any,
    fingerprint: dict[str, str],
    stream: bool = False,
    on_corrupt: str = "rebuild",
):
    """Doc vectors and ids: chunked, resumable and shardable for neural encoders; in one pass
    for corpus-statistics encoders such as BM25. With ``stream``, the vectors come as
    :class:`~irbench.types.RowBlocks` (sparse) or :class:`~irbench.types.DenseBlocks`, not
    merged in memory: chunks read from the cache, or a corpus-statistics encoder's
    ``corpus_blocks`` (weighted again on each read)."""
    from irbench.progress import track
    from irbench.runs import shards

    docs = track(dataset.docs_iter(), "encoding docs", total=dataset.docs_count())
    if not getattr(encoder, "shardable", False):
        if cfg.encode.shard is not None:
            raise ConfigError(
                f"encoder '{cfg.encoder.name}' needs the whole corpus at once; unset encode.shard"
            )
        docnos: list[str] = []
        with_ids = shards.iter_with_ids(docs, docnos)
        if stream and hasattr(encoder, "corpus_blocks"):  # weighted block by block on each read
            vectors = encoder.corpus_blocks(with_ids)
        else:
            vectors = shards.stack(list(encoder.encode_corpus(with_ids)), encoder.vocab_size)
        shards.check_unique(docnos)
        return vectors, docnos, {}
    entry = _encoded_entry(cfg, encoder, fingerprint)
    n_docs = dataset.docs_count()
    if n_docs is None:
        n_docs = sum(1 for _ in dataset.docs_iter())
    chunk_plan = shards.plan(cfg.encode, n_docs)
    info = shards.encode_chunks(entry, encoder, docs, chunk_plan, on_corrupt)
    if info["missing"]:
        raise ShardsPending(
            f"shard {chunk_plan.shard}/{chunk_plan.num_shards} done; {info['missing']} of "
            f"{info['chunks']} chunks still missing in {entry}; the last shard to finish builds the index"
        )
    read = shards.stream_chunks if stream else shards.merge_chunks
    vectors, docnos = read(entry, chunk_plan.n_chunks)
    return vectors, docnos, {"encoded_cache": str(entry), **info}


def _check_kinds(cfg: Any, encoder: Any) -> None:
    wants = {"numba": "sparse", "numba_approx": "sparse", "faiss": "dense"}.get(str(cfg.index.name))
    kind = getattr(encoder, "kind", "sparse")
    if wants and kind != wants:
        other = "faiss" if kind == "dense" else "numba"
        raise ConfigError(
            f"index={cfg.index.name} needs a {wants} encoder but encoder={cfg.encoder.name} is {kind}; "
            f"use index={other}"
        )


def build_index(
    cfg: Any,
    record: dict[str, Any] | None = None,
    require_cached: bool = False,
    on_corrupt: str = "rebuild",
) -> IndexHandle:
    """Encode the corpus and build the index, or reuse the cached one with the same content key.

    With ``require_cached`` a missing cache entry is an error instead of a build; a cached entry
    that fails its checksums is rebuilt (``on_corrupt="rebuild"``) or an error (``"error"``).
    """
    import numpy as np
    import scipy.sparse as sp

    from irbench.config import instantiate
    from irbench.index import load_index
    from irbench.runs.cache import get_or_build, is_complete

    record = record if record is not None else {}
    if cfg.get("fusion"):  # run_fused builds each input with fusion unset
        raise ConfigError(
            "fusion= combines two encoders and indexes, but `irbench index` / `irbench retrieve` "
            "work on one: use `irbench run` (it indexes and retrieves each input into "
            "run_dir/inputs/)"
        )
    check_index_keys(cfg.index)
    dataset = load_dataset(cfg)
    fingerprint = dataset.fingerprint()
    encoder = make_encoder(cfg)
    _check_kinds(cfg, encoder)
    entry = _index_entry(cfg, encoder, fingerprint)
    if require_cached and not is_complete(entry):
        raise IrbenchError(
            f"no index for this config under cache_dir={cfg.cache_dir}; "
            "run `irbench index` with the same overrides first (or `irbench run`)"
        )

    def build(tmp: Path) -> dict[str, Any]:
        t0 = time.perf_counter()
        docs, docnos, encode_info = _encode_corpus(
            cfg, dataset, encoder, fingerprint, stream=True, on_corrupt=on_corrupt
        )
        encode_s = time.perf_counter() - t0
        stats = None
        if isinstance(docs, RowBlocks):
            stats = _CorpusStats(docs.n_terms)
            docs = stats.tap(docs)  # gathered during the build's first read, not in a third
        elif sp.issparse(docs):
            stats = _CorpusStats(docs.shape[1])
            stats.add(docs)
        t0 = time.perf_counter()
        index = instantiate(cfg.index)(docs)
        index.save(tmp / "index")
        build_s = time.perf_counter() - t0
        encoder.save(tmp / "encoder")
        (tmp / "docnos.txt").write_text("".join(d + "\n" for d in docnos), encoding="utf-8")
        info: dict[str, Any] = {"n_docs": len(docnos)}
        if stats is not None:
            np.save(tmp / "doc_df.npy", stats.doc_df)
            info.update(stats.info())
        else:
            info.update(dim=int(docs.shape[1]))
        info.update(encode_info)  # chunk counts; its own encode_s counts only new chunks
        info.update(
            index_bytes=int(index.size_bytes),
            encode_s=round(encode_s, 3),
            build_s=round(build_s, 3),
        )
        return info

    reused, info = get_or_build(entry, build, on_corrupt=on_corrupt)
    encoder.load(entry / "encoder")
    index = load_index(entry / "index")
    knobs = {k: cfg.index[k] for k in search_time_keys(cfg.index) if k in cfg.index}
    if knobs:
        index.configure(**knobs)
    check_vocabulary(encoder, index)
    docnos = (entry / "docnos.txt").read_text(encoding="utf-8").splitlines()
    record.update(
        {
            "dataset": {"name": dataset.name, "fingerprint": fingerprint},
            "encoder": {"name": cfg.encoder.name, "config": encoder.config_key()},
            "index": {"name": cfg.index.name, "cache": str(entry), "reused": reused, **info},
        }
    )
    return IndexHandle(entry, index, encoder, docnos, reused, info)


class _CorpusStats:
    """Corpus statistics of sparse doc vectors (nnz, empty docs, each term's document
    frequency), gathered block by block."""

    def __init__(self, n_terms: int):
        import numpy as np

        self.doc_df = np.zeros(int(n_terms), dtype=np.int64)
        self.n_docs = self.nnz = self.empty = 0

    def add(self, block: Any) -> None:
        import numpy as np

        per_doc = np.diff(block.indptr)
        self.n_docs += len(per_doc)
        self.nnz += int(block.nnz)
        self.empty += int((per_doc == 0).sum())
        self.doc_df += np.bincount(block.indices, minlength=len(self.doc_df))

    def tap(self, docs: RowBlocks) -> RowBlocks:
        """``docs``, whose first complete read also feeds these statistics."""
        reads = 0

        def blocks() -> Any:
            nonlocal reads
            reads += 1
            first = reads == 1
            for block in docs.blocks():
                if first:
                    self.add(block)
                yield block

        return RowBlocks(blocks, docs.n_terms)

    def info(self) -> dict[str, Any]:
        avg = round(self.nnz / self.n_docs, 3) if self.n_docs else 0.0
        return {"vocab_size": len(self.doc_df), "nnz": self.nnz, "avg_doc_nnz": avg,
                "empty_docs": self.empty}  # fmt: skip


def check_vocabulary(encoder: Any, index: Any) -> None:
    """A sparse model and a sparse index must share one vocabulary (term id space)."""
    n_terms = getattr(index, "n_terms", None)
    vocab = getattr(encoder, "vocab_size", None)
    if n_terms is not None and vocab is not None and int(n_terms) != int(vocab):
        raise CacheError(
            f"the encoder's vocabulary has {vocab} terms but the index has {n_terms}; "
            "the index was built with another model (delete it or fix encoder.backbone)"
        )


def run_tag(cfg: Any) -> str:
    """Column 6 of run.trec and the system's display name."""
    if cfg.tag:
        return str(cfg.tag)
    tag = f"{cfg.encoder.name}.{cfg.index.name}"
    fusion = cfg.get("fusion")
    if fusion:
        tag = f"{fusion.method}.{tag}+{fusion.second.encoder.name}.{fusion.second.index.name}"
    return tag


def search(cfg: Any, handle: IndexHandle, queries: list, record: dict[str, Any] | None = None):
    """Yield ``(query_id, [(doc_id, score), ...])`` for each query, ranked as trec_eval
    ranks them (ties by doc id descending: :func:`irbench.runs.trec.trec_order`; the index
    decides which tied docs make the top k), BEIR rule applied."""
    import numpy as np

    from irbench.progress import track
    from irbench.runs.trec import trec_order

    record = record if record is not None else {}
    k = int(cfg.k)
    drop_self = bool(cfg.dataset.drop_self_hits)
    depth = k + 1 if drop_self else k
    threads = int(cfg.threads)
    bs = int(cfg.query_batch_size)
    encode_s = search_s = 0.0
    results = []
    sparsity = SparsityStats(handle)
    docnos = np.asarray(handle.docnos, dtype=object)
    if queries:  # warm-up (JIT loading, lazy tables) so that the timings below are steady-state
        handle.index.search(handle.encoder.encode_queries(queries[:1]), depth, threads=threads)
    for start in track(
        range(0, len(queries), bs), "retrieving", total=-(-len(queries) // bs), unit="batches"
    ):
        batch = queries[start : start + bs]
        t0 = time.perf_counter()
        qvecs = handle.encoder.encode_queries(batch)
        t1 = time.perf_counter()
        scores, idx = handle.index.search(qvecs, depth, threads=threads)
        t2 = time.perf_counter()
        encode_s += t1 - t0
        search_s += t2 - t1
        sparsity.add_queries(qvecs)
        for row, q in enumerate(batch):
            valid = idx[row] >= 0
            names = docnos[idx[row][valid]]
            values = scores[row][valid].astype(np.float64)
            if drop_self:
                keep = names != q.query_id
                names, values = names[keep], values[keep]
            names, values = names[:k], values[:k]
            hits = list(zip(names.tolist(), values.tolist(), strict=True))
            if (values[1:] == values[:-1]).any():
                hits = trec_order(hits)  # ties as trec_eval ranks them (doc id descending)
            results.append((q.query_id, hits))
    n = max(len(queries), 1)
    record.update(
        {
            "queries": len(queries),
            "queries_without_hits": sum(1 for _, r in results if not r),
            "query_encode_s": round(encode_s, 4),
            "search_s": round(search_s, 4),
            "ms_per_query": round(1000 * (encode_s + search_s) / n, 4),
            "threads": effective_threads(threads),
            **sparsity.result(),
        }
    )
    return results


class SparsityStats:
    """Average doc/query nnz and the FLOPS estimate of the SPLADE papers,
    ``sum_t p_q(t) * p_d(t)`` with p the fraction of queries/docs holding term t."""

    def __init__(self, handle: IndexHandle):
        import numpy as np

        path = handle.path / "doc_df.npy"
        self.doc_df = np.load(path) if path.is_file() else None
        self.n_docs = max(len(handle.docnos), 1)
        self.query_df = None
        self.n_queries = 0

    def add_queries(self, qvecs: Any) -> None:
        import numpy as np
        import scipy.sparse as sp

        if self.doc_df is None or not sp.issparse(qvecs):
            return
        q = sp.csr_matrix(qvecs)
        q.eliminate_zeros()
        df = np.bincount(q.indices, minlength=len(self.doc_df))[: len(self.doc_df)]
        self.query_df = df if self.query_df is None else self.query_df + df
        self.n_queries += q.shape[0]

    def result(self) -> dict[str, float]:
        if self.doc_df is None or self.query_df is None or not self.n_queries:
            return {}
        p_q = self.query_df / self.n_queries
        p_d = self.doc_df / self.n_docs
        return {
            "avg_query_nnz": round(float(self.query_df.sum()) / self.n_queries, 3),
            "flops": round(float((p_q * p_d).sum()), 4),
        }


def check_calibration(cfg: Any) -> tuple[float, int] | None:
    """``(target_recall, sample size)`` of ``calibrate``, None when off; ConfigError for
    bad values, an index without search knobs or a ``calibrate.split`` the dataset cannot
    give (checked before any work is done)."""
    options = cfg.get("calibrate") or {}
    target = options.get("target_recall")
    if target is None:
        return None
    if not calibration_knobs(cfg.index):
        factory = cfg.index.get("factory")
        raise ConfigError(
            f"calibrate.target_recall: index={cfg.index.name}"
            + (f" with index.factory={factory}" if factory else "")
            + " has no search knobs to calibrate; use index=numba_approx, or index=faiss "
            "with an IVF or HNSW factory, or drop the override"
        )
    try:
        target, n = float(target), int(options.get("queries") or 0)
    except (TypeError, ValueError):
        raise ConfigError(
            "calibrate.target_recall / calibrate.queries: give a fraction and a count"
        ) from None
    if not 0 < target <= 1:
        raise ConfigError(f"calibrate.target_recall={target}: give a fraction in (0, 1]")
    if n < 0:
        raise ConfigError(f"calibrate.queries={n}: give a count >= 1 (0 = all queries)")
    split = options.get("split")
    if split is not None:
        from irbench.data.beir import beir_splits

        ds = cfg.dataset
        if ds.get("path"):
            if str(split) not in beir_splits(ds.path):
                have = ", ".join(beir_splits(ds.path)) or "none"
                raise ConfigError(
                    f"calibrate.split={split}: {ds.path} has no qrels/{split}.tsv (splits: {have})"
                )
        elif ds.get("corpus") or ds.get("topics") or not ds.get("irds_id"):
            raise ConfigError(
                f"calibrate.split={split}: only a BEIR folder (dataset.path) or an "
                "ir_datasets dataset has other query sets; drop calibrate.split"
            )
        else:
            _check_irds_split(str(split), str(ds.irds_id))
    return target, n


def _check_irds_split(split: str, irds_id: str) -> None:
    """``split`` must be an ir_datasets id with queries over ``irds_id``'s corpus (checked
    in the registry: nothing is downloaded)."""
    import ir_datasets

    try:
        other = ir_datasets.registry[split]
    except KeyError:
        raise ConfigError(
            f"calibrate.split={split}: not an ir_datasets id; with dataset.irds_id give the id "
            f"of another query set over the same corpus (e.g. beir/scifact/train)"
        ) from None
    corpus = ir_datasets.docs_parent_id(irds_id)
    if ir_datasets.docs_parent_id(split) != corpus or not other.has_queries():
        raise ConfigError(
            f"calibrate.split={split}: not a query set over {irds_id}'s corpus ({corpus}); "
            f"give one that is (e.g. {corpus}/train or {corpus}/dev)"
        )


def calibration_queries(cfg: Any, queries: list, split: str | None) -> list:
    """The queries to calibrate on: ``queries`` (the evaluated split) when ``split`` is
    None, else those of ``calibrate.split`` -- another split of a BEIR folder, or for an
    ir_datasets dataset the id of the dataset whose queries to use (e.g.
    ``beir/scifact/train``)."""
    from omegaconf import OmegaConf

    from irbench.data import make_dataset

    if split is None:
        return queries
    ds = OmegaConf.to_container(cfg.dataset, resolve=True)
    if ds.get("path"):
        other = make_dataset(**{**ds, "split": str(split)})
    else:
        other = make_dataset(name=f"{ds['name']}:{split}", irds_id=str(split))
    return list(other.queries_iter())


def calibrate_search(
    cfg: Any, handle: IndexHandle, queries: list, record: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """With ``calibrate.target_recall`` set, set the index's search knobs to the cheapest
    setting reaching that mean recall@k against exact top-k on a seeded sample of
    ``queries`` or of ``calibrate.split``'s (:func:`calibration_queries`; the index's
    ``calibrate``: :meth:`ApproxIndex.calibrate`, :meth:`FaissIndex.calibrate`); cached in
    ``cache_dir/calibration`` and summarised in ``record["calibration"]``. Deterministic:
    the same index, queries and settings give the same knobs (cost is counted, not timed).
    """
    import numpy as np

    from irbench.index.tuning import Calibration
    from irbench.runs.atomic import write_json
    from irbench.runs.cache import content_key

    record = record if record is not None else {}
    options = check_calibration(cfg)
    if options is None or not queries:
        return None
    target, n = options
    split = cfg.calibrate.get("split")
    t0 = time.perf_counter()
    evaluated = {q.query_id for q in queries}
    queries = calibration_queries(cfg, queries, split)
    if not queries:
        raise ConfigError(f"calibrate.split={split}: no queries to calibrate on")
    picked = range(len(queries))
    if 0 < n < len(queries):
        rng = np.random.default_rng(int(cfg.seed))
        picked = np.sort(rng.choice(len(queries), size=n, replace=False)).tolist()
    sample = [queries[i] for i in picked]
    depth = int(cfg.k) + (1 if cfg.dataset.drop_self_hits else 0)
    # keyed on the texts (the index entry's name holds the encoder's config): a cached
    # calibration needs no query encoding
    texts = hashlib.sha256(json.dumps([tuple(q) for q in sample]).encode()).hexdigest()
    # search settings that are not calibrated still steer the result (sorted_terms; the
    # ef_search of an IVF's HNSW quantizer): part of the key, unlike the entry's name; an
    # index class may narrow them to those its type uses (FAISS: no nprobe for HNSW)
    steering = getattr(_index_owner(cfg.index), "steering_keys", None)
    keys = steering(cfg.index) if steering is not None else search_time_keys(cfg.index)
    calibrated = calibration_knobs(cfg.index)
    fixed = {key: cfg.index.get(key) for key in keys if key not in calibrated}
    key = content_key(handle.path.name, texts, depth, target, fixed, CALIBRATION_FORMAT)
    path = Path(cfg.cache_dir) / "calibration" / f"{handle.path.name}.{key}.json"
    cached = path.is_file()
    if cached:
        try:
            summary = Calibration.from_dict(json.loads(path.read_text(encoding="utf-8")))
            handle.index.configure(**summary.knobs)
            summary = summary.as_dict()
        except (OSError, ValueError, KeyError, TypeError, ConfigError):
            cached = False  # unreadable: calibrate again and overwrite it
    if not cached:
        qvecs = handle.encoder.encode_queries(sample)
        result = handle.index.calibrate(qvecs, depth, target, threads=int(cfg.threads))
        summary = result.as_dict()
        write_json(path, summary)
    record["calibration"] = {
        **summary,
        "split": split,
        # sampled queries that are also evaluated (0: tuned on held-out queries)
        "evaluated_queries_seen": sum(q.query_id in evaluated for q in sample),
        "cached": cached,
        "file": str(path),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return record["calibration"]


def retrieve(cfg: Any, handle: IndexHandle, record: dict[str, Any] | None = None) -> Path:
    """Search every query of the split and write ``run_dir/run.trec`` (after
    :func:`calibrate_search` when ``calibrate.target_recall`` is set)."""
    from irbench.runs.manifest import sha256_file
    from irbench.runs.trec import write_run

    record = record if record is not None else {}
    dataset = load_dataset(cfg)
    queries = list(dataset.queries_iter())
    if not queries:
        split = cfg.dataset.get("split")
        raise DataError(
            f"dataset '{dataset.name}' has no queries"
            + (f" in split '{split}'" if split else "")
            + " (a BEIR split holds the queries its qrels judge); check the queries and qrels "
            "files or dataset.split"
        )
    seen: set[str] = set()
    for q in queries:
        if q.query_id in seen:
            raise DataError(f"duplicate query id '{q.query_id}' in dataset '{dataset.name}'")
        seen.add(q.query_id)
    calibrate_search(cfg, handle, queries, record)
    results = search(cfg, handle, queries, record)
    out = Path(cfg.run_dir) / "run.trec"
    before = sha256_file(out) if out.is_file() else None
    write_run(out, results, run_tag(cfg))
    if before is not None and sha256_file(out) != before:
        for name in EVAL_OUTPUTS:  # they evaluated the run this one replaced
            (out.parent / name).unlink(missing_ok=True)
    return out


def evaluate(cfg: Any, run_path: Path | None = None, docnos: list[str] | None = None, record=None):
    """Evaluate ``run.trec`` against the dataset's qrels; write metrics.json and perquery.tsv."""
    from irbench.data import check_qrels
    from irbench.eval import check_evaluable
    from irbench.eval import evaluate as evaluate_run
    from irbench.runs.trec import read_run

    record = record if record is not None else {}
    run_dir = Path(cfg.run_dir)
    run_path = Path(run_path or run_dir / "run.trec")
    dataset = load_dataset(cfg)
    qrels = list(dataset.qrels_iter())
    query_ids = {q.query_id for q in dataset.queries_iter()}
    if docnos is not None:
        record["qrels_check"] = check_qrels(qrels, set(docnos), query_ids)
    result = evaluate_run(read_run(run_path), qrels, list(cfg.measures))
    check_evaluable(result, str(run_path), f"the qrels of dataset '{dataset.name}'")
    unknown = {r.query_id for r in qrels} - query_ids
    if unknown:
        result.notes.append(
            f"{len(unknown)} queries in the qrels are not among the dataset's queries (e.g. "
            f"'{min(unknown)}'): nothing could retrieve for them, yet each counts as 0 in the "
            "averages, as in trec_eval -c; check the queries and qrels files"
        )
    write_metrics(run_dir, result)
    record.update(
        {
            "queries_with_qrels": result.n_queries_qrels,
            "queries_in_run": result.n_queries_run,
            "queries_evaluated": result.n_queries_evaluated,
            "notes": result.notes,
        }
    )
    return result


#: config keys an evaluation may give differently in a run directory without making it
#: another run (only ``measures`` is then recorded: see :func:`write_manifest`)
EVAL_ONLY_KEYS = frozenset({"measures", "threads", "cache_dir", "run_dir"})


def check_same_run(cfg: Any) -> bool:
    """Whether ``run_dir`` holds a run made with ``cfg`` up to :data:`EVAL_ONLY_KEYS` (False
    when it has no stored config). Paths compare after both are made absolute (the stored
    ones against the manifest's ``cwd``). A stored config that differs elsewhere is a
    ConfigError naming the first key: evaluating would label that run with this config."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from irbench.config import anchor_paths, load_stored_config

    stored_path = Path(cfg.run_dir) / "config.yaml"
    if not stored_path.is_file():
        return False
    try:
        stored = OmegaConf.to_container(load_stored_config(stored_path), resolve=False)
    except (OSError, ValueError, yaml.YAMLError, OmegaConfBaseException):
        return False
    if not isinstance(stored, dict):
        return False
    given = OmegaConf.to_container(anchor_paths(cfg, os.getcwd()), resolve=True)

    def first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                if not prefix and key in EVAL_ONLY_KEYS:
                    continue
                found = first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
                if found:
                    return found
            return None
        return None if a == b else prefix.rstrip(".")

    key = first_difference(stored, given)
    if key:
        raise ConfigError(
            f"{cfg.run_dir} holds a run made with another config ({key}: "
            f"{_lookup(stored, key)!r} there, {_lookup(given, key)!r} here); give the overrides "
            "it was made with, or another run_dir"
        )
    return True


def _lookup(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def write_metrics(run_dir: Path, result: Any) -> None:
    from irbench.runs.atomic import atomic_open, write_json

    write_json(run_dir / "metrics.json", result.aggregate)
    with atomic_open(run_dir / "perquery.tsv") as f:
        f.write("query_id\tmeasure\tvalue\n")
        for qid, measure, value in result.per_query:
            f.write(f"{qid}\t{measure}\t{float(value)!r}\n")  # exact: tests read these back


#: written by the eval stage from run.trec
EVAL_OUTPUTS = ("metrics.json", "perquery.tsv")


RESULTS = ("run.trec", *EVAL_OUTPUTS)


def write_manifest(
    cfg: Any, stages: dict[str, Any], details: dict[str, Any], same_run: bool = False
) -> Path | None:
    """Write (or update) ``run_dir/manifest.json`` and the resolved ``config.yaml``.

    An index stage alone is not recorded (None is returned) in a run directory that holds
    the results of another config: its config and manifest stay those of the results. With
    ``same_run`` (:func:`check_same_run` said so: only evaluation keys changed) the stored
    manifest is updated rather than started afresh. The manifest keeps the eval stage only
    while the metrics it wrote are there."""
    from irbench.config import to_yaml
    from irbench.runs.atomic import write_json, write_text
    from irbench.runs.manifest import environment, sha256_file

    run_dir = Path(cfg.run_dir)
    config_text = to_yaml(cfg)
    path = run_dir / "manifest.json"
    if same_run:  # the stored config, with only the measures evaluated now
        from omegaconf import OmegaConf

        stored = OmegaConf.load(run_dir / "config.yaml")
        stored.measures = list(cfg.measures)
        config_text = to_yaml(stored)
    manifest: dict[str, Any] = {}
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = {}
        old = old if isinstance(old, dict) else {}
        if same_run or old.get("config_sha256") == _sha(config_text):
            manifest = old
        elif not {"retrieve", "eval"} & set(stages) and any(
            (run_dir / name).is_file() for name in RESULTS
        ):
            return None
    manifest.update(environment())
    manifest["config_sha256"] = _sha(config_text)
    if not (same_run and manifest):  # else they describe the run evaluated here
        manifest["seed"] = int(cfg.seed)
        manifest["cwd"] = os.getcwd()  # what the config's relative paths are relative to
        manifest["threads"] = effective_threads(int(cfg.threads))
    manifest.setdefault("stages", {}).update(stages)
    for key, value in details.items():
        manifest[key] = value
    stats = efficiency_stats(manifest)
    if stats:
        manifest["stats"] = stats
        write_json(run_dir / "stats.json", stats)
    outputs = {}
    for name in (*RESULTS, "stats.json"):
        if (run_dir / name).is_file():
            outputs[name] = sha256_file(run_dir / name)
    manifest["outputs"] = outputs
    if "metrics.json" not in outputs:  # removed with the run it evaluated (retrieve)
        manifest["stages"].pop("eval", None)
    write_text(run_dir / "config.yaml", config_text)
    write_json(path, manifest)
    return path


def efficiency_stats(manifest: dict[str, Any]) -> dict[str, Any]:
    """Index size, sparsity, FLOPS and query latency, from what the stages recorded.

    A fused run costs its inputs together: latency and index size are their sums (the
    inputs run one after the other); sparsity and FLOPS, per model, are left out.
    """
    if manifest.get("input_stats"):
        return _sum_stats(manifest["input_stats"])
    index = manifest.get("index", {})
    retrieve = manifest.get("stages", {}).get("retrieve", {})
    keys = ("n_docs", "avg_doc_nnz", "avg_query_nnz", "flops", "ms_per_query", "queries")
    stats = {k: index.get(k, retrieve.get(k)) for k in keys}
    if "index_bytes" in index:
        stats["index_mb"] = round(index["index_bytes"] / 2**20, 3)
    if retrieve.get("ms_per_query"):
        stats["qps"] = round(1000 / retrieve["ms_per_query"], 1)
        stats["threads"] = retrieve.get("threads")
    return {k: v for k, v in stats.items() if v is not None}


def _sum_stats(inputs: list[dict[str, Any]]) -> dict[str, Any]:
    stats: dict[str, Any] = {"inputs": len(inputs)}
    for key in ("ms_per_query", "index_mb"):
        values = [s.get(key) for s in inputs]
        if values and all(v is not None for v in values):
            stats[key] = round(sum(values), 4)
    if stats.get("ms_per_query"):
        stats["qps"] = round(1000 / stats["ms_per_query"], 1)
    for key in ("n_docs", "queries", "threads"):
        if inputs and inputs[0].get(key) is not None:
            stats[key] = inputs[0][key]
    return stats


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def run(cfg: Any, on_corrupt: str = "rebuild") -> tuple[dict[str, float], dict[str, Any]]:
    """index -> retrieve -> evaluate; returns ``(metrics, objects)``. ``cfg`` is checked
    again (:func:`irbench.config.validate`): it may have been changed after composing."""
    from irbench.config import validate
    from irbench.runs.manifest import stage

    validate(cfg)
    if cfg.get("fusion"):
        return run_fused(cfg, on_corrupt)
    check_calibration(cfg)
    seed_everything(int(cfg.seed))
    stages: dict[str, Any] = {}
    details: dict[str, Any] = {}
    # -- training (train=...): train or reuse run_dir/checkpoint, then evaluate that model ------
    if cfg.get("train"):
        from irbench.train import train_then_point

        with stage(stages, "train") as info:
            cfg = train_then_point(cfg, info)
    # -------------------------------------------------------------------------------------------
    with stage(stages, "index") as info:
        handle = build_index(cfg, details, on_corrupt=on_corrupt)
        info["cached"] = handle.reused
    with stage(stages, "retrieve") as info:
        run_path = retrieve(cfg, handle, info)
    with stage(stages, "eval") as info:
        result = evaluate(cfg, run_path, handle.docnos, info)
    write_manifest(cfg, stages, details)
    objects = {"index": handle, "evaluation": result, "run": run_path}
    return result.aggregate, {**objects, "calibration": stages["retrieve"].get("calibration")}


def second_input_keys(message: str) -> str:
    """``message`` with its config keys ``encoder.*`` / ``index.*`` named as set for the
    second fused input (``fusion.second.encoder.*``); paths and names inside it untouched."""
    return re.sub(r"(^|[\s(])(encoder|index)\.(?=[a-z_]+\b)", r"\1fusion.second.\2.", message)


def run_fused(cfg: Any, on_corrupt: str = "rebuild") -> tuple[dict[str, float], dict[str, Any]]:
    """Run this config's encoder/index and ``fusion.second``'s, each into a complete run
    directory under ``run_dir/inputs/``, then fuse the two runs and evaluate the result."""
    from omegaconf import OmegaConf, open_dict

    from irbench.fusion import fuse_runs
    from irbench.runs.manifest import sha256_file, stage
    from irbench.runs.trec import read_run, write_run

    fusion = cfg.fusion
    stages: dict[str, Any] = {}
    inputs = []
    pairs = ((cfg.encoder, cfg.index), (fusion.second.encoder, fusion.second.index))
    subs = []
    for n, (encoder, index) in enumerate(pairs, start=1):
        sub = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        with open_dict(sub):
            sub.fusion = None
            sub.encoder, sub.index = encoder, index
            if not calibration_knobs(index):
                sub.calibrate = None  # calibrate.target_recall concerns the inputs with knobs
            sub.run_dir = str(Path(cfg.run_dir) / "inputs" / f"{n}-{encoder.name}.{index.name}")
        check_calibration(sub)  # every input's settings before any input runs
        subs.append(sub)
    if (cfg.get("calibrate") or {}).get("target_recall") is not None and not any(
        sub.calibrate for sub in subs
    ):
        raise ConfigError(
            "calibrate.target_recall: neither fused input has search knobs to calibrate "
            "(numba_approx, or faiss with an IVF or HNSW factory); drop the override"
        )
    for n, sub in enumerate(subs, start=1):
        try:
            with stage(stages, f"input{n}"):
                run(sub, on_corrupt)
        except ConfigError as exc:  # name the key where the user set it
            text = str(exc)
            if n == 2:
                text = second_input_keys(text)
            raise ConfigError(f"fused input {n}: {text}") from None
        inputs.append(Path(sub.run_dir))
    with stage(stages, "fuse") as info:
        fused = fuse_runs(
            [read_run(p / "run.trec") for p in inputs],
            method=str(fusion.method), alpha=float(fusion.alpha), norm=str(fusion.norm),
            k=int(cfg.k), rrf_k=int(fusion.rrf_k),
        )  # fmt: skip
        run_path = Path(cfg.run_dir) / "run.trec"
        write_run(run_path, ((q, list(h.items())) for q, h in fused.items()), run_tag(cfg))
        info["inputs"] = {str(p): sha256_file(p / "run.trec") for p in inputs}
    with stage(stages, "eval") as info:
        result = evaluate(cfg, run_path, None, info)
    input_stats = []
    for p in inputs:
        try:
            input_stats.append(json.loads((p / "stats.json").read_text()))
        except (OSError, ValueError):
            input_stats.append({})
    details = {"fusion": OmegaConf.to_container(fusion, resolve=True), "input_stats": input_stats}
    write_manifest(cfg, stages, details)
    return result.aggregate, {"evaluation": result, "run": run_path, "inputs": inputs}
