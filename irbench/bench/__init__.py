"""Benchmarks: irbench's engines against peers, timed in one process on the same data."""

from irbench.bench.bm25 import bench_bm25

__all__ = ["bench_bm25"]
