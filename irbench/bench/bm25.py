"""BM25 query throughput: irbench (encoder + Numba index) against bm25s, in one process.

Both engines index the same docs (``Doc.full_text()``) and answer the same queries (the
split's queries, all in one batch). What is timed, per ``k`` and thread count:

* irbench: ``encoder.encode_queries(queries)`` -> ``index.search(qvecs, k, threads)``;
* bm25s: ``bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer("english"))`` ->
  ``retriever.retrieve(tokens, k=k, n_threads=threads, backend_selection="numba")``.

That is text in, doc indices and scores out, for both. Mapping indices to doc ids and
writing runs is left out of the timing for both. Per-query latency comes from a separate
loop that sends the queries one at a time. The two engines are timed interleaved (call by
call, order flipped every round), so that slow spells of a shared machine hit both alike and
the ratios stay meaningful even when the absolute numbers drift. nDCG@10 of both is computed with ir_measures on
the same qrels (the BEIR self-hit rule applied to both when ``dataset.drop_self_hits``).
recall@k (tie-aware, :func:`irbench.bench.index.recalls_from_scores`) checks that each engine's
top k is its own exhaustive ranking: irbench's against every doc scored in float64 from doc
and query vectors encoded afresh (so a quantised index shows its loss), bm25s's against its
``get_scores`` (first :data:`RECALL_QUERIES` queries). Outputs: ``bench.json``, ``bench.md``,
``recall_latency.png`` and the depth-10 runs of the nDCG (``irbench.trec``, and ``bm25s.trec``
when bm25s is installed).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from irbench.bench import timing
from irbench.bench.timing import fmt_cell

COLUMNS = [
    "engine", "setting", "corpus", "k", "threads", "build_s", "size_mb",
    "mean_ms", "p50_ms", "p99_ms", "qps", "recall", "ndcg@10",
]  # fmt: skip
INSTALL_HINT = "pip install 'irbench[bench]'"
#: recall@k is measured on at most this many queries (the first ones)
RECALL_QUERIES = 1000


def _bm25s():
    """``(bm25s, Stemmer)`` or ``None`` when bm25s (the ``[bench]`` extra) is not installed."""
    try:
        import bm25s
        import Stemmer
    except ImportError:
        return None
    return bm25s, Stemmer


def _drop_self(qid: str, ranked: list[tuple[str, float]], drop: bool, k: int):
    if drop:
        ranked = [h for h in ranked if h[0] != qid]
    return ranked[:k]


class _Bm25sEngine:
    """bm25s configured as in the project's BENCHMARKS.md."""

    def __init__(self, docs_text: Sequence[str], k1: float, b: float):
        bm25s, Stemmer = _bm25s()
        self.bm25s = bm25s
        self.stemmer = Stemmer.Stemmer("english")
        t0 = time.perf_counter()
        tokens = bm25s.tokenize(
            list(docs_text), stopwords="en", stemmer=self.stemmer, show_progress=False
        )
        self.retriever = bm25s.BM25(method="lucene", k1=k1, b=b, backend="numba")
        self.retriever.index(tokens, show_progress=False)
        self.build_s = time.perf_counter() - t0
        self.n_docs = len(docs_text)
        s = self.retriever.scores
        self.size_bytes = int(sum(s[name].nbytes for name in ("data", "indices", "indptr")))

    def tokenize(self, texts: Sequence[str]):
        return self.bm25s.tokenize(
            list(texts), stopwords="en", stemmer=self.stemmer, show_progress=False
        )

    def retrieve(self, tokens, k: int, threads: int):
        docs, scores = self.retriever.retrieve(
            tokens, k=min(k, self.n_docs), n_threads=threads,
            backend_selection="numba", show_progress=False,
        )  # fmt: skip
        return scores, docs

    def query(self, texts: Sequence[str], k: int, threads: int):
        return self.retrieve(self.tokenize(texts), k, threads)

    def exact_scores(self, texts: Sequence[str]) -> Iterator[np.ndarray]:
        """Every doc's score per query, from bm25s's exhaustive ``get_scores``."""
        words = self.bm25s.tokenize(
            list(texts), stopwords="en", stemmer=self.stemmer, show_progress=False,
            return_ids=False,
        )  # fmt: skip
        for w in words:
            w = [t for t in w if t in self.retriever.vocab_dict]
            yield self.retriever.get_scores(w) if w else np.zeros(self.n_docs)


