"""``irbench bench dense``: irbench's ``index=faiss`` against FAISS used directly and exact
brute-force baselines, on the same dense vectors, in one run.

Inputs: a dataset + dense encoder from the config (doc vectors from the encoded cache,
encoded now if missing; the split's queries encoded now), optionally grown to ``n_docs``
synthetic docs around the real ones (:func:`synthesize`) to see memory and speed at scale.
The doc vectors are written as ``.npy`` chunks in a scratch folder; every engine reads them
from there.

Engines (:data:`ENGINES`), each built once per FAISS factory and searched at each search
setting (``nprobe`` for IVF factories, ``ef_search`` for HNSW ones), each ``k`` and thread
count, timed interleaved with :func:`irbench.bench.index.time_engines` (the same rules as
``irbench bench index``):

* ``irbench`` -- :class:`irbench.index.faiss.FaissIndex` as ``irbench index`` builds it:
  from the memory-mapped chunks one block at a time, saved, loaded memory-mapped; searched
  through ``FaissIndex.search`` (query checks, ``(-score, doc)`` ordering, tie repair of
  exhaustive indexes, padding);
* ``faiss`` -- the same factory built the way a FAISS user does: the chunks stacked in
  memory, ``index_factory`` + ``train`` (the same sample and k-means seed, so both hold the
  same index) + ``add``; ``faiss.write_index`` / ``read_index``; ``index.search``;
* ``numpy`` -- exact: ``queries @ docs.T`` in blocks of queries, ``argpartition``, sort, its
  BLAS threads set per call with threadpoolctl;
* ``sentence_transformers`` -- exact: ``sentence_transformers.util.semantic_search`` with
  ``dot_score`` over a torch tensor (the ``[bench]`` extra).

Both FAISS builds run in a fresh child process each, so that **build_rss_mb** (the child's
peak resident memory, ``VmHWM`` reset after its imports on Linux) measures the build alone;
``build_s`` is timed in the child. Recall@k is against the exact top-k (FAISS ``Flat`` via
``FaissIndex``, ties by doc row); nDCG@10 from each engine's first 10 hits when qrels exist.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from irbench.bench import timing
from irbench.bench.peers import Engine, dir_bytes, pad_rows
from irbench.errors import ConfigError, DataError
from irbench.types import DenseBlocks

COLUMNS = [
    "engine", "setting", "corpus", "k", "threads", "build_s", "size_mb", "build_rss_mb",
    "build_base_mb",
    "mean_ms", "p50_ms", "p99_ms", "qps", "cores_used", "recall", "ndcg@10",
]  # fmt: skip
NPROBE_GRID = (1, 2, 4, 8, 16, 32, 64, 128)
EF_SEARCH_GRID = (16, 32, 64, 128, 256, 512)
CHUNK_ROWS = 50_000
#: queries per block of the numpy baseline's ``queries @ docs.T`` (bounds its scratch memory)
QUERY_BLOCK = 64


# ------------------------------------------------------------------------------- vectors


@dataclass
class DenseSet:
    """Dense doc vectors as ``.npy`` chunk files (float32 ``[rows, dim]``), query vectors,
    ids and (optional) qrels."""

    name: str
    files: list[Path]
    queries: np.ndarray
    docnos: list[str]
    qids: list[str]
    qrels: list[tuple[str, str, int]] = field(default_factory=list)

    def __post_init__(self):
        try:
            self._blocks = DenseBlocks.from_npy(self.files)
        except ValueError as e:
            raise DataError(f"{self.name}: doc vector chunks: {e}") from None
        self.n_docs, self.dim = self._blocks.shape
        self.queries = np.ascontiguousarray(self.queries, dtype=np.float32)
        if self.queries.ndim != 2 or self.queries.shape[1] != self.dim:
            raise DataError(
                f"{self.name}: query vectors of shape {self.queries.shape}, docs of dim {self.dim}"
            )
        if self.n_docs != len(self.docnos) or len(self.queries) != len(self.qids):
            raise DataError(
                f"{self.name}: {self.n_docs} doc vectors for {len(self.docnos)} ids, "
                f"{len(self.queries)} query vectors for {len(self.qids)} ids"
            )

    def blocks(self) -> DenseBlocks:
        """The docs as memory-mapped blocks, one chunk at a time."""
        return self._blocks

    def matrix(self) -> np.ndarray:
        """The docs stacked in memory (one float32 copy of the memory-mapped chunks)."""
        return np.ascontiguousarray(np.concatenate(list(self._blocks.blocks())), np.float32)

    def describe(self) -> str:
        return (
            f"{self.name}: {self.n_docs:,} docs x {self.dim} dims "
            f"({self.n_docs * self.dim * 4 / 2**20:,.0f} MiB float32), {len(self.qids):,} queries"
        )


def write_chunks(blocks: Any, folder: Path, prefix: str = "docs") -> list[Path]:
    """Each block of ``blocks`` as ``folder/<prefix>-NNNNN.npy`` (float32)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, b in enumerate(blocks):
        path = folder / f"{prefix}-{i:05d}.npy"
        np.save(path, np.ascontiguousarray(b, dtype=np.float32))
        files.append(path)
    return files


