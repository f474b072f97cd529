"""``irbench bench encode``: corpus encoding throughput of irbench's neural encoders against
sentence-transformers, on the same docs, in one process, and against the machine's FLOP limit.

* **Engines.** irbench: ``encoder.encode_corpus(docs)`` of the configured encoder (the path
  ``irbench index`` uses; tokenisation included). Peer: sentence-transformers
  ``SparseEncoder(backbone).encode_document(texts)`` for an ``mlm`` / ``max`` / ``log1p_relu``
  doc side (what ``SpladePooling`` computes), ``SentenceTransformer(backbone).encode(texts)``
  for a dense encoder; the same model folder, the same max length (irbench's effective doc
  ``max_length``), the same batch size and the same strings (``encoder.doc_text(doc)``).
* **Fair timing.** The docs are cut into slices of ``slice_size``; each round encodes one slice
  with each engine, the order flipped every round, so slow spells of a shared machine fall on
  both; ``repeats`` passes over all slices. docs/s = docs encoded / seconds summed over rounds.
  Model loading and one warm-up call per engine are outside the timing.
* **Identity.** Each slice's vectors are compared: max absolute difference over all entries.
  irbench drops special-token columns by design (``docs/encoders.md``); those columns of the
  peer's vectors are zeroed before the comparison and counted in a note.
* **FLOP limit.** Useful FLOPs per doc are counted from the model config at each doc's real
  token count n (no padding): per encoder layer ``8nH^2 + 4n^2H + 4nHI`` (Q, K, V, output
  projections, attention scores and mixing, feed-forward), plus ``2nH^2 + 2nHV`` for an MLM
  head (transform and vocabulary projection) or ``2nH`` for an ``mlp`` head. The limit is the
  best torch fp32 matmul rate on the model's own shapes (``[R, H] x [H, H]``, ``[H, I]``,
  ``[I, H]``, cache-sized vocabulary tiles ``[R, H] x [H, c]`` and the whole ``[R, H] x [H, V]``,
  R = 512 rows), over two layouts: one matmul on all torch threads, and one single-threaded
  matmul per thread run concurrently (irbench's CPU layout). It is probed in every round, so it
  sees the same load as the encoders; % of limit = achieved GFLOP/s / median of the per-round
  limits. The probe also gives the best rate per CPU-second (one core's limit); "% of core
  limit" = the engine's FLOPs per CPU-second of its calls (all threads of the process) / that,
  a figure that load from other processes on a shared machine does not move (it still counts
  threads that spin or wait busily).
* **Memory.** Peak resident memory (``VmHWM``, reset before each call on Linux) during each
  engine's calls. With ``scales`` (e.g. 1 and 4), irbench also streams the selected docs
  repeated ``scale`` times through ``encode_corpus`` in one call (the pipeline's windows,
  output discarded) and reports that call's peak memory: flat when encoding does not
  accumulate with the corpus.

Outputs in ``out_dir``: ``bench.json`` (rows, keys :data:`COLUMNS`), ``bench.md`` and
``meta.json`` (limit by shape, ratios, per-round figures, machine, load, notes).
"""

from __future__ import annotations

import copy
import gc
import itertools
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from irbench.bench import timing
from irbench.bench.timing import fmt_cell as cell
from irbench.errors import ConfigError

COLUMNS = [
    "engine", "mode", "corpus", "docs", "avg_tokens", "seconds", "docs_per_s", "gflop_per_doc",
    "gflops", "pct_of_limit", "cpu_s", "pct_of_core_limit", "peak_rss_mb", "rss_growth_mb",
    "max_abs_diff",
]  # fmt: skip
PEER = "sentence-transformers"
INSTALL_HINT = "pip install 'irbench[bench]'"
SELECTIONS = ("stratified", "first")
ROWS = 512  # token rows of the probed matmuls (a batch's worth of tokens)
TILE_BUDGET = 1 << 18  # the fused MLM head's CPU tile (rows x vocab slice), see sparse_heads


# ------------------------------------------------------------------------------ FLOPs


