"""A session's clipboard and file transfer, behind its launchpad's `clipboard` and
`file_transfer` policies and size limits.

Every crossing is logged without its content: `clipboard.transfer` / `file.transfer` with
direction and size when it happens, `clipboard.refused` / `file.refused` with direction and
reason when it does not. Files move in chunks, one at a time, each sent only when the other
side acknowledged the one before, so a video frame never waits behind more than one chunk.
A failure of the X clipboard client while its display is alive is 4005 (an auxiliary task);
one while its display is going away is only logged.
Clipboard text from a terminal takes X's line ends (LF) before anything else, so its size is
what the session gets and the session's own copy, given back with Windows' CRLF, is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openfrp.desk.clipboard import Clipboard
from openfrp.desk.clipboard_limits import over_limit, over_message_bound, x_text
from openfrp.desk.files import (
    CHUNK,
    MAX_ID,
    Incoming,
    TransferError,
    decode_chunk,
    encode_chunk,
    safe_name,
)
from openfrp.protocol.actions import Log
from openfrp.settings import SessionSettings
from openfrp.sizes import size_text

DESK_MESSAGES = frozenset(
    {"clipboard", "file_begin", "file_chunk", "file_end", "file_ack", "file_status"}
)
TO_SESSION, FROM_SESSION = "to_session", "from_session"
MAX_OPEN = 4  # uploads, and downloads, in progress at once
DISPLAY_EXIT_GRACE = 0.5  # seconds


def allows(policy: str, direction: str) -> bool:
    return policy == "both" or policy == direction


class Refused(Exception):
    """A transfer the policy, a limit or the situation does not allow; says why."""


@dataclass
class _Download:
    cid: str
    name: str
    data: bytes | bytearray
    sent: int = 0


@dataclass
class DownloadSlot:
    """One of a session's MAX_OPEN downloads, held from before its file is read (so the file
    is never read past the cap) until `offer` takes it or `download_slot`'s block ends."""

    held: bool = True


