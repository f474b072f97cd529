"""How the exact index grows with the corpus (``irbench bench scale``).

For each size, synthetic docs following a real corpus (:mod:`irbench.bench.synth`) are
generated block by block and indexed with :meth:`NumbaIndex.build_streaming` (two passes
over the generator, so the corpus is never held whole: memory is the index plus one block),
then the real queries are searched. Reported per size: postings, generation and indexing
time, index size, the process's peak resident memory during the build and the search, and
single-thread and all-thread QPS and per-query latency at ``k``.
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
from irbench.bench.index import VectorSet
from irbench.bench.synth import Synthesizer

COLUMNS = [
    "docs", "postings", "gen_s", "index_s", "size_mb", "peak_rss_mb", "k", "qps_1",
    "qps_all", "threads_all", "mean_ms", "p50_ms", "p99_ms",
]  # fmt: skip


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
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """One row per size (ascending); see the module docstring."""
    from irbench.runs.manifest import peak_rss_mb, reset_peak_rss

    synth = Synthesizer(real, seed, parent_share)
    queries = real.queries[:max_queries] if max_queries else real.queries
    rows = []
    for n in sorted({int(s) for s in sizes}):
        gc.collect()
        reset_peak_rss()
        rows.append(_one_size(synth, n, queries, k, quantize, min_seconds, echo, spill_dir))
        rows[-1]["peak_rss_mb"] = peak_rss_mb()
    return rows


def build_synthetic_index(
    synth: Synthesizer, n: int, quantize: str | None = None, spill_dir: str | None = None
) -> tuple[Any, float]:
    """Index docs ``[0, n)`` of ``synth`` by streaming: ``(NumbaIndex, generation seconds)``.

    The first pass generates each block and spills it to a temporary folder; the second
    reads it back memory-mapped: each doc is generated once, the corpus is never all in
    memory, and the index equals ``NumbaIndex.build(synth.block(0, n))``.
    """
    from irbench.index.numba import NumbaIndex

    gen = [0.0]
    spilled: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="irbench-scale-", dir=spill_dir) as tmp:

        def blocks() -> Iterator[Any]:
            if spilled:
                for path in spilled:
                    yield _load_block(path, synth.n_terms)
                return
            it = synth.blocks(n)
            while True:
                t0 = time.perf_counter()
                block = next(it, None)
                gen[0] += time.perf_counter() - t0
                if block is None:
                    return
                spilled.append(_save_block(Path(tmp), len(spilled), block))
                yield block

        index = NumbaIndex.build_streaming(blocks, synth.n_terms, quantize=quantize)
    return index, gen[0]


def _one_size(synth, n, queries, k, quantize, min_seconds, echo, spill_dir) -> dict[str, Any]:
    echo(f"scale: {n:,} docs: generating and indexing ...")
    t0 = time.perf_counter()
    index, gen_s = build_synthetic_index(synth, n, quantize, spill_dir)
    build_s = time.perf_counter() - t0
    echo(f"scale: {n:,} docs: {index.nnz:,} postings; searching ...")
    n_all = min(timing.cores(), _numba_threads())
    one = timing.repeat(lambda: index.search(queries, k, threads=1), min_seconds=min_seconds)
    every = timing.repeat(lambda: index.search(queries, k, threads=n_all), min_seconds=min_seconds)
    sample = list(range(min(queries.shape[0], 200)))
    lat = timing.latencies(
        lambda i: index.search(queries[i], k, threads=1), sample, min_seconds=min_seconds
    )
    stats = timing.latency_stats(lat)
    return {
        "docs": n,
        "postings": int(index.nnz),
        "gen_s": round(gen_s, 2),
        "index_s": round(build_s - gen_s, 2),
        "size_mb": round(index.size_bytes / 2**20, 1),
        "peak_rss_mb": None,
        "k": k,
        "qps_1": timing.qps(queries.shape[0], one),
        "qps_all": timing.qps(queries.shape[0], every),
        "threads_all": n_all,
        **{key: stats[key] for key in ("mean_ms", "p50_ms", "p99_ms")},
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


def _numba_threads() -> int:
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


def to_markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The rows as a markdown table under the corpus, machine and command."""
    lines = [
        f"# Exact index at scale: synthetic docs following {meta['source']}",
        "",
        f"Machine: {meta['machine']}",
        "",
    ]
    if meta.get("command"):
        lines += ["```", meta["command"], "```", ""]
    head = ["docs", "postings", "gen s", "index s", "index MB", "peak RSS MB", "k",
            "QPS 1 thr", "QPS all", "p50 ms", "p99 ms"]  # fmt: skip
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            f"{r['docs']:,}", f"{r['postings']:,}", f"{r['gen_s']:.1f}", f"{r['index_s']:.1f}",
            f"{r['size_mb']:,.0f}", "—" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:,.0f}",
            str(r["k"]), f"{r['qps_1']:,.1f}", f"{r['qps_all']:,.1f} ({r['threads_all']})",
            f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def growth(rows: list[dict[str, Any]]) -> list[str]:
    """One line per consecutive pair of sizes: how time, memory and latency grew."""
    out = []
    for a, b in zip(rows, rows[1:], strict=False):
        f = b["docs"] / a["docs"]

        def ratio(key: str, a=a, b=b) -> str:
            x, y = a.get(key), b.get(key)
            return "—" if not x or y is None else f"{y / x:.1f}x"

        out.append(
            f"{a['docs']:,} -> {b['docs']:,} docs ({f:.0f}x): index time {ratio('index_s')}, "
            f"index size {ratio('size_mb')}, peak RSS {ratio('peak_rss_mb')}, "
            f"p50 latency {ratio('p50_ms')}"
        )
    return out


__all__ = ["COLUMNS", "bench_scale", "build_synthetic_index", "growth", "to_markdown"]
