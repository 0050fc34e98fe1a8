"""fit_windows on a real Xvfb: an app's top-level windows fill the screen (or their RandR
monitor) when mapped and follow every resize; menus and dialogs keep their own size."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from Xlib import X, Xatom
from Xlib import display as xdisplay

from openfrp.desk.window_fit import WindowFit
from openfrp.media.randr import set_monitors, set_screen_size
from tests.support.xev import Xvfb, needs_xev

pytestmark = [
    needs_xev,
    pytest.mark.skipif(shutil.which("xrandr") is None, reason="needs xrandr"),
]


def window(app: Any, x: int, y: int, override: bool = False) -> Any:
    return app.screen().root.create_window(
        x, y, 120, 80, 0, X.CopyFromParent, override_redirect=override
    )


def box(win: Any) -> tuple[int, int, int, int]:
    got = win.get_geometry()
    return got.x, got.y, got.width, got.height


def wait_for(done: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError("not within the time")
        time.sleep(0.05)


def test_windows_fill_their_monitor_and_follow_the_screen(tmp_path: Path) -> None:
    xvfb = Xvfb(tmp_path, size="1600x600", geometry="200x100+10+10")
    fit = WindowFit(xvfb.name, "")
    app = xdisplay.Display(xvfb.name)
    try:
        plain, menu, dialog = window(app, 20, 20), window(app, 30, 30, True), window(app, 40, 40)
        dialog.change_property(Xatom.WM_TRANSIENT_FOR, Xatom.WINDOW, 32, [plain.id])
        for made in (plain, menu, dialog):
            made.map()
        app.sync()
        wait_for(lambda: box(plain) == (0, 0, 1600, 600))
        assert box(menu) == (30, 30, 120, 80) and box(dialog) == (40, 40, 120, 80)

        set_screen_size(xvfb.env, 1000, 500, set())  # the person's window got smaller
        wait_for(lambda: box(plain) == (0, 0, 1000, 500))
        assert box(menu) == (30, 30, 120, 80) and box(dialog) == (40, 40, 120, 80)

        set_monitors(xvfb.env, {"openfrp-0": (0, 0, 500, 500), "openfrp-1": (500, 0, 500, 500)})
        second = window(app, 700, 100)  # opened on the second monitor: fills that one
        second.map()
        app.sync()
        wait_for(lambda: box(second) == (500, 0, 500, 500))
        assert fit.fitted >= 4  # the xev, the plain window twice, the second one
    finally:
        fit.stop()
        app.close()
        xvfb.stop()
