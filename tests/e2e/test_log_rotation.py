"""The event log rotates at log_max_bytes, keeping log_keep old files, and follows an outside
rotation on SIGHUP; nothing written is lost or split."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.e2e.conftest import E2E
from tests.e2e.harness import bounded

MAX_BYTES = 4096


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_event_log_rotates_by_size_and_reopens_on_sighup(e2e: E2E) -> None:
    server = e2e.server(server={"log_max_bytes": MAX_BYTES, "log_keep": 2})
    path = server.log.path
    launched = [server.launch(f"user{n}")["session_id"] for n in range(8)]
    rotated = [path.with_name(f"{path.name}.{n}") for n in (1, 2, 3)]
    assert rotated[0].exists() and rotated[1].exists() and not rotated[2].exists()
    assert rotated[0].stat().st_size >= MAX_BYTES > path.stat().st_size
    kept = [e for p in (rotated[1], rotated[0], path) for e in _lines(p)]  # oldest first
    created = [e["session_id"] for e in kept if e["event"] == "session.created"]
    assert created == launched[-len(created) :] and len(created) >= 3

    moved = path.with_name("moved.jsonl")
    path.replace(moved)
    server.signal(signal.SIGHUP)
    for _ in bounded(5.0):
        if path.exists():
            break
    sid = server.launch("after")["session_id"]
    names = [e["event"] for e in _lines(path)]
    assert names[0] == "server.log_reopened" and "session.created" in names
    assert sid not in moved.read_text()
    assert server.api("GET", "/healthz").status == 200
