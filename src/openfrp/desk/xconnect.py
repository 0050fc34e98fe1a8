"""Open a python-xlib connection with a given MIT-MAGIC-COOKIE-1.

python-xlib reads the cookie from the file named by the process-wide XAUTHORITY, but each
session's Xvfb has its own cookie and several sessions share one server process. The cookie
is handed to python-xlib's authentication step through a thread-local, so two threads can
open connections to two displays at the same time. `XWatch` is a thread on such a
connection that waits on the display's events (what is drawn, windows to fit) until stopped.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from Xlib import display as xdisplay
from Xlib.support import connect

COOKIE_NAME = b"MIT-MAGIC-COOKIE-1"
_local = threading.local()
_original = connect.get_auth


def _get_auth(sock: Any, dname: Any, protocol: Any, host: Any, dno: Any) -> tuple[bytes, bytes]:
    cookie: bytes | None = getattr(_local, "cookie", None)
    if cookie:
        return COOKIE_NAME, cookie
    found: tuple[bytes, bytes] = _original(sock, dname, protocol, host, dno)
    return found


connect.get_auth = _get_auth


def open_display(name: str, cookie: str = "") -> xdisplay.Display:
    """Connect to display `name` (":3") with `cookie` (hex); "" uses XAUTHORITY as usual."""
    _local.cookie = bytes.fromhex(cookie) if cookie else None
    try:
        return xdisplay.Display(name)
    finally:
        _local.cookie = None


class XWatch:
    """A thread with a connection of its own to display `name`, waiting on its events in
    `_watch` until stop(). Subclasses set what `_watch` needs before calling __init__, which
    starts the thread."""

    def __init__(self, name: str, cookie: str, thread_name: str) -> None:
        self._name, self._cookie = name, cookie
        self._display: Any = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop without waiting: shutting the connection's socket down ends the thread's wait
        for an event (closing it would not wake a thread blocked on it)."""
        self._stopped = True
        display = self._display
        if display is not None:
            with contextlib.suppress(OSError):
                display.display.socket.shutdown(socket.SHUT_RDWR)

    def _run(self) -> None:
        try:
            display = open_display(self._name, self._cookie)
        except Exception:
            return  # no display to watch
        self._display = display
        try:
            if not self._stopped:
                self._watch(display)
        except Exception:
            pass  # the display went away, or stop() shut the connection
        finally:
            self._ended()
            with contextlib.suppress(Exception):
                display.close()

    def _watch(self, display: Any) -> None:
        raise NotImplementedError

    def _ended(self) -> None:
        """Called from the thread as it stops watching."""
