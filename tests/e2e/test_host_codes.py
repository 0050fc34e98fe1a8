"""Host codes produced by their real condition: the profile-mount hook (4022), the virtual
display (4027, and real Xvfb frames when it works), the session's app and the guest command
(4018, 4015), and a token owner live in another session (4006).

Each test asserts what the terminal (or a raw client) saw and what both event logs hold.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import zlib
from pathlib import Path

import pytest

from openfrp.events import parse_ts
from openfrp.media.wire import CODEC_RGB_ZLIB, parse_frame
from tests.e2e.conftest import E2E
from tests.e2e.harness import OPENFRP, E2EError, RawClient, bounded, diagnosis, hello_for

WIDTH, HEIGHT = 1280, 720  # a terminal that does not say its window size
needs_xvfb = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")


def popup(code: int) -> str:
    return rf"^\[{code} [A-Z_]+\] "


def children(pid: int) -> list[str]:
    """Command names of the direct children of `pid` (from /proc)."""
    names = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        for kid in kids:
            try:
                names.append(Path(f"/proc/{kid}/comm").read_text().strip())
            except OSError:
                continue
    return names


def running_with_args(*argv: str) -> list[int]:
    """PIDs of live processes whose command line is exactly `argv` (zombies have none)."""
    want = ("\0".join(argv) + "\0").encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if (proc / "cmdline").read_bytes() == want:
                found.append(int(proc.name))
        except OSError:
            continue
    return found


# -- 4022 ------------------------------------------------------------------------------------


def test_4022_profile_mount_fails_or_times_out(e2e: E2E) -> None:
    server = e2e.server(
        launchpads={
            "failing": {
                "profile_mount_command": "sh -c 'echo no such share >&2; exit 1'",
            },
            "hanging": {"profile_mount_command": "sleep 5", "profile_mount_timeout": 0.5},
            # A script whose command is still running holds the hook's stderr open.
            "script": {
                "profile_mount_command": "sh -c 'sleep 6.25; true'",
                "profile_mount_timeout": 0.5,
            },
        }
    )
    failing = server.launch("alice", "failing")
    hanging = server.launch("bob", "hanging")
    script = server.launch("carol", "script")
    cases = [
        (failing, "profile mount exited 1: no such share", None),
        (hanging, "profile mount timed out after 0.5s", (0.4, 2.0)),
        (script, "profile mount timed out after 0.5s", (0.4, 2.0)),
    ]
    terms = [e2e.terminal(t["connect_url"], name=t["config"]["launchpad"]) for t, _, _ in cases]

    for (ticket, error, window), term in zip(cases, terms, strict=True):
        sid = ticket["session_id"]
        term.wait_line(r"^\[4022 PROFILE_MOUNT_FAILED\] Your user profile could not be loaded")
        term.wait_line(r"^session over: 4022 PROFILE_MOUNT_FAILED")
        assert term.wait_exit() == 1  # an Error code: the terminal exits non-zero
        assert term.count(r"^connected to ") <= 1
        closed = term.log.wait_event(event="connection.closed", code=4022)
        assert closed["session_id"] == sid

        ended = server.log.wait_event(event="session.ended", code=4022, session_id=sid)
        assert ended["attrs"]["error"] == error
        assert ended["severity"] == "error"
        starting = server.log.wait_event(event="session.starting", session_id=sid)
        if window is not None:
            took = (parse_ts(ended["ts"]) - parse_ts(starting["ts"])).total_seconds()
            assert window[0] <= took <= window[1], took
        names = server.log.names(sid, "server")
        assert "session.started" not in names
        assert names[-2:] == ["connection.closed:4022", "session.ended:4022"]
        assert server.session(sid)["final_code"] == 4022
    # The timed-out hooks were killed, the script's own child included, not left behind.
    assert "sleep" not in children(server.process.pid)
    assert not running_with_args("sleep", "6.25")


# -- 4027 and a real Xvfb display --------------------------------------------------------------


@needs_xvfb
def test_4027_xvfb_display_not_ready_in_time(e2e: E2E) -> None:
    server = e2e.server(
        server={"display": "xvfb"}, launchpads={"slow": {"display_ready_timeout": 0.001}}
    )
    ticket = server.launch("alice", "slow")
    sid = ticket["session_id"]
    term = e2e.terminal(ticket["connect_url"])

    term.wait_line(r"^\[4027 DISPLAY_NOT_READY\] The remote display did not start")
    term.wait_line(r"^session over: 4027 DISPLAY_NOT_READY")
    assert term.wait_exit() == 1
    term.log.wait_event(event="connection.closed", code=4027)

    ended = server.log.wait_event(event="session.ended", code=4027, session_id=sid)
    assert ended["attrs"]["error"] == "display not ready within 0.001s"
    assert "session.started" not in server.log.names(sid, "server")
    assert server.session(sid)["final_code"] == 4027
    # The Xvfb that was too slow is stopped with the session.
    for _ in bounded(5.0):
        if "Xvfb" not in children(server.process.pid):
            break
    assert "Xvfb" not in children(server.process.pid)


# A real X client that keeps the screen changing: the root turns red and blue, about 13 times
# a second (a period that no frame rate of the tests samples in step).
_XSETROOT = shutil.which("xsetroot") or "xsetroot"
BLINK = (
    f'sh -c \'while :; do {_XSETROOT} -solid "#ff0000"; sleep 0.07;'
    f' {_XSETROOT} -solid "#0000ff"; sleep 0.07; done\''
)


def read_frames(raw: RawClient, want: int, timeout: float) -> list[tuple[int, int, int, int]]:
    """Read and acknowledge video frames until `want` came; (number, width, height, first rgb).
    Frames come only when the screen changes: a ping every 0.2 s without one keeps the session
    from taking the terminal for gone."""
    frames: list[tuple[int, int, int, int]] = []
    deadline = time.monotonic() + timeout
    while len(frames) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            raise E2EError(f"only {len(frames)} of {want} frames within {timeout}s")
        try:
            data = raw.recv(timeout=min(left, 0.2))
        except TimeoutError:
            raw.send({"type": "ping", "id": len(frames)})
            continue
        if not isinstance(data, bytes):
            continue
        parsed = parse_frame(data)
        assert parsed is not None and parsed[0].codec == CODEC_RGB_ZLIB
        header, rgb = parsed[0], zlib.decompress(parsed[1])
        number, width, height = header.number, header.width, header.height
        assert len(rgb) == width * height * 3
        pixel = int.from_bytes(rgb[(height // 2 * width + width // 2) * 3 :][:3])
        frames.append((number, width, height, pixel))
        raw.send({"type": "frame_ack", "frame": number})
    return frames


@needs_xvfb
def test_a_real_xvfb_session_streams_real_frames(e2e: E2E) -> None:
    paint = shutil.which("xsetroot")
    app = BLINK if paint else "sleep 60"  # frames are sent when the screen changes
    server = e2e.server(
        server={"display": "xvfb", "video_fps": 5},
        launchpads={"x": {"display_ready_timeout": 10.0, "app_command": app}},
    )
    ticket = server.launch("alice", "x")
    sid = ticket["session_id"]
    raw = e2e.raw(server.ws_url)
    raw.handshake(hello_for(ticket))
    raw.wait_message("started", timeout=10)
    started = server.log.wait_event(event="session.started", session_id=sid)
    assert "Xvfb" in children(server.process.pid)

    began = time.monotonic()
    frames = read_frames(raw, want=10, timeout=8)
    took = time.monotonic() - began
    numbers = [f[0] for f in frames]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), numbers
    assert {(w, h) for _, w, h, _ in frames} == {(WIDTH, HEIGHT)}
    assert took >= 1.0, took  # at most 5 frames per second (the changes come faster)
    if paint:
        colours = {pixel for *_, pixel in read_frames(raw, 6, 5)}
        assert colours == {0xFF0000, 0x0000FF}  # what the app draws on the display

    raw.send({"type": "close"})
    assert raw.wait_closed() == 4000
    ended = server.log.wait_event(event="session.ended", code=4000, session_id=sid)
    assert parse_ts(ended["ts"]) > parse_ts(started["ts"])
    assert not server.log.find(event="video.error", session_id=sid)
    for _ in bounded(5.0):
        if "Xvfb" not in children(server.process.pid):
            break
    assert "Xvfb" not in children(server.process.pid)


# -- 4018 and 4015 from inside the session ---------------------------------------------------


def test_4018_when_the_app_exits(e2e: E2E) -> None:
    server = e2e.server(launchpads={"app": {"app_command": "sleep 1"}})
    ticket = server.launch("alice", "app")
    sid = ticket["session_id"]
    term = e2e.connected(server, ticket)

    term.wait_line(r"^\[4018 GUEST_LOGOFF\] ", timeout=5)
    term.wait_line(r"^session over: 4018 GUEST_LOGOFF")
    assert term.wait_exit() == 0
    term.log.wait_event(event="connection.closed", code=4018)

    started = server.log.wait_event(event="session.started", session_id=sid)
    ended = server.log.wait_event(event="session.ended", code=4018, session_id=sid)
    assert ended["attrs"]["reason"] == "the session's app exited with status 0"
    lasted = (parse_ts(ended["ts"]) - parse_ts(started["ts"])).total_seconds()
    assert 0.7 <= lasted <= 2.5, lasted
    assert server.log.names(sid, "server")[-2:] == ["connection.closed:4018", "session.ended:4018"]


def test_4018_when_the_app_is_killed_by_a_signal_is_a_fault(e2e: E2E) -> None:
    server = e2e.server(launchpads={"app": {"app_command": "sh -c 'sleep 0.5; kill -KILL $$'"}})
    ticket = server.launch("alice", "app")
    sid = ticket["session_id"]
    term = e2e.connected(server, ticket)

    term.wait_line(r"^\[4018 GUEST_LOGOFF\] ", timeout=5)
    ended = server.log.wait_event(event="session.ended", code=4018, session_id=sid)
    assert ended["attrs"]["reason"] == "the session's app was killed by signal 9 (SIGKILL)"
    assert ended["attrs"]["exit_status"] == -9
    assert ended["severity"] == "error"
    assert term.wait_exit() == 0
    facts = diagnosis(sid, server.log, term.log)
    assert (facts["final_code"], facts["category"]) == (4018, "host_display_fault")


@needs_xvfb
def test_an_app_that_dies_with_its_display_ends_the_session_with_4005(e2e: E2E) -> None:
    """Xvfb killed under an X app: the app's exit (an X I/O error) is the display's failure,
    not a logoff, whichever of the two the server notices first."""
    server = e2e.server(
        server={"display": "xvfb", "video_fps": 5},
        launchpads={"x": {"display_ready_timeout": 10.0, "app_command": "xterm"}},
    )
    ticket = server.launch("alice", "x")
    sid = ticket["session_id"]
    term = e2e.connected(server, ticket)
    ready = server.log.wait_event(event="display.ready", session_id=sid)["attrs"]
    server.log.wait_event(event="session.started", session_id=sid)
    time.sleep(1.0)  # the app has opened its window

    os.kill(ready["pid"], signal.SIGKILL)
    term.wait_line(r"^\[4005 SERVER_AUX_ERROR\] ", timeout=8)
    assert term.wait_exit() == 1
    fault = server.log.wait_event(event="error.exception", code=4005, session_id=sid)
    assert fault["attrs"]["where"] == "display"
    assert f"Xvfb :{ready['display']} (pid {ready['pid']})" in fault["attrs"]["error"]
    assert "the session's app exited with status" in fault["attrs"]["error"]
    ended = server.log.wait_event(event="session.ended", session_id=sid)
    assert ended["code"] == 4005 and ended["attrs"]["where"] == "display"
    assert not server.log.find(code=4018, session_id=sid)


@pytest.mark.parametrize(
    ("action", "code", "name"),
    [("logoff", 4018, "GUEST_LOGOFF"), ("shutdown", 4015, "GUEST_SHUTDOWN")],
)
def test_guest_command_run_by_the_app(
    e2e: E2E, action: str, code: int, name: str, shared_tmp: Path
) -> None:
    marker = shared_tmp / f"guest-{action}.txt"  # the app may run as another user
    app = f"sh -c 'sleep 0.5; echo $OPENFRP_SESSION_ID > {marker}; openfrp guest {action}'"
    server = e2e.server(launchpads={"guest": {"app_command": app}})
    ticket = server.launch("alice", "guest")
    sid = ticket["session_id"]
    term = e2e.connected(server, ticket)

    term.wait_line(rf"^\[{code} {name}\] ", timeout=8)
    term.wait_line(rf"^session over: {code} {name}")
    assert term.wait_exit() == 0
    term.log.wait_event(event="connection.closed", code=code)

    ended = server.log.wait_event(event="session.ended", code=code, session_id=sid)
    assert ended["attrs"]["reason"] == f"guest {action}"
    assert marker.read_text().strip() == sid  # the app ran inside this session
    assert server.session(sid)["final_code"] == code
    # The app's exit after the end does not end the session a second time.
    time.sleep(0.3)
    assert len(server.log.find(event="session.ended", session_id=sid)) == 1


def test_guest_command_outside_a_session_fails_cleanly() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENFRP_GUEST")}
    done = subprocess.run(
        [OPENFRP, "guest", "logoff"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0
    assert "not inside an openfrp session" in done.stderr
    assert "Traceback" not in done.stderr


# -- 4006 across sessions --------------------------------------------------------------------


def test_4006_owner_live_in_another_session_refused(e2e: E2E) -> None:
    server = e2e.server()
    first_ticket = server.launch("alice")
    second_ticket = server.launch("alice")
    first = e2e.connected(server, first_ticket, name="first")
    live = server.log.wait_event(
        event="connection.established", session_id=first_ticket["session_id"]
    )

    second = e2e.terminal(second_ticket["connect_url"], name="second")
    second.wait_line(popup(4006))
    second.wait_line(r"^open elsewhere: 4006 ALREADY_IN_SESSION")
    assert second.wait_exit() == 1  # refused: it joined nothing
    second.log.wait_event(event="connection.closed", code=4006)

    rejected = server.log.wait_event(
        event="connection.rejected", code=4006, session_id=second_ticket["session_id"]
    )
    assert rejected["attrs"]["live_connection_id"] == live["connection_id"]
    assert second.count(r"^connected to ") == 0
    # The first session is untouched; the second is still waiting for a connection.
    server.push(first_ticket["session_id"], {"still": "first"})
    first.wait_line(r'^msg 1 \{"still": "first"\}$')
    assert not server.log.find(event="connection.closed", session_id=first_ticket["session_id"])
    assert server.session(second_ticket["session_id"])["state"] == "created"
    for ticket in (first_ticket, second_ticket):
        assert not server.log.find(event="session.ended", session_id=ticket["session_id"])


def test_4006_owner_live_in_another_session_taken_over(e2e: E2E) -> None:
    server = e2e.server(launchpads={"shared": {"duplicate_policy": "takeover"}})
    older_ticket = server.launch("alice", "shared")
    newer_ticket = server.launch("alice", "shared")
    older_sid, newer_sid = older_ticket["session_id"], newer_ticket["session_id"]
    older = e2e.connected(server, older_ticket, name="older")

    newer = e2e.connected(server, newer_ticket, name="newer")
    older.wait_line(popup(4006))
    older.wait_line(r"^open elsewhere: 4006 ALREADY_IN_SESSION")
    assert older.wait_exit() == 0
    older.log.wait_event(event="connection.closed", code=4006)

    displaced = server.log.wait_event(event="connection.closed", code=4006, session_id=older_sid)
    assert displaced["attrs"]["reason"] == f"taken over by session {newer_sid}"
    server.log.wait_event(event="session.disconnected", code=4006, session_id=older_sid)
    assert not server.log.find(event="connection.rejected", session_id=newer_sid)

    server.push(newer_sid, {"now": "newer"})
    newer.wait_line(r'^msg 1 \{"now": "newer"\}$')
    assert server.session(older_sid)["state"] == "disconnected"  # resumable, not ended
    assert server.session(newer_sid)["state"] == "active"
    for sid in (older_sid, newer_sid):
        assert not server.log.find(event="session.ended", session_id=sid)
