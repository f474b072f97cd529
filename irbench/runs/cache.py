"""Content-keyed cache entries: a folder per key, a completion marker, a lock while building."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

COMPLETE = "COMPLETE"


def content_key(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts (dict keys sorted)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def is_complete(path: Path) -> bool:
    return (path / COMPLETE).is_file()


def get_or_build(
    path: Path, build: Callable[[Path], dict[str, Any]]
) -> tuple[bool, dict[str, Any]]:
    """Return ``(reused, info)`` for the entry at ``path``, building it once if missing.

    ``build(tmp_dir)`` fills a temporary folder and returns JSON info stored in the
    completion marker; the folder is renamed into place only when complete. A file lock
    makes concurrent runs that need the same entry wait for each other instead of racing.
    """
    from filelock import FileLock

    from irbench.runs.atomic import atomic_dir, write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if is_complete(path):
            return True, json.loads((path / COMPLETE).read_text())
        with atomic_dir(path) as tmp:
            info = build(tmp)
            write_json(tmp / COMPLETE, info)
        return False, info


def remove(path: Path) -> None:
    import shutil

    if path.exists():
        shutil.rmtree(path)
    lock = Path(str(path) + ".lock")
    if lock.exists():
        os.unlink(lock)
