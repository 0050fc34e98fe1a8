"""What the Python terminal shows: the session's real Xvfb screen with a red xterm on it,
decoded and saved as a PNG, compared with the display's own pixels (read from the X server
by this test); over FRP7 (binary frames on the WebSocket) and FRP8 (a WebRTC video track)."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests.e2e.conftest import E2E, FRP8_PAD, frp8_server
from tests.e2e.harness import E2EError, ServerProcess, TerminalProcess
from tests.support.coturn import TURNSERVER, Coturn

RED = (255, 0, 0)
APP = "xterm -bg red -fg red -cr red -bw 0 -geometry 30x8+40+30"  # a red box, no text shows
SIZE = "640x400"
# Xvfb, the app and the terminal all start on a busy machine: no code for being slow here.
SLOW_START = {"display_ready_timeout": 10.0, "idle_timeout": 60.0, "connect_timeout": 15.0}
needs_x = pytest.mark.skipif(
    shutil.which("Xvfb") is None or shutil.which("xterm") is None, reason="needs Xvfb and xterm"
)


def read_png(path: Path) -> np.ndarray[Any, Any]:
    with av.open(str(path)) as container:
        return np.asarray(next(container.decode(video=0)).to_ndarray(format="rgb24"))


def session_display(server: ServerProcess, sid: str) -> Any:
    """An Xlib connection to the session's X server, as the app's own user (its cookie)."""
    from Xlib.display import Display

    number = server.log.wait_event(event="display.ready", session_id=sid)["attrs"]["display"]
    accounts = server.log.find(event="session.account", session_id=sid)
    saved = os.environ.get("XAUTHORITY")
    if accounts:
        os.environ["XAUTHORITY"] = str(Path(accounts[0]["attrs"]["home"]) / ".Xauthority")
    try:
        return Display(f":{number}")
    finally:
        if saved is None:
            os.environ.pop("XAUTHORITY", None)
        else:
            os.environ["XAUTHORITY"] = saved


def grab(server: ServerProcess, sid: str) -> np.ndarray[Any, Any]:
    """The session's screen as RGB, straight from its X server."""
    from Xlib import X

    x = session_display(server, sid)
    try:
        root = x.screen().root
        size = root.get_geometry()
        image = root.get_image(0, 0, size.width, size.height, X.ZPixmap, 0xFFFFFFFF)
        bgrx = np.frombuffer(image.data, np.uint8).reshape(size.height, size.width, 4)
        return np.ascontiguousarray(bgrx[:, :, 2::-1])
    finally:
        x.close()


def red_box(pixels: np.ndarray[Any, Any]) -> tuple[int, int, int, int]:
    """The bounding box (x0, y0, x1, y1) of the exactly red pixels."""
    ys, xs = np.nonzero((pixels == RED).all(axis=2))
    if not len(xs):
        return 0, 0, 0, 0
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def settled_screen(server: ServerProcess, sid: str, timeout: float = 10.0) -> np.ndarray[Any, Any]:
    """The screen once the xterm is up and nothing moves (two grabs 0.3 s apart agree)."""
    deadline = time.monotonic() + timeout
    before = grab(server, sid)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = grab(server, sid)
        x0, y0, x1, y1 = red_box(now)
        if (x1 - x0) * (y1 - y0) > 5000 and np.array_equal(before, now):
            return now
        before = now
    raise E2EError(f"no still red xterm on the display within {timeout}s")


def assert_shows(shot: np.ndarray[Any, Any], truth: np.ndarray[Any, Any]) -> None:
    """The terminal's picture is the display's: the same size, the red box where the display
    has it, and (lossy codecs allowed) nearly every pixel within a small error."""
    assert shot.shape == truth.shape
    x0, y0, x1, y1 = red_box(truth)
    assert (x0, y0) == (40, 30)  # where the app asked to be
    inner = shot[y0 + 4 : y1 - 4, x0 + 4 : x1 - 4].astype(int)
    assert np.abs(inner - RED).max(axis=2).mean() < 12
    error = np.abs(shot.astype(int) - truth.astype(int)).max(axis=2)
    assert (error > 48).mean() < 0.01, f"{(error > 48).mean():.2%} of pixels differ"


