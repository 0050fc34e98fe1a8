"""The video pipeline failing for real: a killed display server is 4011, and a resume
gets a new display instead of a frozen picture."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.e2e.conftest import E2E
from tests.e2e.harness import hello_for
from tests.e2e.test_host_codes import BLINK, needs_xvfb, read_frames


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@needs_xvfb
def test_a_killed_display_is_4011_and_the_resume_gets_a_new_display(e2e: E2E) -> None:
    server = e2e.server(
        server={"display": "xvfb", "video_fps": 10},
        launchpads={
            "x": {"display_ready_timeout": 10.0, "video_failure_limit": 3, "app_command": BLINK}
        },
    )
    ticket = server.launch("alice", "x")
    sid = ticket["session_id"]
    raw = e2e.raw(server.ws_url)
    welcome = raw.handshake(hello_for(ticket))
    raw.wait_message("started", timeout=10)
    read_frames(raw, want=3, timeout=8)
    ready = server.log.wait_event(event="display.ready", session_id=sid)
    xvfb = ready["attrs"]["pid"]
    assert _parent_of(xvfb) == server.process.pid  # the server this test started runs it

    os.kill(xvfb, signal.SIGKILL)
    assert raw.wait_closed(timeout=10) == 4011
    closed = server.log.wait_event(event="connection.closed", code=4011, session_id=sid)
    assert closed["connection_id"] == welcome["connection_id"]
    errors = server.log.find(event="video.error", session_id=sid)
    assert len(errors) >= 3 and "exited" in errors[0]["attrs"]["error"]
    assert errors[-1]["attrs"]["consecutive"] >= 3
    server.log.wait_event(event="session.disconnected", code=4011, session_id=sid)
    renewed = server.log.wait_event(event="display.ready", session_id=sid, count=2, timeout=10)
    assert renewed["attrs"]["replaces"]["pid"] == xvfb and renewed["attrs"]["pid"] != xvfb

    back = e2e.raw(server.ws_url)
    back.handshake(hello_for(ticket, resume=True, previous_connection_id=welcome["connection_id"]))
    frames = read_frames(back, want=3, timeout=8)
    assert len(frames) == 3
    server.log.wait_event(event="session.resumed", session_id=sid)
    back.send({"type": "close"})
    assert back.wait_closed() == 4000
    assert server.session(sid)["final_code"] == 4000
