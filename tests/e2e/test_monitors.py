"""Secondary monitors on a real Xvfb: each window streams its own region of one screen, its
clicks land there, apps see RandR monitors, and a frozen secondary window is closed with 4028
while the session goes on."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import CHROMIUM, Browser, joined
from tests.e2e.conftest import E2E, FRP8_PAD, frp8_server
from tests.e2e.harness import RawClient, ServerProcess, diagnosis, hello_for, outcome
from tests.e2e.test_host_codes import read_frames
from tests.support.coturn import TURNSERVER, Coturn
from tests.support.sandbox import shared_folder
from tests.support.xev import XevFile, needs_xev

pytestmark = needs_xev
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium"
)

BLUE, WHITE = 0x0000FF, 0xFFFFFF
SIZE = {"width": 640, "height": 480, "scale": 1}


@pytest.fixture
def folder() -> Iterator[Path]:
    """Where the session's app writes what it saw (any user may write there)."""
    with shared_folder() as path:
        yield path


def monitor_app(folder: Path) -> dict[str, Any]:
    """The app paints the root blue, lists the RandR monitors it sees every 0.2 s, and runs
    xev in a white window placed where monitor 1 sits beside a 640 pixels wide primary."""
    listing = (
        f"while :; do xrandr --listmonitors > {folder}/m.tmp && mv {folder}/m.tmp "
        f"{folder}/monitors.txt; sleep 0.2; done"
    )
    app = (
        f'sh -c \'xsetroot -solid "#0000ff"; ({listing}) & '
        f"LC_ALL=C.UTF-8 xev -event button -geometry 640x480+640+0 > {folder}/xev.txt'"
    )
    return {"display_ready_timeout": 10.0, "display_change_timeout": 1.0, "app_command": app}


def monitor_server(e2e: E2E, folder: Path, **settings: Any) -> ServerProcess:
    launchpad = {**monitor_app(folder), **settings}
    return e2e.server(
        server={"display": "xvfb", "video_fps": 10},
        account={"receive_timeout": 10.0},  # raw clients do not answer pings
        launchpads={"x": launchpad},
    )


def monitors_seen(folder: Path, want: int, timeout: float = 20.0) -> list[str]:
    """The app's `xrandr --listmonitors` once it lists `want` monitors (a loaded machine can
    take seconds to apply a layout)."""
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        path = folder / "monitors.txt"
        lines = path.read_text().splitlines()[1:] if path.exists() else []
        if len(lines) == want:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"the app saw {lines}, not {want} monitors, within {timeout}s")


def settled(raw: RawClient, size: tuple[int, int], pixel: int, timeout: float = 8.0) -> None:
    """Read frames until one of `size` shows `pixel` in its centre."""
    deadline = time.monotonic() + timeout
    seen: list[tuple[int, int, int, int]] = []
    while time.monotonic() < deadline:
        seen += read_frames(raw, want=1, timeout=deadline - time.monotonic())
        if seen[-1][1:] == (*size, pixel):
            return
    raise AssertionError(f"no {size} frame with {pixel:06x} in its centre; got {seen[-5:]}")


def shows(browser: Browser, rgb: tuple[int, int, int]) -> None:
    """Wait until the page's picture has `rgb` (within H.264's error) in its centre."""
    browser.page.wait_for_function(
        """([r, g, b]) => { const c = document.getElementById("screen");
             if (!c.width) return false;
             const centre = [c.width >> 1, c.height >> 1, 1, 1];
             const [x, y, z] = c.getContext("2d").getImageData(...centre).data;
             return Math.abs(x - r) + Math.abs(y - g) + Math.abs(z - b) < 40; }""",
        arg=list(rgb),
        timeout=8000,
    )


def click(raw: RawClient, x: int, y: int) -> None:
    for buttons in (1, 0):
        data = {"x": x, "y": y, "buttons": buttons}
        raw.send({"type": "input", "kind": "pointer", "data": data})


