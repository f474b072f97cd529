"""A small, reusable timer for throughput and latency benchmarks.

* :func:`repeat` runs a callable once to warm up (JIT compilation, caches), then at least
  ``min_repeats`` times and for at least ``min_seconds`` in total; it returns the seconds of
  each timed repeat.
* :func:`qps` turns the per-repeat seconds of a batch of ``n`` items into items per second
  (median repeat: robust to one slow outlier on a noisy machine).
* :func:`latencies` times items one at a time (a separate loop from the batch timing), and
  :func:`latency_stats` summarises them as mean / p50 / p99 milliseconds.
* :func:`machine` describes the host (CPU model, cores, RAM) for reports.
* :func:`pinned` (:func:`pinned_for` a thread count) confines the whole process (every
  thread, native pools included) to a given number of CPUs for the timings of a "1 thread"
  row, and :func:`cpu_seconds` reads the process CPU time, so that a report can show how many
  cores an engine really used.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

clock = time.perf_counter


def cpu_seconds() -> float:
    """CPU seconds used so far by this process, all threads (user + system)."""
    return time.process_time()


def _set_affinity_all(cpus: set[int]) -> None:
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread may have exited meanwhile
            os.sched_setaffinity(int(tid), cpus)


@contextlib.contextmanager
def pinned(n: int) -> Iterator[int]:
    """Confine every thread of this process to ``n`` of its CPUs while the block runs.

    Peers that run their own thread pools may ignore a requested thread count (Seismic's
    ``batch_search(num_threads=1)`` keeps two cores busy), so a "1 thread" timing pins the
    whole process, native threads included, to one CPU. Yields the number of CPUs in effect
    (all of them where affinity cannot be set: not Linux).
    """
    if not (hasattr(os, "sched_setaffinity") and os.path.isdir("/proc/self/task")):
        yield os.cpu_count() or 1
        return
    allowed = os.sched_getaffinity(0)
    chosen = set(sorted(allowed)[: max(1, n)])
    _set_affinity_all(chosen)
    try:
        yield len(chosen)
    finally:
        _set_affinity_all(allowed)


def pinned_for(threads: int) -> contextlib.AbstractContextManager[Any]:
    """:func:`pinned` to one CPU for a 1-thread timing, a no-op context for more threads."""
    return pinned(1) if threads == 1 else contextlib.nullcontext()


def repeat(
    fn: Callable[[], Any],
    *,
    min_repeats: int = 5,
    min_seconds: float = 1.0,
    warmup: int = 1,
    max_repeats: int = 10_000,
) -> list[float]:
    """Seconds of each timed call of ``fn()`` after ``warmup`` untimed calls.

    Runs at least ``min_repeats`` times and until ``min_seconds`` have been spent timing
    (capped at ``max_repeats`` calls).
    """
    for _ in range(max(0, warmup)):
        fn()
    times: list[float] = []
    total = 0.0
    while len(times) < max(1, min_repeats) or (total < min_seconds and len(times) < max_repeats):
        t0 = clock()
        fn()
        dt = clock() - t0
        times.append(dt)
        total += dt
    return times


def repeat_interleaved(
    fns: Sequence[Callable[[], Any]],
    *,
    min_repeats: int = 5,
    min_seconds: float = 1.0,
    warmup: int = 1,
    max_repeats: int = 10_000,
    cpu_out: list[list[float]] | None = None,
) -> list[list[float]]:
    """:func:`repeat` for several callables at once, alternating them call by call.

    The order flips every round (ABBA...), so slow periods of a shared machine fall on all of
    them alike and ratios between them stay meaningful. Each must reach ``min_repeats``, and
    rounds go on until each has spent ``min_seconds`` or all together ``min_seconds`` per
    callable (so one very fast callable does not keep the slow ones running for many
    times their share); returns one list of seconds per callable. If ``cpu_out`` is given, the
    process CPU seconds of each timed call are appended to it (one list per callable).
    """
    if cpu_out is not None:
        cpu_out[:] = [[] for _ in fns]
    for _ in range(max(0, warmup)):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    totals = [0.0] * len(fns)
    order = list(range(len(fns)))
    rounds = 0

    def more() -> bool:
        if rounds < max(1, min_repeats):
            return True
        budget = sum(totals) < min_seconds * len(fns)
        return rounds < max_repeats and min(totals) < min_seconds and budget

    while more():
        for i in order if rounds % 2 == 0 else order[::-1]:
            c0 = cpu_seconds()
            t0 = clock()
            fns[i]()
            dt = clock() - t0
            if cpu_out is not None:
                cpu_out[i].append(cpu_seconds() - c0)
            times[i].append(dt)
            totals[i] += dt
        rounds += 1
    return times


def qps(n_items: int, seconds: Sequence[float]) -> float:
    """Items per second of one repeat, from the median repeat time."""
    if not seconds:
        return float("nan")
    med = statistics.median(seconds)
    return n_items / med if med > 0 else float("inf")


def latencies(
    fn: Callable[[T], Any],
    items: Sequence[T],
    *,
    min_seconds: float = 1.0,
    min_passes: int = 1,
    warmup: int = 1,
    max_passes: int = 1_000,
) -> list[float]:
    """Seconds of each ``fn(item)``, items run one at a time.

    One untimed warm-up pass over the items (``warmup`` passes), then passes over all items
    until at least ``min_passes`` passes and ``min_seconds`` of timed calls.
    """
    items = list(items)
    if not items:
        return []
    for _ in range(max(0, warmup)):
        for item in items:
            fn(item)
    out: list[float] = []
    total = 0.0
    passes = 0
    while passes < max(1, min_passes) or (total < min_seconds and passes < max_passes):
        for item in items:
            t0 = clock()
            fn(item)
            dt = clock() - t0
            out.append(dt)
            total += dt
        passes += 1
    return out


def latencies_interleaved(
    fns: Sequence[Callable[[Any], Any]],
    items: Sequence[Sequence[Any]],
    *,
    min_seconds: float = 1.0,
    min_passes: int = 1,
    warmup: int = 1,
    max_passes: int = 1_000,
) -> list[list[float]]:
    """:func:`latencies` for several callables, alternating them item by item.

    ``items[j]`` are the inputs of ``fns[j]`` (same length: the same queries in each
    callable's own form). Passes go on until each callable has spent ``min_seconds`` or all
    together ``min_seconds`` per callable (as :func:`repeat_interleaved`). Returns one list
    of per-item seconds per callable.
    """
    n = len(items[0]) if items else 0
    if n == 0:
        return [[] for _ in fns]
    for _ in range(max(0, warmup)):
        for i in range(n):
            for fn, its in zip(fns, items, strict=True):
                fn(its[i])
    out: list[list[float]] = [[] for _ in fns]
    totals = [0.0] * len(fns)
    passes = 0
    order = list(range(len(fns)))
    while passes < max(1, min_passes) or (
        min(totals) < min_seconds and sum(totals) < min_seconds * len(fns) and passes < max_passes
    ):
        for i in range(n):
            for j in order if (i + passes) % 2 == 0 else order[::-1]:
                t0 = clock()
                fns[j](items[j][i])
                dt = clock() - t0
                out[j].append(dt)
                totals[j] += dt
        passes += 1
    return out


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100), linear interpolation as numpy's default."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * p / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def latency_stats(seconds: Sequence[float]) -> dict[str, float]:
    """``{"mean_ms", "p50_ms", "p99_ms"}`` of per-item seconds."""
    if not seconds:
        nan = float("nan")
        return {"mean_ms": nan, "p50_ms": nan, "p99_ms": nan}
    return {
        "mean_ms": 1000 * statistics.fmean(seconds),
        "p50_ms": 1000 * percentile(seconds, 50),
        "p99_ms": 1000 * percentile(seconds, 99),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _ram_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def all_threads() -> int:
    """The "all threads" setting of the benches: the cores this process may use, capped at
    Numba's thread pool."""
    from irbench.index.base import resolve_threads

    return max(1, min(cores(), resolve_threads(0)))


def thread_settings(threads: Sequence[int] | None = None) -> list[int]:
    """Thread counts to time: ``threads`` (each from 1 to :func:`all_threads`, so that the
    rows' thread column is what irbench's engines run: Numba caps its pool), else 1 and
    :func:`all_threads`."""
    if threads:
        top = all_threads()
        return sorted({min(max(1, int(t)), top) for t in threads})
    return sorted({1, all_threads()})


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM (GiB), OS and Python version."""
    return {
        "cpu": _cpu_model(),
        "cores": cores(),
        "ram_gib": _ram_gib(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
    }


def describe_machine(info: dict[str, Any] | None = None) -> str:
    info = info or machine()
    ram = f"{info['ram_gib']:g} GiB RAM" if info.get("ram_gib") else "RAM unknown"
    return f"{info['cpu']}, {info['cores']} cores, {ram}; {info['os']}, Python {info['python']}"


def fmt_cell(v: Any, nd: int = 2) -> str:
    """A table cell: "—" for missing/NaN, floats with ``nd`` decimals and thousands commas."""
    if v is None or (isinstance(v, float) and v != v):
        return "—"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)
