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
        except FileNotFoundError as exc:
            if os.environ.get("IRBENCH_DEBUG"):
                raise
            fail(f"{exc.filename}: no such file or directory")
        except KeyboardInterrupt:
            fail("interrupted; completed cache entries are kept, partial ones discarded", 130)

    return wrapper  # type: ignore[return-value]
