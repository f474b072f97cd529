"""``irbench bench index``: query processing of irbench's indexes against PISA, Seismic, BMP.

Inputs are sparse vectors: a dataset + encoder from the config (doc vectors from the encoded
cache, encoded now if missing; query vectors encoded now) or precomputed vector files
(``--vectors a.npz --vectors b.npz``: several files are concatenated into one corpus, doc and
query ids prefixed with each file's corpus name). See :func:`save_vectors` for the file
format and ``irbench bench vectors`` to write one from the cache.

Every engine in :mod:`irbench.bench.peers` is built once per build setting (timed, wall
clock) and searched at each search setting, each ``k`` and each thread count:

* **QPS** -- all queries in one ``batch`` call (the engine's batch path; per-query loops for
  engines without one), median of >= ``min_repeats`` repeats and >= ``min_seconds``;
* **latency** (mean / p50 / p99, 1 thread only) -- one ``one`` call per query, a separate
  loop; it includes each engine's per-call Python overhead;
* **1 thread** rows run with the whole process pinned to one CPU
  (:func:`irbench.bench.timing.pinned`), native thread pools included: a peer that ignores its
  thread count (Seismic's ``batch_search`` keeps two cores busy at ``num_threads=1``) is
  held to one core like the rest; **cores_used** = process CPU seconds / wall seconds of the
  QPS calls shows what each engine actually used;
* all engines are built first; then, per ``k`` and thread count, every (engine, setting) row
  is timed **interleaved** (:func:`irbench.bench.timing.repeat_interleaved`: one call each per
  round, the order flipped every round), so that load on a shared machine hits all rows alike
  and the ratios stay meaningful;
* **recall@k** -- mean over queries of ``|top-k ∩ exact top-k| / |exact top-k|``, the exact
  top-k from irbench's exact index (equal to brute force, ties by doc row);
* **nDCG@10** -- when qrels exist, from the engine's own first 10 hits.

Outputs in ``out_dir``: ``bench.json`` (a list of row objects: engine, setting, corpus, k,
threads, build_s, size_mb, mean_ms, p50_ms, p99_ms, qps, cores_used, recall, ndcg@10),
``bench.md`` (machine, command, table, notes) and ``recall_latency.png``.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from irbench.bench import timing
from irbench.bench.peers import ENGINES, Engine, quiet_native_output, timed_build
from irbench.bench.timing import fmt_cell as cell
from irbench.errors import ConfigError, DataError
from irbench.index.tuning import recall_at_k

COLUMNS = [
    "engine", "setting", "corpus", "k", "threads", "build_s", "ingest_s", "size_mb",
    "mean_ms", "p50_ms", "p99_ms", "qps", "cores_used", "recall", "ndcg@10",
]  # fmt: skip
VECTORS_FORMAT = 1


# ------------------------------------------------------------------------------- vectors


@dataclass
class VectorSet:
    """Doc and query vectors over one term space, with ids and (optional) qrels."""

    name: str
    docs: sp.csr_matrix
    queries: sp.csr_matrix
    docnos: list[str]
    qids: list[str]
    qrels: list[tuple[str, str, int]] = field(default_factory=list)
    #: what the term ids mean ("a 30522-term tokenizer vocabulary"; a BM25 vocabulary is its
    #: corpus's own); "" when unknown. Sets of different known term spaces do not concatenate.
    term_space: str = ""

    def __post_init__(self):
        if self.docs.shape[0] != len(self.docnos):
            raise DataError(
                f"{self.name}: {self.docs.shape[0]} doc vectors, {len(self.docnos)} ids"
            )
        if self.queries.shape[0] != len(self.qids):
            raise DataError(
                f"{self.name}: {self.queries.shape[0]} query vectors, {len(self.qids)} ids"
            )

    def describe(self) -> str:
        d, q = self.docs, self.queries
        return (
            f"{self.name}: {d.shape[0]:,} docs, {d.nnz:,} postings "
            f"(avg doc nnz {d.nnz / max(d.shape[0], 1):.1f}), {q.shape[0]:,} queries "
            f"(avg nnz {q.nnz / max(q.shape[0], 1):.1f}), {d.shape[1]:,} terms"
        )


def _canonical(m: Any, n_cols: int | None = None) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float32)
    if n_cols is not None and m.shape[1] != n_cols:
        m = sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], n_cols))
    m.sum_duplicates()
    m.eliminate_zeros()
    return m


def save_vectors(path: str | Path, vs: VectorSet) -> Path:
    """Write ``vs`` as one uncompressed ``.npz``: CSR parts ``doc_*`` / ``q_*`` (indptr,
    indices, data, shape), ``docnos``, ``qids``, ``qrel_qid``/``qrel_docno``/``qrel_rel``,
    ``name`` and ``format``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    d, q = _canonical(vs.docs), _canonical(vs.queries)
    qr = vs.qrels
    arrays = {
        "format": np.array(VECTORS_FORMAT),
        "name": np.array(vs.name),
        "doc_indptr": d.indptr.astype(np.int64),
        "doc_indices": d.indices.astype(np.int32),
        "doc_data": d.data.astype(np.float32),
        "doc_shape": np.array(d.shape, dtype=np.int64),
        "q_indptr": q.indptr.astype(np.int64),
        "q_indices": q.indices.astype(np.int32),
        "q_data": q.data.astype(np.float32),
        "q_shape": np.array(q.shape, dtype=np.int64),
        "docnos": np.array(vs.docnos, dtype=str),
        "qids": np.array(vs.qids, dtype=str),
        "qrel_qid": np.array([r[0] for r in qr], dtype=str),
        "qrel_docno": np.array([r[1] for r in qr], dtype=str),
        "qrel_rel": np.array([int(r[2]) for r in qr], dtype=np.int64),
        "term_space": np.array(vs.term_space),
    }
    tmp = path.with_name(path.name + ".tmp.npz")
    try:
        np.savez(tmp, **arrays)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_vectors(path: str | Path) -> VectorSet:
    """Read a file written by :func:`save_vectors`."""
    path = Path(path)
    import zipfile

    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a vectors file ({e})") from None
    with z:
        try:
            if int(z["format"]) != VECTORS_FORMAT:
                raise DataError(f"{path}: vectors format {int(z['format'])} unsupported")

            def csr(prefix: str) -> sp.csr_matrix:
                shape = tuple(int(x) for x in z[f"{prefix}_shape"])
                return sp.csr_matrix(
                    (z[f"{prefix}_data"], z[f"{prefix}_indices"], z[f"{prefix}_indptr"]),
                    shape=shape,
                )

            qrels = list(
                zip(
                    z["qrel_qid"].tolist(),
                    z["qrel_docno"].tolist(),
                    z["qrel_rel"].tolist(),
                    strict=True,
                )
            )
            return VectorSet(
                str(z["name"]),
                csr("doc"),
                csr("q"),
                z["docnos"].tolist(),
                z["qids"].tolist(),
                qrels,
                str(z["term_space"]) if "term_space" in z.files else "",
            )
        except KeyError:
            raise DataError(
                f"{path}: not a vectors file of `irbench bench vectors` (arrays missing)"
            ) from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise DataError(f"{path}: damaged vectors file ({e})") from None


