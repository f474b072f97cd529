"""How the indexes grow with the corpus (``irbench bench scale``).

For each size, synthetic docs following a real corpus (:mod:`irbench.bench.synth`) are
generated block by block and indexed with :meth:`NumbaIndex.build_streaming` (two passes
over the generator, so the corpus is never held whole: memory is the index plus one block),
then the real queries are searched. With ``approx`` (``index=numba_approx`` build knobs,
``{}`` for its defaults) the same docs, read back from the spilled blocks, are also indexed
by :meth:`ApproxIndex.build_streaming <irbench.index.approx.ApproxIndex.build_streaming>`
(its memory: the index, whose forward rows hold the corpus, plus its build scratch); its
recall@k is measured against the exact index's top-k (that of the quantised index with
``quantize``). One row per size and engine: postings, generation and indexing time, index
size, the process's peak resident memory during that engine's build and search,
single-thread and all-thread QPS and per-query latency at ``k``, and recall.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from irbench.bench import timing
from irbench.bench.index import COLUMNS as INDEX_COLUMNS
from irbench.bench.index import VectorSet, json_row, recall_at_k
from irbench.bench.synth import Synthesizer

COLUMNS = [
    "docs", "engine", "setting", "postings", "gen_s", "index_s", "size_mb", "peak_rss_mb", "k",
    "qps_1", "qps_all", "threads_all", "cores_1", "cores_all", "queries", "mean_ms", "p50_ms",
    "p99_ms", "recall",
]  # fmt: skip
#: ``bench.json`` keys: those of ``irbench bench index`` rows (``ingest_s`` and ``ndcg@10``
#: null here), then the scale columns
JSON_COLUMNS = [*INDEX_COLUMNS, "docs", "postings", "gen_s", "peak_rss_mb", "queries"]


def bench_scale(
    real: VectorSet,
    sizes: Sequence[int],
    *,
    k: int = 10,
    quantize: str | None = None,
    seed: int = 0,
    parent_share: float = 0.0,
    max_queries: int | None = None,
    min_seconds: float = 1.0,
    spill_dir: str | None = None,
    approx: dict[str, Any] | None = None,
    target_recall: float | None = None,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Rows by ascending size, ``numba`` then ``numba_approx``; see the module docstring.

    With ``target_recall`` (and ``approx``), a third row per size: numba_approx with its
    search knobs calibrated to that recall (:func:`irbench.index.tuning.calibrate_approx`) on a
    seeded half of the queries, timed and scored on the other half.
    """
    synth = Synthesizer(real, seed, parent_share)
    if approx is not None:  # bad knobs fail now, not after the first exact index
        import scipy.sparse as sp

        from irbench.index.approx import ApproxIndex

        ApproxIndex.build(sp.csr_matrix((1, synth.n_terms), dtype=np.float32), **approx)
    queries = real.queries[:max_queries] if max_queries else real.queries
    rows: list[dict[str, Any]] = []
    for n in sorted({int(s) for s in sizes}):
        with tempfile.TemporaryDirectory(prefix="irbench-scale-", dir=spill_dir) as tmp:
            spill = _Spill(synth, n, Path(tmp))
            row, exact = _exact_row(spill, queries, k, quantize, min_seconds, echo)
            rows.append(row)
            if approx is not None:
                arow, index = _approx_row(spill, queries, k, approx, exact, min_seconds, echo)
                rows.append(arow)
                if target_recall is not None:
                    rows.append(
                        _calibrated_row(arow, index, queries, k, exact, target_recall, seed,
                                        min_seconds, echo)
                    )  # fmt: skip
                del index
    return rows


class _Spill:
    """Docs ``[0, n)`` of ``synth``, generated once: the first iteration generates each block
    and spills it to ``folder``; later ones read the blocks back memory-mapped."""

    def __init__(self, synth: Synthesizer, n: int, folder: Path):
        self.synth, self.n, self.folder = synth, n, folder
        self.gen_s = 0.0
        self.paths: list[Path] = []
        self.complete = False

    def __call__(self) -> Iterator[Any]:
        if self.complete:
            for path in self.paths:
                yield _load_block(path, self.synth.n_terms)
            return
        it = self.synth.blocks(self.n)
        while True:
            t0 = time.perf_counter()
            block = next(it, None)
            self.gen_s += time.perf_counter() - t0
            if block is None:
                self.complete = True
                return
            self.paths.append(_save_block(self.folder, len(self.paths), block))
            yield block


