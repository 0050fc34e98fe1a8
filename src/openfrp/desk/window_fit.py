"""An app's windows fill the screen and follow it, on a display without a window manager.

A session's screen follows the person's window, but an app keeps the size it started with:
the demo's xterm at 120x36 left black beside it in a wide window. Desktops maximize the app
with their window manager; a session that runs one app has none. With `fit_windows` set on
the launchpad, this watch gives each top-level window the size of its monitor (the RandR
monitor that holds its centre, else the whole screen) when it is mapped and again whenever
the screen changes size. Windows that a window manager would not maximize are left alone:
override-redirect ones (menus, tooltips) and transient ones (dialogs).

A layout of several monitors is applied in steps (the screen resized, then each monitor
deleted and set again): `hold()` keeps the windows where they are until the last step, then
fits them to the layout as it is. Fitted at each step, a window on monitor 2 found its monitor
gone for a moment and was moved to the first one, where it stayed.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Iterator
from typing import Any

from Xlib import X
from Xlib.ext import randr

from openfrp.desk.xconnect import XWatch

Box = tuple[int, int, int, int]  # x, y, width, height


class WindowFit(XWatch):
    """Fits the top-level windows of display `name` from its own thread until stop()."""

    def __init__(self, name: str, cookie: str) -> None:
        self.fitted = 0  # windows given a new size so far
        self._held = 0  # hold()s in progress
        self._due = False  # the screen changed while held: fit every window once released
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        super().__init__(name, cookie, "openfrp-fit")

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """No fit while the block runs (a layout applied step by step); every window is
        fitted once it ends."""
        with self._lock:
            self._held += 1
        try:
            yield
        finally:
            with self._lock:
                self._held -= 1
                self._due = True
                if self._wake_w >= 0:  # wake the watch, which may wait for an X event
                    with contextlib.suppress(OSError):
                        os.write(self._wake_w, b"!")

    def _ended(self) -> None:
        with self._lock:
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._wake_w = -1

    def _watch(self, display: Any) -> None:
        display.set_error_handler(lambda *_: None)  # a window closed before its fit: no matter
        root = display.screen().root
        root.change_attributes(event_mask=X.SubstructureNotifyMask | X.StructureNotifyMask)
        self._fit_all(display, root)
        while not self._stopped:
            if not display.pending_events():
                ready = select.select([display, self._wake_r], [], [])[0]
                if self._wake_r in ready:
                    os.read(self._wake_r, 64)
            while display.pending_events():
                event = display.next_event()
                if event.type == X.MapNotify and event.event == root and not event.override:
                    with self._lock:
                        held = self._held > 0
                        self._due = self._due or held
                    if not held:
                        self._fit(display, root, event.window)
                elif event.type == X.ConfigureNotify and event.window == root:
                    with self._lock:
                        self._due = True
            with self._lock:
                due = self._due and self._held == 0
                if due:
                    self._due = False
            if due:
                self._fit_all(display, root)

    def _fit_all(self, display: Any, root: Any) -> None:
        for window in root.query_tree().children:
            self._fit(display, root, window)

    def _fit(self, display: Any, root: Any, window: Any) -> None:
        try:
            attributes = window.get_attributes()
            if attributes.override_redirect or attributes.map_state != X.IsViewable:
                return
            if window.get_wm_transient_for() is not None:
                return
            now = window.get_geometry()
        except Exception:  # the window went away meanwhile (an X error): nothing to fit
            return
        centre = (now.x + now.width // 2, now.y + now.height // 2)
        box = _monitor_of(display, root, centre)
        if (now.x, now.y, now.width, now.height, now.border_width) != (*box, 0):
            x, y, width, height = box
            window.configure(x=x, y=y, width=width, height=height, border_width=0)
            display.flush()
            self.fitted += 1


def _monitor_of(display: Any, root: Any, point: tuple[int, int]) -> Box:
    """The RandR monitor holding `point` (or the first one), else the whole screen."""
    boxes: list[Box] = []
    if display.has_extension("RANDR"):
        with contextlib.suppress(Exception):
            for monitor in randr.get_monitors(root).monitors:
                w, h = monitor.width_in_pixels, monitor.height_in_pixels
                boxes.append((monitor.x, monitor.y, w, h))
    for x, y, w, h in boxes:
        if x <= point[0] < x + w and y <= point[1] < y + h:
            return x, y, w, h
    if boxes:
        return boxes[0]
    size = root.get_geometry()
    return 0, 0, size.width, size.height