def concat(sets: Sequence[VectorSet]) -> VectorSet:
    """One corpus from several (same term space): rows stacked, ids prefixed ``name/``."""
    if len(sets) == 1:
        return sets[0]
    width = max(max(s.docs.shape[1], s.queries.shape[1]) for s in sets)
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise ConfigError(f"--vectors: corpus names repeat ({names}); give distinct files")
    spaces = {s.term_space for s in sets if s.term_space}
    if len(spaces) > 1:
        raise ConfigError(
            f"--vectors: the files come from different term spaces ({', '.join(sorted(spaces))}); "
            "their term ids do not mean the same terms: give vectors of one encoder"
        )
    docs = sp.vstack([_canonical(s.docs, width) for s in sets], format="csr")
    queries = sp.vstack([_canonical(s.queries, width) for s in sets], format="csr")
    return VectorSet(
        "+".join(names),
        docs,
        queries,
        [f"{s.name}/{d}" for s in sets for d in s.docnos],
        [f"{s.name}/{q}" for s in sets for q in s.qids],
        [(f"{s.name}/{q}", f"{s.name}/{d}", r) for s in sets for q, d, r in s.qrels],
        spaces.pop() if spaces else "",
    )


def vectors_from_cache(cfg: Any, echo: Callable[[str], None] = print) -> VectorSet:
    """Doc vectors of ``cfg.dataset`` under ``cfg.encoder`` (the encoded cache, filled now
    if missing) and the split's queries encoded now, with the split's qrels."""
    from irbench.pipeline import _encode_corpus, load_dataset, make_encoder

    dataset = load_dataset(cfg)
    encoder = make_encoder(cfg)
    if getattr(encoder, "kind", "sparse") != "sparse":
        raise ConfigError(f"encoder={cfg.encoder.name} is dense; bench index needs sparse vectors")
    echo(f"{dataset.name}: doc vectors (encoded cache under {cfg.cache_dir}) ...")
    fingerprints = dataset.fingerprint()
    docs, docnos, _ = _encode_corpus(cfg, dataset, encoder, fingerprints)
    fingerprint = fingerprints.get("docs", "")[:12]
    queries = list(dataset.queries_iter())
    if not queries:
        raise ConfigError(f"dataset '{dataset.name}' has no queries in this split")
    echo(f"{dataset.name}: encoding {len(queries)} queries ...")
    qvecs = encoder.encode_queries(queries)
    width = max(docs.shape[1], qvecs.shape[1])
    qrels = [(r.query_id, r.doc_id, int(r.relevance)) for r in dataset.qrels_iter()]
    # a tokenizer's vocabulary is the model's; a corpus-statistics encoder's (BM25) the corpus's
    if getattr(encoder, "shardable", False):
        term_space = f"a {encoder.vocab_size}-term tokenizer vocabulary"
    else:
        term_space = f"the {cfg.encoder.name} vocabulary of {dataset.name} ({fingerprint})"
    return VectorSet(
        str(dataset.name),
        _canonical(docs, width),
        _canonical(qvecs, width),
        list(docnos),
        [q.query_id for q in queries],
        qrels,
        term_space,
    )