def from_cache(cfg: Any, work: Path, echo: Callable[[str], None] = print) -> DenseSet:
    """Doc vectors of ``cfg.dataset`` under the dense ``cfg.encoder`` (the encoded cache,
    filled now if missing), written as chunks under ``work``; the split's queries encoded now."""
    from irbench.pipeline import _encode_corpus, load_dataset, make_encoder

    dataset = load_dataset(cfg)
    encoder = make_encoder(cfg)
    if getattr(encoder, "kind", "sparse") != "dense":
        raise ConfigError(
            f"encoder={cfg.encoder.name} is sparse; bench dense needs a dense encoder "
            "(encoder=dense), bench index takes sparse ones"
        )
    echo(f"{dataset.name}: doc vectors (encoded cache under {cfg.cache_dir}) ...")
    docs, docnos, _ = _encode_corpus(cfg, dataset, encoder, dataset.fingerprint(), stream=True)
    queries = list(dataset.queries_iter())
    if not queries:
        raise ConfigError(f"dataset '{dataset.name}' has no queries in this split")
    echo(f"{dataset.name}: encoding {len(queries)} queries ...")
    qvecs = np.asarray(encoder.encode_queries(queries), dtype=np.float32)
    blocks = docs.blocks() if isinstance(docs, DenseBlocks) else [docs]
    return DenseSet(
        str(dataset.name),
        write_chunks(blocks, work / "real"),
        qvecs,
        list(docnos),
        [q.query_id for q in queries],
        [(r.query_id, r.doc_id, int(r.relevance)) for r in dataset.qrels_iter()],
    )


def synthesize(
    real: DenseSet, n_docs: int, work: Path, *, noise: float = 1.0, seed: int = 0
) -> DenseSet:
    """``n_docs`` synthetic docs around the real ones: each is a real doc vector (drawn
    uniformly, with ``seed``) plus Gaussian noise of norm about ``noise`` times the doc's,
    renormalised when the real docs are unit vectors; the real queries (no qrels). Written
    in chunks of :data:`CHUNK_ROWS`, so any size fits on disk rather than in memory."""
    if n_docs < 1 or noise < 0:
        raise ConfigError(f"--docs {n_docs} --noise {noise}: give docs >= 1 and noise >= 0")
    base = real.matrix()
    norms = np.linalg.norm(base, axis=1)
    unit = bool(np.allclose(norms, 1.0, atol=1e-3))
    rng = np.random.default_rng(seed)

    def blocks():
        for start in range(0, n_docs, CHUNK_ROWS):
            m = min(CHUNK_ROWS, n_docs - start)
            parent = rng.integers(0, len(base), m)
            x = base[parent]
            scale = (noise / math.sqrt(real.dim)) * norms[parent, None]
            x = x + rng.standard_normal(x.shape, dtype=np.float32) * scale.astype(np.float32)
            if unit:
                x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            yield x

    name = f"{real.name}-synth{n_docs}"
    return DenseSet(
        name,
        write_chunks(blocks(), work / "synth"),
        real.queries,
        [f"s{i}" for i in range(n_docs)],
        list(real.qids),
    )


