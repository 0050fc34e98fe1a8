"""The Python terminal's clipboard and files: `paste TEXT`, `clipboard`, `upload PATH`, and
downloads offered from inside the session, saved into the `--downloads` folder.

An upload sends its next chunk only when the server acknowledged the one before, so the
session's video never queues behind a file; a download is acknowledged chunk by chunk the
same way. File reads and writes run in a worker thread, never on the event loop, and an
upload takes a regular file only: the open of a FIFO or a device could block that thread for
good, and nothing stops a thread (not even a second Ctrl-C: the loop waits for it at exit).
A paste goes with X's line ends (LF, as the server makes them): its size is what crosses.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from openfrp.desk.clipboard_limits import refusal, x_text
from openfrp.desk.files import CHUNK, Incoming, TransferError, decode_chunk, encode_chunk
from openfrp.protocol.actions import Log
from openfrp.settings import SessionSettings
from openfrp.sizes import size_text

WORDS = ("paste", "clipboard", "upload")
USAGE = "paste TEXT, clipboard, upload PATH"
TO_SESSION = "to_session"
_SERVER_KINDS = (
    "clipboard",
    "clipboard_refused",
    "file_offer",
    "file_chunk",
    "file_end",
    "file_ack",
    "file_status",
)


@dataclass
class _Upload:
    path: Path
    size: int
    file: BinaryIO
    sent: int = 0


class TerminalDesk:
    """`send(message)` goes to the server (dropped while disconnected); `say(text)` tells
    the person; `log(action)` writes the terminal's event log."""

    def __init__(
        self,
        send: Callable[[dict[str, Any]], None],
        say: Callable[[str], None],
        log: Callable[[Log], None],
        downloads: str | None = None,
        clipboard_limit: int = SessionSettings.clipboard_limit,
    ) -> None:
        self._send = send
        self._clipboard_limit = clipboard_limit  # the session's: a paste over it is not sent
        self._say = say
        self._log = log
        self._downloads = Path(downloads) if downloads else None
        self._uploads: dict[str, _Upload] = {}
        self._incoming: dict[str, Incoming] = {}
        self.clipboard: str | None = None  # the last text copied in the session
        self._lock = asyncio.Lock()  # messages are handled one at a time, in arrival order

    # -- the person's commands -------------------------------------------------------------

    async def command(self, word: str, rest: str) -> None:
        if word == "paste":
            rest = x_text(rest)
            size = len(rest.encode("utf-8", "replace"))
            if reason := refusal(rest, self._clipboard_limit):
                self._refused(TO_SESSION, size, reason)  # as the server would say it
                return
            self._send({"type": "clipboard", "text": rest})
            self._log(Log("clipboard.sent", attrs={"bytes": size}))
        elif word == "clipboard":
            shown = "(nothing copied in the session yet)" if self.clipboard is None else None
            self._say(f"clipboard: {json.dumps(self.clipboard) if shown is None else shown}")
        elif word == "upload" and not rest.strip():
            self._say("upload: no file named (use: upload PATH)")
        elif word == "upload":
            await self._upload(rest.strip())

    async def _upload(self, name: str) -> None:
        path = Path(name).expanduser()
        try:
            file, size = await asyncio.to_thread(_open_regular, path)
        except OSError as exc:
            self._say(f"upload {name}: {exc.strerror or exc}")
            return
        except _NotRegular as exc:
            self._say(f"upload {name}: {exc}, not a regular file; nothing sent")
            return
        tid = f"u-{secrets.token_hex(6)}"
        self._uploads[tid] = _Upload(path, size, file)
        self._send({"type": "file_begin", "id": tid, "name": path.name, "size": size})

    # -- what the server sends -------------------------------------------------------------

    async def peek(self, data: str) -> None:
        """Act on a clipboard or file message among the server's control messages."""
        if '"clipboard' not in data and '"file_' not in data:
            return
        try:
            message = json.loads(data)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("type") not in _SERVER_KINDS:
            return
        async with self._lock:
            await self._handle(message)

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "clipboard" and isinstance(message.get("text"), str):
            self.clipboard = message["text"]
            self._say(f"clipboard from the session: {len(self.clipboard)} characters")
            self._log(Log("clipboard.received", attrs={"bytes": len(self.clipboard.encode())}))
        elif kind == "clipboard_refused":
            self._refused(message.get("direction"), message.get("bytes"), message.get("reason"))
        elif message.get("id") in self._uploads:
            await self._upload_step(message)
        else:
            await self._download_step(message)

    def _refused(self, direction: Any, size: Any, reason: Any) -> None:
        """Clipboard text that did not cross, refused by the server or here: said and logged."""
        way = "to" if direction == TO_SESSION else "from"
        self._say(f"clipboard {way} the session refused: {reason}")
        attrs = {"direction": direction, "bytes": size, "reason": reason}
        self._log(Log("clipboard.refused", severity="warning", attrs=attrs))

    async def _upload_step(self, message: dict[str, Any]) -> None:
        tid = message["id"]
        upload = self._uploads[tid]
        if message["type"] == "file_ack" and message.get("offset") == upload.sent:
            piece = await asyncio.to_thread(upload.file.read, CHUNK)
            if piece:
                chunk = {"type": "file_chunk", "id": tid, "offset": upload.sent}
                upload.sent += len(piece)
                self._send({**chunk, "data": encode_chunk(piece)})
            else:
                self._send({"type": "file_end", "id": tid})
        elif message["type"] == "file_status":
            del self._uploads[tid]
            await asyncio.to_thread(upload.file.close)
            if message.get("state") == "saved":
                self._say(f"uploaded {upload.path.name} as {message.get('name')}")
                attrs = {"direction": "to_session", "bytes": upload.size}
                self._log(Log("file.transfer", attrs=attrs))
            else:
                reason = message.get("reason") or message.get("state")
                self._say(f"upload {upload.path.name} refused: {reason}")

    async def _download_step(self, message: dict[str, Any]) -> None:
        kind, tid = message["type"], message.get("id")
        if not isinstance(tid, str):
            return
        try:
            if kind == "file_offer":
                await self._offered(tid, str(message.get("name")), int(message.get("size", 0)))
                return
            incoming = self._incoming.get(tid)
            if incoming is None:
                return
            if kind == "file_chunk":
                data = decode_chunk(str(message.get("data")))
                await asyncio.to_thread(incoming.write, int(message.get("offset", -1)), data)
                self._send({"type": "file_ack", "id": tid, "offset": incoming.received})
            elif kind == "file_end":
                await asyncio.to_thread(incoming.finish)
                del self._incoming[tid]
                self._send({"type": "file_status", "id": tid, "state": "saved"})
                assert self._downloads is not None
                self._say(f"downloaded {self._downloads / incoming.name}")
                attrs = {"direction": "from_session", "bytes": incoming.size}
                self._log(Log("file.transfer", attrs=attrs))
        except (TransferError, OSError, ValueError) as exc:
            gone = self._incoming.pop(tid, None)
            if gone is not None:
                await asyncio.to_thread(gone.abort)
            self._send({"type": "file_status", "id": tid, "state": "refused", "reason": str(exc)})
            self._say(f"download refused: {exc}")

    async def _offered(self, tid: str, name: str, size: int) -> None:
        if self._downloads is None:
            raise TransferError(f"{name} offered; start the terminal with --downloads DIR")
        incoming = await asyncio.to_thread(Incoming, self._downloads, name, size, None)
        self._incoming[tid] = incoming
        self._say(f"download offered: {name} ({size_text(size)}), saving as {incoming.name}")
        self._send({"type": "file_ack", "id": tid, "offset": 0})

    async def close(self) -> None:
        for upload in self._uploads.values():
            await asyncio.to_thread(upload.file.close)
        for incoming in self._incoming.values():
            await asyncio.to_thread(incoming.abort)
        self._uploads.clear()
        self._incoming.clear()


_NOT_REGULAR = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


class _NotRegular(Exception):
    """A FIFO, socket, device or directory: what kind it is."""


def _open_regular(path: Path) -> tuple[BinaryIO, int]:
    """A regular file open for reading, and its size. Anything else is refused before it is
    opened, and the open never blocks (the path may have become a FIFO since the stat)."""
    _check_regular(os.stat(path).st_mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        _check_regular(info.st_mode)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def _check_regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = next((kind for test, kind in _NOT_REGULAR if test(mode)), "a device")
        raise _NotRegular(kind)