def build_synthetic_index(
    synth: Synthesizer, n: int, quantize: str | None = None, spill_dir: str | None = None
) -> tuple[Any, float]:
    """Index docs ``[0, n)`` of ``synth`` by streaming: ``(NumbaIndex, generation seconds)``.

    The first pass generates each block and spills it to a temporary folder; the second
    reads it back memory-mapped: each doc is generated once, the corpus is never all in
    memory, and the index equals ``NumbaIndex.build(synth.block(0, n))``.
    """
    from irbench.index.numba import NumbaIndex

    with tempfile.TemporaryDirectory(prefix="irbench-scale-", dir=spill_dir) as tmp:
        spill = _Spill(synth, n, Path(tmp))
        index = NumbaIndex.build_streaming(spill, synth.n_terms, quantize=quantize)
    return index, spill.gen_s


def _timings(search: Callable[..., Any], queries: Any, k: int, min_seconds: float) -> dict:
    """QPS and cores used at 1 and at all threads, and one-query latencies (first 200
    queries). The 1-thread timings run with the process pinned to one CPU
    (:func:`timing.pinned`), as ``bench index`` pins its 1-thread rows; where all threads
    are one, the all-thread figures are those of the 1-thread timing."""
    n_all = timing.all_threads()
    n = queries.shape[0]

    def timed(threads: int) -> tuple[float, float]:
        cpu: list[list[float]] = []
        secs = timing.repeat_interleaved(
            [lambda: search(queries, k, threads=threads)], min_seconds=min_seconds, cpu_out=cpu
        )[0]
        return timing.qps(n, secs), sum(cpu[0]) / max(sum(secs), 1e-12)

    sample = list(range(min(n, 200)))
    with timing.pinned(1):
        qps_1, cores_1 = timed(1)
        lat = timing.latencies(
            lambda i: search(queries[i], k, threads=1), sample, min_seconds=min_seconds
        )
    qps_all, cores_all = timed(n_all) if n_all > 1 else (qps_1, cores_1)
    stats = timing.latency_stats(lat)
    return {
        "k": k,
        "qps_1": qps_1,
        "qps_all": qps_all,
        "threads_all": n_all,
        "cores_1": cores_1,
        "cores_all": cores_all,
        "queries": int(n),
        **{key: stats[key] for key in ("mean_ms", "p50_ms", "p99_ms")},
    }


def _exact_row(spill, queries, k, quantize, min_seconds, echo) -> tuple[dict, np.ndarray]:
    """The exact index's row, and its top-k doc rows (for the approximate index's recall)."""
    from irbench.index.numba import NumbaIndex
    from irbench.runs.manifest import peak_rss_mb, reset_peak_rss

    echo(f"scale: {spill.n:,} docs: generating and indexing (numba) ...")
    gc.collect()
    reset_peak_rss()
    t0 = time.perf_counter()
    index = NumbaIndex.build_streaming(spill, spill.synth.n_terms, quantize=quantize)
    build_s = time.perf_counter() - t0
    echo(f"scale: {spill.n:,} docs: {index.nnz:,} postings; searching ...")
    row = {
        "docs": spill.n,
        "engine": "numba",
        "setting": f"exact, {quantize or 'float32'} weights",
        "postings": int(index.nnz),
        "gen_s": round(spill.gen_s, 2),
        "index_s": round(build_s - spill.gen_s, 2),
        "size_mb": round(index.size_bytes / 2**20, 1),
        "peak_rss_mb": None,
        **_timings(index.search, queries, k, min_seconds),
        "recall": None,  # exact by construction (property-tested against brute force)
    }
    exact = index.search(queries, k)[1]
    row["peak_rss_mb"] = peak_rss_mb()
    return row, exact


