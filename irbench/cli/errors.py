"""Known errors become one line on stderr and a non-zero exit; tracebacks only with IRBENCH_DEBUG=1."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> None:
    import typer

    print(f"irbench: error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def os_error_line(exc: OSError) -> str:
    """``PATH: reason; fix`` for an OS error on a path the user gave (output folder, file)."""
    import errno

    where = exc.filename2 if exc.errno == errno.EEXIST and exc.filename2 else exc.filename
    fix = {
        errno.EEXIST: "it is in the way; give another path or remove it",
        errno.EISDIR: "a folder is there; give a file path",
        errno.ENOTDIR: "a file stands where a folder is needed; give another path",
        errno.EACCES: "give a writable path",
        errno.EPERM: "give a writable path",
        errno.EROFS: "give a writable path",
        errno.ENOSPC: "free some space or give a path on another disk",
    }.get(exc.errno or 0, "")
    reason = exc.strerror.lower() if exc.strerror else type(exc).__name__
    return ("" if where is None else f"{where}: ") + reason + (f" ({fix})" if fix else "")


def handle_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from irbench.errors import IrbenchError

        try:
            return fn(*args, **kwargs)
        except IrbenchError as exc:
            if os.environ.get("IRBENCH_DEBUG"):
                raise
            if exc.exit_code == 0:  # a notice, e.g. one shard of several finished
                print(f"irbench: {exc}", file=sys.stderr)
                return None
            fail(str(exc).replace("\n", " "), exc.exit_code)
        except OSError as exc:  # missing, a folder where a file goes, no permission, read-only...
            import errno

            if exc.errno == errno.EPIPE:  # output piped into `head`: stop quietly
                sys.stderr.close()
                raise SystemExit(1) from None
            if os.environ.get("IRBENCH_DEBUG") or exc.strerror is None:
                raise
            fail(os_error_line(exc))
        except KeyboardInterrupt:
            fail("interrupted; completed cache entries are kept, partial ones discarded", 130)

    return wrapper  # type: ignore[return-value]