# ------------------------------------------------------------------------------- engines


def default_nlist(n_docs: int) -> int:
    """IVF lists for ``n_docs``: the power of two nearest sqrt(n_docs), at least 1 and at
    most n_docs / 39 (FAISS's fewest training points per centroid) when that allows one."""
    nlist = 2 ** round(math.log2(max(1.0, math.sqrt(n_docs))))
    return int(max(1, min(nlist, n_docs // 39 or 1)))


def default_factories(n_docs: int) -> list[str]:
    return ["Flat", f"IVF{default_nlist(n_docs)},Flat", "HNSW32"]


def search_grid(
    factory: str,
    nprobe: Sequence[int] | None = None,
    ef_search: Sequence[int] | None = None,
) -> list[dict[str, int]]:
    """Search settings of ``factory``: ``nprobe`` values for IVF factories (the default grid
    cut at the number of lists), ``ef_search`` values for HNSW ones, one default otherwise."""
    from irbench.index.faiss import FaissIndex

    knobs = FaissIndex.calibration_knobs({"factory": factory})
    if "nprobe" in knobs:
        m = re.search(r"IVF(\d+)", factory)
        nlist = int(m.group(1)) if m else max(NPROBE_GRID)
        values = list(nprobe or [n for n in NPROBE_GRID if n <= nlist] or [1])
        return [{"nprobe": int(n)} for n in values]
    if "ef_search" in knobs:
        return [{"ef_search": int(e)} for e in (ef_search or EF_SEARCH_GRID)]
    return [{}]


def default_engines(
    n_docs: int,
    factories: Sequence[str] | None = None,
    *,
    nprobe: Sequence[int] | None = None,
    ef_search: Sequence[int] | None = None,
    train_size: int | None = None,
    seed: int = 0,
) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """Per factory: irbench's FaissIndex, then FAISS used directly, on the same settings;
    then the exact baselines."""
    if any(n < 1 for n in [*(nprobe or []), *(ef_search or [])]):
        raise ConfigError("--nprobe and --ef-search take integers >= 1")
    if train_size is not None and train_size < 1:
        raise ConfigError(f"--train-size {train_size}: give a count >= 1")
    out: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = []
    for f in factories or default_factories(n_docs):
        build = {"factory": f, "train_size": train_size, "seed": seed}
        grid = search_grid(f, nprobe, ef_search)
        out += [("irbench", build, grid), ("faiss", build, grid)]
    return out + [("numpy", {}, [{}]), ("sentence_transformers", {}, [{}])]


def build_in_child(kind: str, docs: DenseSet, params: dict[str, Any], out: Path) -> dict:
    """:func:`irbench.bench.dense_build.build` in a fresh interpreter (``python -m``): its
    memory high-water mark is the build's own (a forked child would inherit the parent's),
    and the caller's ``__main__`` is not re-imported as multiprocessing's spawn would."""
    import json
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "irbench.bench.dense_build", kind, str(out), json.dumps(params),
           *map(str, docs.files)]  # fmt: skip
    root = str(Path(__file__).resolve().parents[2])  # irbench importable in the child too
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise RuntimeError(lines[-1])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _params_key(setting: dict[str, Any]) -> tuple:
    return tuple(sorted(setting.items()))


class _Faiss(Engine):
    """Shared by the two FAISS engines: one factory, search settings as SearchParameters."""

    multithreaded = True
    requires = ("faiss",)
    kind = "?"

    def describe(self, setting):
        knobs = ", ".join(f"{k} {v}" for k, v in setting.items())
        return self.build_params["factory"] + (f"; {knobs}" if knobs else "")

    def series(self) -> str:
        return f"{self.engine} {self.build_params['factory']}"

    def _build(self, docs: DenseSet, workdir: Path) -> Path:
        out = workdir / "index"
        info = build_in_child(self.kind, docs, self.build_params, out)
        self.build_seconds = info["build_s"]
        self.build_rss_mb = info["peak_rss_mb"]
        self.build_base_mb = info["base_rss_mb"]
        self.size_bytes = dir_bytes(out)
        return out

    def prepare(self, queries):
        return np.ascontiguousarray(queries, dtype=np.float32)


class IrbenchFaiss(_Faiss):
    engine = "irbench faiss"
    kind = "irbench"

    def build(self, docs, workdir):
        from irbench.index.faiss import FaissIndex

        self.index = FaissIndex.load(self._build(docs, workdir))
        self.exact = self.index.exhaustive
        self._p = {_params_key(st): self.index.search_params(**st) for st in self.search_settings}

    def batch(self, prep, k, threads, **setting):
        return self.index.search(prep, k, threads, params=self._p[_params_key(setting)])[1]

    def one(self, prep, i, k, **setting):
        return self.index.search(prep[i : i + 1], k, 1, params=self._p[_params_key(setting)])


class FaissDirect(_Faiss):
    engine = "faiss"
    kind = "faiss"

    def build(self, docs, workdir):
        import faiss

        from irbench.index.faiss import search_parameters

        self.index = faiss.read_index(str(self._build(docs, workdir)))
        self.exact = isinstance(faiss.downcast_index(self.index), faiss.IndexFlatCodes)
        self._p = {
            _params_key(st): search_parameters(self.index, st.get("nprobe"), st.get("ef_search"))
            for st in self.search_settings
        }

    def _search(self, q, k, threads, setting):
        import faiss

        faiss.omp_set_num_threads(threads)
        p = self._p[_params_key(setting)]
        return self.index.search(q, k) if p is None else self.index.search(q, k, params=p)

    def batch(self, prep, k, threads, **setting):
        return self._search(prep, k, threads, setting)[1]

    def one(self, prep, i, k, **setting):
        return self._search(prep[i : i + 1], k, 1, setting)


class NumpyExact(Engine):
    engine = "numpy"
    exact = True
    multithreaded = True  # numpy's BLAS threads, set per call with threadpoolctl
    requires = ("threadpoolctl",)

    def build(self, docs, workdir):
        from threadpoolctl import ThreadpoolController

        self.docs = docs.matrix()
        self.size_bytes = self.docs.nbytes
        self._blas = ThreadpoolController()  # scans the loaded libraries once, not per call

    def describe(self, setting):
        return "exact; queries @ docs.T, argpartition"

    def prepare(self, queries):
        return np.ascontiguousarray(queries, dtype=np.float32)

    def _topk(self, q, k):
        n = self.docs.shape[0]
        out = np.empty((len(q), k), dtype=np.int64)
        for s in range(0, len(q), QUERY_BLOCK):
            scores = q[s : s + QUERY_BLOCK] @ self.docs.T
            part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < n else None
            if part is None:
                part = np.broadcast_to(np.arange(n), scores.shape)
            top = np.take_along_axis(scores, part, 1)
            order = np.lexsort((part, -top), axis=1)
            out[s : s + QUERY_BLOCK] = np.take_along_axis(part, order, 1)
        return out

    def _limited(self, q, k, threads):
        # BLAS threads beyond the cores it may use (1 in the pinned rows) would spin on one
        with self._blas.limit(limits=threads, user_api="blas"):
            return self._topk(q, k)

    def batch(self, prep, k, threads, **setting):
        return self._limited(prep, k, threads)

    def one(self, prep, i, k, **setting):
        return self._limited(prep[i : i + 1], k, 1)


class SentenceTransformersExact(Engine):
    engine = "sentence-transformers"
    exact = True
    multithreaded = True
    requires = ("sentence_transformers", "torch")

    def build(self, docs, workdir):
        import torch

        self.docs = torch.from_numpy(docs.matrix())
        self.size_bytes = self.docs.numel() * 4

    def describe(self, setting):
        return "exact; util.semantic_search, dot_score"

    def prepare(self, queries):
        import torch

        return torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))

    def _search(self, q, k, threads):
        import torch
        from sentence_transformers import util

        torch.set_num_threads(threads)
        hits = util.semantic_search(q, self.docs, top_k=k, score_function=util.dot_score)
        return [np.array([h["corpus_id"] for h in row], dtype=np.int64) for row in hits]

    def batch(self, prep, k, threads, **setting):
        return pad_rows(self._search(prep, k, threads), k)

    def one(self, prep, i, k, **setting):
        return self._search(prep[i : i + 1], k, 1)


