"""An app's windows fill the screen and follow it, on a display without a window manager.

A session's screen follows the person's window, but an app keeps the size it started with:
the demo's xterm at 120x36 left black beside it in a wide window. Desktops maximize the app
with their window manager; a session that runs one app has none. With `fit_windows` set on
the launchpad, this watch gives each top-level window the size of its monitor (the RandR
monitor that holds its centre, else the whole screen) when it is mapped and again whenever
the screen changes size. Windows that a window manager would not maximize are left alone:
override-redirect ones (menus, tooltips) and transient ones (dialogs).
"""

from __future__ import annotations

import contextlib
from typing import Any

from Xlib import X
from Xlib.ext import randr

from openfrp.desk.xconnect import XWatch

Box = tuple[int, int, int, int]  # x, y, width, height


class WindowFit(XWatch):
    """Fits the top-level windows of display `name` from its own thread until stop()."""

    def __init__(self, name: str, cookie: str) -> None:
        self.fitted = 0  # windows given a new size so far
        super().__init__(name, cookie, "openfrp-fit")

    def _watch(self, display: Any) -> None:
        display.set_error_handler(lambda *_: None)  # a window closed before its fit: no matter
        root = display.screen().root
        root.change_attributes(event_mask=X.SubstructureNotifyMask | X.StructureNotifyMask)
        self._fit_all(display, root)
        while not self._stopped:
            event = display.next_event()
            if event.type == X.MapNotify and event.event == root and not event.override:
                self._fit(display, root, event.window)
            elif event.type == X.ConfigureNotify and event.window == root:
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