def model_dims(config: Any) -> dict[str, int]:
    """``H`` (hidden), ``I`` (feed-forward), ``layers`` and ``V`` (vocabulary) of a Hugging Face
    config (BERT, RoBERTa, ELECTRA, DistilBERT names); a :class:`ConfigError` when absent."""

    def first(*names: str) -> int | None:
        for name in names:
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    dims = {
        "H": first("hidden_size", "dim", "d_model"),
        "I": first("intermediate_size", "hidden_dim", "d_ff", "encoder_ffn_dim"),
        "layers": first("num_hidden_layers", "n_layers", "num_layers", "encoder_layers"),
        "V": first("vocab_size"),
    }
    missing = [k for k, v in dims.items() if v is None]
    if missing:
        raise ConfigError(
            f"encoder.backbone: cannot count FLOPs for a {type(config).__name__} "
            f"(no {', '.join(missing)} in its config)"
        )
    return dims  # type: ignore[return-value]


def doc_flops(lengths: np.ndarray, dims: dict[str, int], head: str) -> np.ndarray:
    """Matmul FLOPs per doc at its real token count (see the module docstring)."""
    n = np.asarray(lengths, dtype=np.float64)
    h, i, v = float(dims["H"]), float(dims["I"]), float(dims["V"])
    flops = dims["layers"] * (8 * n * h * h + 4 * n * n * h + 4 * n * h * i)
    if head == "mlm":
        flops = flops + 2 * n * h * h + 2 * n * h * v
    elif head == "mlp":
        flops = flops + 2 * n * h
    return flops


