"""Ended sessions leave the registry after registry_retention (SQLite and Redis alike); live
ones stay, and the event log says how many went."""

from __future__ import annotations

from tests.e2e.conftest import E2E
from tests.e2e.harness import ServerProcess, bounded

RETENTION = 1.0
PATIENT = {"idle_timeout": 60.0}  # the live session must outlive the test


def _check_pruning(server: ServerProcess) -> None:
    ended, live = server.launch("alice"), server.launch("bob")
    assert server.api("DELETE", f"/api/sessions/{ended['session_id']}").status == 200
    pruned = server.log.wait_event(event="registry.pruned", timeout=RETENTION + 5)
    assert pruned["attrs"]["sessions"] == 1
    assert server.api("GET", f"/api/sessions/{ended['session_id']}").status == 404
    listed = server.api("GET", "/api/sessions").body["sessions"]
    assert [s["session_id"] for s in listed] == [live["session_id"]]
    for _ in bounded(RETENTION * 2, step=0.25):  # later rounds leave the live one alone
        assert server.session(live["session_id"])["state"] == "created"


def test_ended_sessions_leave_a_sqlite_registry(e2e: E2E) -> None:
    _check_pruning(e2e.server(account=PATIENT, server={"registry_retention": RETENTION}))


def test_ended_sessions_leave_a_redis_registry(e2e: E2E) -> None:
    redis = e2e.redis()
    options = {"registry_retention": RETENTION, "registry": redis.url}
    _check_pruning(e2e.server(account=PATIENT, server=options))