def test_a_secondary_window_shows_and_clicks_its_own_region(e2e: E2E, folder: Path) -> None:
    server = monitor_server(e2e, folder)
    ticket = server.launch("alice", "x")
    sid = ticket["session_id"]
    primary = e2e.raw(server.ws_url)
    primary.handshake(hello_for(ticket, screen=SIZE))
    primary.wait_message("started", timeout=10)
    settled(primary, (640, 480), BLUE)
    assert len(monitors_seen(folder, 1)) == 1

    second = e2e.raw(server.ws_url)
    welcome = second.handshake(hello_for(ticket, monitor=1, screen=SIZE))
    change = second.wait_message("display_change")
    second.send({"type": "display_ack", "change_id": change["change_id"]})
    screen = second.wait_message("screen")
    assert (screen["width"], screen["height"], screen["monitor"]) == (640, 480, 1)
    settled(second, (640, 480), WHITE)  # xev's window, right of the primary
    settled(primary, (640, 480), BLUE)  # the primary still shows only its own region
    layout = server.log.wait_event(event="display.layout", session_id=sid)["attrs"]
    assert (layout["width"], layout["height"]) == (1280, 480)
    assert layout["monitors"] == [[0, 0, 0, 640, 480], [1, 640, 0, 640, 480]]
    seen = monitors_seen(folder, 2)
    assert "openfrp-0 640/" in seen[0] and seen[0].split()[2].endswith("+0+0")
    assert "openfrp-1 640/" in seen[1] and seen[1].split()[2].endswith("+640+0")

    click(second, 100, 50)  # in the secondary window: on the row's screen at 740, 50
    press = XevFile(folder / "xev.txt").wait_button(1)
    assert (press.x, press.y) == (740, 50)

    second.send({"type": "close"})
    assert second.wait_closed() == 1000
    closed = server.log.wait_event(
        event="connection.closed", connection_id=welcome["connection_id"]
    )
    assert closed["attrs"]["monitor"] == 1 and closed["code"] is None
    back = server.log.wait_event(event="display.layout", session_id=sid, count=2)["attrs"]
    assert (back["width"], back["height"]) == (640, 480)
    assert len(monitors_seen(folder, 1)) == 1
    settled(primary, (640, 480), BLUE)
    assert server.session(sid)["state"] == "active"


def test_four_windows_at_most_side_by_side(e2e: E2E, folder: Path) -> None:
    server = monitor_server(e2e, folder, display_change_timeout=30.0)
    ticket = server.launch("alice", "x")
    sid = ticket["session_id"]
    small = {"width": 320, "height": 240, "scale": 1}
    primary = e2e.raw(server.ws_url)
    primary.handshake(hello_for(ticket, screen=small))
    primary.wait_message("started", timeout=10)
    for monitor in (1, 2, 3):
        e2e.raw(server.ws_url).handshake(hello_for(ticket, monitor=monitor, screen=small))
    layout = server.log.wait_event(event="display.layout", session_id=sid, count=3)["attrs"]
    assert layout["width"] == 4 * 320 and layout["height"] == 240
    assert [m[1] for m in layout["monitors"]] == [0, 320, 640, 960]
    seen = monitors_seen(folder, 4)
    assert [line.split()[1] for line in seen] == [f"openfrp-{n}" for n in range(4)]
    for monitor in (2, 4):  # shown already; beyond the fourth
        extra = e2e.raw(server.ws_url)
        extra.send(hello_for(ticket, monitor=monitor))
        assert outcome(extra) == ("closed", 4002)
    assert not server.log.find(event="display.layout", severity="error")
    rejected = server.log.find(event="connection.rejected", session_id=sid)
    assert [e["attrs"]["field"] for e in rejected] == ["monitor", "monitor"]
    assert server.session(sid)["state"] == "active"


def test_a_frozen_secondary_terminal_is_closed_with_4028_and_the_session_goes_on(
    e2e: E2E, folder: Path
) -> None:
    server = monitor_server(e2e, folder)
    ticket = server.launch("alice", "x")
    sid = ticket["session_id"]
    primary = e2e.raw(server.ws_url)
    primary.handshake(hello_for(ticket, screen=SIZE))
    primary.wait_message("started", timeout=10)
    settled(primary, (640, 480), BLUE)

    saved = folder / "ticket.json"
    saved.write_text(json.dumps(ticket))
    second = e2e.terminal(str(saved), extra=["--monitor", "1", "--size", "640x480"])
    second.wait_line(r"connected to ")
    joined = server.log.wait_event(
        event="connection.established", source="server", session_id=sid, count=2
    )
    assert joined["attrs"]["monitor"] == 1
    server.log.wait_event(event="display.layout", session_id=sid)
    time.sleep(0.3)  # its acknowledgement of the join is in
    assert not server.log.find(event="connection.closed", session_id=sid)

    second.process.send_signal(signal.SIGSTOP)  # a frozen window: it reads and answers nothing
    try:
        primary.send({"type": "resize", "width": 800, "height": 600})
        closed = server.log.wait_event(event="connection.closed", code=4028, session_id=sid)
    finally:
        second.process.send_signal(signal.SIGCONT)
    assert closed["connection_id"] == joined["connection_id"]
    assert closed["attrs"]["monitor"] == 1 and closed["attrs"]["display_change_timeout_s"] == 1.0
    second.wait_line(r"^\[4028 [A-Z_]+\] ")
    # The session goes on with the primary alone, at its new size.
    assert server.session(sid)["state"] == "active"
    settled(primary, (800, 600), BLUE)
    assert len(monitors_seen(folder, 1)) == 1
    assert not server.log.find(event="display.layout", severity="error")
    primary.send({"type": "close"})
    assert primary.wait_closed() == 4000
    session = diagnosis(sid, server.log)
    assert session["final_code"] == 4000
    assert "4028" in json.dumps(session)


