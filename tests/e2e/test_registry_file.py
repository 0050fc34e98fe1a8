"""A SQLite registry deleted under a running server is noticed: /readyz says so, launches are
refused, and the live session goes on (its terminal is still served)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

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
