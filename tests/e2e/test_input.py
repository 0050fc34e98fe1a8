"""Keyboard and mouse reach the session's app: a real Xvfb whose app is `xev`, driven by the
Python terminal's commands and by raw FRP7 clients; no key sticks after a disconnect, and the
X server dying while keys arrive ends the session with 4005."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.conftest import E2E
from tests.e2e.harness import ServerProcess, diagnosis, hello_for
from tests.support.sandbox import shared_folder
from tests.support.xev import XEV_ARGS, XevFile, held, needs_xev, typed

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.e2e.browser import Browser

pytestmark = needs_xev


def xev_server(e2e: E2E, out: Path, then: str = "") -> ServerProcess:
    """A server whose launchpad "x" runs xev (writing to `out`) on a real Xvfb; `then` runs
    after xev in the same app (the app outlives its display)."""
    app = f"sh -c 'LC_ALL=C.UTF-8 {XEV_ARGS} > {out}; {then or 'true'}'"
    return e2e.server(
        server={"display": "xvfb", "video_fps": 5},
        account={"receive_timeout": 10.0},  # raw clients do not answer pings
        launchpads={"x": {"display_ready_timeout": 10.0, "app_command": app}},
    )


def xev_page(e2e: E2E, browser: Browser, xev: XevFile) -> Page:
    """The page joined to a session of xev_server's, once it draws and xev listens."""
    from tests.e2e.browser import joined

    server = xev_server(e2e, xev.path)
    ticket = server.launch("alice", "x")
    joined(server, browser, ticket, server.port)
    browser.wait("v.frames >= 1 && v.video.picture !== null")
    xev.ready()
    page: Page = browser.page
    return page


def display_of(server: ServerProcess, sid: str) -> dict[str, Any]:
    ready: dict[str, Any] = server.log.wait_event(event="display.ready", session_id=sid)["attrs"]
    return ready


@pytest.fixture
def xev(e2e: E2E) -> Iterator[XevFile]:
    """The app's output file, in a folder the session's own user may write to."""
    with shared_folder() as folder:
        yield XevFile(folder / "xev.txt")


def key(keysym: int, down: bool) -> dict[str, Any]:
    return {"type": "input", "kind": "key", "data": {"keysym": keysym, "down": down}}


def pointer(x: int, y: int, buttons: int) -> dict[str, Any]:
    return {"type": "input", "kind": "pointer", "data": {"x": x, "y": y, "buttons": buttons}}


def test_keys_typed_while_the_session_starts_reach_the_app_once_its_window_is_up(
    e2e: E2E, xev: XevFile
) -> None:
    """Type-ahead: a script that types at once, before the display and the app's window exist,
    loses nothing; the keys wait for the window and arrive in order."""
    server = xev_server(e2e, xev.path, then="sleep 600")
    ticket = server.launch("tess", "x")
    terminal = e2e.terminal(ticket["connect_url"])
    terminal.send("type typed ahead")  # run as soon as connected, with no `wait` before it
    terminal.send("key Return")
    xev.wait_text("typed ahead\n")
    assert typed(xev.events()) == "typed ahead\n"
    terminal.send("close")
    assert terminal.wait_exit(15) == 0


def test_python_terminal_types_keys_clicks_and_scrolls(e2e: E2E, xev: XevFile) -> None:
    server = xev_server(e2e, xev.path)
    ticket = server.launch("alice", "x")
    terminal = e2e.connected(server, ticket)
    xev.ready()
    terminal.send("move 20 20")
    terminal.send("type Hello wörld! é€ Привет")
    terminal.send("key Return")
    terminal.send("key ctrl+c")
    xev.wait_text("Hello wörld! é€ Привет\n\x03")
    assert typed(xev.events()) == "Hello wörld! é€ Привет\n\x03"
    terminal.send("click 123 45")
    terminal.send("click 300 200 3")
    terminal.send("scroll -2")
    left, right = xev.wait_button(1), xev.wait_button(3)
    assert ((left.x, left.y), (right.x, right.y)) == ((123, 45), (300, 200))
    xev.wait_button(4, count=2)
    assert [e.button for e in xev.events() if e.kind == "ButtonPress"] == [1, 3, 4, 4]
    mark = terminal.mark()
    terminal.send("key ctrl+nosuchkey")
    terminal.wait_line(r"^key: unknown key 'nosuchkey'", start=mark)
    terminal.send("scroll x")  # said in words, not as Python's int() error
    terminal.wait_line(r"^scroll: expected whole numbers, got 'x' \(use: ", start=mark)
    terminal.send("help")
    terminal.wait_line(r"^commands: close, disconnect, screenshot FILE", start=mark)
    terminal.send("close")
    assert terminal.wait_exit() == 0
    sid = ticket["session_id"]
    assert not server.log.find(event="input.dropped", session_id=sid)
    assert server.log.wait_event(event="session.ended", session_id=sid)["code"] == 4000