def frp8_session(
    e2e: E2E, coturn: Coturn, pad: dict[str, Any], extra: list[str]
) -> tuple[ServerProcess, str, TerminalProcess]:
    """An FRP8 server (FRP8_PAD with `pad`) on a real Xvfb, relay-only through `coturn`, and a
    Python terminal (with `extra` arguments) connected to a session of its own."""
    launchpad = {**FRP8_PAD, "display_ready_timeout": 10.0, **pad}
    server = frp8_server(e2e, coturn, launchpad=launchpad, display="xvfb")
    ticket = server.launch("bob", "rtc")
    sid = ticket["session_id"]
    terminal = e2e.terminal(ticket["connect_url"], extra=extra)
    terminal.wait_line(rf"^connected to {sid} as c-", timeout=20)
    return server, sid, terminal


def close_and_check(
    terminal: TerminalProcess, server: ServerProcess, sid: str, tmp: Path
) -> tuple[np.ndarray[Any, Any], dict[str, Any]]:
    """Take a screenshot by command and at the end; both match the display's pixels."""
    truth = settled_screen(server, sid)
    assert truth.shape == (400, 640, 3)  # the display took the size the hello asked for
    time.sleep(1.5)  # the stream has delivered the still picture (a repeat comes every second)
    mid = tmp / "mid.png"
    terminal.send(f"screenshot {mid}")
    size = f"{truth.shape[1]}x{truth.shape[0]}"
    terminal.wait_line(rf"^screenshot saved: {mid} \({size}\)$")
    assert_shows(read_png(mid), truth)
    terminal.send("close")
    assert terminal.wait_exit(15) == 0
    terminal.wait_line(rf"^screenshot saved: {tmp / 'end.png'} \({size}\)$")
    assert_shows(read_png(tmp / "end.png"), truth)
    line = terminal.wait_line(r"^video: (\d+) frames shown, ([\d.]+) fps, ([\d.]+) Mbit/s, codec")
    assert int(line.group(1)) >= 1 and float(line.group(3)) > 0
    final = [e for e in terminal.log.find(event="stats") if e["attrs"]["final"]]
    assert len(final) == 1 and final[0]["attrs"]["frames"] == int(line.group(1))
    attrs: dict[str, Any] = final[0]["attrs"]
    assert (attrs["width"], attrs["height"]) == (truth.shape[1], truth.shape[0])
    assert attrs["rtt_ms"] is not None and attrs["rtt_ms"] >= 0
    return truth, attrs


@needs_x
def test_frp7_the_terminal_shows_and_saves_the_real_screen(e2e: E2E, tmp_path: Path) -> None:
    server = e2e.server(
        server={"display": "xvfb"},
        launchpads={"x": {"app_command": APP, **SLOW_START}},
    )
    ticket = server.launch("alice", "x")
    sid = ticket["session_id"]
    extra = ["--screenshot", str(tmp_path / "end.png"), "--size", SIZE]
    terminal = e2e.terminal(ticket["connect_url"], extra=extra)
    terminal.wait_line(rf"^connected to {sid} as c-")
    _, stats = close_and_check(terminal, server, sid, tmp_path)
    assert stats["codec"] in ("h264", "palette", "jpeg", "rgb-zlib") and stats["track_frames"] == 0
    opened = server.log.find(event="connection.opened", session_id=sid)
    assert opened and opened[0]["frp"] == 7


@needs_x
@pytest.mark.skipif(TURNSERVER is None, reason="needs coturn (Debian coturn)")
def test_frp8_the_display_arrives_as_a_video_track(
    e2e: E2E, coturn: Coturn, tmp_path: Path
) -> None:
    extra = ["--screenshot", str(tmp_path / "end.png"), "--size", SIZE]
    server, sid, terminal = frp8_session(e2e, coturn, {"app_command": APP}, extra)
    answered = server.log.wait_event(event="peer.answered", session_id=sid)
    assert answered["attrs"]["video_track"] == "vp8"  # aiortc offers VP8 first
    _, stats = close_and_check(terminal, server, sid, tmp_path)
    # The red box is two colours: it came as palette tiles over the track, which the track
    # names (its frames came too: the first picture, and the repeats that keep it alive).
    assert stats["codec"] == "vp8" and 1 <= stats["track_frames"] <= stats["frames"]
    assert server.log.wait_event(event="session.ended", session_id=sid)["code"] == 4000