def probe_shapes(dims: dict[str, int], head: str) -> list[tuple[int, int, int]]:
    """The model's matmul shapes ``(m, k, n)`` that :func:`matmul_limit` times."""
    h, i, v = dims["H"], dims["I"], dims["V"]
    shapes = [(ROWS, h, h), (ROWS, h, i), (ROWS, i, h)]
    if head == "mlm":
        tile = max(64, (TILE_BUDGET // ROWS) // 64 * 64)
        shapes += [(ROWS, h, min(tile, v)), (ROWS, h, v)]
    return list(dict.fromkeys(shapes))


def _mm_rate(shape: tuple[int, int, int], workers: int, seconds: float) -> tuple[float, float]:
    """``(GFLOP/s, GFLOP per CPU-second)`` of ``torch.mm`` at ``shape``: one call on all torch
    threads (``workers = 1``) or ``workers`` single-threaded calls running concurrently; the
    best of 3 bursts of about ``seconds`` each. CPU seconds are the process's, all threads."""
    import torch

    m, k, n = shape
    flop = 2.0 * m * k * n

    def burst(reps: int, single: bool) -> None:
        if single:
            torch.set_num_threads(1)
        a, b = torch.randn(m, k), torch.randn(k, n)
        c = torch.empty(m, n)
        torch.mm(a, b, out=c)
        for _ in range(reps):
            torch.mm(a, b, out=c)

    def timed(fn: Callable[[], Any]) -> tuple[float, float]:
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        return max(time.perf_counter() - w0, 1e-9), max(time.process_time() - c0, 1e-9)

    threads = torch.get_num_threads()
    single = workers > 1
    try:
        if single:
            torch.set_num_threads(1)
        t1 = timed(lambda: burst(1, single))[0]
        reps = max(1, int(seconds / t1))
        if not single:
            runs = [timed(lambda: burst(reps, False)) for _ in range(3)]
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                runs = [
                    timed(lambda: list(pool.map(lambda _: burst(reps, True), range(workers))))
                    for _ in range(3)
                ]
    finally:
        torch.set_num_threads(threads)
    total = workers * reps * flop / 1e9
    return total / min(w for w, _ in runs), total / min(c for _, c in runs)


def matmul_limit(shapes: Sequence[tuple[int, int, int]], seconds: float = 0.05) -> dict[str, Any]:
    """fp32 matmul rates per shape and layout: ``gflops`` (wall clock, all cores) and
    ``gflops_per_cpu_s`` (per CPU-second, i.e. one core's rate) are the best of them."""
    import torch

    threads = torch.get_num_threads()
    rates = []
    for shape in shapes:
        for workers, layout in (
            (1, f"1 op x {threads} threads"),
            (threads, f"{threads} ops x 1 thread"),
        ):
            if workers == 1 or threads > 1:
                wall, cpu = _mm_rate(shape, workers, seconds)
                rates.append(
                    {"shape": list(shape), "layout": layout, "gflops": round(wall, 2),
                     "gflops_per_cpu_s": round(cpu, 2)}
                )  # fmt: skip
    return {
        "gflops": max(r["gflops"] for r in rates),
        "gflops_per_cpu_s": max(r["gflops_per_cpu_s"] for r in rates),
        "by_shape": rates,
    }


# ------------------------------------------------------------------------------ docs


def select(lengths: np.ndarray, n: int | None, how: str) -> np.ndarray:
    """Row indices (in corpus order) of ``n`` docs: the first n, or ``stratified``: n docs at
    evenly spaced quantiles of the token-length distribution."""
    total = len(lengths)
    if n is None or n >= total:
        return np.arange(total)
    if how == "first":
        return np.arange(n)
    by_length = np.argsort(lengths, kind="stable")
    picks = by_length[((np.arange(n) + 0.5) * total / n).astype(np.int64)]
    return np.sort(picks)


# ------------------------------------------------------------------------------ memory


def _rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _trim() -> None:
    """Give freed heap back to the OS (glibc), so each stage starts from what is live."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class _Peak:
    """Peak resident memory over several calls: ``with peak:`` around each call."""

    def __init__(self):
        self.peak: float | None = None
        self.start: float | None = None
        self.exact = True

    def __enter__(self):
        from irbench.runs.manifest import stage

        self._record: dict[str, Any] = {}
        rss = _rss_mb()
        if self.start is None:
            self.start = rss
        self._cm = stage(self._record, "call")
        self._cm.__enter__()
        return self

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)
        info = self._record.get("call", {})
        if "peak_rss_note" in info:
            self.exact = False
        p = info.get("peak_rss_mb")
        if p is not None:
            self.peak = p if self.peak is None else max(self.peak, p)
        return False


# ------------------------------------------------------------------------------ engines


class _Irbench:
    name = "irbench"

    def __init__(self, encoder: Any):
        self.encoder = encoder
        self.sparse = encoder.kind == "sparse"

    def encode(self, docs: Sequence[Any], texts: Sequence[str]) -> Any:
        parts = list(self.encoder.encode_corpus(docs))
        if self.sparse:
            import scipy.sparse as sp

            return parts[0] if len(parts) == 1 else sp.vstack(parts, format="csr")
        return parts[0] if len(parts) == 1 else np.vstack(parts)


def _sentence_transformers():
    try:
        import sentence_transformers
    except ImportError:
        return None
    return sentence_transformers


def peer_mismatch(encoder: Any) -> str | None:
    """Why sentence-transformers has no counterpart of this encoder (None when it has)."""
    if encoder.kind == "dense":
        return None
    d = encoder.doc
    if d.head != "mlm" or d.pooling != "max" or d.activation != "log1p_relu":
        return (
            f"encoder.doc is {d.head}/{d.pooling}/{d.activation}; sentence-transformers' "
            "SparseEncoder computes mlm/max/log1p_relu only"
        )
    if d.top_k is not None or d.quantize is not None:
        return "encoder.doc.top_k / quantize have no sentence-transformers counterpart"
    if encoder.autocast is not None:
        return f"encoder.autocast={encoder.autocast}: the peer runs in fp32"
    return None


class _SparsePeer:
    name = PEER

    def __init__(self, encoder: Any, max_length: int | None):
        from sentence_transformers import SparseEncoder

        self.model = SparseEncoder(encoder.doc.backbone, device=encoder.device)
        if max_length is not None:
            self.model.max_seq_length = int(max_length)
        self.batch_size = encoder.batch_size
        self.vocab = encoder.vocab_size
        self.setting = (
            f"SparseEncoder.encode_document, batch {self.batch_size}, "
            f"max_seq_length {self.model.max_seq_length}"
        )

    def encode(self, docs: Sequence[Any], texts: Sequence[str]) -> Any:
        return self.model.encode_document(
            list(texts), batch_size=self.batch_size, convert_to_tensor=True,
            convert_to_sparse_tensor=True, show_progress_bar=False,
        )  # fmt: skip

    def to_csr(self, out: Any) -> Any:
        import scipy.sparse as sp

        t = out.coalesce().cpu()
        idx = t.indices().numpy()
        m = sp.csr_matrix(
            (t.values().float().numpy(), (idx[0], idx[1])), shape=tuple(t.shape), dtype=np.float32
        )
        if m.shape[1] != self.vocab:
            m = m[:, : self.vocab] if m.shape[1] > self.vocab else _widen(m, self.vocab)
        return m


def _widen(m: Any, cols: int) -> Any:
    m = m.copy()
    m.resize((m.shape[0], cols))
    return m


class _DensePeer:
    name = PEER

    def __init__(self, encoder: Any, max_length: int | None):
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.models import Normalize, Pooling

        self.model = SentenceTransformer(str(encoder.backbone), device=encoder.device)
        if max_length is not None:
            self.model.max_seq_length = int(max_length)
        mods = list(self.model)
        has_norm = any(isinstance(m, Normalize) for m in mods)
        self.normalize = bool(encoder.normalize) and not has_norm
        pools = [m for m in mods if isinstance(m, Pooling)]
        mode = getattr(pools[0], "pooling_mode", "?") if pools else "?"
        self.pooling = mode if isinstance(mode, str) else "+".join(map(str, mode))
        self.batch_size = encoder.batch_size
        self.setting = (
            f"SentenceTransformer.encode, batch {self.batch_size}, max_seq_length "
            f"{self.model.max_seq_length}, pooling {self.pooling}"
            + (", normalize" if has_norm or self.normalize else "")
        )

    def encode(self, docs: Sequence[Any], texts: Sequence[str]) -> Any:
        return self.model.encode(
            list(texts), batch_size=self.batch_size, convert_to_numpy=True,
            show_progress_bar=False, normalize_embeddings=self.normalize,
        )  # fmt: skip


def max_abs_diff(ours: Any, theirs: Any, special: np.ndarray | None = None) -> tuple[float, int]:
    """``(max |ours - theirs|, special-token entries zeroed in theirs)``."""
    import scipy.sparse as sp

    if not sp.issparse(ours):
        a = np.asarray(ours, dtype=np.float32)
        b = np.asarray(theirs, dtype=np.float32)
        if a.shape != b.shape:
            return float("inf"), 0
        return (float(np.abs(a - b).max()) if a.size else 0.0), 0
    theirs = sp.csr_matrix(theirs, dtype=np.float32, copy=True)
    dropped = 0
    if special is not None and len(special):
        hit = np.isin(theirs.indices, special)
        dropped = int(np.count_nonzero(theirs.data[hit]))
        theirs.data[hit] = 0.0
        theirs.eliminate_zeros()
    if ours.shape != theirs.shape:
        return float("inf"), dropped
    d = abs(sp.csr_matrix(ours, dtype=np.float32) - theirs)
    return (float(d.max()) if d.nnz else 0.0), dropped


# ------------------------------------------------------------------------------ bench


def bench_encode(
    cfg: Any,
    n_docs: int | None = None,
    how: str = "stratified",
    *,
    slice_size: int = 1024,
    repeats: int = 1,
    scales: Sequence[int] = (),
    peer: bool = True,
    probe_seconds: float = 0.05,
    out_dir: str | Path | None = None,
    command: str | None = None,
    echo: Callable[[str], None] = print,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Time irbench's encoder and the sentence-transformers peer on the same docs; return
    ``(rows, meta)`` and write ``bench.json``, ``bench.md``, ``meta.json`` to ``out_dir``
    (default ``runs/bench/<dataset>/encode-<encoder>``)."""
    from irbench.pipeline import load_dataset, make_encoder

    if how not in SELECTIONS:
        raise ConfigError(f"--select {how!r}: use one of {', '.join(SELECTIONS)}")
    for name, value in (("--docs", n_docs), ("--slice", slice_size), ("--repeats", repeats)):
        if value is not None and int(value) < 1:
            raise ConfigError(f"{name} {value}: give an integer >= 1")
    if not probe_seconds > 0:
        raise ConfigError(f"--probe-seconds {probe_seconds}: give a positive number")
    scales = sorted({int(s) for s in scales})
    if scales and scales[0] < 1:
        raise ConfigError(f"--scale {scales[0]}: give an integer >= 1")
    corpus = str(cfg.dataset.name)
    encoder = make_encoder(cfg)
    kind = getattr(encoder, "kind", None)
    if kind not in ("sparse", "dense") or not hasattr(encoder, "token_counts"):
        raise ConfigError(
            f"encoder={cfg.encoder.name} is not a neural encoder; bench encode times "
            "encoder=splade, splade_doc, unicoil, deepimpact or dense"
        )
    head = encoder.doc.head if kind == "sparse" else "dense"
    if head in ("binary", "idf"):
        raise ConfigError(
            f"encoder.doc.head={head} runs no model; nothing to time (use a model head: mlm, mlp)"
        )
    encoder.progress = None
    out = Path(out_dir) if out_dir is not None else (
        Path("runs") / "bench" / corpus / f"encode-{cfg.encoder.name}"
    )  # fmt: skip
    notes: list[str] = []
    load_before = os.getloadavg()

    # ------------------------------------------------------------------ docs and FLOPs
    dataset = load_dataset(cfg)
    it = dataset.docs_iter()
    all_docs = list(itertools.islice(it, n_docs) if how == "first" else it)
    if not all_docs:
        raise ConfigError(f"dataset '{corpus}' has no docs; nothing to encode")
    echo(f"tokenizing {len(all_docs):,} docs of {corpus} ...")
    all_texts = [encoder.doc_text(d) for d in all_docs]
    all_lengths = encoder.token_counts(all_texts)
    corpus_docs = int(dataset.docs_count() or len(all_lengths))
    rows_idx = select(all_lengths, n_docs, how)
    docs = [all_docs[i] for i in rows_idx]
    texts = [all_texts[i] for i in rows_idx]
    lengths = all_lengths[rows_idx]
    del all_docs, all_texts
    max_length = encoder.effective_max_length("doc")
    from transformers import AutoConfig

    from irbench.encoders import hf

    backbone = str(encoder.doc.backbone if kind == "sparse" else encoder.backbone)
    dims = model_dims(
        AutoConfig.from_pretrained(
            str(Path(backbone).expanduser()) if hf.is_local(backbone) else backbone
        )
    )
    if head == "mlm":
        dims["V"] = min(dims["V"], int(encoder.vocab_size))
    flops = doc_flops(lengths, dims, head)
    flop_total = float(flops.sum())
    shapes = probe_shapes(dims, head)
    n = len(docs)
    slices = [list(range(s, min(n, s + slice_size))) for s in range(0, n, slice_size)]
    echo(
        f"{n:,} docs ({how if n < corpus_docs else 'all'}), {lengths.mean():.0f} tokens/doc on average (max length "
        f"{max_length}), {flop_total / n / 1e9:.3f} GFLOP/doc; {len(slices)} slice(s) x "
        f"{repeats} repeat(s)"
    )

    # ------------------------------------------------------------------ engines
    import torch

    ours = _Irbench(encoder)
    warm = slices[0][: min(len(slices[0]), 2 * encoder.batch_size)]
    ours.encode([docs[i] for i in warm], [texts[i] for i in warm])  # loads the model
    threads = torch.get_num_threads()
    rows: list[dict[str, Any]] = []

    # streaming stages first, with only irbench's model in memory
    stream_limits: list[dict[str, Any]] = []
    for scale in scales:
        _trim()
        lim = matmul_limit(shapes, probe_seconds)
        stream_limits.append(lim)
        echo(f"streaming {n:,} x {scale} docs through irbench's encode_corpus ...")
        stream = itertools.chain.from_iterable(itertools.repeat(docs, scale))
        peak = _Peak()
        nnz = 0
        t0, c0 = time.perf_counter(), time.process_time()
        with peak:
            for part in encoder.encode_corpus(stream):
                nnz += int(part.nnz) if kind == "sparse" else int(part.shape[0])
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append(
            _row("irbench", f"stream x{scale}", corpus, n * scale, float(lengths.mean()), secs,
                 cpu, flop_total * scale, lim["gflops"], lim["gflops_per_cpu_s"], peak)
        )  # fmt: skip
        if not peak.exact:
            notes.append("peak RSS is the process peak so far (no per-call reset here)")

    engines: list[Any] = [ours]
    peer_note = None
    if peer:
        st = _sentence_transformers()
        reason = peer_mismatch(encoder)
        if st is None:
            peer_note = (
                f"sentence-transformers is not installed: its row is skipped ({INSTALL_HINT})"
            )
        elif reason:
            peer_note = f"no sentence-transformers row: {reason}"
        else:
            echo("loading the sentence-transformers peer ...")
            p = (_SparsePeer if kind == "sparse" else _DensePeer)(encoder, max_length)
            p.encode([docs[i] for i in warm], [texts[i] for i in warm])
            engines.append(p)
    if peer_note:
        echo(f"note: {peer_note}")
        notes.append(peer_note)

    # ------------------------------------------------------------------ interleaved rounds
    special = encoder.special_token_ids() if kind == "sparse" else None
    _trim()
    seconds = [0.0] * len(engines)
    cpu_seconds = [0.0] * len(engines)
    peaks = [_Peak() for _ in engines]
    diffs: list[float] = []
    dropped = 0
    limits: list[float] = []
    core_limits: list[float] = []
    by_shape: list[dict[str, Any]] = []
    rounds: list[dict[str, Any]] = []
    r = 0
    for _ in range(repeats):
        for sl in slices:
            lim = matmul_limit(shapes, probe_seconds)
            limits.append(lim["gflops"])
            core_limits.append(lim["gflops_per_cpu_s"])
            by_shape.extend(lim["by_shape"])
            sd = [docs[i] for i in sl]
            st_ = [texts[i] for i in sl]
            order = list(range(len(engines)))
            if r % 2:
                order.reverse()
            outs: list[Any] = [None] * len(engines)
            secs = [0.0] * len(engines)
            for j in order:
                _trim()  # what the other engine freed must not count as this one's peak
                with peaks[j]:
                    t0, c0 = time.perf_counter(), time.process_time()
                    outs[j] = engines[j].encode(sd, st_)
                    secs[j] = time.perf_counter() - t0
                    cpu_seconds[j] += time.process_time() - c0
                seconds[j] += secs[j]
            rd: dict[str, Any] = {
                "round": r, "docs": len(sl), "limit_gflops": lim["gflops"],
                "seconds": [round(s, 3) for s in secs],
            }  # fmt: skip
            if len(engines) > 1:
                theirs = outs[1]
                if kind == "sparse":
                    theirs = engines[1].to_csr(theirs)
                diff, drop = max_abs_diff(outs[0], theirs, special)
                diffs.append(diff)
                dropped += drop
                rd["max_abs_diff"] = diff
                rd["ratio"] = round(secs[1] / secs[0], 3) if secs[0] > 0 else None
            rounds.append(rd)
            echo(
                f"round {r + 1}/{len(slices) * repeats}: {len(sl)} docs, "
                + ", ".join(
                    f"{e.name} {len(sl) / s:.1f} docs/s" for e, s in zip(engines, secs, strict=True)
                )
                + f"; limit {lim['gflops']:.0f} GFLOP/s"
                + (f"; max |diff| {rd['max_abs_diff']:.2e}" if "max_abs_diff" in rd else "")
            )
            del outs
            r += 1
    limit = statistics.median(limits)
    core_limit = statistics.median(core_limits)
    for j, e in enumerate(engines):
        setting = e.setting if j else _setting(encoder, threads)
        row = _row(e.name, "interleaved", corpus, n * repeats, float(lengths.mean()), seconds[j],
                   cpu_seconds[j], flop_total * repeats, limit, core_limit, peaks[j])  # fmt: skip
        row["setting"] = setting
        if j:
            row["max_abs_diff"] = max(diffs) if diffs else None
        rows.insert(j, row)
    for row in rows:
        row.setdefault("setting", _setting(encoder, threads))

    ratio = None
    if len(engines) > 1 and seconds[0] > 0:
        ratio = {
            "docs_per_s": seconds[1] / seconds[0],
            "per_round_median": statistics.median(
                x["ratio"] for x in rounds if x.get("ratio") is not None
            ),
        }
    if dropped:
        notes.append(
            f"the peer put weight on special-token columns ([CLS], [SEP], ...) {dropped:,} times "
            f"({dropped / (n * repeats):.2f} per doc); irbench drops those columns by design, so "
            "they were zeroed before the comparison"
        )
    meta = {
        "corpus": corpus,
        "encoder": cfg.encoder.name,
        "kind": kind,
        "head": head,
        "backbone": str(backbone),
        "docs": n,
        "selection": how if n < corpus_docs else "all",
        "corpus_docs": corpus_docs,
        "slice_size": slice_size,
        "repeats": repeats,
        "max_length": max_length,
        "batch_size": encoder.batch_size,
        "device": encoder.device,
        "torch_threads": threads,
        "avg_tokens": round(float(lengths.mean()), 2),
        "model_dims": dims,
        "gflop_per_doc": round(flop_total / n / 1e9, 4),
        "flop_limit": {
            "gflops_median": round(limit, 2),
            "gflops_max": round(max(limits), 2),
            "gflops_per_cpu_s_median": round(core_limit, 2),
            "stream": [
                {"gflops": x["gflops"], "gflops_per_cpu_s": x["gflops_per_cpu_s"]}
                for x in stream_limits
            ],
            "by_shape": _best_by_shape(by_shape),
        },
        "ratio": ratio,
        "rounds": rounds,
        "machine": timing.machine(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
        "sentence_transformers": getattr(_sentence_transformers(), "__version__", None),
        "command": command,
        "notes": notes,
        "out_dir": str(out),
    }
    write_outputs(out, rows, meta)
    return rows, meta


def _setting(encoder: Any, threads: int) -> str:
    layout = (
        f"{threads} worker threads x 1 torch thread"
        if encoder.kind == "sparse" and encoder.device == "cpu" and threads > 1
        else f"{threads} torch threads"
    )
    name = type(encoder).__name__
    if encoder.kind == "sparse":
        d = encoder.doc
        what = f"{d.head}/{d.pooling}/{d.activation}"
    else:
        what = f"{encoder.pooling}{', normalize' if encoder.normalize else ''}"
    return (
        f"{name}.encode_corpus {what}, batch {encoder.batch_size}, max_length "
        f"{encoder.effective_max_length('doc')}, {layout}"
    )


def _row(
    engine, mode, corpus, docs, avg_tokens, seconds, cpu_s, flops, limit, core_limit, peak
) -> dict[str, Any]:
    gflops = flops / seconds / 1e9 if seconds > 0 else float("nan")
    per_cpu_s = flops / cpu_s / 1e9 if cpu_s > 0 else float("nan")
    return {
        "engine": engine, "mode": mode, "corpus": corpus, "docs": int(docs),
        "avg_tokens": avg_tokens, "seconds": seconds,
        "docs_per_s": docs / seconds if seconds > 0 else float("nan"),
        "gflop_per_doc": flops / docs / 1e9 if docs else float("nan"),
        "gflops": gflops, "pct_of_limit": 100 * gflops / limit if limit else None,
        "cpu_s": cpu_s,
        "pct_of_core_limit": 100 * per_cpu_s / core_limit if core_limit else None,
        "peak_rss_mb": peak.peak,
        "rss_growth_mb": None if peak.peak is None or peak.start is None
        else round(peak.peak - peak.start, 1),
        "max_abs_diff": None,
    }  # fmt: skip


def _best_by_shape(rates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (shape, layout): the median and best GFLOP/s over the rounds."""
    groups: dict[tuple, list[tuple[float, float]]] = {}
    for r in rates:
        key = (tuple(r["shape"]), r["layout"])
        groups.setdefault(key, []).append((r["gflops"], r["gflops_per_cpu_s"]))
    return [
        {"shape": list(k[0]), "layout": k[1],
         "median_gflops": round(statistics.median(w for w, _ in v), 2),
         "max_gflops": round(max(w for w, _ in v), 2),
         "median_gflops_per_cpu_s": round(statistics.median(c for _, c in v), 2)}
        for k, v in groups.items()
    ]  # fmt: skip


# ------------------------------------------------------------------------------ outputs


def _json_row(r: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in [*COLUMNS, "setting"]:
        v = r.get(key)
        if isinstance(v, float):
            v = None if v != v else (float(f"{v:.3g}") if key == "max_abs_diff" else round(v, 4))
        out[key] = v
    return out


def to_markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lim = meta["flop_limit"]
    lines = [
        f"# Encoding throughput: irbench vs {PEER} ({meta['corpus']}, encoder={meta['encoder']})",
        "",
        f"Machine: {timing.describe_machine(meta['machine'])}; torch {meta['torch']}, "
        f"sentence-transformers {meta['sentence_transformers'] or '—'}; load average "
        f"{meta['load_before'][0]:.2f} before, {meta['load_after'][0]:.2f} after.",
        "",
    ]
    if meta.get("command"):
        lines += ["```", meta["command"], "```", ""]
    lines += [
        f"{meta['docs']:,} docs ({meta['selection']} of {meta['corpus_docs']:,}), "
        f"{meta['avg_tokens']:.1f} tokens/doc on average, max length {meta['max_length']}, "
        f"batch {meta['batch_size']}, device {meta['device']}, {meta['torch_threads']} torch "
        f"threads; {meta['gflop_per_doc']:.3f} GFLOP/doc (model {meta['model_dims']}). "
        f"Slices of {meta['slice_size']} docs x {meta['repeats']} repeat(s), the engines "
        "interleaved slice by slice. fp32 matmul limit: "
        f"{lim['gflops_median']:.1f} GFLOP/s wall clock (median of the per-round best over the "
        f"model's shapes; best seen {lim['gflops_max']:.1f}), "
        f"{lim['gflops_per_cpu_s_median']:.1f} GFLOP per CPU-second (one core's rate; "
        '"% of core limit" = GFLOP per CPU-second of the engine\'s calls / this, which load '
        "from other processes does not move).",
        "",
        "| engine | mode | setting | docs | docs/s | GFLOP/s | % of limit | CPU s "
        "| % of core limit | peak RSS MB | RSS growth MB | max abs diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        diff = r["max_abs_diff"]
        lines.append(
            f"| {r['engine']} | {r['mode']} | {r.get('setting', '')} | {r['docs']:,} | "
            f"{cell(r['docs_per_s'])} | {cell(r['gflops'], 1)} | {cell(r['pct_of_limit'], 1)} | "
            f"{cell(r['cpu_s'], 1)} | {cell(r['pct_of_core_limit'], 1)} | "
            f"{cell(r['peak_rss_mb'], 0)} | {cell(r['rss_growth_mb'], 0)} | "
            f"{'—' if diff is None else f'{diff:.2e}'} |"
        )
    if meta.get("ratio"):
        ra = meta["ratio"]
        lines += [
            "",
            f"irbench / {PEER} docs/s: **{ra['docs_per_s']:.2f}x** "
            f"(median of per-round ratios {ra['per_round_median']:.2f}x).",
        ]
    lines += [
        "",
        "fp32 matmul GFLOP/s by shape (m x k x n) and layout over the rounds: median and best "
        "wall-clock rate, median rate per CPU-second:",
        "",
        "| shape | layout | median | best | per CPU-second |",
        "|---|---|---|---|---|",
    ]
    for s in lim["by_shape"]:
        m, k, n = s["shape"]
        lines.append(
            f"| {m} x {k} x {n} | {s['layout']} | {s['median_gflops']:.1f} | "
            f"{s['max_gflops']:.1f} | {s['median_gflops_per_cpu_s']:.1f} |"
        )
    for note in meta.get("notes", []):
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    from irbench.runs.atomic import write_json, write_text

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "bench.json", [_json_row(r) for r in rows])
    write_text(out / "bench.md", to_markdown(rows, meta))
    write_text(out / "meta.json", json.dumps(copy.deepcopy(meta), indent=2, default=str) + "\n")
