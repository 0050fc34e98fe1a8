"""A terminal's log cannot overrule the server's: its `session.ended` or its user name never
replaces what the server logged for the session."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.e2e.harness import OPENFRP


def _write(path: Path, events: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return str(path)


def test_the_servers_end_and_identity_win_over_a_terminals_claims(tmp_path: Path) -> None:
    server = {"source": "server", "host": "h1", "session_id": "s-1", "user": "alice", "frp": 7}
    terminal = {**server, "source": "terminal", "user": "mallory", "host": "elsewhere"}
    server_log = _write(
        tmp_path / "server.jsonl",
        [
            {**server, "event": "session.created", "ts": "2026-12-02T10:00:00.000000Z"},
            {**server, "event": "session.started", "ts": "2026-12-02T10:00:01.000000Z"},
            {**server, "event": "session.ended", "code": 4004, "ts": "2026-12-02T10:00:05Z"},
        ],
    )
    terminal_log = _write(
        tmp_path / "terminal.jsonl",
        [
            {**terminal, "event": "session.created", "ts": "2026-12-02T09:00:00.000000Z"},
            {**terminal, "event": "session.ended", "code": 4000, "ts": "2026-12-02T10:00:09Z"},
        ],
    )
    done = subprocess.run(
        [OPENFRP, "analyze", server_log, terminal_log, "--session", "s-1", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    facts = json.loads(done.stdout)["session"]
    assert (facts["final_code"], facts["user"], facts["host"]) == (4004, "alice", "h1")
    assert facts["start_ts"].startswith("2026-12-02T10:00:00")
