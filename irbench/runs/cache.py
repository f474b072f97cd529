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


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != COMPLETE)


def seal(folder: Path, info: dict[str, Any]) -> None:
    """Write the completion marker: the entry's info and the sha256 of every file in it."""
    from irbench.runs.atomic import write_json
    from irbench.runs.manifest import sha256_file

    files = {p.relative_to(folder).as_posix(): sha256_file(p) for p in _files(folder)}
    write_json(folder / COMPLETE, {"info": info, "files": files})


def read_info(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / COMPLETE).read_text()).get("info", {})
    except (OSError, ValueError, AttributeError):
        return {}


def verify(folder: Path) -> list[str]:
    """Problems with a sealed entry: missing, extra-truncated or edited files (empty = sound).

    ``IRBENCH_VERIFY_CACHE=0`` skips the hashing (only the marker is checked)."""
    from irbench.runs.manifest import sha256_file

    try:
        files = json.loads((folder / COMPLETE).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return [f"{folder / COMPLETE}: missing or unreadable completion marker"]
    if os.environ.get("IRBENCH_VERIFY_CACHE", "1") == "0":
        return []
    problems = []
    for rel, digest in files.items():
        p = folder / rel
        if not p.is_file():
            problems.append(f"{p}: missing")
        elif sha256_file(p) != digest:
            problems.append(f"{p}: checksum mismatch (file truncated or edited)")
    return problems


def get_or_build(
    path: Path, build: Callable[[Path], dict[str, Any]], on_corrupt: str = "rebuild"
) -> tuple[bool, dict[str, Any]]:
    """Return ``(reused, info)`` for the entry at ``path``, building it once if missing.

    ``build(tmp_dir)`` fills a temporary folder and returns JSON info stored, with a checksum
    of every file, in the completion marker; the folder is renamed into place only when
    complete. A reused entry is verified first: a truncated or edited file raises
    :class:`CacheError` (``on_corrupt="error"``) or is reported and rebuilt (``"rebuild"``).
    A file lock makes concurrent runs that need the same entry wait instead of racing.
    """
    import sys

    from filelock import FileLock

    from irbench.errors import CacheError
    from irbench.runs.atomic import atomic_dir

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if is_complete(path):
            problems = verify(path)
            if not problems:
                return True, read_info(path)
            if on_corrupt == "error":
                raise CacheError(f"cache entry failed verification: {problems[0]}")
            print(f"irbench: warning: {problems[0]}; rebuilding {path}", file=sys.stderr)
        with atomic_dir(path) as tmp:
            info = build(tmp)
            seal(tmp, info)
        return False, info


def remove(path: Path) -> None:
    import shutil

    if path.exists():
        shutil.rmtree(path)
    lock = Path(str(path) + ".lock")
    if lock.exists():
        os.unlink(lock)
