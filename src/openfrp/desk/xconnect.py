"""Open a python-xlib connection with a given MIT-MAGIC-COOKIE-1.

python-xlib reads the cookie from the file named by the process-wide XAUTHORITY, but each
session's Xvfb has its own cookie and several sessions share one server process. The cookie
is handed to python-xlib's authentication step through a thread-local, so two threads can
open connections to two displays at the same time.
"""

from __future__ import annotations

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
