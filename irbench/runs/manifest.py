"""Provenance: versions, host, git state, per-stage wall time and peak memory."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import irbench

KEY_PACKAGES = (
    "numpy", "scipy", "numba", "torch", "transformers", "faiss-cpu", "ir-measures",
    "ir_datasets", "hydra-core", "omegaconf", "PyStemmer", "pandas", "pyterrier",
    "tokenizers", "pytrec-eval-terrier",
)  # fmt: skip


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in KEY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state() -> dict[str, Any] | None:
    root = Path(irbench.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        )  # fmt: skip
        state: dict[str, Any] = {
            "commit": commit.stdout.strip(),
            "dirty": bool(dirty.stdout.strip()),
        }
        if state["dirty"]:  # which uncommitted changes: a hash of the diff against HEAD
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                diff = subprocess.run(
                    ["git", "-C", str(root), "diff", "--no-ext-diff", "--no-textconv",
                     "--no-color", "--binary", "HEAD"],
                    capture_output=True, timeout=10,
                )  # fmt: skip
                state["diff_sha256"] = hashlib.sha256(diff.stdout).hexdigest()
        return state
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict[str, Any]:
    return {
        "irbench": irbench.__version__,
        "git": git_state(),
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "host": {
            "name": platform.node(),
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
        "argv": sys.argv,
    }


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _reset_peak_rss() -> bool:
    """Linux lets a process reset its own high-water mark (VmHWM) via clear_refs."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    except (ImportError, OSError):
        return None


@contextmanager
def stage(record: dict[str, Any], name: str) -> Iterator[dict[str, Any]]:
    """Time a stage and record its peak resident memory into ``record[name]``."""
    exact = _reset_peak_rss()
    info: dict[str, Any] = {}
    start = time.perf_counter()
    try:
        yield info
    finally:
        info["wall_s"] = round(time.perf_counter() - start, 3)
        info["peak_rss_mb"] = _peak_rss_mb()
        if not exact:
            info["peak_rss_note"] = "process peak so far (per-stage reset unavailable)"
        record[name] = info


def reset_peak_rss() -> bool:
    """Reset this process's peak resident memory (Linux); False where unsupported."""
    return _reset_peak_rss()


def peak_rss_mb() -> float | None:
    """This process's peak resident memory in MiB since start or the last reset."""
    return _peak_rss_mb()