@needs_x
@pytest.mark.skipif(TURNSERVER is None, reason="needs coturn (Debian coturn)")
def test_frp8_a_killed_display_is_4011_and_the_resume_has_a_picture_again(
    e2e: E2E, coturn: Coturn, tmp_path: Path
) -> None:
    pad = {"app_command": "sleep 600", "video_failure_limit": 3}
    extra = ["--screenshot", str(tmp_path / "a.png")]
    server, sid, terminal = frp8_session(e2e, coturn, pad, extra)
    xvfb = server.log.wait_event(event="display.ready", session_id=sid)["attrs"]["pid"]
    os.kill(xvfb, signal.SIGKILL)  # the Xvfb this test's server started
    closed = server.log.wait_event(event="connection.closed", code=4011, session_id=sid)
    assert closed["frp"] == 8
    errors = server.log.find(event="video.error", session_id=sid)
    assert len(errors) >= 3 and "exited" in errors[0]["attrs"]["error"]
    terminal.wait_line(r"^\[4011 ")
    server.log.wait_event(event="display.ready", session_id=sid, count=2, timeout=10)
    terminal.log.wait_event(event="reconnect.succeeded", timeout=20)
    resumed = tmp_path / "resumed.png"
    deadline = time.monotonic() + 10
    while not resumed.exists():  # a picture of the new display reaches the terminal
        assert time.monotonic() < deadline, terminal.lines
        mark = terminal.mark()
        terminal.send(f"screenshot {resumed}")
        terminal.wait_line(rf"^screenshot {resumed}|^screenshot saved: {resumed}", start=mark)
        time.sleep(0.3)
    time.sleep(2)  # the new connection's track brings its frames (a repeat each second)
    terminal.send("close")
    assert terminal.wait_exit(15) == 0
    terminal.wait_line(rf"^screenshot saved: {tmp_path / 'a.png'} \(\d+x\d+\)$")
    final = next(e for e in terminal.log.find(event="stats") if e["attrs"]["final"])
    assert final["attrs"]["track_frames"] >= 1 and final["attrs"]["codec"] == "vp8"


def resized_by_command(
    server: ServerProcess, sid: str, terminal: TerminalProcess, tmp: Path
) -> None:
    """`size 800x480`: the display takes it and the picture shows it (and `stats` says so); a
    bad size is said and sends nothing."""
    terminal.send("size 80x")
    terminal.wait_line(r"^size: '80x' is not a size WxH \(e\.g\. 1280x720\)$")
    terminal.send("size 800x480")
    deadline = time.monotonic() + 10
    while True:  # the stream's next pictures have the new size
        mark = terminal.mark()
        terminal.send(f"screenshot {tmp / 'resized.png'}")
        line = terminal.wait_line(
            r"^screenshot (saved: \S+ \((\d+)x(\d+)\)|\S+: no picture yet)$", start=mark
        )
        if line.group(2) and (int(line.group(2)), int(line.group(3))) == (800, 480):
            break
        assert time.monotonic() < deadline, line.group(0)
        time.sleep(0.3)
    assert read_png(tmp / "resized.png").shape == (480, 800, 3)
    assert grab(server, sid).shape == (480, 800, 3)
    mark = terminal.mark()
    terminal.send("stats")  # the stream so far, mid-session, as the end's summary says it
    line = terminal.wait_line(r"^video: (\d+) frames shown, .* codec \w+, 800x480, ", start=mark)
    assert int(line.group(1)) >= 1


