"""Content fingerprints of input files, memoised so a large corpus is hashed once.

The memo maps a file's absolute path to ``{"size", "mtime_ns", "ctime_ns", "inode", "sha256"}``
and lives in ``$IRBENCH_FP_CACHE`` or ``~/.cache/irbench/fingerprints.json``. A memo entry is
used only while all four are unchanged: an edit that keeps the size and puts the mtime back
(``touch -r``) still changes the ctime, which no user call can set, and a file replaced by
another one has another inode. The memo is rewritten atomically (tmp + ``os.replace``)
and is best-effort: failing to read or write it never fails a fingerprint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

from irbench.errors import DataError

CHUNK = 1 << 20  # 1 MiB
MAX_ENTRIES = 4096


def memo_path() -> Path:
    env = os.environ.get("IRBENCH_FP_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "irbench" / "fingerprints.json"


def _load(memo: Path) -> dict:
    try:
        data = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(memo: Path, data: dict) -> None:
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=memo.parent, prefix=memo.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.replace(tmp, memo)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except (OSError, TypeError, ValueError):
        pass  # the memo is an optimisation only


def sha256_file(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
    except FileNotFoundError:
        raise DataError("file does not exist", path) from None
    except OSError as e:
        raise DataError(f"cannot read file ({e.strerror or e})", path) from None
    return h.hexdigest()


def file_stamp(st: os.stat_result) -> dict[str, int]:
    """What tells a file's versions apart without reading it (the memo's validity key)."""
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
            "inode": st.st_ino}  # fmt: skip


def file_fingerprint(path: str | Path) -> str:
    """sha256 hex of the file's bytes, memoised on the path and its :func:`file_stamp`."""
    path = Path(path).expanduser()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DataError("file does not exist", path) from None
    except OSError as e:
        raise DataError(f"cannot read file ({e.strerror or e})", path) from None
    if not path.is_file():
        raise DataError("expected a file", path)
    key = os.path.abspath(path)
    memo = memo_path()
    entry = _load(memo).get(key)
    stamp = file_stamp(st)
    if (
        isinstance(entry, dict)
        and all(entry.get(k) == v for k, v in stamp.items())
        and isinstance(entry.get("sha256"), str)
    ):
        return entry["sha256"]
    digest = sha256_file(path)
    with contextlib.suppress(OSError):
        if file_stamp(path.stat()) != stamp:
            return digest  # changed while hashing: do not memoise
    data = _load(memo)  # reload: another process may have added entries meanwhile
    data.pop(key, None)
    data[key] = {**stamp, "sha256": digest}
    if len(data) > MAX_ENTRIES:  # drop the oldest entries
        data = dict(list(data.items())[-MAX_ENTRIES:])
    _save(memo, data)
    return digest
