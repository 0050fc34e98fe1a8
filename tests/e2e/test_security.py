"""A user's token reaches that user's sessions and nothing else, over HTTP and over FRP7."""

from __future__ import annotations

import subprocess

from tests.e2e.conftest import E2E
from tests.e2e.harness import OPENFRP, hello_for


def test_a_users_token_cannot_reach_another_users_session(e2e: E2E) -> None:
    server = e2e.server()
    alice = server.launch("alice")
    alice2 = server.launch("alice")
    bob = server.launch("bob")
    a_key, b_key = alice["token"], bob["token"]
    bob_path = f"/api/sessions/{bob['session_id']}"

    # A token names one session: alice's lists that one, not her other session.
    listed = server.api("GET", "/api/sessions", key=a_key)
    assert listed.status == 200
    assert [s["session_id"] for s in listed.body["sessions"]] == [alice["session_id"]]
    assert server.api("GET", f"/api/sessions/{alice2['session_id']}", key=a_key).status == 404
    everyone = server.api("GET", "/api/sessions")
    assert len(everyone.body["sessions"]) == 3

    for method, path in (
        ("GET", bob_path),
        ("GET", f"{bob_path}/ticket"),
        ("DELETE", bob_path),
    ):
        result = server.api(method, path, key=a_key)
        assert result.status == 404, (method, path, result)
        assert "token" not in str(result.body)
    # Only the admin launches sessions or pushes messages; a bad or missing token is 401.
    assert server.api("POST", "/api/sessions", key=a_key, body={"user": "alice"}).status == 403
    assert server.api("POST", f"{bob_path}/messages", key=a_key, body={"body": {}}).status == 403
    assert server.api("GET", "/api/sessions", key=a_key + "x").status == 401
    assert server.api("GET", "/api/sessions", key=b_key.split(".")[0] + ".AAAA").status == 401

    # FRP7: a hello for bob's session carrying alice's token is refused with 4002.
    raw = e2e.raw(server.ws_url)
    raw.send(hello_for(bob, token=a_key))
    assert raw.wait_closed() == 4002
    rejected = server.log.wait_event(
        event="connection.rejected", code=4002, session_id=bob["session_id"]
    )
    assert rejected["attrs"]["field"] == "token"

    # Bob's session is untouched and still his: his terminal joins, his token closes it.
    assert server.session(bob["session_id"])["state"] == "created"
    term = e2e.connected(server, bob)
    assert server.api("GET", f"{bob_path}/ticket", key=b_key).status == 200
    closed = server.api("DELETE", bob_path, key=b_key)
    assert (closed.status, closed.body["final_code"]) == (200, 4019)
    term.wait_line(r"^\[4019 CLOSED_REMOTELY\] ")
    assert term.wait_exit() == 0
    ended = server.log.wait_event(event="session.ended", code=4019, session_id=bob["session_id"])
    assert ended["attrs"]["reason"] == "closed from outside by user bob"
    assert server.session(alice["session_id"])["state"] == "created"


def test_the_sessions_command_prints_a_table_an_operator_reads(e2e: E2E) -> None:
    """Headed columns; a user's token lists that user's session alone."""
    server = e2e.server()
    alice, bob = server.launch("alice"), server.launch("bob")

    def listed(*key: str) -> list[list[str]]:
        done = subprocess.run(
            [OPENFRP, "sessions", "--server", server.url, *key],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0 and done.stderr == "", done.stderr
        return [line.split() for line in done.stdout.splitlines()]

    head, *rows = listed("--admin-key", server.admin_key)
    assert head == ["SESSION", "USER", "LAUNCHPAD", "STATE", "CODE", "HOST", "CREATED", "(UTC)"]
    assert sorted(r[:3] for r in rows) == sorted(
        [[alice["session_id"], "alice", "desktop"], [bob["session_id"], "bob", "desktop"]]
    )
    assert all(r[4] == "-" and len(r) == 8 for r in rows)  # no final code yet, a date and time
    assert [r[0] for r in listed("--token", bob["token"])[1:]] == [bob["session_id"]]