# ------------------------------------------------------------------------------- engines


APPROX_SEARCH = [
    {"query_cut": 5, "heap_factor": 0.9},
    {"query_cut": 6, "heap_factor": 0.9},
    {"query_cut": 7, "heap_factor": 0.9},
    {"query_cut": 8, "heap_factor": 0.9},
    {"query_cut": 10, "heap_factor": 0.9},
    {"query_cut": 10, "heap_factor": 0.8},
]


def approx_grid(
    query_cut: Sequence[int] | None, heap_factor: Sequence[float] | None
) -> list[dict[str, Any]] | None:
    """Every (query_cut, heap_factor) pair; a missing side takes the search default (10 /
    0.9); None when neither is given (the default grid)."""
    if not query_cut and not heap_factor:
        return None
    if any(q < 0 for q in query_cut or []) or any(not 0 < h <= 1 for h in heap_factor or []):
        raise ConfigError(
            "--query-cut takes counts >= 0 (0 = all), --heap-factor fractions in (0, 1]"
        )
    return [
        {"query_cut": int(q), "heap_factor": float(h)}
        for q in (query_cut or [10])
        for h in (heap_factor or [0.9])
    ]


def default_engines(
    n_docs: int,
    n_postings: Sequence[int] | None = None,
    approx_search: Sequence[dict[str, Any]] | None = None,
) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """``(engine key, build params, search settings)`` run by default.

    The two Seismic-class indexes are built alike (``n_postings`` = irbench's default for the
    collection size, and 60% of it; or each of ``n_postings``) and searched on the same
    ``query_cut`` / ``heap_factor`` grid (:data:`APPROX_SEARCH` or ``approx_search``), so
    that their recall/QPS points can be compared one to one.
    """
    from irbench.index.approx import default_n_postings

    if any(n < 1 for n in n_postings or []):
        raise ConfigError(f"--n-postings {list(n_postings or [])}: give counts >= 1")
    full = default_n_postings(n_docs)
    sizes = list(n_postings or [max(32, int(round(0.6 * full))), full])
    grid = list(approx_search or APPROX_SEARCH)
    return [
        ("numba", {}, [{}]),
        *[("numba_approx", {"n_postings": n}, grid) for n in sizes],
        ("taat", {}, [{}]),
        ("splade_taat", {}, [{}]),
        ("scipy", {}, [{}]),
        (
            "pisa",
            {},
            [{"query_algorithm": a} for a in ("maxscore", "block_max_maxscore", "block_max_wand")],
        ),
        *[("seismic", {"n_postings": n}, grid) for n in sizes],
        ("bmp", {"bsize": 32}, [{"alpha": 1.0}, {"alpha": 0.8}]),
    ]


