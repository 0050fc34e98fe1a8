"""`openfrp analyze` prints what a log says, never what it would do to a terminal: rich markup
in a user name or client string is text, and escape sequences are shown, not sent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.e2e.harness import OPENFRP

USER = "[/x]mallory\x1b[31m"
CLIENT = "[bold red]x[/] \x1b]0;pwned\x07"


def _log(path: Path) -> Path:
    base = {"source": "server", "host": "h[/]", "session_id": "s-1", "user": USER, "frp": 7}
    base |= {"account": "a", "launchpad": "[link=file:///etc]pad"}
    events = [
        {**base, "event": "session.created", "ts": "2026-12-02T10:00:00.000000Z"},
        {
            **base,
            "event": "connection.established",
            "ts": "2026-12-02T10:00:01.000000Z",
            "attrs": {"client": CLIENT},
        },
        {**base, "event": "session.ended", "code": 4004, "ts": "2026-12-02T10:00:05.000000Z"},
    ]
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_markup_and_escape_sequences_in_a_log_are_printed_as_text(tmp_path: Path) -> None:
    log = _log(tmp_path / "hostile.jsonl")
    for extra in ([], ["--session", "s-1"]):
        done = subprocess.run(
            [OPENFRP, "analyze", str(log), *extra], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        assert "\x1b" not in done.stdout and "\x07" not in done.stdout
        assert "[/x]mallory\\x1b[31m" in done.stdout
    assert "[bold red]x[/] \\x1b]0;pwned\\x07" in done.stdout  # the timeline names the client
