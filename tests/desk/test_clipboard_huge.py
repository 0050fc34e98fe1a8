"""A huge copied text is refused unread: the clipboard bridge asks the size of the owner's reply
first, against a real Xvfb and a real X app that offers 8 MB (its property written in pieces,
as no single X request carries that much). The bridge read it whole before it checked the
limit, so any app in the session could make the server hold what it liked."""

from __future__ import annotations

import contextlib
import select
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from Xlib import X
from Xlib.protocol import event as xevent
from Xlib.xobject.drawable import Window

from openfrp.desk.xconnect import open_display
from openfrp.server.host import Display
from tests.desk.test_clipboard import Seen, bridge

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")
LIMIT = 64 * 1024
HUGE = 8 * 1024 * 1024
PIECE = 64 * 1024  # one ChangeProperty request each


class Owner:
    """An X app that copies: owns CLIPBOARD and answers every request for UTF8_STRING with
    `size` bytes of text, or (`incr`) with an INCR announcement of that size."""

    def __init__(self, display: Display, size: int, incr: bool = False) -> None:
        self._d = open_display(f":{display.number}", display.cookie)
        self._win = self._d.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
        self._utf8 = self._d.intern_atom("UTF8_STRING")
        self._incr = self._d.intern_atom("INCR")
        self.size, self.incr = size, incr
        self._stop = threading.Event()
        self._win.set_selection_owner(self._d.intern_atom("CLIPBOARD"), X.CurrentTime)
        self._d.flush()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            while self._d.pending_events():
                event = self._d.next_event()
                if event.type == X.SelectionRequest:
                    self._answer(event)
            select.select([self._d], [], [], 0.1)

    def _answer(self, request: Any) -> None:
        window, prop = request.requestor, request.property
        if self.incr:
            window.change_property(prop, self._incr, 32, [self.size])
        else:
            text = b"x" * PIECE
            window.change_property(prop, self._utf8, 8, b"")
            for start in range(0, self.size, PIECE):
                piece = text[: min(PIECE, self.size - start)]
                window.change_property(prop, self._utf8, 8, piece, X.PropModeAppend)
        notify = xevent.SelectionNotify(
            time=request.time,
            requestor=window,
            selection=request.selection,
            target=request.target,
            property=prop,
        )
        window.send_event(notify, event_mask=0)
        self._d.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        with contextlib.suppress(Exception):
            self._d.close()


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The bytes of property data each GetProperty of the bridge's thread brought back."""
    sizes: list[int] = []
    real = Window.get_property

    def spy(self: Window, *args: Any, **kwargs: Any) -> Any:
        reply = real(self, *args, **kwargs)
        if threading.current_thread().name == "clipboard" and reply is not None:
            sizes.append(len(reply.value) * reply.format // 8)
        return reply

    monkeypatch.setattr(Window, "get_property", spy)
    yield sizes


@pytest.mark.parametrize("incr", [False, True], ids=["one property", "INCR"])
def test_a_text_over_the_limit_is_refused_without_being_read(
    display: Display,
    fetched: list[int],
    incr: bool,
) -> None:
    seen = Seen()
    clip = bridge(display, seen, limit=LIMIT)
    owner = Owner(display, HUGE, incr)
    try:
        assert seen.next(10.0) == ("refused", ("over the size limit", HUGE))
        assert sum(fetched) <= (4 if incr else 0)  # the INCR announcement: its 4 bytes
    finally:
        owner.close()
        clip.close()


def test_a_text_at_the_limit_written_in_pieces_is_read_whole(
    display: Display,
    fetched: list[int],
) -> None:
    seen = Seen()
    clip = bridge(display, seen, limit=LIMIT)
    owner = Owner(display, LIMIT)
    try:
        assert seen.next(10.0) == ("copied", "x" * LIMIT)
        assert sum(fetched) == LIMIT
    finally:
        owner.close()
        clip.close()
