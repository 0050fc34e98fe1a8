"""Files that cross between the terminal and the session: safe names and confined writes.

A name comes from the other side and is never trusted: only its last path component is
kept, control characters and leading dots go, and it is cut to a length every filesystem
takes. A file is only ever created inside its folder (opened by descriptor, without
following symlinks), never replaces anything (an existing name gets " (1)", " (2)", ...),
and a transfer that does not finish leaves nothing behind. Blocking: run in a worker thread.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import unicodedata
from pathlib import Path

from openfrp.sizes import size_text

CHUNK = 48 * 1024  # bytes of file per chunk message (64 KiB once in base64)
MAX_NAME_BYTES = 200
MAX_ID = 64
_NO_FOLLOW = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class TransferError(ValueError):
    """A transfer that cannot go on; the text says why, for the log and the person."""


def safe_name(name: str) -> str:
    """A plain file name made from whatever the other side sent (never empty, never a path)."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Zl", "Zp"))
    name = name.strip().lstrip(".").strip().rstrip(". ")
    if not name:
        return "file"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        ext = f".{ext}" if dot and stem and len(ext.encode("utf-8")) <= 16 else ""
        stem = name[: len(name) - len(ext)]
        room = MAX_NAME_BYTES - len(ext.encode("utf-8"))
        stem = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(". ")
        name = f"{stem or 'file'}{ext}"
    return name


def decode_chunk(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise TransferError("a chunk is not base64") from None


def encode_chunk(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _candidates(name: str) -> list[str]:
    stem, dot, ext = name.rpartition(".")
    if not (dot and stem):
        stem, ext = name, ""
    else:
        ext = f".{ext}"
    return [name, *(f"{stem} ({n}){ext}" for n in range(1, 1000))]


class Incoming:
    """One file being received into `folder`, created under a free, safe name at once."""

    def __init__(self, folder: Path, name: str, size: int, owner: tuple[int, int] | None) -> None:
        self.size = size
        self.received = 0
        self._owner = owner
        self._dir = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | _NO_FOLLOW)
        self._fd = -1
        try:
            for candidate in _candidates(safe_name(name)):
                try:
                    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW
                    self._fd = os.open(candidate, flags, 0o600, dir_fd=self._dir)
                except FileExistsError:
                    continue
                self.name = candidate
                break
            else:
                raise TransferError("no free name for the file")
        except BaseException:
            os.close(self._dir)
            raise

    def write(self, offset: int, data: bytes) -> None:
        if offset != self.received:
            raise TransferError(f"a chunk at {offset} where {self.received} was expected")
        if self.received + len(data) > self.size:
            raise TransferError("more data than the announced size")
        os.write(self._fd, data)
        self.received += len(data)

    def finish(self) -> None:
        """Keep the file (complete only); it then belongs to `owner`, readable by them."""
        if self.received != self.size:
            raise TransferError(f"ended at {size_text(self.received)} of {size_text(self.size)}")
        if self._owner is not None:
            os.fchown(self._fd, *self._owner)
        os.fchmod(self._fd, 0o644)
        self._close()

    def abort(self) -> None:
        """Remove the partial file."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.unlink(self.name, dir_fd=self._dir)
        self._close()

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._dir >= 0:
            os.close(self._dir)
            self._dir = -1