def _resolve_auto(key: str, build: dict[str, Any], n_docs: int) -> dict[str, Any]:
    """Seismic's n_postings default follows irbench's (its own 3,500 is for 8.8M docs)."""
    if key == "seismic" and build.get("n_postings") is None:
        from irbench.index.approx import default_n_postings

        build = {**build, "n_postings": default_n_postings(n_docs)}
    return build


# ------------------------------------------------------------------------------- measure


def ndcg10(found: np.ndarray, vs: VectorSet) -> float | None:
    """nDCG@10 of each query's first 10 hits (rank order) against the qrels."""
    if not vs.qrels:
        return None
    from irbench.eval import evaluate
    from irbench.types import Qrel, ScoredDoc

    run = []
    for qi, row in enumerate(found):
        hits = [int(d) for d in row[:10] if d >= 0]
        run.extend(ScoredDoc(vs.qids[qi], vs.docnos[d], float(10 - r)) for r, d in enumerate(hits))
    qrels = [Qrel(q, d, int(r)) for q, d, r in vs.qrels]
    return float(evaluate(run, qrels, ["nDCG@10"]).aggregate["nDCG@10"])


def _batch_call(eng: Engine, prep: Any, k: int, threads: int, setting: dict) -> Callable[[], Any]:
    return lambda: eng.batch(prep, k, threads, **setting)


def _one_call(eng: Engine, prep: Any, k: int, setting: dict) -> Callable[[int], Any]:
    return lambda i: eng.one(prep, i, k, **setting)