def _irbench_exact_scores(
    cfg: Any, dataset: Any, queries: Sequence[Any], n_docs: int
) -> Iterator[np.ndarray]:
    """Every doc's score per query, in float64, from doc and query vectors encoded afresh by
    the config's encoder (unquantised): the exact ranking irbench's index must reproduce."""
    from irbench.errors import ConfigError
    from irbench.pipeline import _encode_corpus, make_encoder

    encoder = make_encoder(cfg)
    docs, _, _ = _encode_corpus(cfg, dataset, encoder, dataset.fingerprint())
    if docs.shape[0] != n_docs:
        raise ConfigError(
            f"dataset '{cfg.dataset.name}' now has {docs.shape[0]} docs, its cached index "
            f"{n_docs}: rebuild the index (irbench index, or pass --fresh-index)"
        )
    by_term = docs.T.tocsr().astype(np.float64)
    qvecs = encoder.encode_queries(queries).astype(np.float64)
    step = max(1, 2**22 // max(1, n_docs))  # <= 32 MB of scores at a time
    for a in range(0, qvecs.shape[0], step):
        yield from (qvecs[a : a + step] @ by_term).toarray()


def _recalls(engine: Any, batch: Sequence[Any], exact: Iterator[np.ndarray], ks, n_docs):
    """``{k: recall@k}`` of ``engine`` on ``batch`` (at one thread), one pass over the exact
    scores for all ``ks`` (:func:`irbench.bench.index.recalls_from_scores`)."""
    from irbench.bench.index import recalls_from_scores

    found = {min(k, n_docs): np.asarray(engine.query(batch, min(k, n_docs), 1)[1]) for k in ks}
    recall = recalls_from_scores(found, exact)
    return {k: recall[min(k, n_docs)] for k in ks}


def _ndcg10(run: list[tuple[str, list[tuple[str, float]]]], qrels: list) -> float:
    from irbench.eval import evaluate
    from irbench.types import ScoredDoc

    scored = [ScoredDoc(qid, d, s) for qid, hits in run for d, s in hits]
    return float(evaluate(scored, qrels, ["nDCG@10"]).aggregate["nDCG@10"])


def top1_agreement(a: list[tuple[str, list]], b: list[tuple[str, list]]) -> tuple[int, int]:
    """``(agreeing, compared)``: queries with hits in both runs whose first doc is the same."""
    first_b = {qid: hits[0][0] for qid, hits in b if hits}
    agree = compared = 0
    for qid, hits in a:
        if hits and qid in first_b:
            compared += 1
            agree += hits[0][0] == first_b[qid]
    return agree, compared


def _time_engines(objs, batches, encoded, singles, k, threads, opts):
    """Batch (text in), search-only and one-at-a-time timings of every engine, interleaved."""
    batch_times = timing.repeat_interleaved(
        [
            lambda e=e, b=b, k=k, t=threads: e.query(b, k, t)
            for e, b in zip(objs, batches, strict=True)
        ],
        **opts,
    )
    search_times = timing.repeat_interleaved(
        [
            lambda e=e, x=x, k=k, t=threads: e.retrieve(x, k, t)
            for e, x in zip(objs, encoded, strict=True)
        ],
        **opts,
    )
    lat = timing.latencies_interleaved(
        [lambda one, e=e, k=k, t=threads: e.query(one, k, t) for e in objs], singles,
        min_seconds=opts["min_seconds"],
    )  # fmt: skip
    return batch_times, search_times, lat


def bench_bm25(
    cfg: Any,
    ks: Sequence[int] = (10, 1000),
    out_dir: str | Path | None = None,
    *,
    min_seconds: float = 1.0,
    min_repeats: int = 5,
    fresh_index: bool = False,
    command: str | None = None,
    echo: Callable[[str], None] = print,
):
    """Time irbench's BM25 and bm25s on the same docs and queries; return one row per setting.

    Writes ``bench.json`` (a list of row objects, keys :data:`COLUMNS`), ``bench.md``,
    ``recall_latency.png`` and the depth-10 runs (``irbench.trec``, ``bm25s.trec``) into
    ``out_dir`` (default ``runs/bench/<dataset>/bm25``). bm25s rows are skipped with a note
    when bm25s is not importable. ``DataFrame.attrs`` holds the ratios, machine and notes.

    With ``fresh_index`` irbench's index is built in a temporary cache folder (removed at the
    end), so that its ``build_s`` is measured in this run rather than read from the cache.
    """
    import shutil
    import tempfile

    from irbench.errors import ConfigError

    if str(cfg.encoder.get("_target_", "")) != "irbench.encoders.bm25.BM25Encoder":
        raise ConfigError(
            f"bench bm25 times the BM25 encoder; encoder={cfg.encoder.name} is not BM25 "
            "(use encoder=bm25, or `irbench bench index` for learned sparse vectors)"
        )
    tmp_cache = tempfile.mkdtemp(prefix="irbench-bench-") if fresh_index else None
    try:
        if tmp_cache is not None:
            cfg = copy.deepcopy(cfg)
            cfg.cache_dir = tmp_cache
        return _bench_bm25(cfg, ks, out_dir, min_seconds, min_repeats, command, echo)
    finally:
        if tmp_cache is not None:
            shutil.rmtree(tmp_cache, ignore_errors=True)


class _IrbenchEngine:
    """irbench's encoder + index, as the pipeline uses them (text -> vectors -> top k)."""

    name = "irbench"

    def __init__(self, handle: Any, n_docs: int):
        self.encoder = handle.encoder
        self.index = handle.index
        self.n_docs = n_docs

    def tokenize(self, queries: Sequence[Any]):
        return self.encoder.encode_queries(queries)

    def retrieve(self, qvecs, k: int, threads: int):
        return self.index.search(qvecs, min(k, self.n_docs), threads=threads)

    def query(self, queries: Sequence[Any], k: int, threads: int):
        return self.retrieve(self.tokenize(queries), k, threads)


def _bench_bm25(cfg, ks, out_dir, min_seconds, min_repeats, command, echo):
    import pandas as pd

    from irbench.bench.index import json_row, plot
    from irbench.errors import ConfigError
    from irbench.pipeline import build_index, load_dataset, search
    from irbench.runs.atomic import write_json, write_text
    from irbench.runs.trec import write_run

    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ConfigError(f"--k {ks}: give k values >= 1")
    corpus = str(cfg.dataset.name)
    out = Path(out_dir) if out_dir is not None else Path("runs") / "bench" / corpus / "bm25"
    drop_self = bool(cfg.dataset.drop_self_hits)
    threads_list = timing.thread_settings()
    machine = timing.machine()
    notes: list[str] = []

    dataset = load_dataset(cfg)
    queries = list(dataset.queries_iter())
    if not queries:
        raise ConfigError(f"dataset '{corpus}' has no queries in this split; nothing to time")
    qrels = list(dataset.qrels_iter())
    texts = [q.text for q in queries]

    # ------------------------------------------------------------------------ build both
    echo(f"irbench: building or loading the index for {corpus} ...")
    record: dict[str, Any] = {}
    t0 = time.perf_counter()
    handle = build_index(cfg, record)
    wall = time.perf_counter() - t0
    info = handle.info
    ir_build_s = float(info.get("encode_s", 0.0)) + float(info.get("build_s", 0.0))
    if not handle.reused:
        notes.append(
            f"irbench index built in this run: encode {info.get('encode_s')} s + index "
            f"{info.get('build_s')} s (build_index wall time with reading and saving: {wall:.2f} s)"
        )
    else:
        notes.append(
            f"irbench index reused from {handle.path}; its build_s ({ir_build_s:.2f} s, "
            f"encode + index) was measured when it was built (loading took {wall:.2f} s); "
            "pass --fresh-index to time a build in this run"
        )
    n_docs = len(handle.docnos)
    enc = cfg.encoder
    big_ks = [k for k in ks if k > n_docs]
    if big_ks:
        notes.append(f"k={big_ks} exceeds the {n_docs} docs: both engines searched with k={n_docs}")

    # engine -> (object, inputs of one batch, inputs one at a time, setting, build_s, size_mb)
    engines: dict[str, tuple[Any, Any, list, str, float, float]] = {
        "irbench": (
            _IrbenchEngine(handle, n_docs), queries, [[q] for q in queries],
            f"{cfg.index.name} exact; stemmer={enc.get('stemmer')} "
            f"stop={enc.get('stopwords')} k1={enc.k1} b={enc.b}",
            ir_build_s,
            float(info.get("index_bytes", getattr(handle.index, "size_bytes", 0))) / 2**20,
        )
    }  # fmt: skip
    doc_ids: list[str] = []
    if _bm25s() is None:
        note = f"bm25s is not installed: its rows are skipped ({INSTALL_HINT})"
        echo(f"note: {note}")
        notes.append(note)
    else:
        echo(f"bm25s: indexing {n_docs} docs ...")
        doc_texts: list[str] = []
        for d in dataset.docs_iter():
            doc_ids.append(d.doc_id)
            doc_texts.append(d.full_text())
        if doc_ids != handle.docnos:
            raise ConfigError("bm25s and irbench see different doc lists; rebuild the index")
        eng = _Bm25sEngine(doc_texts, float(enc.k1), float(enc.b))
        del doc_texts
        engines["bm25s"] = (
            eng, texts, [[t] for t in texts],
            f"lucene, numba backend; Stemmer english, stop en, k1={enc.k1} b={enc.b}",
            eng.build_s, eng.size_bytes / 2**20,
        )  # fmt: skip

    # ------------------------------------------------ time, the engines interleaved
    names = list(engines)
    objs = [engines[n][0] for n in names]
    batches = [engines[n][1] for n in names]
    singles = [engines[n][2] for n in names]
    opts = {"min_seconds": min_seconds, "min_repeats": min_repeats}
    echo("timing query encoding / tokenisation ...")
    enc_times = timing.repeat_interleaved(
        [lambda e=e, b=b: e.tokenize(b) for e, b in zip(objs, batches, strict=True)], **opts
    )
    encoded = [e.tokenize(b) for e, b in zip(objs, batches, strict=True)]
    rows: list[dict[str, Any]] = []
    breakdown: list[dict[str, Any]] = []
    for k in ks:
        for threads in threads_list:
            echo(f"timing k={k} threads={threads}: {', '.join(names)} ...")
            with timing.pinned_for(threads):
                batch_times, search_times, lat = _time_engines(
                    objs, batches, encoded, singles, k, threads, opts
                )
            for i, name in enumerate(names):
                _, _, _, setting, build_s, size_mb = engines[name]
                m = {
                    "qps": timing.qps(len(queries), batch_times[i]),
                    **timing.latency_stats(lat[i]),
                }
                rows.append(_row(name, setting, corpus, k, threads, build_s, size_mb, m))
                breakdown.append(
                    {"engine": name, "k": k, "threads": threads,
                     "encode_ms": 1000 * _median(enc_times[i]),
                     "search_ms": 1000 * _median(search_times[i]),
                     "total_ms": 1000 * _median(batch_times[i])}
                )  # fmt: skip

    # ------------------------------------------- recall@k against exhaustive scoring
    sub = slice(0, min(len(queries), RECALL_QUERIES))
    if sub.stop < len(queries):
        notes.append(f"recall@k measured on the first {sub.stop} of {len(queries)} queries")
    echo(f"recall@k on {sub.stop} queries against each engine's exhaustive scores ...")
    exact_of = {"irbench": _irbench_exact_scores(cfg, dataset, queries[sub], n_docs)}
    if "bm25s" in engines:
        exact_of["bm25s"] = engines["bm25s"][0].exact_scores(texts[sub])
    for name, exact in exact_of.items():
        recalls = _recalls(engines[name][0], engines[name][1][sub], exact, ks, n_docs)
        for r in rows:
            if r["engine"] == name:
                r["recall"] = recalls[r["k"]]

    # ------------------------------------------------------------------------- nDCG@10
    cfg10 = copy.deepcopy(cfg)
    cfg10.k = 10
    runs = {"irbench": search(cfg10, handle, queries)}
    if "bm25s" in engines:
        eng = engines["bm25s"][0]
        scores, idx = eng.query(texts, min(11 if drop_self else 10, n_docs), 1)
        bm_run = []
        for row, q in enumerate(queries):
            ranked = [
                (doc_ids[int(d)], float(s))
                for d, s in zip(idx[row], scores[row], strict=True)
                if s > 0
            ]
            bm_run.append((q.query_id, _drop_self(q.query_id, ranked, drop_self, 10)))
        runs["bm25s"] = bm_run
    for name, run in runs.items():
        ndcg = _ndcg10(run, qrels)
        for r in rows:
            if r["engine"] == name:
                r["ndcg@10"] = ndcg
        write_run(out / f"{name}.trec", run, f"{name}.bm25" if name == "irbench" else name)

    df = pd.DataFrame(rows, columns=COLUMNS)
    agree = top1_agreement(runs["irbench"], runs["bm25s"]) if "bm25s" in runs else None
    df.attrs.update(
        {"ratios": _ratios(df), "machine": machine, "notes": notes, "breakdown": breakdown,
         "top1_agreement": agree, "queries": len(queries), "docs": n_docs, "out_dir": str(out)}
    )  # fmt: skip
    write_json(out / "bench.json", [json_row(r, COLUMNS) for r in rows])
    write_text(out / "bench.md", to_markdown(df, command=command))
    plot(rows, out / "recall_latency.png")
    return df


def _median(xs: Sequence[float]) -> float:
    import statistics

    return statistics.median(xs)


def _row(engine, setting, corpus, k, threads, build_s, size_mb, m) -> dict[str, Any]:
    return {
        "engine": engine, "setting": setting, "corpus": corpus, "k": int(k),
        "threads": int(threads), "build_s": float(build_s), "size_mb": float(size_mb),
        "mean_ms": m["mean_ms"], "p50_ms": m["p50_ms"], "p99_ms": m["p99_ms"],
        "qps": m["qps"], "recall": None, "ndcg@10": None,
    }  # fmt: skip


def _ratios(df) -> list[dict[str, Any]]:
    """irbench QPS / bm25s QPS (and bm25s p50 / irbench p50) per (k, threads)."""
    out = []
    ir = df[df.engine == "irbench"]
    bm = df[df.engine == "bm25s"]
    for _, a in ir.iterrows():
        b = bm[(bm.k == a.k) & (bm.threads == a.threads)]
        if b.empty:
            continue
        b = b.iloc[0]
        out.append(
            {"k": int(a.k), "threads": int(a.threads), "irbench_qps": float(a.qps),
             "bm25s_qps": float(b.qps), "qps_ratio": float(a.qps / b.qps),
             "p50_speedup": float(b.p50_ms / a.p50_ms)}
        )  # fmt: skip
    return out


def to_markdown(df, command: str | None = None) -> str:
    """``bench.md``: machine, command, results table, ratios, breakdown and notes."""
    a = df.attrs
    lines = [
        f"# BM25 query throughput: irbench vs bm25s ({df.corpus.iloc[0] if len(df) else ''})",
        "",
    ]
    if a.get("machine"):
        lines += [f"Machine: {timing.describe_machine(a['machine'])}", ""]
    if command:
        lines += ["```", command, "```", ""]
    lines += [
        f"{a.get('docs', '?')} docs, {a.get('queries', '?')} queries (one batch); QPS from the "
        "median repeat (>= 5 repeats, >= 1 s each engine); latency from queries sent one at a "
        "time; the engines timed interleaved, call by call.",
        "",
        "| engine | setting | k | threads | build_s | size_mb | qps | mean_ms | p50_ms | p99_ms "
        "| recall@k | nDCG@10 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in df.iterrows():
        cells = [
            r.engine, r.setting, r.k, r.threads, fmt_cell(r.build_s), fmt_cell(r.size_mb),
            fmt_cell(r.qps, 0), fmt_cell(r.mean_ms, 3), fmt_cell(r.p50_ms, 3),
            fmt_cell(r.p99_ms, 3), fmt_cell(r.recall, 4), fmt_cell(r["ndcg@10"], 4),
        ]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    if a.get("ratios"):
        lines += [
            "",
            "| k | threads | irbench QPS | bm25s QPS | irbench / bm25s QPS | bm25s p50 / irbench p50 |",
            "|---|---|---|---|---|---|",
        ]
        for r in a["ratios"]:
            lines.append(
                f"| {r['k']} | {r['threads']} | {fmt_cell(r['irbench_qps'], 0)} | "
                f"{fmt_cell(r['bm25s_qps'], 0)} | {r['qps_ratio']:.2f}x | {r['p50_speedup']:.2f}x |"
            )
    if a.get("breakdown"):
        lines += [
            "",
            "Batch breakdown (ms for all queries; encode = text -> query vectors / tokens, "
            "search = given those; total = end to end):",
            "",
            "| engine | k | threads | encode_ms | search_ms | total_ms |",
            "|---|---|---|---|---|---|",
        ]
        for r in a["breakdown"]:
            lines.append(
                f"| {r['engine']} | {r['k']} | {r['threads']} | {r['encode_ms']:.2f} | "
                f"{r['search_ms']:.2f} | {r['total_ms']:.2f} |"
            )
    if a.get("top1_agreement"):
        agree, compared = a["top1_agreement"]
        pct = 100 * agree / compared if compared else 0.0
        lines += [
            "",
            f"Top-1 doc agreement irbench vs bm25s: {agree}/{compared} queries ({pct:.1f}%).",
        ]
    for note in a.get("notes", []):
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"
