"""POST /api/sessions within this host's limits: live sessions of one user, live sessions in
all, launches per minute; each refusal is 429 naming the limit, logged at most once in ten
seconds, and the sessions already running go on."""

from __future__ import annotations

from typing import Any

from openfrp.server.sessions import LIMIT_NEXT_STEPS
from tests.e2e.conftest import E2E
from tests.e2e.harness import ServerProcess

LIMITS = {"max_live_sessions_per_user": 2, "max_live_sessions": 4, "max_launches_per_minute": 7}


def _refused(server: ServerProcess, user: str) -> str:
    """The error of a launch that must be refused with 429, with what to do about it."""
    result = server.api("POST", "/api/sessions", body={"user": user})
    assert result.status == 429, result
    limit = str(result.body["error"]).split(": ")[1].split(" ")[0]
    assert result.body["next"] == LIMIT_NEXT_STEPS[limit]
    return str(result.body["error"])


def _end(server: ServerProcess, ticket: dict[str, Any]) -> None:
    assert server.api("DELETE", f"/api/sessions/{ticket['session_id']}").status == 200


def test_launches_stop_at_each_limit_and_running_sessions_go_on(e2e: E2E) -> None:
    server = e2e.server(server=LIMITS)
    first, _ = server.launch("alice"), server.launch("alice")
    assert "max_live_sessions_per_user (2)" in _refused(server, "alice")
    server.launch("bob")
    server.launch("carol")
    assert "max_live_sessions (4)" in _refused(server, "dave")

    _end(server, first)  # an ended session frees its place
    _end(server, server.launch("dave"))
    _end(server, server.launch("erin"))
    _end(server, server.launch("frank"))  # the 7th launch of this minute
    assert "max_launches_per_minute (7)" in _refused(server, "grace")

    refused = server.log.find(event="launch.refused")
    assert len(refused) == 1  # three refusals in ten seconds: one event
    assert refused[0]["attrs"] == {"limit": "max_live_sessions_per_user", "value": 2, "refused": 1}
    sessions = server.api("GET", "/api/sessions").body["sessions"]
    assert sorted(s["user"] for s in sessions if s["final_code"] is None) == [
        "alice",
        "bob",
        "carol",
    ]