def bench_index(
    vs: VectorSet,
    ks: Sequence[int] = (10, 1000),
    engines: Sequence[tuple[str, dict[str, Any], list[dict[str, Any]]]] | None = None,
    *,
    only: Sequence[str] | None = None,
    threads: Sequence[int] | None = None,
    min_seconds: float = 1.0,
    min_repeats: int = 3,
    latency: bool = True,
    out_dir: str | Path | None = None,
    command: str | None = None,
    echo: Callable[[str], None] = print,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Build and time every engine on ``vs``; returns ``(rows, meta)`` and writes outputs.

    ``only`` restricts to engine keys of :data:`irbench.bench.peers.ENGINES`. Engines whose
    package is missing are skipped with a note in ``meta["notes"]``.
    """
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ConfigError(f"--k {ks}: give k values >= 1")
    engines = list(engines if engines is not None else default_engines(vs.docs.shape[0]))
    if only:
        unknown = sorted(set(only) - set(ENGINES))
        if unknown:
            raise ConfigError(f"--engine {unknown}: unknown (known: {', '.join(ENGINES)})")
        engines = [e for e in engines if e[0] in set(only)]
    threads_list = timing.thread_settings(threads)
    notes: list[str] = []
    n_docs, nq = vs.docs.shape[0], vs.queries.shape[0]
    if nq == 0 or n_docs == 0:
        raise ConfigError(f"{vs.name}: no docs or no queries to time")
    big = [k for k in ks if k > n_docs]
    if big:
        notes.append(f"k={big} exceeds the {n_docs} docs")
    echo(vs.describe())
    from irbench.index.numba import NumbaIndex

    ref = NumbaIndex.build(vs.docs)
    exact = {k: ref.search(vs.queries, min(k, n_docs), threads=0) for k in ks}  # (scores, ids)
    del ref
    rows = measure(
        engines, vs, vs.docs, vs.queries, exact, ks, threads_list, notes,
        min_seconds=min_seconds, min_repeats=min_repeats, latency=latency, echo=echo,
        resolve=lambda key, build: _resolve_auto(key, build, n_docs),
    )  # fmt: skip
    meta = {
        "corpus": vs.describe(),
        "docs": n_docs,
        "queries": nq,
        "machine": timing.machine(),
        "notes": notes,
        "ratios": ratios(rows),
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if out_dir is not None:
        write_outputs(Path(out_dir), rows, meta)
        meta["out_dir"] = str(out_dir)
    return rows, meta


def measure(
    engines: Sequence[tuple[str, dict[str, Any], list[dict[str, Any]]]],
    corpus: Any,
    docs: Any,
    queries: Any,
    exact: dict[int, np.ndarray],
    ks: Sequence[int],
    threads_list: Sequence[int],
    notes: list[str],
    *,
    min_seconds: float = 1.0,
    min_repeats: int = 3,
    latency: bool = True,
    echo: Callable[[str], None] = print,
    registry: dict[str, type[Engine]] | None = None,
    resolve: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """:func:`build_engines` in a scratch folder, then :func:`time_engines` with recall@k
    against ``exact[k]`` and nDCG@10 from ``corpus``'s qrels (``corpus`` has ``name``,
    ``qids``, ``docnos``, ``qrels``); engines closed and the folder removed afterwards."""
    import shutil

    nq, n_docs = len(corpus.qids), len(corpus.docnos)
    work = Path(tempfile.mkdtemp(prefix="irbench-bench-"))
    built: list[tuple[str, Engine, float, Any]] = []
    try:
        built = build_engines(
            engines, docs, queries, work, notes, echo, registry=registry, resolve=resolve
        )
        if not built:
            raise ConfigError(f"no engine could be built ({'; '.join(notes) or 'none selected'})")
        return time_engines(
            built, nq, n_docs, ks, threads_list, corpus=corpus.name,
            quality=lambda found, k: (
                _recall(found, exact[k], docs, queries), ndcg10(found, corpus) if k >= 10 else None
            ),
            min_seconds=min_seconds, min_repeats=min_repeats, latency=latency, echo=echo,
        )  # fmt: skip
    finally:
        for _key, eng, _b, _p in built:
            eng.close()
        shutil.rmtree(work, ignore_errors=True)


#: relative tolerance under which a hit's score counts as equal to the exact k-th score
TIE_TOLERANCE = 1e-6


def _recall(found: np.ndarray, exact: Any, docs: Any, queries: Any) -> float:
    """recall@k of ``found`` against ``exact``: doc rows, or ``(scores, rows)`` of the exact
    top k, which makes it tie-aware (:func:`tie_aware_recall`)."""
    if isinstance(exact, tuple):
        return tie_aware_recall(found, exact[0], exact[1], docs, queries)
    return recall_at_k(found, exact)


def tie_aware_recall(
    found: np.ndarray, exact_scores: np.ndarray, exact_rows: np.ndarray, docs: Any, queries: Any
) -> float:
    """Mean over queries of the share of the exact top k that ``found`` matches, where a
    found doc counts when its exact score reaches the exact k-th score (within
    :data:`TIE_TOLERANCE`, relative): docs tied with the k-th are as good as the ones the
    reference happened to keep, so an exact engine that breaks ties another way scores 1.0
    (a set overlap gave exact engines 0.88 on a corpus of duplicated docs). Capped at the
    exact row's length; queries with no exact hit are skipped (NaN when all are)."""
    import scipy.sparse as sp

    vals = []
    for i, (f, es, er) in enumerate(zip(found, exact_scores, exact_rows, strict=True)):
        n = int((er >= 0).sum())
        if n == 0:
            continue
        f = np.unique(f[f >= 0])
        if len(f) == 0:
            vals.append(0.0)
            continue
        got = docs[f] @ queries[i].T
        got = np.asarray(got.toarray() if sp.issparse(got) else got, dtype=np.float64).ravel()
        vals.append(_tie_share(got, float(es[er >= 0][-1]), n))
    return float(np.mean(vals)) if vals else float("nan")


def _tie_share(got: np.ndarray, kth: float, n: int) -> float:
    """Share of an exact top ``n`` matched by found docs whose exact scores are ``got``: those
    reaching the exact ``kth`` score (within :data:`TIE_TOLERANCE`) count, at most ``n``."""
    return min(int((got >= kth - TIE_TOLERANCE * abs(kth)).sum()), n) / n


def recalls_from_scores(
    found: dict[int, np.ndarray], exact_scores: Iterable[np.ndarray]
) -> dict[int, float]:
    """Tie-aware recall@k (:func:`tie_aware_recall`) for each k of ``found`` (``found[k]``:
    the top-k rows), where ``exact_scores`` yields, per row, the exact score of every doc
    (:func:`query_recall`), read in one pass; queries with no positive score are skipped,
    NaN when all are. For engines whose exact scores come from their own scorer rather than
    a doc matrix."""
    shares: dict[int, list[float]] = {k: [] for k in found}
    for i, scores in enumerate(exact_scores):
        for k, rows in found.items():
            v = query_recall(rows[i], scores, k)
            if v is not None:
                shares[k].append(v)
    return {k: float(np.mean(v)) if v else float("nan") for k, v in shares.items()}


