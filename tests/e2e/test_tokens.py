"""Tokens against the real server: each names one session, expires, dies with its session,
can be revoked, and a signature with junk characters is refused. The connect link carries
its token in the fragment, which no server or proxy log ever sees."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from openfrp.terminal.command import fetch_ticket
from tests.e2e.browser import CHROMIUM, Browser
from tests.e2e.conftest import E2E
from tests.e2e.harness import ServerProcess, hello_for


def _link_token(ticket: dict[str, Any]) -> str:
    parts = urllib.parse.urlsplit(ticket["connect_url"])
    assert parts.query == "" and parts.fragment.startswith("token=")
    return urllib.parse.parse_qs(parts.fragment)["token"][0]


def _join(server: ServerProcess, ticket: dict[str, Any], token: str) -> dict[str, Any] | None:
    """What the signaling hub answers a join within a second (None: nothing, still open)."""
    url = f"ws://127.0.0.1:{server.port}/signal"
    with connect(url, open_timeout=5, close_timeout=1) as ws:
        join = {"type": "join", "session_id": ticket["session_id"], "token": token, "host": "x"}
        ws.send(json.dumps(join))
        try:
            answer: dict[str, Any] = json.loads(ws.recv(timeout=1))
        except TimeoutError:
            return None
        except ConnectionClosed:
            return {"type": "closed"}
        return answer


def test_a_token_names_one_session_expires_and_ends_with_it(e2e: E2E) -> None:
    # (open_timeout: the unopened session outlives its link, for its own token to join)
    server = e2e.server(launchpads={"brief": {"link_ttl": 1.5, "open_timeout": 60.0}})
    first = server.launch("alice")
    second = server.launch("alice")
    brief = server.launch("alice", "brief")
    link = _link_token(first)
    sid, other = first["session_id"], f"/api/sessions/{second['session_id']}"

    # The link's token fetches its own session's ticket, and reaches nothing else of alice's.
    ticket = server.api("GET", f"/api/sessions/{sid}/ticket", key=link)
    assert ticket.status == 200 and ticket.body["session_id"] == sid
    listed = server.api("GET", "/api/sessions", key=link)
    assert [s["session_id"] for s in listed.body["sessions"]] == [sid]
    for method, path in (("GET", other), ("GET", f"{other}/ticket"), ("DELETE", other)):
        assert server.api(method, path, key=link).status == 404, (method, path)
    assert server.session(second["session_id"])["state"] == "created"

    # Junk characters inside the signature do not verify (a lax base64 decoder skips them).
    head, claims, signature = link.split(".")
    junk = f"{head}.{claims}.{signature[:10]}!*{signature[10:]}"
    refused = server.api("GET", f"/api/sessions/{sid}/ticket", key=junk)
    assert refused.status == 401 and "base64url" in refused.body["error"]

    # The brief launchpad's link expires after link_ttl; the session's own token does not.
    brief_link, brief_path = _link_token(brief), f"/api/sessions/{brief['session_id']}/ticket"
    assert server.api("GET", brief_path, key=brief_link).status == 200
    claims = json.loads(base64.urlsafe_b64decode(brief_link.split(".")[1] + "=="))
    assert 1 <= claims["exp"] - claims["iat"] <= 2  # link_ttl in whole seconds
    time.sleep(max(0.0, claims["exp"] - time.time()) + 0.2)
    expired = server.api("GET", brief_path, key=brief_link)
    assert expired.status == 401 and "expired" in expired.body["error"]
    assert server.api("GET", brief_path, key=brief["token"]).status == 200

    # Once the session ends, its tokens get 410 and the final code, nothing more.
    assert server.api("DELETE", f"/api/sessions/{sid}").status == 200
    for method, path in (
        ("GET", f"/api/sessions/{sid}/ticket"),
        ("DELETE", f"/api/sessions/{sid}"),
    ):
        for key in (link, first["token"]):
            after = server.api(method, path, key=key)
            assert (after.status, after.body["final_code"]) == (410, 4019), (method, after)
    assert server.api("GET", "/api/sessions", key=link).status == 410
    assert server.session(second["session_id"])["state"] == "created"

    # No token reached the server's output or its event log.
    seen = server.log.path.read_text() + server.stderr()
    seen += (server.root / "server-stdout.txt").read_text()
    for token in (link, first["token"], brief_link, brief["token"]):
        assert token not in seen


def test_revoked_tokens_are_refused_everywhere_and_a_fresh_link_works(e2e: E2E) -> None:
    server = e2e.server()
    ticket = server.launch("bob")
    sid, link = ticket["session_id"], _link_token(ticket)
    path = f"/api/sessions/{sid}"
    assert server.api("POST", f"{path}/revoke", key=ticket["token"]).status == 403

    fresh = server.api("POST", f"{path}/revoke")
    assert fresh.status == 200
    revoked = server.log.wait_event(event="tokens.revoked", session_id=sid)
    assert revoked["attrs"]["generation"] == 1
    for old in (link, ticket["token"]):
        answer = server.api("GET", f"{path}/ticket", key=old)
        assert answer.status == 401 and "revoked" in answer.body["error"]
    refused = _join(server, ticket, ticket["token"])
    assert refused is not None and "revoked" in refused.get("error", "")
    raw = e2e.raw(server.ws_url)
    raw.send(hello_for(ticket))
    assert raw.wait_closed() == 4002
    rejected = server.log.wait_event(event="connection.rejected", code=4002, session_id=sid)
    assert rejected["attrs"]["problem"] == "token has been revoked"

    # The new link resolves as the Python terminal reads it, and its ticket joins.
    new_ticket = fetch_ticket(fresh.body["connect_url"], timeout=5)
    assert new_ticket["session_id"] == sid and new_ticket["token"] != ticket["token"]
    assert _join(server, ticket, new_ticket["token"]) is None  # joined, waiting for the peer
    welcome = e2e.raw(server.ws_url).handshake(hello_for(ticket, token=new_ticket["token"]))
    assert welcome["session_id"] == sid


def test_revoke_ends_a_live_terminal_with_4002_and_its_token_cannot_resume(e2e: E2E) -> None:
    """An operator revokes to cut someone off: the terminal already in is ended (4002, its
    message shown, exit 1), the server's log says why, the old token resumes nothing, and the
    session waits for whoever gets the fresh link."""
    server = e2e.server(account={"idle_timeout": 30.0})
    ticket = server.launch("bob")
    sid, path = ticket["session_id"], f"/api/sessions/{ticket['session_id']}/revoke"
    term = e2e.connected(server, ticket, name="revoked")
    live = server.log.wait_event(event="connection.established", session_id=sid)

    fresh = server.api("POST", path)
    assert fresh.status == 200
    term.wait_line(r"^\[4002 CONFIG_MISMATCH\] .*revoked")
    term.wait_line(r"^session over: 4002 CONFIG_MISMATCH")
    assert term.wait_exit() == 1
    seen = term.log.wait_event(event="connection.closed", code=4002)
    assert seen["attrs"]["close_code"] == 4002
    assert term.count(r"^\[410[236] ") == 0  # refused, not lost: no reconnect

    why = "tokens revoked by the admin API"
    revoked = server.log.wait_event(event="tokens.revoked", session_id=sid)
    assert revoked["attrs"] == {"reason": why, "generation": 1}
    closed = server.log.wait_event(event="connection.closed", code=4002, session_id=sid)
    assert closed["connection_id"] == live["connection_id"]
    assert closed["attrs"]["reason"] == why
    left = server.log.wait_event(event="session.disconnected", session_id=sid)
    assert (left["code"], left["attrs"]["reason"]) == (None, why)

    # The old token resumes nothing, over the wire or through its link.
    raw = e2e.raw(server.ws_url)
    raw.send(hello_for(ticket, resume=True, previous_connection_id=live["connection_id"]))
    assert raw.wait_closed() == 4002
    rejected = server.log.wait_event(event="connection.rejected", code=4002, session_id=sid)
    assert rejected["attrs"]["problem"] == "token has been revoked"
    again = e2e.terminal(ticket["connect_url"], name="old-link")
    assert again.wait_exit() == 1
    assert again.count(r"^connected to ") == 0

    # The session goes on for the fresh link.
    back = e2e.terminal(fresh.body["connect_url"], name="fresh")
    back.wait_line(rf"^connected to {sid} as c-\w+ \(resumed\)$")
    assert server.session(sid)["state"] == "active"
    back.send("close")
    assert back.wait_exit() == 0


def test_old_query_links_still_resolve(e2e: E2E) -> None:
    server = e2e.server()
    ticket = server.launch("carol")
    old_style = f"{server.url}/s/{ticket['session_id']}?token={_link_token(ticket)}"
    assert fetch_ticket(old_style, timeout=5)["session_id"] == ticket["session_id"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium")
def test_the_page_reads_the_fragment_and_sends_the_token_as_a_header(
    e2e: E2E, browser: Browser
) -> None:
    server = e2e.server()
    ticket = server.launch("dave")
    token = _link_token(ticket)
    urls: list[str] = []
    browser.page.on("request", lambda request: urls.append(request.url))
    browser.page.goto(ticket["connect_url"])
    browser.wait("v.state.startsWith('connected')")
    server.log.wait_event(event="session.started", session_id=ticket["session_id"])
    assert urls and not [url for url in urls if token in url.partition("#")[0]]


def test_an_expired_link_token_is_refused_at_the_hello_with_4002(e2e: E2E) -> None:
    server = e2e.server(launchpads={"brief": {"link_ttl": 1.0, "open_timeout": 60.0}})
    ticket = server.launch("erin", "brief")
    sid, link = ticket["session_id"], _link_token(ticket)
    time.sleep(1.2)  # past the link's expiry (whole seconds, from its issue)
    raw = e2e.raw(server.ws_url)
    raw.send(hello_for(ticket, token=link))
    assert raw.wait_closed() == 4002
    rejected = server.log.wait_event(event="connection.rejected", code=4002, session_id=sid)
    assert rejected["attrs"] == {**rejected["attrs"], "field": "token"}
    assert rejected["attrs"]["problem"] == "token has expired"
    # The session's own token (valid for max_session_duration) still joins.
    assert e2e.raw(server.ws_url).handshake(hello_for(ticket))["session_id"] == sid
