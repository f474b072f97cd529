"""Crash-safe writes: everything goes to a temporary sibling, then ``os.replace``.

A temporary sibling is named ``.<name>.tmp-<host>-<pid>``. A process killed with SIGKILL
leaves its temporary behind; the next write of the same target removes the temporaries of
dead processes on this host (:func:`remove_stale_temps`), so leftovers do not pile up.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

_HOST = socket.gethostname().replace("/", "_") or "localhost"


def tmp_sibling(path: Path) -> Path:
    """This process's temporary name for ``path``."""
    return path.with_name(f".{path.name}.tmp-{_HOST}-{os.getpid()}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # exists but belongs to another user (or a nonsense pid: keep the file)
    return True


def is_stale(tmp: Path) -> bool:
    """Whether ``tmp`` (``.<name>.tmp-<host>-<pid>``, or the older ``.<name>.tmp-<pid>``) was
    left by a process of this host that is no longer running."""
    if not tmp.name.startswith(".") or ".tmp-" not in tmp.name:
        return False
    host, _, pid = tmp.name.rsplit(".tmp-", 1)[1].rpartition("-")
    if not pid.isdigit() or host not in ("", _HOST) or int(pid) == os.getpid():
        return False
    return not pid_alive(int(pid))


def stale_temps(path: str | os.PathLike) -> list[Path]:
    """Temporaries of ``path`` left by processes of this host that are no longer running."""
    path = Path(path)
    pattern = glob.escape(str(path.parent / f".{path.name}.tmp-")) + "*"
    return [Path(p) for p in glob.glob(pattern) if is_stale(Path(p))]


def remove_stale_temps(path: str | os.PathLike) -> int:
    """Delete what :func:`stale_temps` finds; returns how many were removed."""
    removed = 0
    for tmp in stale_temps(path):
        try:
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()
            removed += 1
        except FileNotFoundError:
            pass  # another process cleaned it first
    return removed


@contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO]:
    """Open ``path.tmp-<pid>`` for writing; rename over ``path`` only if the block succeeds.
    A folder at ``path`` is an IsADirectoryError naming ``path`` before anything is written."""
    path = Path(path)
    if path.is_dir():
        import errno

        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = tmp_sibling(path)
    kwargs = {} if "b" in mode else {"encoding": encoding, "newline": "\n"}
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a folder in a temporary sibling; move it into place when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = tmp_sibling(path)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
