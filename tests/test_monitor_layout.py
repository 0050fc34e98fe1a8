"""The runtime's side of a row of monitors on a built-in display: each monitor's view of
the screen, a secondary's pointer offset, and a row that fits the launchpad's limits."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from openfrp.media.synthetic import SyntheticDisplay
from openfrp.protocol.actions import Log
from openfrp.protocol.input import KeyInput, PointerInput
from openfrp.protocol.monitors import Monitor
from openfrp.server.host import Display
from openfrp.server.monitors import Layout, RegionView, SessionMonitors
from openfrp.settings import SessionSettings


def test_a_view_is_the_whole_screen_until_a_row_then_only_its_region() -> None:
    display = Display(SyntheticDisplay(640, 480))
    layout = Layout(display)
    primary, second = RegionView(layout, 0), RegionView(layout, 1)
    assert primary.resize(800, 600) == (800, 600)  # one monitor: it follows its window
    assert (display.width, display.height) == (800, 600)
    whole = display.source.grab()
    assert primary.grab().shape == whole.shape

    assert layout.apply({0: (0, 0, 800, 600), 1: (800, 0, 400, 300)}) == (1200, 600)
    assert (primary.width, primary.height, second.width, second.height) == (800, 600, 400, 300)
    picture = second.grab()
    assert picture.shape == (300, 400, 4)
    # The synthetic picture's red channel grows with x: the second view starts at x = 800.
    assert int(picture[0, 0, 2]) == (800 * 4 + display.source.frame) % 256
    assert primary.resize(1000, 700) == (800, 600)  # in a row, only a relayout sizes it

    assert layout.apply({0: (0, 0, 800, 600)}) == (800, 600)  # back to one monitor
    assert layout.region(0) is None and primary.resize(640, 480) == (640, 480)


def test_a_relayout_fits_each_monitor_and_moves_only_secondary_pointers() -> None:
    written: list[Log] = []
    settings = replace(SessionSettings(), max_width=1024, max_height=768)

    async def run() -> SessionMonitors:
        monitors = SessionMonitors({}, written.append, fps=0, listen=lambda streamer: None)
        view = monitors.view(Display(SyntheticDisplay(640, 480)))
        row = (Monitor(0, "p", 0, 0, 1921, 1081), Monitor(1, "m1", 1921, 0, 333, 201))
        await monitors.relayout(row, settings)
        assert (view.width, view.height) == (1024, 576)  # 1921x1081 in its shape
        return monitors

    monitors = asyncio.run(run())
    [layout] = [log for log in written if log.event == "display.layout"]
    assert layout.attrs == {
        "width": 1024 + 332,
        "height": 576,
        "monitors": [[0, 0, 0, 1024, 576], [1, 1024, 0, 332, 200]],
    }
    assert monitors.place("m1", PointerInput(5, 6, 1)) == PointerInput(1029, 6, 1)
    assert monitors.place("p", PointerInput(5, 6, 1)) == PointerInput(5, 6, 1)
    assert monitors.place("m1", KeyInput(97, True)) == KeyInput(97, True)
