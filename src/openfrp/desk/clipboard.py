"""The session's X clipboard, both ways, through one X client in a worker thread.

Text from the terminal: this client takes CLIPBOARD and PRIMARY and answers every paste
request (UTF8_STRING, STRING, TEXT, TARGETS) with it, so middle-click and Ctrl+V both work.
Text to the terminal: XFIXES tells this client when another one takes CLIPBOARD; it asks the
new owner for its text at once and hands it over. A text too large for one X property
(an INCR transfer) or above the limit is reported as refused, never cut, and never read: the
size of the owner's reply is asked first, so an app offering hundreds of MB cannot make the
server hold them, and an INCR transfer is never started. Every X call happens
in the worker thread; the event loop only offers text and receives callbacks.
Text offered takes X's line ends (x_text): an X app pastes a CR as Enter, so Windows' CRLF ran
each pasted line and then an empty command.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from Xlib import X, Xatom
from Xlib.ext import xfixes
from Xlib.protocol import event as xevent

from openfrp.desk.clipboard_limits import x_text
from openfrp.desk.xconnect import open_display

READ_TIMEOUT = 2.0  # seconds an owner gets to answer our request for its text
POLL = 0.5


class Clipboard:
    """`on_copied(text)` and `on_refused(reason, size)` are called from the worker thread
    when an X app copies text; `on_failure(error)` once if the X connection fails."""

    def __init__(
        self,
        display_name: str,
        cookie: str,
        limit: int,
        on_copied: Callable[[str], None],
        on_refused: Callable[[str, int], None],
        on_failure: Callable[[str], None],
        watch: bool = True,
    ) -> None:
        self.limit = limit
        self._name = display_name
        self._cookie = cookie
        self._on_copied = on_copied
        self._on_refused = on_refused
        self._on_failure = on_failure
        self._watch = watch
        self._lock = threading.Lock()
        self._pending: str | None = None
        self._owning: list[threading.Event] = []  # offers not yet owned: set once they are
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clipboard", daemon=True)
        self._thread.start()

    def offer(self, text: str) -> threading.Event:
        """Make `text` (with X's line ends) the session's clipboard (the latest offer wins). The
        event is set once it (or a later offer) is, or the bridge has stopped: a key that pastes
        waits for it."""
        owned = threading.Event()
        with self._lock:
            if self._closed:
                owned.set()
                return owned
            self._pending = x_text(text)
            self._owning.append(owned)
        self._wake()
        return owned

    def close(self, timeout: float = 1.0) -> None:
        with self._lock:
            self._closed = True
        self._wake()
        self._thread.join(timeout)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _run(self) -> None:
        try:
            session = _Session(self, open_display(self._name, self._cookie))
        except Exception as exc:
            self._finish(f"{type(exc).__name__}: {exc}")
            return
        self.ready.set()
        try:
            while True:
                with self._lock:
                    text, self._pending = self._pending, None
                    owning, self._owning = self._owning, []
                    closed = self._closed
                if text is not None and not closed:
                    session.own(text)
                for owned in owning:
                    owned.set()
                if closed:
                    break
                session.pump()
                select.select([session.fileno(), self._wake_r], [], [], POLL)
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 512)
        except Exception as exc:
            self._finish(f"{type(exc).__name__}: {exc}")
            return
        finally:
            with contextlib.suppress(Exception):
                session.close()
        self._finish(None)

    def _finish(self, error: str | None) -> None:
        self.ready.set()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        with self._lock:
            closed, self._closed = self._closed, True
            owning, self._owning = self._owning, []
        for owned in owning:
            owned.set()
        if error is not None and not closed:
            self._on_failure(error)


def _xid(resource: Any) -> int:
    """A window's id whether python-xlib gives the object or the number."""
    return int(getattr(resource, "id", resource))


class _Session:
    """The X side: one window that owns selections and receives their contents."""

    def __init__(self, owner: Clipboard, d: Any) -> None:
        self._owner = owner
        self._d = d
        atom = d.intern_atom
        self.clipboard, self.utf8 = atom("CLIPBOARD"), atom("UTF8_STRING")
        self.text, self.targets = atom("TEXT"), atom("TARGETS")
        self.incr, self.prop = atom("INCR"), atom("OPENFRP_CLIPBOARD")
        self._win = d.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
        self._data = b""
        self._reading: tuple[int, float] | None = None  # (target asked for, deadline)
        self._owner_changed = -1  # the XFIXES SelectionNotify event code
        if owner._watch:
            found = d.query_extension("XFIXES")
            if found is None or not found.present:
                raise RuntimeError("the display has no XFIXES extension")
            self._owner_changed = found.first_event + xfixes.XFixesSelectionNotify
            d.xfixes_query_version()
            d.xfixes_select_selection_input(
                self._win, self.clipboard, xfixes.XFixesSetSelectionOwnerNotifyMask
            )
            # Text copied before this client watched is the session's clipboard too.
            if _xid(d.get_selection_owner(self.clipboard)) != X.NONE:
                self._ask(self.utf8, X.CurrentTime)
        d.flush()

    def fileno(self) -> int:
        fd: int = self._d.fileno()
        return fd

    def close(self) -> None:
        self._d.close()

    def own(self, text: str) -> None:
        self._data = text.encode("utf-8")
        for selection in (self.clipboard, Xatom.PRIMARY):
            self._win.set_selection_owner(selection, X.CurrentTime)
        self._d.flush()

    def pump(self) -> None:
        if self._reading is not None and time.monotonic() > self._reading[1]:
            self._reading = None
            self._owner._on_refused("the app that copied did not hand over its text", 0)
        # A flush can read events in as it writes: the worker's select() would not see those,
        # and an app's paste request waited up to POLL for its answer. So: until none is left.
        while self._d.pending_events():
            while self._d.pending_events():
                self._handle(self._d.next_event())
            self._d.flush()

    def _handle(self, event: Any) -> None:
        if event.type == X.SelectionRequest:
            self._answer(event)
        elif event.type == self._owner_changed and event.sub_code == 0:
            if _xid(event.owner) not in (X.NONE, self._win.id):
                self._ask(self.utf8, event.selection_timestamp)
        elif event.type == X.SelectionNotify and _xid(event.requestor) == self._win.id:
            self._received(event)

    def _answer(self, request: Any) -> None:
        """Hand our text to the app that pastes, in the form it asked for."""
        prop = request.property or request.target
        requestor = request.requestor
        if request.target == self.targets:
            forms = [self.targets, self.utf8, Xatom.STRING, self.text]
            requestor.change_property(prop, Xatom.ATOM, 32, forms)
        elif request.target in (self.utf8, self.text):
            requestor.change_property(prop, self.utf8, 8, self._data)
        elif request.target == Xatom.STRING:
            latin = self._data.decode("utf-8").encode("latin-1", "replace")
            requestor.change_property(prop, Xatom.STRING, 8, latin)
        else:
            prop = X.NONE
        notify = xevent.SelectionNotify(
            time=request.time,
            requestor=requestor,
            selection=request.selection,
            target=request.target,
            property=prop,
        )
        requestor.send_event(notify, event_mask=0)

    def _ask(self, target: int, when: int) -> None:
        self._win.convert_selection(self.clipboard, target, self.prop, when or X.CurrentTime)
        self._reading = (target, time.monotonic() + READ_TIMEOUT)

    def _received(self, notify: Any) -> None:
        asked = self._reading
        self._reading = None
        if asked is None:
            return
        if notify.property == X.NONE:
            if asked[0] == self.utf8:  # an old app: plain STRING then
                self._ask(Xatom.STRING, notify.time)
            else:
                self._owner._on_refused("the copied data is not text", 0)
            return
        head = self._win.get_property(self.prop, X.AnyPropertyType, 0, 0)  # its size, no data
        if head is None:
            self._owner._on_refused("the copied text could not be read", 0)
            return
        if head.property_type == self.incr:
            # Left in place: deleting it is what asks the owner for its first chunk (ICCCM).
            reply = self._win.get_property(self.prop, self.incr, 0, 1)
            size = int(reply.value[0]) if reply is not None and len(reply.value) else 0
            self._owner._on_refused("over the size limit", size)
            return
        size = head.bytes_after
        if size > self._owner.limit:
            self._win.delete_property(self.prop)
            self._owner._on_refused("over the size limit", size)
            return
        reply = self._win.get_property(self.prop, X.AnyPropertyType, 0, (size + 3) // 4)
        self._win.delete_property(self.prop)
        if reply is None or reply.bytes_after:  # gone or grown since: never cut
            self._owner._on_refused("the copied text could not be read", size)
            return
        raw = bytes(reply.value) if reply.format == 8 else b""
        encoding = "utf-8" if reply.property_type != Xatom.STRING else "latin-1"
        self._owner._on_copied(raw.decode(encoding, "replace"))
