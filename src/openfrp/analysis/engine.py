"""DuckDB's engine alone, without the relation and expression builders `import duckdb` loads.

The analyzer sends SQL text and fetches rows, which the engine's own module does: the package's
Python layer on top cost 0.08-0.11 s of every run, a tenth of a run after 1 % growth at 10 M
events. So queries run with `execute` (`sql` is the layer's, absent without it)."""

import errno
import os
import re

from _duckdb import (
    DuckDBPyConnection,
    Error,
    InterruptException,
    IOException,
    TransactionException,
    connect,
)

__all__ = [
    "DuckDBPyConnection",
    "Error",
    "IOException",
    "InterruptException",
    "TransactionException",
    "connect",
    "os_error",
]

# Where DuckDB's message of a failed write says why: the errno of an asynchronous write, or
# the text after the file's name ('Could not write file "x": No space left on device').
_ERRNO = re.compile(r'"errno":"(\d+)"')
_REASON = re.compile(r'(?:write|open) file \\?"[^"]*?\\?": ([^"\\]+)')


def os_error(exc: Error, path: str) -> OSError:
    """DuckDB's failure to write `path` as the OSError Python would raise, with the system's
    reason ('No space left on device') instead of DuckDB's paragraph around it."""
    text = str(exc).strip()
    number = _ERRNO.search(text)
    if number:
        return OSError(int(number.group(1)), os.strerror(int(number.group(1))), path)
    reason = _REASON.findall(text)
    return OSError(errno.EIO, reason[-1].strip() if reason else text.splitlines()[0], path)