ENGINES: dict[str, type[Engine]] = {
    "irbench": IrbenchFaiss,
    "faiss": FaissDirect,
    "numpy": NumpyExact,
    "sentence_transformers": SentenceTransformersExact,
}


def check_engines(only: Sequence[str] | None, ks: Sequence[int]) -> list[int]:
    """Validate ``--engine`` and ``--k`` before any work; the sorted distinct ks."""
    unknown = sorted(set(only or []) - set(ENGINES))
    if unknown:
        raise ConfigError(f"--engine {unknown}: unknown (known: {', '.join(ENGINES)})")
    out = sorted({int(k) for k in ks})
    if not out or out[0] < 1:
        raise ConfigError(f"--k {out}: give k values >= 1")
    return out


def check_factories(engines: Sequence[tuple[str, dict[str, Any], Any]], dim: int) -> None:
    """Each FAISS factory must build at ``dim`` (a one-line ConfigError otherwise)."""
    from irbench.index.faiss import FaissIndex

    for _key, build, _settings in engines:
        if "factory" in build:
            FaissIndex.check(dim, factory=build["factory"], metric=build.get("metric", "ip"))


# ------------------------------------------------------------------------------- measure


def bench_dense(
    ds: DenseSet,
    ks: Sequence[int] = (10, 1000),
    engines: Sequence[tuple[str, dict[str, Any], list[dict[str, Any]]]] | None = None,
    *,
    only: Sequence[str] | None = None,
    threads: Sequence[int] | None = None,
    min_seconds: float = 1.0,
    min_repeats: int = 3,
    latency: bool = True,
    target_recall: float = 0.95,
    out_dir: str | Path | None = None,
    command: str | None = None,
    echo: Callable[[str], None] = print,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Build and time every engine on ``ds``; returns ``(rows, meta)`` and writes
    ``bench.json`` / ``bench.md`` / ``meta.json`` / ``recall_latency.png`` to ``out_dir``."""
    from irbench.bench.index import measure, write_outputs
    from irbench.index.faiss import FaissIndex

    ks = check_engines(only, ks)
    engines = list(engines if engines is not None else default_engines(ds.n_docs))
    if only:
        engines = [e for e in engines if e[0] in set(only)]
    check_factories(engines, ds.dim)
    threads_list = timing.thread_settings(threads)
    notes: list[str] = []
    nq = len(ds.qids)
    if nq == 0:
        raise ConfigError(f"{ds.name}: no queries to time")
    big = [k for k in ks if k > ds.n_docs]
    if big:
        notes.append(f"k={big} exceeds the {ds.n_docs} docs")
    echo(ds.describe())
    flat = FaissIndex.build(ds.blocks())
    exact = {k: flat.search(ds.queries, min(k, ds.n_docs))[1] for k in ks}
    del flat
    rows = measure(
        engines, ds, ds, ds.queries, exact, ks, threads_list, notes, registry=ENGINES,
        min_seconds=min_seconds, min_repeats=min_repeats, latency=latency, echo=echo,
    )  # fmt: skip
    meta = {
        "corpus": ds.describe(),
        "docs": ds.n_docs,
        "queries": nq,
        "machine": timing.machine(),
        "notes": notes,
        "ratios": ratios(rows, target_recall),
        "memory": memory(rows),
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if out_dir is not None:
        write_outputs(
            Path(out_dir), rows, meta, columns=COLUMNS, title="Dense search", extra=memory_md
        )
        meta["out_dir"] = str(out_dir)
    return rows, meta


# -------------------------------------------------------------------------------- report


def _factory(row: dict[str, Any]) -> str:
    return row["setting"].split(";")[0]


def ratios(rows: list[dict[str, Any]], target_recall: float = 0.95) -> list[dict[str, Any]]:
    """Single-thread comparisons per k: irbench vs FAISS directly at each factory (the QPS
    ratio at the setting where it is lowest, i.e. irbench's largest overhead); irbench's Flat
    vs the exact baselines; per approximate factory, irbench's fastest setting with
    recall@k >= ``target_recall`` vs irbench's Flat."""
    from irbench.bench.index import _best

    out = []

    def add(k, ours, what, other):
        out.append(
            {"k": k, "ours": f"{ours['engine']} [{ours['setting']}]", "vs": what,
             "vs_setting": other["setting"], "ours_qps": ours["qps"], "vs_qps": other["qps"],
             "ratio": ours["qps"] / other["qps"]}
        )  # fmt: skip

    one = [r for r in rows if r["threads"] == 1]
    for k in sorted({r["k"] for r in one}):
        pairs = {}
        for r in one:
            if r["k"] == k and r["key"] in ("irbench", "faiss"):
                pairs.setdefault(r["setting"], {})[r["key"]] = r
        worst: dict[str, tuple] = {}
        for setting, p in pairs.items():
            if len(p) == 2:
                ratio = p["irbench"]["qps"] / p["faiss"]["qps"]
                f = setting.split(";")[0]
                if f not in worst or ratio < worst[f][0]:
                    worst[f] = (ratio, p["irbench"], p["faiss"])
        for _f, (_r, ours, other) in worst.items():
            add(k, ours, "FAISS directly (same index; lowest ratio)", other)
        flat = _best(rows, k, lambda r: r["key"] == "irbench" and r["setting"] == "Flat")
        for key, what in (("numpy", "numpy exact"), ("sentence_transformers", "sentence-transformers exact")):  # fmt: skip
            other = _best(rows, k, lambda r, key=key: r["key"] == key)
            if flat and other:
                add(k, flat, what, other)
        if flat:
            for f in sorted({_factory(r) for r in one if r["key"] == "irbench"} - {"Flat"}):
                ours = _best(
                    rows, k,
                    lambda r, f=f: r["key"] == "irbench" and _factory(r) == f
                    and r["recall"] >= target_recall,
                )  # fmt: skip
                if ours:
                    add(k, ours, f"irbench Flat (exact); {f} at recall >= {target_recall}", flat)
    return out


def memory(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per factory, for irbench (streamed) and FAISS directly (stacked in memory): build
    seconds, the build process's peak resident memory and its growth over the process's
    resident memory before the build (what the build itself took)."""
    seen: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["key"] in ("irbench", "faiss") and r.get("build_rss_mb") is not None:
            m = seen.setdefault(_factory(r), {"factory": _factory(r), "size_mb": r["size_mb"]})
            m[f"{r['key']}_build_s"] = r["build_s"]
            m[f"{r['key']}_peak_mb"] = r["build_rss_mb"]
            base = r.get("build_base_mb")
            m[f"{r['key']}_growth_mb"] = None if base is None else r["build_rss_mb"] - base
    return list(seen.values())


def memory_md(meta: dict[str, Any]) -> list[str]:
    """The build table of ``bench.md``."""
    from irbench.bench.timing import fmt_cell as cell

    if not meta.get("memory"):
        return []
    lines = [
        "",
        "Builds, each in a fresh process: peak resident memory of that process, and its "
        "growth over the process's memory before the build (interpreter, numpy, FAISS):",
        "",
        "| factory | index MiB | irbench build_s | FAISS build_s | irbench peak MiB "
        "| FAISS peak MiB | irbench growth MiB | FAISS growth MiB | growth irbench / FAISS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in meta["memory"]:
        a, b = m.get("irbench_growth_mb"), m.get("faiss_growth_mb")
        ratio = f"{a / b:.2f}x" if a is not None and b else "—"
        lines.append(
            f"| {m['factory']} | {cell(m['size_mb'], 1)} | {cell(m.get('irbench_build_s'))} | "
            f"{cell(m.get('faiss_build_s'))} | {cell(m.get('irbench_peak_mb'), 0)} | "
            f"{cell(m.get('faiss_peak_mb'), 0)} | {cell(a, 0)} | {cell(b, 0)} | {ratio} |"
        )
    return lines