@needs_chromium
def test_add_monitor_opens_a_window_and_a_frozen_one_is_closed_with_4028(
    e2e: E2E, folder: Path, browser: Browser
) -> None:
    server = monitor_server(e2e, folder)
    ticket = server.launch("alice", "x")
    sid = ticket["session_id"]
    page = browser.page
    page.set_viewport_size({"width": 640, "height": 480})
    joined(server, browser, ticket, server.port)

    with page.context.expect_page() as opening:
        browser.menu("add-monitor")
    second = Browser(opening.value)
    second.wait("v.state.startsWith('connected')")
    # The window says which monitor it is, in its bar and its title (a second one).
    assert second.page.inner_text("#session") == f"{sid} · monitor 2"
    assert second.page.title() == "connected · monitor 2 · openfrp session"
    joined_as = server.log.wait_event(
        event="connection.established", source="server", session_id=sid, count=2
    )
    assert joined_as["attrs"]["monitor"] == 1
    server.log.wait_event(event="monitor.opened", source="terminal", attrs={"monitor": 1})
    shows(second, (255, 255, 255))  # xev's window, right of the primary
    shows(browser, (0, 0, 255))  # the root, on the primary
    second.wait("v.input.cursor !== undefined && v.input.cursor.width > 0")  # the X cursor
    layout = server.log.wait_event(event="display.layout", session_id=sid)["attrs"]
    assert layout["monitors"][0] == [0, 0, 0, 640, 480] and layout["monitors"][1][0] == 1
    assert len(monitors_seen(folder, 2)) == 2
    time.sleep(0.3)  # its acknowledgement of the join is in
    assert not server.log.find(event="connection.closed", session_id=sid)

    # The second window freezes; the first one is resized: only the frozen one goes, with 4028.
    cdp = page.context.new_cdp_session(second.page)
    cdp.send("Emulation.setScriptExecutionDisabled", {"value": True})
    page.set_viewport_size({"width": 800, "height": 600})
    closed = server.log.wait_event(event="connection.closed", code=4028, session_id=sid)
    assert closed["connection_id"] == joined_as["connection_id"]
    assert closed["attrs"]["monitor"] == 1
    browser.wait("v.video.remote.width === 800 && v.video.remote.height === 600")
    assert server.session(sid)["state"] == "active"
    assert len(monitors_seen(folder, 1)) == 1
    browser.wait("v.state.startsWith('connected')")
    assert not browser.errors


@needs_chromium
@pytest.mark.skipif(TURNSERVER is None, reason="needs coturn")
def test_over_frp8_the_track_shows_the_primary_monitor_and_the_second_window_its_own(
    e2e: E2E, folder: Path, browser: Browser, coturn: Coturn
) -> None:
    server = frp8_server(e2e, coturn, launchpad={**FRP8_PAD, **monitor_app(folder)}, display="xvfb")
    ticket = server.launch("alice", "rtc")
    sid = ticket["session_id"]
    page = browser.page
    page.set_viewport_size({"width": 640, "height": 480})
    joined(server, browser, ticket, server.port)
    browser.wait("v.track !== undefined && v.track.frames >= 2")

    with page.context.expect_page() as opening:
        browser.menu("add-monitor")
    second = Browser(opening.value)
    second.wait("v.state.startsWith('connected')")
    # The window says which monitor it is, in its bar and its title (a second one).
    assert second.page.inner_text("#session") == f"{sid} · monitor 2"
    assert second.page.title() == "connected · monitor 2 · openfrp session"
    shows(second, (255, 255, 255))  # its own region, as frames over FRP7
    layout = server.log.wait_event(event="display.layout", session_id=sid)["attrs"]
    assert (layout["width"], layout["height"]) == (1280, 480)
    # The primary's video track shows only its own monitor of the wider screen.
    frames = browser.view()["track"]["frames"]
    browser.wait(f"v.track.frames > {frames} + 5")
    assert (browser.view()["track"]["width"], browser.view()["track"]["height"]) == (640, 480)
    opened = server.log.find(event="connection.opened", session_id=sid)
    assert [e["attrs"]["frp"] for e in opened] == [8, 7]
    assert not browser.errors and not second.errors
    second.page.close()  # closing the window removes its monitor
    back = server.log.wait_event(event="display.layout", session_id=sid, count=2)["attrs"]
    assert (back["width"], back["height"]) == (640, 480)
    assert len(monitors_seen(folder, 1)) == 1


