"""User-facing errors: one line that names the file or key and the fix.

Library code raises :class:`IrbenchError` (or a subclass) for every mistake a user can make;
the CLI prints its message on one line and exits non-zero, without a traceback
(set ``IRBENCH_DEBUG=1`` to see one).
"""

from __future__ import annotations


class IrbenchError(Exception):
    """A known, user-fixable error. The message is shown as-is on one line."""

    exit_code = 2


class ConfigError(IrbenchError):
    """A bad config key, value or override."""


class DataError(IrbenchError):
    """A malformed, missing or inconsistent input file."""

    def __init__(self, message: str, path: object = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f":{line}"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.line = line


class CacheError(IrbenchError):
    """A cache entry that is incomplete or fails its checksum."""
