"""A SQLite registry deleted or made read-only under a running server is noticed: /readyz says
so, launches are refused, and the live session goes on (its terminal is still served); writes
held meanwhile are done once the file can be written again. A `-shm` file truncated or made
read-only cannot end the server with SIGBUS: it maps none."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import E2E
from tests.e2e.harness import hello_for, outcome


def _readyz(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_deleted_sqlite_registry_is_noticed_and_live_sessions_go_on(e2e: E2E) -> None:
    server = e2e.server(account={"receive_timeout": 10.0, "idle_timeout": 30.0})
    ticket = server.launch("alice")
    raw = e2e.raw(server.ws_url)
    raw.handshake(hello_for(ticket))
    assert _readyz(server.url)[0] == 200

    registry = Path(server.root / "data" / "registry.sqlite3")
    for leftover in registry.parent.glob("registry.sqlite3*"):
        leftover.unlink()
    status, body = _readyz(server.url)
    assert status == 503 and "deleted or replaced" in body["checks"]["registry"]
    refused = server.api("POST", "/api/sessions", body={"user": "bob"})
    assert refused.status == 503
    assert str(registry) not in refused.body["error"]  # no internal path in an answer

    raw.send({"type": "ping", "id": 9})
    assert outcome(raw) == ("pong", 9)  # the live session is still served
    assert not registry.exists()  # nothing recreated it behind the operator's back


def test_a_truncated_or_read_only_shm_file_cannot_end_the_server(e2e: E2E) -> None:
    server = e2e.server(account={"receive_timeout": 10.0, "idle_timeout": 30.0})
    ticket = server.launch("alice")
    raw = e2e.raw(server.ws_url)
    raw.handshake(hello_for(ticket))
    shm = Path(server.root / "data" / "registry.sqlite3-shm")
    if shm.exists():  # a mapped -shm cut short under the server: SIGBUS at its next access
        os.truncate(shm, 0)
    else:
        shm.touch()
    shm.chmod(0o400)
    for user in ("bob", "carol"):
        server.launch(user)
    assert (
        server.api("DELETE", f"/api/sessions/{server.launch('dave')['session_id']}").status == 200
    )
    assert server.process.poll() is None, server.stderr()[-2000:]
    raw.send({"type": "ping", "id": 4})
    assert outcome(raw) == ("pong", 4)
    assert _readyz(server.url)[0] == 200
    assert len(server.api("GET", "/api/sessions").body["sessions"]) == 4


def _read_only(paths: list[Path], on: bool) -> None:
    """Read-only even for root (the immutable attribute); chmod for anyone else."""
    for path in paths:
        if os.geteuid() != 0:
            path.chmod(0o400 if on else 0o600)
            continue
        done = subprocess.run(
            ["chattr", "+i" if on else "-i", str(path)], capture_output=True, timeout=10
        )
        if done.returncode != 0:
            pytest.skip(f"cannot make {path} immutable: {done.stderr.decode(errors='replace')}")


def test_a_read_only_registry_is_said_and_its_writes_are_held(e2e: E2E) -> None:
    server = e2e.server(account={"receive_timeout": 10.0, "idle_timeout": 30.0})
    ticket, other = server.launch("alice"), server.launch("bob")
    sid = ticket["session_id"]
    raw = e2e.raw(server.ws_url)
    raw.handshake(hello_for(ticket))
    registry = Path(server.root / "data" / "registry.sqlite3")
    files = [p for p in (registry, Path(f"{registry}-wal")) if p.exists()]
    _read_only(files, True)
    try:
        status, body = _readyz(server.url)
        assert status == 503 and "read-only" in body["checks"]["registry"]
        refused = server.api("POST", "/api/sessions", body={"user": "carol"})
        assert refused.status == 503 and str(registry) not in refused.body["error"]
        raw.send({"type": "ping", "id": 7})
        assert outcome(raw) == ("pong", 7)  # the live session goes on
        assert server.api("DELETE", f"/api/sessions/{other['session_id']}").status == 200
        server.log.wait_event(event="session.ended", session_id=other["session_id"])
    finally:
        with contextlib.suppress(BaseException):
            _read_only(files, False)
    server.log.wait_event(event="registry.replayed", timeout=15)
    assert server.session(other["session_id"])["final_code"] == 4019
    assert server.session(sid)["state"] == "active"
    assert _readyz(server.url)[0] == 200
    stderr = server.stderr()
    assert "read-only" in stderr and "Traceback" not in stderr
    server.stop()  # the file is the server's alone while it runs
    with contextlib.closing(sqlite3.connect(registry)) as db:
        row = db.execute(
            "SELECT state, final_code FROM sessions WHERE session_id=?", (other["session_id"],)
        ).fetchone()
    assert row == ("ended", 4019)  # the write held while the file was read-only