def test_a_secondary_window_rejoins_while_the_primary_resumes(e2e: E2E, folder: Path) -> None:
    """A network blip cuts both windows: the secondary one can be back first, while the
    session waits for its primary's resume. It joins (it got 4002 and died, its window
    saying the link was revoked), and the session's row holds both once the primary is back."""
    server = monitor_server(e2e, folder, display_change_timeout=30.0)  # nothing acknowledges
    ticket = server.launch("alice", "x")
    sid = ticket["session_id"]
    primary = e2e.raw(server.ws_url)
    first = primary.handshake(hello_for(ticket, screen=SIZE))
    primary.wait_message("started", timeout=10)
    primary.ws.socket.shutdown(socket.SHUT_RDWR)  # gone without a close frame
    server.log.wait_event(event="session.disconnected", session_id=sid)

    second = e2e.raw(server.ws_url)
    second.send(hello_for(ticket, monitor=1, screen=SIZE))
    assert outcome(second) == ("welcome", None)
    assert not server.log.find(event="connection.rejected", session_id=sid)

    back = e2e.raw(server.ws_url)
    back.handshake(
        hello_for(ticket, screen=SIZE, resume=True, previous_connection_id=first["connection_id"])
    )
    layout = server.log.wait_event(
        event="display.layout", session_id=sid, where=lambda e: len(e["attrs"]["monitors"]) == 2
    )["attrs"]
    assert layout["monitors"] == [[0, 0, 0, 640, 480], [1, 640, 0, 640, 480]]
    settled(back, (640, 480), BLUE)
    assert len(monitors_seen(folder, 2)) == 2
    assert server.session(sid)["state"] == "active"


def test_with_fit_windows_a_window_on_the_second_monitor_stays_there_on_a_resize(
    e2e: E2E, folder: Path
) -> None:
    """A window dragged onto monitor 2 fills that monitor at its new size when the second
    window is resized: the layout is applied in steps (the screen, then each monitor deleted
    and set again), and fitted at each step the window found its monitor gone for a moment
    and was moved onto the first one, where it stayed (the second window showed the root)."""
    from Xlib import X

    from openfrp.desk.xconnect import open_display
    from tests.support.xselection import read_cookie

    server = monitor_server(e2e, folder, fit_windows=True, display_change_timeout=30.0)
    ticket = server.launch("alice", "x")
    sid = ticket["session_id"]
    primary = e2e.raw(server.ws_url)
    primary.handshake(hello_for(ticket, screen=SIZE))
    primary.wait_message("started", timeout=10)
    second = e2e.raw(server.ws_url)
    second.handshake(hello_for(ticket, monitor=1, screen=SIZE))
    server.log.wait_event(event="display.layout", session_id=sid)
    assert len(monitors_seen(folder, 2)) == 2
    home = server.log.wait_event(event="session.account", session_id=sid)["attrs"]["home"]
    number = server.log.wait_event(event="display.ready", session_id=sid)["attrs"]["display"]
    x = open_display(f":{number}", read_cookie(f"{home}/.Xauthority"))
    try:
        root = x.screen().root
        shown: list[Any] = []
        deadline = time.monotonic() + 10
        while not shown and time.monotonic() < deadline:
            shown = [
                w
                for w in root.query_tree().children
                if w.get_attributes().map_state == X.IsViewable
                and not w.get_attributes().override_redirect
            ]
            time.sleep(0.05)
        (app,) = shown  # xev's window
        app.configure(x=660, y=20)  # dragged onto monitor 2, as a window manager lets one
        x.sync()
        second.send({"type": "resize", "width": 800, "height": 600})
        server.log.wait_event(event="display.layout", session_id=sid, count=2)
        box: tuple[int, int, int, int] = (0, 0, 0, 0)
        deadline = time.monotonic() + 5
        while box != (640, 0, 800, 600) and time.monotonic() < deadline:
            got = app.get_geometry()
            box = (got.x, got.y, got.width, got.height)
            time.sleep(0.05)
        assert box == (640, 0, 800, 600)  # monitor 2, at its new size
        settled(second, (800, 600), WHITE)  # xev's window fills the second window's region
    finally:
        x.close()