class SessionDesk:
    """`send(cid, message)` writes to a connection; `primary()` names the session's live one;
    `fault(where, error)` reports a broken auxiliary task (4005). An upload sent while the
    session starts waits up to `home_wait` seconds for its home folder."""

    def __init__(
        self,
        settings: SessionSettings,
        write: Callable[[Log], None],
        send: Callable[[str, dict[str, Any]], None],
        primary: Callable[[], str | None],
        fault: Callable[[str, str], None],
        home_wait: float = 0.0,
    ) -> None:
        self._settings = settings
        self._home_wait = home_wait
        self._write = write
        self._send = send
        self._primary = primary
        self._fault = fault
        self._clipboard: Clipboard | None = None
        self._display_alive: Callable[[], bool] = lambda: False
        self._home: Path | None = None
        self._owner: tuple[int, int] | None = None
        self._settled = asyncio.Event()  # started (its home known) or closed
        self._uploads: dict[str, Incoming] = {}
        self._upload_cids: dict[str, str] = {}  # the connection each upload came from
        self._downloads: dict[str, _Download] = {}
        self._slots = 0  # held by downloads being read, not yet offered
        self._lock = asyncio.Lock()
        self._last_copied: str | None = None  # from the session (X's line ends): not echoed

    @property
    def limit(self) -> int:
        """The largest file that may cross, in bytes (file_transfer_limit)."""
        return self._settings.file_transfer_limit

    # -- lifecycle -------------------------------------------------------------------------

    def start(
        self,
        x_display: str | None,
        cookie: str,
        display_alive: Callable[[], bool],
        home: Path | None,
        owner: tuple[int, int] | None,
    ) -> None:
        """The session is up (or has a new display): watch its X clipboard (if it has an X
        display) and take uploads into `home`, files owned by `owner` (uid, gid)."""
        self._home, self._owner = home, owner
        self._settled.set()
        self._display_alive = display_alive
        loop = asyncio.get_running_loop()
        old, self._clipboard = self._clipboard, None
        if old is not None:  # a display that was replaced
            loop.run_in_executor(None, old.close)
        if x_display is None:
            return

        def later(function: Callable[..., None], *args: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(function, *args)

        mine: list[Clipboard] = []  # which bridge a failure comes from
        self._clipboard = Clipboard(
            x_display,
            cookie,
            self._settings.clipboard_limit,
            lambda text: later(self._copied, text),
            lambda reason, size: later(self._refused_copy, reason, size),
            lambda error: later(self._clipboard_failed, mine, error),
        )
        mine.append(self._clipboard)

    async def close(self) -> None:
        self._settled.set()
        clipboard, self._clipboard = self._clipboard, None
        if clipboard is not None:
            await asyncio.to_thread(clipboard.close)
        for upload in self._uploads.values():
            await asyncio.to_thread(upload.abort)
        self._uploads.clear()
        self._upload_cids.clear()
        self._downloads.clear()

    # -- from the terminal -----------------------------------------------------------------

    async def receive(self, cid: str, message: dict[str, Any]) -> None:
        """One of DESK_MESSAGES but `clipboard` (paste()) from connection `cid` (only the
        primary's count)."""
        if cid != self._primary():
            return
        kind = message["type"]
        if kind in ("file_ack", "file_status") and message["id"] in self._downloads:
            self._download_step(message)
        else:
            async with self._lock:
                await self._upload_step(cid, message)

    def paste(self, cid: str, text: str) -> threading.Event | None:
        """Text from connection `cid` (only the primary's counts) for the session's clipboard:
        the event set once the session has it, None when it is not offered."""
        if cid != self._primary():
            return None
        text = x_text(text)
        size = len(text.encode("utf-8", "replace"))
        if text == self._last_copied:
            return None  # the terminal giving back what the session copied
        try:
            if not allows(self._settings.clipboard, TO_SESSION):
                raise Refused(f"clipboard policy is '{self._settings.clipboard}'")
            if too_large := over_limit(text, self._settings.clipboard_limit):
                raise Refused(too_large)
            if self._clipboard is None:
                raise Refused("the session has no X display")
        except Refused as refused:
            self._refused(cid, TO_SESSION, size, str(refused))
            return None
        owned = self._clipboard.offer(text)
        self._last_copied = None
        self._log("clipboard.transfer", TO_SESSION, size)
        return owned

    # -- from the session's X clipboard ----------------------------------------------------

    def _copied(self, text: str) -> None:
        size = len(text.encode("utf-8", "replace"))
        message = {"type": "clipboard", "text": text}
        cid = self._primary()
        try:
            if not allows(self._settings.clipboard, FROM_SESSION):
                raise Refused(f"clipboard policy is '{self._settings.clipboard}'")
            if too_large := over_message_bound(message):
                raise Refused(too_large)
            if cid is None:
                raise Refused("no terminal is connected")
        except Refused as refused:
            self._refused(cid, FROM_SESSION, size, str(refused))
            return
        self._last_copied = x_text(text)
        self._send(cid, message)
        self._log("clipboard.transfer", FROM_SESSION, size)

    def _refused_copy(self, reason: str, size: int) -> None:
        if reason == "over the size limit":
            reason = f"over the size limit of {size_text(self._settings.clipboard_limit)}"
        self._refused(self._primary(), FROM_SESSION, size, reason)

    def _refused(self, cid: str | None, direction: str, size: int, reason: str) -> None:
        """A clipboard text that did not cross: logged, and told to the terminal (when one is
        connected), whose person would otherwise paste the old text and not know why."""
        self._log("clipboard.refused", direction, size, reason)
        if cid is not None:
            message = {"type": "clipboard_refused", "direction": direction, "bytes": size}
            self._send(cid, {**message, "reason": reason})

    def _clipboard_failed(self, mine: list[Clipboard], error: str) -> None:
        if self._clipboard is None or mine[0] is not self._clipboard:
            return  # a bridge already replaced or closed
        self._clipboard = None
        # An X client sees its connection drop a moment before a killed display has exited:
        # judge once the display has had time to be gone.
        asyncio.get_running_loop().call_later(DISPLAY_EXIT_GRACE, self._judge_clipboard, error)

    def _judge_clipboard(self, error: str) -> None:
        if self._display_alive():
            self._fault("clipboard", error)
        else:
            self._write(Log("clipboard.stopped", severity="warning", attrs={"error": error}))

    # -- uploads ---------------------------------------------------------------------------

    async def _upload_step(self, cid: str, message: dict[str, Any]) -> None:
        kind, tid = message["type"], message["id"]
        upload = self._uploads.get(tid)
        try:
            if kind == "file_begin":
                await self._begin(cid, tid, message["name"], message["size"])
                return
            if upload is None:
                self._send(cid, {"type": "file_status", "id": tid[:MAX_ID], "state": "unknown"})
                return
            if kind == "file_chunk":
                data = decode_chunk(message["data"])
                if len(data) > CHUNK:
                    raise TransferError(f"a chunk of more than {size_text(CHUNK)}")
                await asyncio.to_thread(upload.write, message["offset"], data)
                self._send(cid, {"type": "file_ack", "id": tid, "offset": upload.received})
            elif kind == "file_end":
                await asyncio.to_thread(upload.finish)
                del self._uploads[tid], self._upload_cids[tid]
                saved = {"type": "file_status", "id": tid, "state": "saved", "name": upload.name}
                self._send(cid, saved)
                self._log("file.transfer", TO_SESSION, upload.size, name=upload.name)
            elif kind == "file_status":  # the terminal gave up on its upload
                raise TransferError(f"cancelled by the terminal ({message['state'][:40]})")
        except (TransferError, Refused, OSError) as exc:
            reason = str(exc)
            if isinstance(exc, OSError):
                reason = f"the file could not be written ({exc.strerror or exc})"
            size = message.get("size", upload.size if upload is not None else 0)
            self._log("file.refused", TO_SESSION, size, reason)
            self._send(
                cid,
                {"type": "file_status", "id": tid[:MAX_ID], "state": "refused", "reason": reason},
            )
            gone = self._uploads.pop(tid, None)
            self._upload_cids.pop(tid, None)
            if gone is not None:
                await asyncio.to_thread(gone.abort)

    async def _begin(self, cid: str, tid: str, name: str, size: int) -> None:
        limit = self._settings.file_transfer_limit
        if not allows(self._settings.file_transfer, TO_SESSION):
            raise Refused(f"file transfer policy is '{self._settings.file_transfer}'")
        await self._drop_left(cid)
        if not 0 < len(tid) <= MAX_ID or tid in self._uploads:
            raise Refused("the transfer id is empty, too long or in use")
        if not 0 <= size <= limit:
            raise Refused(f"over the size limit of {size_text(limit)}")
        if len(self._uploads) >= MAX_OPEN:
            raise Refused(f"{MAX_OPEN} uploads are already in progress")
        if not self._settled.is_set():  # sent as the session starts, as a script does
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), self._home_wait)
        if self._home is None:
            raise Refused("the session has no home folder")
        upload = await asyncio.to_thread(Incoming, self._home, name, size, self._owner)
        self._uploads[tid] = upload
        self._upload_cids[tid] = cid
        self._send(cid, {"type": "file_ack", "id": tid, "offset": 0})

    async def _drop_left(self, cid: str) -> None:
        """Give up the uploads of connections that are gone (a terminal that reconnects
        starts them again), so they hold no slot and leave no partial file."""
        for tid, owner in list(self._upload_cids.items()):
            upload = self._uploads.pop(tid) if owner != cid else None
            if upload is not None:
                del self._upload_cids[tid]
                await asyncio.to_thread(upload.abort)
                self._log("file.refused", TO_SESSION, upload.size, "the terminal left")

    # -- downloads -------------------------------------------------------------------------

    @contextlib.contextmanager
    def download_slot(self, size: int) -> Iterator[DownloadSlot]:
        """A slot for a file of `size` bytes (as declared; 0 when not) to be read, then given
        to `offer`; freed if the block ends without. Raises Refused (and logs why) when the
        policy forbids downloads or MAX_OPEN are offered or being read."""
        cid = self._primary()
        for tid, left in list(self._downloads.items()):  # offered to a terminal now gone
            if left.cid != cid:
                del self._downloads[tid]
                self._log("file.refused", FROM_SESSION, len(left.data), "the terminal left")
        try:
            if not allows(self._settings.file_transfer, FROM_SESSION):
                raise Refused(f"file transfer policy is '{self._settings.file_transfer}'")
            if len(self._downloads) + self._slots >= MAX_OPEN:
                raise Refused(f"{MAX_OPEN} downloads are already in progress")
        except Refused as refused:
            self._log("file.refused", FROM_SESSION, size, str(refused))
            raise
        slot = DownloadSlot()
        self._slots += 1
        try:
            yield slot
        finally:
            if slot.held:
                slot.held = False
                self._slots -= 1

    def offer(self, slot: DownloadSlot, name: str, data: bytes | bytearray) -> dict[str, Any]:
        """A file offered from inside the session in the slot it was read in (taken, so it
        counts once); raises Refused (and logs why). `data` is kept, not copied. The first
        chunk goes when the terminal acknowledges offset 0 (it is ready to save)."""
        if not slot.held:
            raise ValueError("the download slot is no longer held")
        clean = safe_name(name)
        cid = self._primary()
        try:
            limit = self._settings.file_transfer_limit
            if len(data) > limit:
                raise Refused(f"over the size limit of {size_text(limit)}")
            if cid is None:
                raise Refused("no terminal is connected")
        except Refused as refused:
            self._log("file.refused", FROM_SESSION, len(data), str(refused))
            raise
        slot.held = False
        self._slots -= 1
        tid = f"d-{secrets.token_hex(6)}"
        self._downloads[tid] = _Download(cid, clean, data)
        self._send(cid, {"type": "file_offer", "id": tid, "name": clean, "size": len(data)})
        return {"id": tid, "name": clean, "size": len(data), "size_text": size_text(len(data))}

    def refuse_download(self, size: int, reason: str) -> None:
        """A download refused before it was offered (too large to read, say)."""
        self._log("file.refused", FROM_SESSION, size, reason)

    def _download_step(self, message: dict[str, Any]) -> None:
        tid = message["id"]
        download = self._downloads[tid]
        if message["type"] == "file_ack":
            if message["offset"] == download.sent:
                self._next_chunk(tid, download)
            return
        del self._downloads[tid]
        state = message["state"]
        if state == "saved":
            self._log("file.transfer", FROM_SESSION, len(download.data), name=download.name)
        else:
            reason = message.get("reason") or state
            self._log("file.refused", FROM_SESSION, len(download.data), reason[:200])

    def _next_chunk(self, tid: str, download: _Download) -> None:
        if download.cid != self._primary():
            del self._downloads[tid]
            self._log("file.refused", FROM_SESSION, len(download.data), "the terminal left")
            return
        if download.sent >= len(download.data):
            self._send(download.cid, {"type": "file_end", "id": tid})
            return
        piece = download.data[download.sent : download.sent + CHUNK]
        chunk = {"type": "file_chunk", "id": tid, "offset": download.sent}
        download.sent += len(piece)
        self._send(download.cid, {**chunk, "data": encode_chunk(bytes(piece))})

    # -- the log ---------------------------------------------------------------------------

    def _log(self, event: str, direction: str, size: int, reason: str = "", name: str = "") -> None:
        attrs: dict[str, Any] = {"direction": direction, "bytes": size}
        if reason:
            attrs["reason"] = reason
        if name:
            attrs["name"] = name
        severity = "warning" if event.endswith(".refused") else "info"
        self._write(Log(event, severity=severity, connection_id=self._primary(), attrs=attrs))
