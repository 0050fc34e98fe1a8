"""A real X app's side of the clipboard, for tests: copy text (own CLIPBOARD and answer
paste requests in a thread) and paste (ask the owner of a selection for UTF8_STRING)."""

from __future__ import annotations

import contextlib
import select
import threading
import time
from typing import Any

from Xlib import X, Xatom
from Xlib.protocol import event as xevent

from openfrp.desk.xconnect import open_display


def read_cookie(xauthority: str) -> str:
    """The MIT-MAGIC-COOKIE-1 (hex) of the first entry of an Xauthority file."""
    from Xlib.xauth import Xauthority

    for _family, _address, _number, name, data in Xauthority(xauthority).entries:
        if name == b"MIT-MAGIC-COOKIE-1":
            return bytes(data).hex()
    raise ValueError(f"{xauthority}: no MIT-MAGIC-COOKIE-1")


class XApp:
    """One X client on `display` with a window, like an editor that copies and pastes."""

    def __init__(self, display: str, cookie: str) -> None:
        self._d = open_display(display, cookie)
        self._win = self._d.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
        self._clipboard = self._d.intern_atom("CLIPBOARD")
        self._utf8 = self._d.intern_atom("UTF8_STRING")
        self._prop = self._d.intern_atom("XAPP_PASTE")
        self._serving: threading.Thread | None = None
        self._stop = threading.Event()

    def paste(self, selection: str = "CLIPBOARD", timeout: float = 3.0) -> str | None:
        """The text the selection's owner hands over, None when there is none."""
        atom = Xatom.PRIMARY if selection == "PRIMARY" else self._clipboard
        self._win.convert_selection(atom, self._utf8, self._prop, X.CurrentTime)
        self._d.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while self._d.pending_events():
                event = self._d.next_event()
                if event.type == X.SelectionNotify:
                    if event.property == X.NONE:
                        return None
                    reply = self._win.get_full_property(self._prop, X.AnyPropertyType)
                    return None if reply is None else bytes(reply.value).decode("utf-8")
            select.select([self._d], [], [], 0.1)
        raise TimeoutError(f"no answer for {selection} within {timeout}s")

    def copy(self, text: str) -> None:
        """Own CLIPBOARD with `text` and answer paste requests until close()."""
        data = text.encode("utf-8")
        self._win.set_selection_owner(self._clipboard, X.CurrentTime)
        self._d.flush()

        def serve() -> None:
            while not self._stop.is_set():
                while self._d.pending_events():
                    self._answer(self._d.next_event(), data)
                select.select([self._d], [], [], 0.1)

        self._serving = threading.Thread(target=serve, daemon=True)
        self._serving.start()

    def _answer(self, request: Any, data: bytes) -> None:
        if request.type != X.SelectionRequest:
            return
        prop = request.property
        if request.target == self._utf8:
            request.requestor.change_property(prop, self._utf8, 8, data)
        else:
            prop = X.NONE
        notify = xevent.SelectionNotify(
            time=request.time,
            requestor=request.requestor,
            selection=request.selection,
            target=request.target,
            property=prop,
        )
        request.requestor.send_event(notify, event_mask=0)
        self._d.flush()

    def kill_owner(self, selection: str = "CLIPBOARD") -> None:
        """End the X connection of the selection's owner, as `xkill` does (XKillClient)."""
        atom = Xatom.PRIMARY if selection == "PRIMARY" else self._clipboard
        self._d.get_selection_owner(atom).kill_client()
        self._d.sync()

    def close(self) -> None:
        self._stop.set()
        if self._serving is not None:
            self._serving.join(2.0)
        with contextlib.suppress(Exception):
            self._d.close()
