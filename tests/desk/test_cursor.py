"""The cursor shape on a real Xvfb, read with XFIXES, as the terminal gets it."""

from __future__ import annotations

import asyncio
import base64
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from Xlib import X
from Xlib import display as xdisplay
from Xlib.ext import xtest

from openfrp.desk.cursor import CursorWatch, cursor_message
from openfrp.desk.xconnect import open_display
from openfrp.server.host import start_display
from openfrp.settings import SessionSettings
from tests.e2e.harness import bounded
from tests.support.xev import Xvfb, needs_xev

pytestmark = needs_xev


def pixels(message: dict[str, Any]) -> bytes:
    """The RGBA rows of the message's PNG (filter bytes dropped)."""
    png = base64.b64decode(message["png"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    start = png.index(b"IDAT") + 4
    length = int.from_bytes(png[start - 8 : start - 4])
    raw = zlib.decompress(png[start : start + length])
    stride = message["width"] * 4 + 1
    return b"".join(raw[i + 1 : i + stride] for i in range(0, len(raw), stride))


def test_premultiplied_argb_becomes_straight_rgba() -> None:
    half_red = 0x80 << 24 | 0x80 << 16  # red at half opacity, premultiplied
    message = cursor_message(2, 1, 1, 0, [half_red, 0])
    assert (message["width"], message["height"], message["xhot"], message["yhot"]) == (2, 1, 1, 0)
    assert pixels(message) == bytes([255, 0, 0, 0x80, 0, 0, 0, 0])


def test_the_shape_now_and_after_an_app_changes_it(tmp_path: Path) -> None:
    xvfb = Xvfb(tmp_path)
    shapes: list[dict[str, Any]] = []
    watch = CursorWatch(xvfb.name, "", shapes.append)
    app = xdisplay.Display(xvfb.name)  # an app that stays up while its cursor is shown
    try:
        wait_for(lambda: len(shapes) == 1)
        assert shapes[0]["type"] == "cursor"
        font = app.open_font("cursor")
        hand = font.create_glyph_cursor(font, 60, 61, (0, 0, 0), (65535, 65535, 65535))  # hand2
        app.screen().root.change_attributes(cursor=hand)
        app.sync()
        wait_for(lambda: len(shapes) == 2)
        assert pixels(shapes[1]) != pixels(shapes[0])
        assert any(pixels(shapes[1])[3::4])  # something of it is opaque
        assert (shapes[1]["xhot"], shapes[1]["yhot"]) != (shapes[0]["xhot"], shapes[0]["yhot"])
    finally:
        app.close()
        watch.stop()
        xvfb.stop()


def wait_for(done: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.02)


def test_the_session_display_has_no_cursor_in_its_picture() -> None:
    """The terminal draws the cursor at the person's pointer: one drawn into the picture as
    well would be a second cursor, a frame behind. The shape still reaches the watch."""

    async def run() -> tuple[int, list[dict[str, Any]]]:
        display = await start_display("xvfb", SessionSettings(display_ready_timeout=10.0))
        shapes: list[dict[str, Any]] = []
        watch = CursorWatch(f":{display.number}", display.cookie, shapes.append)
        app = open_display(f":{display.number}", display.cookie)  # sets a cursor, then points
        try:
            for _ in bounded(5.0):
                if shapes:
                    break
                await asyncio.sleep(0.05)
            font = app.open_font("cursor")
            hand = font.create_glyph_cursor(font, 60, 61, (0, 0, 0), (65535, 65535, 65535))
            app.screen().root.change_attributes(cursor=hand)
            xtest.fake_input(app, X.MotionNotify, x=120, y=60)
            app.sync()
            for _ in bounded(5.0):  # the hand reaches the watch
                if len(shapes) > 1:
                    break
                await asyncio.sleep(0.05)
            over = display.grab()[40:90, 100:150].copy()
            xtest.fake_input(app, X.MotionNotify, x=600, y=400)
            app.sync()
            await asyncio.sleep(0.3)
            away = display.grab()[40:90, 100:150]
            return int((over != away).any(axis=2).sum()), shapes
        finally:
            app.close()
            watch.stop()
            await display.stop()

    changed, shapes = asyncio.run(run())
    assert len(shapes) > 1 and any(pixels(shapes[-1])[3::4])  # the hand, for the terminal
    assert changed == 0  # and nothing of it in the picture