def _approx_row(spill, queries, k, approx, exact, min_seconds, echo) -> tuple[dict, Any]:
    """``index=numba_approx`` built with ``approx`` on the spilled docs: its row, the index."""
    from irbench.index.approx import ApproxIndex
    from irbench.runs.manifest import peak_rss_mb, reset_peak_rss

    echo(f"scale: {spill.n:,} docs: indexing (numba_approx) ...")
    gc.collect()
    reset_peak_rss()
    t0 = time.perf_counter()
    index = ApproxIndex.build_streaming(spill, spill.synth.n_terms, **approx)
    build_s = time.perf_counter() - t0
    echo(f"scale: {spill.n:,} docs: {index.n_kept_postings:,} postings kept; searching ...")
    row = {
        "docs": spill.n,
        "engine": "numba_approx",
        "postings": int(index.nnz),
        "gen_s": 0.0,  # reads back the exact row's spilled blocks
        "index_s": round(build_s, 2),
        "size_mb": round(index.size_bytes / 2**20, 1),
        "peak_rss_mb": None,
        **_timings(index.search, queries, k, min_seconds),
        "recall": recall_at_k(index.search(queries, k)[1], exact),
        "setting": f"query_cut={index.cfg['query_cut']} heap_factor={index.cfg['heap_factor']}",
    }
    row["peak_rss_mb"] = peak_rss_mb()
    return row, index