def test_a_click_lands_on_the_right_pixel_after_a_resize(e2e: E2E, xev: XevFile) -> None:
    server = xev_server(e2e, xev.path)
    ticket = server.launch("alice", "x")
    raw = e2e.raw(server.ws_url)
    raw.handshake(hello_for(ticket, screen={"width": 640, "height": 480, "scale": 1}))
    raw.wait_message("started", timeout=10)
    xev.ready()
    raw.send(pointer(630, 470, 1))
    raw.send(pointer(630, 470, 0))
    first = xev.wait_button(1)
    assert (first.x, first.y) == (630, 470)
    raw.send({"type": "resize", "width": 1000, "height": 700})  # the window was resized
    raw.wait_message("screen", where=lambda m: m["width"] == 1000, timeout=10)
    raw.send(pointer(990, 690, 1))
    raw.send(pointer(990, 690, 0))
    raw.send(pointer(5000, 5000, 4))
    raw.send(pointer(5000, 5000, 0))
    second, clamped = xev.wait_button(1, count=2), xev.wait_button(3)
    assert (second.x, second.y) == (990, 690)
    assert (clamped.x, clamped.y) == (999, 699)  # beyond the screen: its last pixel
    raw.send({"type": "input", "kind": "pointer", "data": {"x": 1, "y": 2}})
    assert raw.wait_closed() == 4024
    closed = server.log.wait_event(event="connection.closed", code=4024)
    assert "data must have exactly" in closed["attrs"]["error"]


def test_no_key_or_button_is_stuck_after_a_disconnect_with_them_held(
    e2e: E2E, xev: XevFile
) -> None:
    server = xev_server(e2e, xev.path)
    ticket = server.launch("alice", "x")
    sid = ticket["session_id"]
    raw = e2e.raw(server.ws_url)
    raw.handshake(hello_for(ticket))
    raw.wait_message("started", timeout=10)
    xev.ready()
    for message in (pointer(50, 60, 1), key(0xFFE1, True), key(ord("Q"), True)):
        raw.send(message)
    xev.wait_text("Q")
    assert held(xev.events()) == {("button", 1), ("key", 50), ("key", 24)}  # Shift_L, q
    raw.ws.socket.shutdown(socket.SHUT_RDWR)  # the connection drops, no close handshake
    server.log.wait_event(event="session.disconnected", session_id=sid)
    xev.wait_released()  # the app saw every key and the button go back up
    # The session goes on: a resume types again.
    again = e2e.raw(server.ws_url)
    again.handshake(
        hello_for(ticket, resume=True, previous_connection_id=raw.connection_id, last_seq=0)
    )
    again.send(key(ord("z"), True))
    again.send(key(ord("z"), False))
    xev.wait_text("Qz")


def test_4005_when_the_x_server_dies_while_keys_arrive(e2e: E2E, xev: XevFile) -> None:
    # A session script outlives its X server here (xev dies with it, the script goes on), so
    # the input path's failure is what ends the session, not the app's exit (4018).
    server = xev_server(e2e, xev.path, then="exec sleep 60")
    ticket = server.launch("alice", "x")
    sid = ticket["session_id"]
    terminal = e2e.connected(server, ticket)
    xvfb = display_of(server, sid)["pid"]
    xev.ready()
    terminal.send("type before")
    xev.wait_text("before")
    os.kill(xvfb, signal.SIGKILL)  # the session's X server is gone; keys keep coming
    for _ in range(50):
        if terminal.count(r"^\[4005 ") or terminal.process.poll() is not None:
            break
        with contextlib.suppress(BrokenPipeError):  # it ended between the look and the send
            terminal.send("type x")
        time.sleep(0.05)
    terminal.wait_line(r"^\[4005 [A-Z_]+\] ")
    terminal.wait_line(r"^session over: 4005 ")
    assert terminal.wait_exit() == 1
    fault = server.log.wait_event(event="error.exception", code=4005, session_id=sid)
    assert fault["attrs"]["where"] == "input"
    assert "Error" in fault["attrs"]["error"]
    ended = server.log.wait_event(event="session.ended", session_id=sid)
    assert ended["code"] == 4005
    # The video pipeline saw the dead display too, but the input path said it first: the
    # connection was never closed with 4011.
    assert not server.log.find(event="connection.closed", code=4011, session_id=sid)
    assert terminal.log.wait_event(event="connection.closed")["code"] == 4005
    facts = diagnosis(sid, server.log, terminal.log)
    assert (facts["final_code"], facts["category"]) == (4005, "server_fault")