def query_recall(found: np.ndarray, scores: np.ndarray, k: int) -> float | None:
    """One query's tie-aware recall@k: the exact top k are the k best docs with a positive
    exact score in ``scores`` (every doc's; fewer when fewer match), and a found doc counts
    when its exact score reaches the k-th (:func:`_tie_share`). None when no doc matches."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    pos = scores[scores > 0]
    n = min(k, len(pos))
    if n == 0:
        return None
    f = np.unique(found[found >= 0])
    kth = float(np.partition(pos, len(pos) - n)[len(pos) - n])
    return _tie_share(scores[f], kth, n) if len(f) else 0.0


def build_engines(
    engines: Sequence[tuple[str, dict[str, Any], list[dict[str, Any]]]],
    docs: Any,
    queries: Any,
    work: Path,
    notes: list[str],
    echo: Callable[[str], None],
    *,
    registry: dict[str, type[Engine]] | None = None,
    resolve: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
) -> list[tuple[str, Engine, float, Any]]:
    """Build each ``(key, build params, search settings)`` of ``registry`` (default
    :data:`ENGINES`) on ``docs``, each build timed alone, and prepare ``queries`` for it:
    ``(key, engine, build_s, prepared queries)`` per engine built. An engine whose package
    is missing, or whose build fails, is skipped with a note."""
    registry = registry or ENGINES
    built: list[tuple[str, Engine, float, Any]] = []
    for key, build, settings in engines:
        cls = registry[key]
        why = cls.missing()
        if why:
            if f"skipped {why}" not in notes:
                notes.append(f"skipped {why}")
                echo(f"note: skipped {why}")
            continue
        build = resolve(key, dict(build)) if resolve else dict(build)
        eng: Engine = cls(settings=settings, **build)
        what = ", ".join(f"{a}={b}" for a, b in build.items()) or "defaults"
        echo(f"{cls.engine}: building ({what}) ...")
        try:
            with quiet_native_output():
                build_s = timed_build(eng, docs, work / f"{key}-{len(built)}")
            prep = eng.prepare(queries)
        except Exception as e:  # a peer that fails must not sink the whole run
            notes.append(f"{cls.engine}: build failed ({type(e).__name__}: {e}); skipped")
            echo(f"note: {cls.engine} build failed: {e}")
            eng.close()
            continue
        echo(f"  built in {build_s:.1f} s, {eng.size_bytes / 2**20:.1f} MB")
        built.append((key, eng, build_s, prep))
    return built


def time_engines(
    built: Sequence[tuple[str, Engine, float, Any]],
    nq: int,
    n_docs: int,
    ks: Sequence[int],
    threads_list: Sequence[int],
    *,
    corpus: str,
    quality: Callable[[np.ndarray, int], tuple[float, float | None]],
    min_seconds: float = 1.0,
    min_repeats: int = 3,
    latency: bool = True,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """One row per (engine, search setting, k, thread count), engine order kept: per k,
    ``quality(found, k)`` -> (recall, nDCG@10) once per setting, then all settings timed
    **interleaved** (:func:`irbench.bench.timing.repeat_interleaved`: one call each per
    round, the order flipped every round) so that a slow spell of the machine hits all
    alike; latency (one query per call) at 1 thread."""
    specs = [(key, eng, b, prep, st) for key, eng, b, prep in built for st in eng.search_settings]
    rows: list[dict[str, Any]] = []
    for k in ks:
        kk = min(k, n_docs)
        quality_k = []
        for _key, eng, _b, prep, st in specs:
            with quiet_native_output():
                found = eng.rows(eng.batch(prep, kk, 1, **st), prep, kk)
            quality_k.append(quality(found, k))
        for t in threads_list:
            idx = [i for i, sp_ in enumerate(specs) if t == 1 or type(sp_[1]).multithreaded]
            echo(f"timing k={k} threads={t}: {len(idx)} engine settings, interleaved ...")
            fns = [_batch_call(specs[i][1], specs[i][3], kk, t, specs[i][4]) for i in idx]
            cpu: list[list[float]] = []
            with quiet_native_output(), timing.pinned_for(t):
                secs = timing.repeat_interleaved(
                    fns, min_repeats=min_repeats, min_seconds=min_seconds, cpu_out=cpu
                )
                lats = None
                if latency and t == 1:
                    one = [_one_call(specs[j][1], specs[j][3], kk, specs[j][4]) for j in idx]
                    lats = timing.latencies_interleaved(
                        one, [range(nq)] * len(idx), min_seconds=min_seconds
                    )
            for n, i in enumerate(idx):
                key, eng, build_s, _prep, st = specs[i]
                lat = (
                    timing.latency_stats(lats[n])
                    if lats is not None
                    else {"mean_ms": None, "p50_ms": None, "p99_ms": None}
                )
                rows.append(
                    {
                        "engine": eng.engine,
                        "setting": eng.describe(st),
                        "series": eng.series(),
                        "corpus": corpus,
                        "k": int(k),
                        "threads": int(t),
                        "build_s": float(build_s),
                        "ingest_s": eng.ingest_seconds,
                        "size_mb": float(eng.size_bytes / 2**20),
                        "build_rss_mb": eng.build_rss_mb,
                        "build_base_mb": eng.build_base_mb,
                        **lat,
                        "qps": timing.qps(nq, secs[n]),
                        "cores_used": sum(cpu[n]) / max(sum(secs[n]), 1e-12),
                        "recall": quality_k[i][0],
                        "ndcg@10": quality_k[i][1],
                        "exact": bool(eng.exact),
                        "key": key,
                        "_order": i,
                    }
                )
    rows.sort(key=lambda r: (r["_order"], r["k"], r["threads"]))
    for r in rows:
        del r["_order"]
    return rows


# -------------------------------------------------------------------------------- report


def _best(rows, k, pred) -> dict[str, Any] | None:
    cands = [r for r in rows if r["k"] == k and r["threads"] == 1 and pred(r)]
    return max(cands, key=lambda r: r["qps"]) if cands else None


def ratios(rows: list[dict[str, Any]], target_recall: float = 0.95) -> list[dict[str, Any]]:
    """Single-thread comparisons per k: exact numba vs PISA's best safe algorithm and the
    per-query TAAT scorer; numba_approx vs Seismic, each at its fastest setting with
    recall@k >= ``target_recall``."""
    out = []
    for k in sorted({r["k"] for r in rows}):
        ours = _best(rows, k, lambda r: r["key"] == "numba")
        for key, what in (
            ("pisa", "PISA best safe"),
            ("taat", "TAAT per query"),
            ("splade_taat", "naver/splade scorer"),
            ("scipy", "scipy"),
        ):
            other = _best(rows, k, lambda r, key=key: r["key"] == key)
            if ours and other:
                out.append(
                    {"k": k, "ours": f"{ours['engine']} [{ours['setting']}]", "vs": what,
                     "vs_setting": other["setting"], "ours_qps": ours["qps"],
                     "vs_qps": other["qps"], "ratio": ours["qps"] / other["qps"]}
                )  # fmt: skip
        ours = _best(rows, k, lambda r: r["key"] == "numba_approx" and r["recall"] >= target_recall)
        for key, what in (("seismic", "Seismic"), ("bmp", "BMP")):
            other = _best(
                rows, k, lambda r, key=key: r["key"] == key and r["recall"] >= target_recall
            )
            if ours and other:
                out.append(
                    {"k": k, "ours": f"{ours['engine']} [{ours['setting']}]",
                     "vs": f"{what} @ recall >= {target_recall}", "vs_setting": other["setting"],
                     "ours_qps": ours["qps"], "vs_qps": other["qps"],
                     "ratio": ours["qps"] / other["qps"]}
                )  # fmt: skip
    return out


def row_cells(r: dict[str, Any], memory: bool = False) -> list[str]:
    """One row's cells for the tables (``bench.md`` and the terminal): engine, setting, k,
    threads, build_s, size_mb, [build peak MiB,] QPS, cores used, mean/p50/p99 ms, recall,
    nDCG@10."""
    cells = [r["engine"], r["setting"], str(r["k"]), str(r["threads"]), cell(r["build_s"]),
             cell(r["size_mb"], 1)]  # fmt: skip
    cells += [cell(r.get("build_rss_mb"), 0)] if memory else []
    return cells + [cell(r["qps"], 0), cell(r["cores_used"], 2), cell(r["mean_ms"], 3),
                    cell(r["p50_ms"], 3), cell(r["p99_ms"], 3), cell(r["recall"], 3),
                    cell(r["ndcg@10"], 4)]  # fmt: skip


def to_markdown(
    rows: list[dict[str, Any]],
    meta: dict[str, Any],
    *,
    title: str = "Sparse query processing",
    extra: Callable[[dict[str, Any]], list[str]] | None = None,
) -> str:
    """``bench.md``: machine, command, the rows, the ratio table, ``extra(meta)`` lines, notes.
    A ``build_rss_mb`` column appears when any row has one."""
    rss = any(r.get("build_rss_mb") is not None for r in rows)
    lines = [f"# {title}: {meta['corpus']}", ""]
    lines += [f"Machine: {timing.describe_machine(meta['machine'])}; {meta['date']}", ""]
    if meta.get("command"):
        lines += ["```", meta["command"], "```", ""]
    head = ["engine", "setting", "k", "threads", "build_s", "size_mb"]
    head += ["build peak MiB"] if rss else []
    head += ["QPS", "cores used", "mean_ms", "p50_ms", "p99_ms", "recall", "nDCG@10"]
    lines += [
        "QPS: all queries in one call per engine (median of repeats); latency: one query per "
        "call (1 thread, incl. per-call Python overhead); recall@k against the exact top-k.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    lines += ["| " + " | ".join(row_cells(r, rss)) + " |" for r in rows]
    if meta.get("ratios"):
        lines += [
            "",
            "Single-thread QPS ratios (each side at its fastest qualifying setting):",
            "",
            "| k | irbench | vs | their setting | irbench QPS | their QPS | ratio |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in meta["ratios"]:
            lines.append(
                f"| {r['k']} | {r['ours']} | {r['vs']} | {r['vs_setting']} | "
                f"{cell(r['ours_qps'], 0)} | {cell(r['vs_qps'], 0)} | {r['ratio']:.2f}x |"
            )
    if extra is not None:
        lines += extra(meta)
    for note in meta.get("notes", []):
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> bool:
    """Recall@k vs mean ms per query (1 thread, from QPS), one panel per k."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ks = sorted({r["k"] for r in rows})
    if not ks:
        return False
    fig, axes = plt.subplots(1, len(ks), figsize=(6 * len(ks), 4.5), squeeze=False)
    for ax, k in zip(axes[0], ks, strict=True):
        by_engine: dict[str, list] = {}
        for r in rows:
            if r["k"] == k and r["threads"] == 1 and r["qps"] and r["recall"] == r["recall"]:
                line = r.get("series", r["engine"])
                by_engine.setdefault(line, []).append((1000.0 / r["qps"], r["recall"]))
        for name, pts in sorted(by_engine.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("ms per query (1 thread, batch)")
        ax.set_ylabel(f"recall@{k} vs exact")
        ax.set_title(f"k = {k}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    from irbench.runs.atomic import atomic_open

    with atomic_open(path, "wb") as f:
        fig.savefig(f, dpi=120, format="png")
    plt.close(fig)
    return True


def json_row(r: dict[str, Any], columns: Sequence[str] = COLUMNS) -> dict[str, Any]:
    """``r``'s ``columns`` (null where absent) for ``bench.json``: floats rounded (recall and
    nDCG to 6 places, the rest to 4), NaN as null."""
    out = {}
    for key in columns:
        v = r.get(key)
        if isinstance(v, float):
            v = None if v != v else round(v, 6 if key in ("recall", "ndcg@10") else 4)
        out[key] = v
    return out


def write_outputs(
    out: Path,
    rows: list[dict[str, Any]],
    meta: dict[str, Any],
    *,
    columns: Sequence[str] = COLUMNS,
    title: str = "Sparse query processing",
    extra: Callable[[dict[str, Any]], list[str]] | None = None,
) -> None:
    """``bench.json`` (one object per row, keys ``columns``), ``bench.md``, ``meta.json``,
    ``recall_latency.png``."""
    from irbench.runs.atomic import write_json, write_text

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "bench.json", [json_row(r, columns) for r in rows])
    write_text(out / "bench.md", to_markdown(rows, meta, title=title, extra=extra))
    write_text(out / "meta.json", json.dumps(meta, indent=2, default=str) + "\n")
    plot(rows, out / "recall_latency.png")