def _calibrated_row(arow, index, queries, k, exact, target, seed, min_seconds, echo) -> dict:
    """``index`` calibrated to ``target`` on a seeded half of ``queries`` (exact top-k
    ``exact``), timed and scored on the other half."""
    from irbench.index.tuning import calibrate_approx

    n = queries.shape[0]
    perm = np.random.default_rng(seed).permutation(n)
    tune, held = np.sort(perm[: n // 2]), np.sort(perm[n // 2 :])
    echo(f"scale: {arow['docs']:,} docs: calibrating numba_approx to recall {target} ...")
    t0 = time.perf_counter()
    cal = calibrate_approx(index, queries[tune], k, target, exact=exact[tune])
    calibrate_s = time.perf_counter() - t0
    echo(f"scale: calibrated in {calibrate_s:.1f} s: {cal.describe()}")

    def search(q, k, threads):
        return index.search(q, k, threads=threads, **cal.knobs)

    return {
        **arow,
        "engine": "numba_approx calibrated",
        "setting": (
            f"query_cut={cal.knobs['query_cut']} heap_factor={cal.knobs['heap_factor']} "
            f"(target {target}: "
            f"{cal.recall:.3f} on {len(tune)} queries, {calibrate_s:.0f} s)"
        ),
        **_timings(search, queries[held], k, min_seconds),
        "recall": recall_at_k(search(queries[held], k, 0)[1], exact[held]),
        "calibrate_s": round(calibrate_s, 1),
    }


def _save_block(folder: Path, i: int, block: Any) -> Path:
    path = folder / f"block-{i:06d}"
    path.mkdir()
    np.save(path / "indptr.npy", block.indptr.astype(np.int64))
    np.save(
        path / "indices.npy",
        block.indices.astype(np.uint16 if block.shape[1] <= 65536 else np.int32),
    )
    np.save(path / "data.npy", block.data.astype(np.float32))
    return path


def _load_block(path: Path, n_terms: int) -> Any:
    import scipy.sparse as sp

    indptr = np.load(path / "indptr.npy")
    m = sp.csr_matrix((indptr.shape[0] - 1, n_terms), dtype=np.float32)
    # kernels read any integer index dtype: skip scipy's int32 conversion of the indices
    m.indptr = indptr
    m.indices = np.load(path / "indices.npy", mmap_mode="r")
    m.data = np.load(path / "data.npy", mmap_mode="r")
    m.has_sorted_indices = True
    m.has_canonical_format = True
    return m


def to_markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The rows as a markdown table under the corpus, machine and command."""
    lines = [
        f"# Indexes at scale: synthetic docs following {meta['source']}",
        "",
        f"Machine: {meta['machine']}",
        "",
    ]
    if meta.get("command"):
        lines += ["```", meta["command"], "```", ""]
    head = ["docs", "engine", "postings", "gen s", "index s", "index MB", "peak RSS MB", "k",
            "QPS 1 thr", "QPS all", "p50 ms", "p99 ms", "recall@k"]  # fmt: skip
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            f"{r['docs']:,}", r["engine"], f"{r['postings']:,}", f"{r['gen_s']:.1f}",
            f"{r['index_s']:.1f}",
            f"{r['size_mb']:,.0f}", "—" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:,.0f}",
            str(r["k"]), f"{r['qps_1']:,.1f}", f"{r['qps_all']:,.1f} ({r['threads_all']})",
            f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
            "exact" if r["recall"] is None else f"{r['recall']:.3f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    settings = [r for r in rows if r.get("setting") and r["engine"] != "numba"]
    if settings:
        lines += ["", "Search settings (calibrated rows: timed and scored on the held-out "
                  "half of the queries):", ""]  # fmt: skip
        lines += [f"- {r['docs']:,} {r['engine']}: {r['setting']}" for r in settings]
    return "\n".join(lines) + "\n"


def growth(rows: list[dict[str, Any]]) -> list[str]:
    """One line per engine and consecutive pair of sizes: how time, memory and latency grew."""
    out = []
    pairs = []
    for engine in dict.fromkeys(r["engine"] for r in rows):
        mine = [r for r in rows if r["engine"] == engine]
        pairs += [(engine, a, b) for a, b in zip(mine, mine[1:], strict=False)]
    for engine, a, b in pairs:
        f = b["docs"] / a["docs"]

        def ratio(key: str, a=a, b=b) -> str:
            x, y = a.get(key), b.get(key)
            return "—" if not x or y is None else f"{y / x:.1f}x"

        out.append(
            f"{engine}: {a['docs']:,} -> {b['docs']:,} docs ({f:.0f}x): "
            f"index time {ratio('index_s')}, "
            f"index size {ratio('size_mb')}, peak RSS {ratio('peak_rss_mb')}, "
            f"p50 latency {ratio('p50_ms')}"
        )
    return out


def json_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``bench.json``: each row as objects shaped like ``irbench bench index``'s rows (keys
    :data:`JSON_COLUMNS`): one at 1 thread, with the one-query latencies, and one at all
    threads (when those are more than one), whose latencies are null (not measured, as in
    ``bench index``). ``build_s`` is the indexing time without the corpus generation
    (``gen_s``); ``recall`` is null on the exact rows, the reference of the others;
    ``queries`` is how many were timed."""
    out = []
    for r in rows:
        base = {
            "engine": r["engine"], "setting": r.get("setting"),
            "corpus": f"synthetic {r['docs']} docs", "k": r["k"], "build_s": r["index_s"],
            "size_mb": r["size_mb"], "recall": r["recall"], "docs": r["docs"],
            "postings": r["postings"], "gen_s": r["gen_s"], "peak_rss_mb": r["peak_rss_mb"],
            "queries": r["queries"],
        }  # fmt: skip
        lat = {key: r[key] for key in ("mean_ms", "p50_ms", "p99_ms")}
        settings = [(1, r["qps_1"], r["cores_1"], lat)]
        if r["threads_all"] > 1:
            settings.append((r["threads_all"], r["qps_all"], r["cores_all"], dict.fromkeys(lat)))
        for threads, qps, cores, lat_ in settings:
            one = {**base, "threads": threads, "qps": qps, "cores_used": cores, **lat_}
            out.append(json_row(one, JSON_COLUMNS))
    return out


#: panels of :func:`plot`: (title, row key, axis label)
PANELS = [
    ("index time", "index_s", "seconds (generation excluded)"),
    ("peak memory", "peak_rss_mb", "peak RSS, MiB"),
    ("latency", "p50_ms", "p50 ms per query (1 thread)"),
]


def plot(rows: list[dict[str, Any]]) -> bytes:
    """PNG: index time, peak memory and p50 latency against the corpus size, log-log, one
    line per engine."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(PANELS), 3.6), dpi=110)
    FigureCanvasAgg(fig)
    engines = list(dict.fromkeys(r["engine"] for r in rows))
    for i, (title, key, label) in enumerate(PANELS, start=1):
        ax = fig.add_subplot(1, len(PANELS), i)
        for engine in engines:
            pts = [(r["docs"], r[key]) for r in rows if r["engine"] == engine and r.get(key)]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=engine)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("docs")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


__all__ = [
    "COLUMNS", "JSON_COLUMNS", "bench_scale", "build_synthetic_index", "growth", "json_rows",
    "plot", "to_markdown",
]  # fmt: skip
