"""The child-process side of ``irbench bench dense``'s builds: imports only numpy, FAISS and
:mod:`irbench.index.faiss`, so that the process's resident memory before the build is small
and its peak is the build's."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def build(kind: str, files: list[str], params: dict[str, Any], out: str) -> dict:
    """Build ``kind`` from the ``.npy`` chunks ``files`` and save it to ``out``: "irbench"
    streams the memory-mapped chunks through ``FaissIndex.build``; "faiss" stacks them in
    memory and builds with FAISS directly (``index_factory``, ``train`` on the same sample
    -- ``train_size`` or FAISS's own k-means sample size -- with the same k-means seed,
    ``add``, ``write_index``). Returns ``{"build_s",
    "peak_rss_mb", "base_rss_mb"}``: seconds, and this process's resident memory at its peak
    during the build and just before it (Linux ``VmHWM``, reset after the imports)."""
    import faiss

    from irbench.index.faiss import (
        METRICS,
        FaissIndex,
        _seed_clustering,
        default_train_size,
        training_rows,
    )
    from irbench.runs.manifest import peak_rss_mb, reset_peak_rss
    from irbench.types import DenseBlocks

    blocks = DenseBlocks.from_npy(files)
    n = blocks.n_rows
    reset_peak_rss()
    base = peak_rss_mb()
    t0 = time.perf_counter()
    if kind == "irbench":
        FaissIndex.build(blocks, **params).save(out)
    elif kind == "faiss":
        x = np.concatenate(list(blocks.blocks()))  # one float32 copy of the chunks
        seed = int(params.get("seed", 0))
        metric = METRICS[params.get("metric", "ip")]
        index = faiss.index_factory(blocks.dim, params["factory"], metric)
        _seed_clustering(index, seed)
        if not index.is_trained:
            size = params.get("train_size") or default_train_size(index)
            rows = training_rows(n, size, seed)
            index.train(x if rows is None else x[rows])
        index.add(x)
        faiss.write_index(index, out)
    else:
        raise ValueError(f"unknown build kind {kind!r}")
    return {"build_s": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(), "base_rss_mb": base}


def main() -> None:
    """``python -m irbench.bench.dense_build KIND OUT PARAMS_JSON FILE...``: :func:`build`,
    its result as one JSON line on stdout."""
    import json
    import sys

    kind, out, params, *files = sys.argv[1:]
    print(json.dumps(build(kind, files, json.loads(params), out)))


if __name__ == "__main__":
    main()
