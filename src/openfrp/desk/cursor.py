"""The session's cursor shape (XFIXES), sent to the terminal whenever it changes.

The terminal draws the cursor itself at the local pointer, so moving the mouse feels instant:
the cursor no longer waits for the next video frame. The session's Xvfb draws no cursor into
its framebuffer (-nocursor, server/host.py), and XFIXES still reports the shape an app sets, so
without this the person would see no cursor at all. The watch runs in its own
thread with its own X connection; a display that goes away just ends it (the video and input
paths report that failure).
"""

from __future__ import annotations

import base64
import contextlib
import struct
import threading
import zlib
from collections.abc import Callable
from typing import Any

from Xlib.error import XError

from openfrp.desk.xconnect import open_display

MAX_SIDE = 128  # a larger cursor image is not sent (browsers ignore cursors over 128 px)
POLL_SECONDS = 0.1


def png_rgba(width: int, height: int, rgba: bytes) -> bytes:
    """A minimal PNG (8-bit RGBA, no filter) of `rgba`, row after row."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack("!I", len(data)) + body + struct.pack("!I", zlib.crc32(body))

    stride = width * 4
    rows = b"".join(b"\0" + rgba[y * stride : (y + 1) * stride] for y in range(height))
    header = struct.pack("!IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 6))
        + chunk(b"IEND", b"")
    )


def cursor_message(
    width: int, height: int, xhot: int, yhot: int, argb: list[int]
) -> dict[str, Any]:
    """The `cursor` message for an XFIXES cursor image (premultiplied ARGB, one int a pixel)."""
    rgba = bytearray(width * height * 4)
    for i, pixel in enumerate(argb[: width * height]):
        alpha = pixel >> 24 & 0xFF
        if alpha:
            for channel, shift in enumerate((16, 8, 0)):
                value = pixel >> shift & 0xFF
                rgba[i * 4 + channel] = min(255, value * 255 // alpha)
            rgba[i * 4 + 3] = alpha
    png = png_rgba(width, height, bytes(rgba))
    return {
        "type": "cursor",
        "width": width,
        "height": height,
        "xhot": xhot,
        "yhot": yhot,
        "png": base64.b64encode(png).decode("ascii"),
    }


class CursorWatch:
    """Calls `on_cursor(message)` from its thread with the shape now and after each change
    (within POLL_SECONDS)."""

    def __init__(
        self, display_name: str, cookie: str, on_cursor: Callable[[dict[str, Any]], None]
    ) -> None:
        self._name = display_name
        self._cookie = cookie
        self._on_cursor = on_cursor
        self._stop = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._run, name="cursor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        with contextlib.suppress(Exception):  # the display went away: nothing more to show
            d = open_display(self._name, self._cookie)
            try:
                self._watch(d)
            finally:
                d.close()

    def _watch(self, d: Any) -> None:
        """Ask for the cursor image now and then; a new serial is a new shape. (Waiting for
        XFIXES cursor events instead left python-xlib's next reply hanging.)"""
        if not d.has_extension("XFIXES"):
            return
        d.xfixes_query_version()
        serial = None
        while not self._stop.is_set():
            serial = self._send(d, serial)
            self._stop.wait(POLL_SECONDS)

    def _send(self, d: Any, serial: int | None) -> int | None:
        try:
            image = d.xfixes_get_cursor_image(d.screen().root)
        except XError:  # an animated cursor's frame is no resource: the server refuses it
            return serial
        if image.cursor_serial == serial or max(image.width, image.height) > MAX_SIDE:
            return serial
        self._on_cursor(
            cursor_message(image.width, image.height, image.xhot, image.yhot, image.cursor_image)
        )
        self.sent += 1
        serial_now: int = image.cursor_serial
        return serial_now