@needs_x
def test_the_size_command_resizes_the_display_over_frp7(e2e: E2E, tmp_path: Path) -> None:
    server = e2e.server(
        server={"display": "xvfb"}, launchpads={"x": {"app_command": APP, **SLOW_START}}
    )
    ticket = server.launch("erin", "x")
    terminal = e2e.terminal(ticket["connect_url"], extra=["--size", SIZE])
    terminal.wait_line(rf"^connected to {ticket['session_id']} as c-")
    # At once, while the session may still be starting (before its display, or before its
    # stream): the display ends up at the size asked last, not the hello's.
    resized_by_command(server, ticket["session_id"], terminal, tmp_path)
    terminal.send("close")
    assert terminal.wait_exit(15) == 0


@needs_x
@pytest.mark.skipif(TURNSERVER is None, reason="needs coturn (Debian coturn)")
def test_the_size_command_resizes_the_display_over_frp8(
    e2e: E2E, coturn: Coturn, tmp_path: Path
) -> None:
    server, sid, terminal = frp8_session(e2e, coturn, {"app_command": APP}, ["--size", SIZE])
    server.log.wait_event(event="session.started", session_id=sid)  # mid-session
    resized_by_command(server, sid, terminal, tmp_path)
    resized = server.log.wait_event(event="display.resized", session_id=sid)
    assert (resized["frp"], resized["attrs"]["was"]) == (8, [640, 400])
    assert resized["attrs"]["asked"] == [800, 480]
    terminal.send("close")
    assert terminal.wait_exit(15) == 0


@needs_x
def test_a_script_piped_in_waits_for_the_connection_and_its_end_disconnects(
    e2e: E2E, tmp_path: Path
) -> None:
    server = e2e.server(
        server={"display": "xvfb"}, launchpads={"x": {"app_command": APP, **SLOW_START}}
    )
    ticket = server.launch("pipe", "x")
    sid = ticket["session_id"]
    terminal = e2e.terminal(ticket["connect_url"], extra=["--size", SIZE])
    shot = tmp_path / "piped.png"
    for line in ("wait 2", f"screenshot {shot}", "wait forever"):  # all before the connection
        terminal.send(line)
    terminal.end_input()
    assert terminal.wait_exit(30) == 0
    order = [
        terminal.wait_line(pattern).string
        for pattern in (
            r"^connected to ",
            rf"^screenshot saved: {shot} \(640x400\)$",
            r"^wait: expected seconds from 0 to 3600, got 'forever'$",
            r"^input ended: disconnecting; the session stays open for a resume",
            r"^session over: disconnected \(the session can be resumed\)",
        )
    ]
    assert [terminal.lines.index(line) for line in order] == sorted(
        terminal.lines.index(line) for line in order
    )
    assert_shows(read_png(shot), settled_screen(server, sid))
    left = server.log.wait_event(event="session.disconnected", session_id=sid)
    assert left["attrs"]["reason"] == "terminal disconnect"
    assert not server.log.find(event="session.ended", session_id=sid)


def test_ctrl_c_disconnects_politely_and_a_second_one_stops_at_once(e2e: E2E) -> None:
    """Ctrl-C is the person leaving: the server hears a disconnect and keeps the session for
    a resume, where a connection dropped without a word would be a network loss (4029)."""
    server = e2e.server(server={"video_fps": 2})
    ticket = server.launch("ctrl-c")
    sid = ticket["session_id"]
    terminal = e2e.connected(server, ticket)
    terminal.process.send_signal(signal.SIGINT)
    assert terminal.wait_exit(15) == 130
    terminal.wait_line(r"^interrupted: disconnecting; the session stays open for a resume$")
    terminal.wait_line(r"^session over: disconnected \(the session can be resumed\)")
    left = server.log.wait_event(event="session.disconnected", session_id=sid)
    assert (left["code"], left["attrs"]["reason"]) == (None, "terminal disconnect")
    assert server.session(sid)["state"] == "disconnected"
    assert not server.log.find(event="session.ended", session_id=sid)

    again = e2e.terminal(ticket["connect_url"], stdin=False)
    again.wait_line(rf"^connected to {sid} as c-\w+ \(resumed\)")
    again.process.send_signal(signal.SIGINT)
    again.wait_line(r"^interrupted: disconnecting")
    again.process.send_signal(signal.SIGINT)  # the second one, whatever the first was doing
    assert again.wait_exit(15) == 130
    again.wait_line(r"^interrupted again: stopping now$")
