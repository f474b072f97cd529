"""Environment report for ``irbench doctor``: versions, threads, capabilities, GPUs, cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def report(cache_dir: str | Path) -> dict[str, Any]:
    from irbench.runs.manifest import environment

    env = environment()
    out: dict[str, Any] = {
        "irbench": env["irbench"],
        "python": env["python"],
        "git": env["git"],
        "host": env["host"],
        "packages": env["packages"],
    }
    threads: dict[str, Any] = {"cpus": os.cpu_count()}
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        threads[var] = os.environ.get(var)
    try:
        import numba

        threads["numba_threads"] = numba.get_num_threads()
        numba.njit(parallel=True)(lambda: None)  # selects the threading layer
        threads["numba_layer"] = numba.threading_layer()
    except Exception as exc:  # a broken install is worth reporting, not crashing on
        threads["numba"] = f"unavailable: {exc}"
    gpu: dict[str, Any] = {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")}
    try:
        import torch

        threads["torch_threads"] = torch.get_num_threads()
        gpu["torch_cuda"] = torch.cuda.is_available()
        gpu["torch_devices"] = [
            torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
        ]
    except Exception as exc:
        gpu["torch"] = f"unavailable: {exc}"
    try:
        import faiss

        gpu["faiss_gpus"] = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        out["faiss_simd"] = (
            faiss.get_compile_options() if hasattr(faiss, "get_compile_options") else None
        )
    except Exception as exc:
        gpu["faiss"] = f"unavailable: {exc}"
    out["threads"] = threads
    out["gpu"] = gpu
    cache = Path(cache_dir)
    out["cache"] = {
        "path": str(cache.resolve()),
        "exists": cache.is_dir(),
        "size_mb": round(_folder_size(cache) / 2**20, 1),
        "entries": {
            "index": sum(1 for p in cache.glob("index/*/COMPLETE") if _visible(p.parent)),
            "encoded": len({p.parent.parent for p in cache.glob("encoded/*/chunk-*/COMPLETE")}),
            "encoded_chunks": len(list(cache.glob("encoded/*/chunk-*/COMPLETE"))),
            "calibrations": len(list(cache.glob("calibration/*.json"))),
        },
        "stale_temporaries": _stale_temporaries(cache),
    }
    return out


def _visible(folder: Path) -> bool:
    return not folder.name.startswith(".")


def _stale_temporaries(cache: Path) -> dict[str, Any]:
    """Temporary folders left by killed processes (removed by the next write of their entry)."""
    from irbench.runs.atomic import is_stale

    stale = [
        p
        for pattern in ("index/.*.tmp-*", "encoded/.*.tmp-*", "encoded/*/.*.tmp-*")
        for p in cache.glob(pattern)
        if is_stale(p)
    ]
    return {"count": len(stale), "size_mb": round(sum(_folder_size(p) for p in stale) / 2**20, 1)}
