"""The event log's disk fills up under a running server: it says so at once (stderr, /readyz),
refuses new sessions with a clear reason, keeps the live session going, and when room comes
back it logs again, starting with a `log.gap` record of what was lost."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import E2E
from tests.e2e.harness import bounded, hello_for, outcome


@pytest.fixture
def log_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    disk = tmp_path / "log-disk"
    disk.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "openfrp-test", str(disk)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=10)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


def _readyz(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _events(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line the full disk cut short
    return out


def test_a_full_log_disk_is_said_refuses_launches_and_leaves_a_gap_record(
    e2e: E2E, log_disk: Path
) -> None:
    server = e2e.server(
        account={"receive_timeout": 30.0, "idle_timeout": 60.0}, server={"log_dir": str(log_disk)}
    )
    log = log_disk / "server-events.jsonl"
    ticket = server.launch("alice")
    raw = e2e.raw(server.ws_url)
    raw.handshake(hello_for(ticket))

    filler = _fill(log_disk)
    stranger = e2e.raw(server.ws_url)  # its rejection is an event the disk cannot take
    stranger.send({"type": "hello"})
    stranger.wait_closed()
    for _ in bounded(5.0):
        if "write failed" in server.stderr():
            break
    assert "events are being lost" in server.stderr()
    status, body = _readyz(server.url)
    assert status == 503 and body["checks"]["event_log"] != "ok"
    refused = server.api("POST", "/api/sessions", body={"user": "bob"})
    assert refused.status == 503 and "event log" in refused.body["error"]
    raw.send({"type": "ping", "id": 1})
    assert outcome(raw) == ("pong", 1)  # the live session goes on

    filler.unlink()
    assert server.launch("carol")["session_id"]
    events = _events(log)
    gap = next(e for e in events if e["event"] == "log.gap")
    assert gap["attrs"]["lost"] >= 1 and "No space" in gap["attrs"]["error"]
    names = [e["event"] for e in events]
    assert names.index("log.gap") < names.index("session.created", names.index("log.gap"))
    assert _readyz(server.url)[0] == 200
