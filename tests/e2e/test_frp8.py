"""FRP8 end to end: the real server and Python terminal over aiortc, through a real coturn.

Both peers run on this machine, so ICE goes relay-only through coturn on loopback (aioice
skips loopback host candidates). Each fault is made for real: coturn stopped, a TURN server
that will not relay between the peers, the signaling path black-holed, a server whose peer is
not registered, an offer the server's WebRTC stack cannot take.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal as signal_module
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect as connect_async
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from openfrp.protocol.terminal_connection import SessionTicket
from openfrp.settings import SessionSettings, build
from openfrp.terminal.frp8 import PeerAttempt
from tests.e2e.conftest import E2E, FRP8_PAD, frp8_server
from tests.e2e.harness import OPENFRP, JsonlLog, ServerProcess, bounded, diagnosis, hello_for
from tests.support.coturn import TURNSERVER, Coturn, start_coturn

pytestmark = pytest.mark.skipif(TURNSERVER is None, reason="needs coturn (Debian coturn)")


def test_frp8_session_streams_and_closes_with_4000(e2e: E2E, coturn: Coturn) -> None:
    server = frp8_server(e2e, coturn)
    ticket = server.launch("alice", "rtc")
    assert ticket["config"]["frp"] == 8
    server.log.wait_event(event="signaling.registered", source="signaling")
    terminal = e2e.connected(server, ticket)
    sid = ticket["session_id"]
    server.log.wait_event(event="peer.answered", session_id=sid)
    opened = server.log.wait_event(event="connection.opened", session_id=sid)
    assert opened["attrs"]["frp"] == 8
    time.sleep(1.2)  # the moving synthetic screen: a frame whenever it changes
    terminal.send("close")
    assert terminal.wait_exit(15) == 0
    frames = int(terminal.wait_line(r"^video frames received: (\d+)").group(1))
    assert frames >= 1  # the display came as a WebRTC video track
    assert terminal.wait_line(r"^video: \d+ frames shown, .* codec vp8,")
    ended = server.log.wait_event(event="session.ended", session_id=sid)
    assert (ended["code"], ended["frp"]) == (4000, 8)
    shown = terminal.log.find(event="message.shown", code=4000)
    assert shown and terminal.log.find(event="connection.established")[0]["frp"] == 8
    probe = terminal.log.find(event="probe.turn")  # the preflight beside the first attempt
    assert probe and probe[0]["code"] is None and probe[0]["attrs"]["rtt_ms"] >= 0


def ticket_file(e2e: E2E, ticket: dict[str, Any]) -> str:
    """The launch answer saved as a ticket file: a terminal can start without the API."""
    path = e2e.root / f"ticket-{ticket['session_id']}.json"
    path.write_text(json.dumps(ticket))
    return str(path)


def codes_of(log: JsonlLog, event: str) -> list[int]:
    return [e["code"] for e in log.find(event=event)]


def test_turn_relay_lost_is_4108_then_resumed(e2e: E2E, coturn: Coturn, tmp_path: Path) -> None:
    server = frp8_server(e2e, coturn)
    ticket = server.launch("bob", "rtc")
    sid = ticket["session_id"]
    terminal = e2e.connected(server, ticket)
    coturn.stop()  # the only path between the peers is the relay
    lost = terminal.log.wait_event(event="ice.disconnected", timeout=10)
    assert lost["code"] == 4108 and lost["attrs"]["keepalive_timeout_s"] == 1.5
    terminal.wait_line(r"\[4108 ICE_DISCONNECTED\]")
    # The terminal probes the relay again on its first reconnect: it is gone (5010).
    probe = terminal.log.wait_event(event="probe.turn", code=5010, timeout=10)
    assert "refused" in probe["attrs"]["error"] or "no answer" in probe["attrs"]["error"]
    terminal.wait_line(r"\[5010 TURN_UNREACHABLE\]")
    (tmp_path / "again").mkdir()
    back = start_coturn(tmp_path / "again", port=coturn.port)
    try:
        done = terminal.log.wait_event(event="reconnect.succeeded", timeout=30)
        assert done["attrs"]["resumed"] is True
        assert 4103 in codes_of(terminal.log, "reconnect.attempt")
        server.log.wait_event(event="session.resumed", session_id=sid)
        disconnected = server.log.find(event="session.disconnected", session_id=sid)
        assert disconnected and disconnected[0]["code"] in (4023, 4029)
        terminal.send("close")
        assert terminal.wait_exit(15) == 0
        assert server.log.wait_event(event="session.ended", session_id=sid)["code"] == 4000
    finally:
        back.stop()
    facts = diagnosis(sid, server.log, terminal.log)
    assert (facts["category"], facts["frp"], facts["recovered"]) == ("expected_end", 8, True)
    assert {4108, 4103, 5010} <= set(facts["codes"])


def test_a_resume_from_another_window_size_resizes_the_display(e2e: E2E, coturn: Coturn) -> None:
    """The display takes the size of the window that resumes, as it does for the one that
    starts the session (it kept the old size, and the picture came scaled into the window)."""
    server = frp8_server(e2e, coturn)
    ticket = server.launch("carol", "rtc")
    sid = ticket["session_id"]
    first = e2e.terminal(ticket["connect_url"], extra=["--size", "640x480"])
    first.wait_line(rf"^connected to {sid} as c-")
    server.log.wait_event(event="session.started", session_id=sid)
    first.send("disconnect")
    assert first.wait_exit(15) == 0
    second = e2e.terminal(ticket["connect_url"], extra=["--size", "800x600"])
    second.wait_line(rf"^connected to {sid} as c-.*resumed")
    resized = server.log.wait_event(event="display.resized", session_id=sid)
    assert resized["attrs"]["was"] == [640, 480] and resized["attrs"]["asked"] == [800, 600]
    assert (resized["attrs"]["width"], resized["attrs"]["height"]) == (800, 600)
    resumed = server.log.find(event="session.resumed", session_id=sid)[0]
    assert resized["connection_id"] == resumed["connection_id"]
    # The video track's next frame has the new size (frames already on their way may not).
    sizes: list[str | None] = []
    for _ in bounded(15, step=0.5):
        mark = second.mark()
        second.send("screenshot " + str(e2e.root / "resumed.png"))
        saved = second.wait_line(
            r"^screenshot (saved: .* \((\d+x\d+)\)|.*no picture yet)", start=mark
        )
        sizes.append(saved.group(2))
        if sizes[-1] == "800x600":
            break
    assert sizes[-1] == "800x600", sizes
    second.send("close")
    assert second.wait_exit(15) == 0


def test_relay_that_refuses_the_peers_is_5006(e2e: E2E, tmp_path: Path) -> None:
    closed = start_coturn(tmp_path, loopback_peers=False)  # allocates, never relays to 127/8
    try:
        server = frp8_server(e2e, closed)
        ticket = server.launch("carol", "rtc")
        terminal = e2e.terminal(ticket["connect_url"], stdin=False)
        assert terminal.wait_exit(20) == 1
        failed = terminal.log.wait_event(event="ice.failed")
        assert failed["code"] == 5006 and failed["attrs"]["phase"] == "connecting"
        terminal.wait_line(r"\[5006 ICE_FAILED\]")
        server_side = server.log.wait_event(event="ice.failed", session_id=ticket["session_id"])
        assert server_side["code"] == 5006
        facts = diagnosis(ticket["session_id"], server.log, terminal.log)
        assert (facts["final_code"], facts["category"], facts["phase"]) == (
            5006,
            "nat_traversal",
            "setup_failure",
        )
    finally:
        closed.stop()


def host_behind_hub(
    e2e: E2E, coturn: Coturn, user: str
) -> tuple[ServerProcess, ServerProcess, dict[str, Any]]:
    """A signaling hub (a server of its own), a host whose peer registers with it, and a
    session launched on that host."""
    hub = e2e.server()
    signal = f"ws://127.0.0.1:{hub.port}/signal"
    host = frp8_server(e2e, coturn, signaling_url=signal, name="rtc-host")
    hub.log.wait_event(event="signaling.registered", attrs={"host": "rtc-host"})
    return hub, host, host.launch(user, "rtc")


def test_unregistered_server_peer_is_4107(e2e: E2E, coturn: Coturn) -> None:
    hub, host, ticket = host_behind_hub(e2e, coturn, "dave")
    host.process.kill()  # the session's host crashed: nobody answers for it at the hub
    host.process.wait(5)
    hub.log.wait_event(event="signaling.unregistered", attrs={"host": "rtc-host"})
    terminal = e2e.terminal(ticket_file(e2e, ticket), stdin=False)
    assert terminal.wait_exit(15) == 1
    timeout = terminal.log.wait_event(event="signaling.timeout")
    assert timeout["code"] == 4107 and timeout["attrs"]["signaling_peer_timeout_s"] == 3.0
    terminal.wait_line(r"\[4107 SIGNALING_PEER_TIMEOUT\]")
    joined = hub.log.wait_event(event="signaling.joined", session_id=ticket["session_id"])
    assert joined["source"] == "signaling"
    facts = diagnosis(ticket["session_id"], host.log, hub.log, terminal.log)
    # The host's server peer is gone: the server's fault (the code table's), not the network.
    assert (facts["final_code"], facts["category"]) == (4107, "server_fault")


def test_frozen_server_peer_is_5007(e2e: E2E, coturn: Coturn) -> None:
    _, host, ticket = host_behind_hub(e2e, coturn, "erin")
    host.signal(signal_module.SIGSTOP)  # registered, but answers nothing
    try:
        terminal = e2e.terminal(ticket_file(e2e, ticket), stdin=False)
        assert terminal.wait_exit(20) == 1
        timeout = terminal.log.wait_event(event="negotiation.timeout")
        assert timeout["code"] == 5007 and timeout["attrs"]["phase"] == "negotiating"
        terminal.wait_line(r"\[5007 NEGOTIATION_TIMEOUT\]")
    finally:
        host.signal(signal_module.SIGCONT)


def test_tampered_dtls_fingerprint_is_5008(e2e: E2E, coturn: Coturn) -> None:
    server = frp8_server(e2e, coturn)
    ticket = server.launch("frank", "rtc")
    with TamperingRelay(f"ws://127.0.0.1:{server.port}/signal") as relay:
        terminal = e2e.terminal(ticket["connect_url"], stdin=False, signaling_url=relay.url)
        assert terminal.wait_exit(20) == 1
    failed = terminal.log.wait_event(event="peer.failed")
    assert failed["code"] == 5008 and failed["attrs"]["phase"] == "connecting"
    terminal.wait_line(r"\[5008 PEER_CONNECTION_FAILED\]")
    assert relay.tampered == 1


# A data-channel offer without ICE credentials: aiortc raises while applying it.
NO_ICE_OFFER = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"
    "a=mid:0\r\na=sctp-port:5000\r\n"
)


def test_offer_the_server_cannot_take_is_4026(e2e: E2E, coturn: Coturn) -> None:
    server = frp8_server(e2e, coturn)
    ticket = server.launch("grace", "rtc")
    sid = ticket["session_id"]
    join = {"type": "join", "session_id": sid, "token": ticket["token"], "host": "e2e-host"}
    with connect(f"ws://127.0.0.1:{server.port}/signal", open_timeout=5) as ws:
        ws.send(json.dumps(join))
        assert json.loads(ws.recv(timeout=5))["type"] == "peer"
        ws.send(json.dumps({"type": "offer", "sdp": NO_ICE_OFFER}))
        close = json.loads(ws.recv(timeout=10))
    assert (close["type"], close["code"], close["reason"]) == ("close", 4026, "FRP8_ERROR")
    error = server.log.wait_event(event="error.exception", session_id=sid)
    assert error["code"] == 4026 and error["attrs"]["where"] == "frp8 answer"
    assert server.session(sid)["state"] == "created"  # the session itself waits for a terminal


class TamperingRelay:
    """A signaling relay in the middle that changes the DTLS fingerprint of each answer, so
    ICE connects but the DTLS handshake fails for real."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.tampered = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.url = ""

    def __enter__(self) -> TamperingRelay:
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with serve(self._pipe, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}"
            self._ready.set()
            await self._stop.wait()

    async def _pipe(self, terminal: ServerConnection) -> None:
        async with connect_async(self.upstream) as hub:

            async def down() -> None:
                async for raw in hub:
                    message = json.loads(raw)
                    if message.get("type") == "answer":
                        message["sdp"] = re.sub(
                            r"(a=fingerprint:sha-256 )([0-9A-F])",
                            lambda m: m.group(1) + ("0" if m.group(2) != "0" else "1"),
                            message["sdp"],
                        )
                        self.tampered += 1
                    await terminal.send(json.dumps(message))

            task = asyncio.create_task(down())
            with contextlib.suppress(Exception):
                async for raw in terminal:
                    await hub.send(raw)
            task.cancel()


def test_signaling_refuses_bad_peers_and_garbage(e2e: E2E) -> None:
    """A forged registration, a join with a token for another session and plain garbage each
    get a clear refusal; the hub keeps serving the next client."""
    server = e2e.server()
    url = f"ws://127.0.0.1:{server.port}/signal"
    ticket = server.launch("heidi")
    other = server.launch("ivan")
    cases = [
        ({"type": "register", "host": "e2e-host", "key": "forged"}, "bad peer key"),
        (
            {"type": "join", "session_id": ticket["session_id"], "token": other["token"]},
            "token does not name this session",
        ),
        ({"type": "join", "session_id": "s-x", "token": "x.y"}, "invalid token"),
        ({"type": "hello"}, "first message must be register or join"),
    ]
    for message, why in cases:
        with connect(url, open_timeout=5) as ws:
            ws.send(json.dumps(message))
            answer = json.loads(ws.recv(timeout=5))
            assert answer["type"] == "error" and why in answer["error"]
    with connect(url, open_timeout=5) as ws:
        ws.send("\x00 not json")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    rejected = server.log.wait_event(event="signaling.rejected")
    assert rejected["source"] == "signaling" and rejected["attrs"]["reason"] == "bad peer key"
    assert server.api("GET", "/healthz").status == 200


def test_wrong_turn_password_is_5010_then_5006(e2e: E2E, coturn: Coturn) -> None:
    """The operator gave terminals a wrong TURN password: the terminal's own probe says so
    (5010, 401) before ICE, left with no relay, fails (5006); the analyzer names the cause."""
    server = frp8_server(e2e, coturn, turn_password="not-the-password")
    ticket = server.launch("judy", "rtc")
    terminal = e2e.terminal(ticket["connect_url"], stdin=False)
    probe = terminal.log.wait_event(event="probe.turn", code=5010, timeout=15)
    assert "401" in probe["attrs"]["error"]
    terminal.wait_line(r"\[5010 TURN_UNREACHABLE\]")
    # Under the code's line: which server failed and why, then what to do about it.
    relay = re.escape(f"turn:{coturn.host}:{coturn.port}")
    terminal.wait_line(rf"^  TURN {relay} failed: credentials rejected \(401\): check the TURN")
    terminal.wait_line(r"^  next step: Check the TURN URL, its credentials")
    assert terminal.wait_exit(25) == 1
    assert terminal.log.wait_event(event="ice.failed")["code"] == 5006
    facts = diagnosis(ticket["session_id"], server.log, terminal.log)
    # Rejected credentials are the operator's configuration, not the network's traversal.
    assert (facts["final_code"], facts["category"]) == (5006, "configuration")
    assert {5006, 5010} <= set(facts["codes"])


def test_setup_failure_falls_back_to_frp7(e2e: E2E, tmp_path: Path) -> None:
    """frp8_fallback = "frp7": ICE cannot work (a relay that will not reach the peers), the
    person sees 5006 and the session goes on over the WebSocket, for good."""
    closed = start_coturn(tmp_path, loopback_peers=False)
    try:
        server = frp8_server(e2e, closed, launchpad={**FRP8_PAD, "frp8_fallback": "frp7"})
        ticket = server.launch("kim", "rtc")
        sid = ticket["session_id"]
        terminal = e2e.terminal(ticket["connect_url"])
        terminal.wait_line(r"\[5006 ICE_FAILED\]", timeout=20)
        terminal.wait_line(r"^FRP8 could not connect: continuing over FRP7")
        terminal.wait_line(rf"^connected to {sid} as c-", timeout=15)
        opened = server.log.wait_event(event="connection.opened", session_id=sid)
        assert opened["attrs"]["frp"] == 7
        fallback = terminal.log.wait_event(event="transport.fallback")
        assert fallback["code"] == 5006 and fallback["attrs"]["to_frp"] == 7
        terminal.send("close")
        assert terminal.wait_exit(15) == 0
        assert server.log.wait_event(event="session.ended", session_id=sid)["code"] == 4000
        facts = diagnosis(sid, server.log, terminal.log)
        assert (facts["category"], facts["final_code"]) == ("expected_end", 4000)
        assert 5006 in facts["codes"]
    finally:
        closed.stop()


@pytest.mark.parametrize("evicted", [True, False], ids=["forgotten", "in-memory"])
def test_late_join_after_the_end_gets_the_final_code_on_signaling(
    e2e: E2E, coturn: Coturn, evicted: bool
) -> None:
    """A terminal with a saved ticket joins a session that ended (4019: nobody opened it in
    time), whether it left the server's memory or not: the server's peer answers the offer
    with the final code on signaling, without a WebRTC setup, and the terminal ends with it,
    as an FRP7 terminal would (no fallback, no retry)."""
    pad = {**FRP8_PAD, "frp8_fallback": "frp7", "open_timeout": 1.0}
    server = frp8_server(e2e, coturn, launchpad=pad, forget_ended_after=1 if evicted else 300)
    ticket = server.launch("lou", "rtc")
    sid = ticket["session_id"]
    server.log.wait_event(event="session.ended", code=4019, session_id=sid, timeout=10)
    if evicted:
        time.sleep(1.5)  # forget_ended_after: only the registry knows the session now
    terminal = e2e.terminal(ticket_file(e2e, ticket), stdin=False)
    terminal.wait_line(r"^session over: 4019 CLOSED_REMOTELY", timeout=15)
    assert terminal.wait_exit(10) == 1  # refused: it joined nothing
    closed = terminal.log.wait_event(event="connection.closed", code=4019)
    assert closed["attrs"]["close_code"] == 4019
    assert closed["attrs"]["close_reason"] == "CLOSED_REMOTELY (session ended)"
    assert not terminal.log.find(event="transport.fallback")
    assert not server.log.find(code=5006, session_id=sid)  # no peer connection was set up


async def _raw_channel_exchange(ticket: dict[str, Any], frames: list[str]) -> list[dict[str, Any]]:
    """Open an FRP8 data channel as the Python terminal does, send `frames` one after the
    other (the next once something came back), and return the server's messages."""
    inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    session = SessionTicket(
        ticket["session_id"], ticket["token"], ticket["config"], ticket["config_digest"]
    )
    settings = build("terminal", ticket["config"]["terminal"], SessionSettings())
    attempt = PeerAttempt(1, lambda *item: inbox.put_nowait(item), session, settings)
    task = asyncio.create_task(attempt.run())
    received: list[dict[str, Any]] = []
    try:
        kind, _, channel = await asyncio.wait_for(inbox.get(), 20)
        assert kind == "opened", kind
        for frame in frames:
            await channel.send(frame)
            while True:
                kind, *rest = await asyncio.wait_for(inbox.get(), 10)
                if kind != "data" or isinstance(rest[1], bytes):
                    continue
                received.append(json.loads(rest[1]))
                if received[-1]["type"] in ("welcome", "close"):
                    break
    finally:
        await attempt.close(1000, "")
        task.cancel()
    return received


def test_garbage_on_the_data_channel_is_4024(e2e: E2E, coturn: Coturn) -> None:
    """After a good hello, a frame that is not a message: the server ends that connection
    with 4024, sent as a `close` message on the data channel, and the session waits."""
    server = frp8_server(e2e, coturn)
    ticket = server.launch("oscar", "rtc")
    sid = ticket["session_id"]
    got = asyncio.run(
        _raw_channel_exchange(ticket, [json.dumps(hello_for(ticket)), "\x00 not a message"])
    )
    assert got[0]["type"] == "welcome"
    assert (got[-1]["type"], got[-1]["code"], got[-1]["reason"]) == (
        "close",
        4024,
        "RECEIVE_ERROR",
    )
    closed = server.log.wait_event(event="connection.closed", code=4024, session_id=sid)
    assert closed["attrs"]["error"].startswith("not JSON")
    server.log.wait_event(event="session.disconnected", code=4024, session_id=sid)


def test_bad_hello_on_the_data_channel_is_4002(e2e: E2E, coturn: Coturn) -> None:
    server = frp8_server(e2e, coturn)
    ticket = server.launch("peggy", "rtc")
    tampered = hello_for(ticket, config_digest="0" * 64)
    got = asyncio.run(_raw_channel_exchange(ticket, [json.dumps(tampered)]))
    assert (got[-1]["type"], got[-1]["code"]) == ("close", 4002)
    rejected = server.log.wait_event(event="connection.rejected", code=4002)
    assert rejected["session_id"] == ticket["session_id"]


def test_revoke_ends_an_frp8_terminal_with_4002(e2e: E2E, coturn: Coturn) -> None:
    """The revoked terminal's data channel gets the code as a `close` message: it shows 4002
    and stops, no fallback to FRP7, no reconnect; the server's log says why."""
    server = frp8_server(e2e, coturn, launchpad={**FRP8_PAD, "frp8_fallback": "frp7"})
    ticket = server.launch("rita", "rtc")
    sid = ticket["session_id"]
    terminal = e2e.connected(server, ticket)
    live = server.log.wait_event(event="connection.established", session_id=sid)
    assert server.api("POST", f"/api/sessions/{sid}/revoke").status == 200
    terminal.wait_line(r"^\[4002 CONFIG_MISMATCH\] ", timeout=15)
    assert terminal.wait_exit(15) == 1
    assert terminal.log.find(event="connection.closed", code=4002)
    assert not terminal.log.find(event="transport.fallback")
    assert not terminal.log.find(event="reconnect.attempt")
    closed = server.log.wait_event(event="connection.closed", code=4002, session_id=sid)
    assert (closed["connection_id"], closed["frp"]) == (live["connection_id"], 8)
    assert closed["attrs"]["reason"] == "tokens revoked by the admin API"


def netcheck(*args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [OPENFRP, "netcheck", *args, "--json"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, report


def test_netcheck_link_probes_what_the_session_uses(e2e: E2E, coturn: Coturn) -> None:
    """`openfrp netcheck --link` takes the session's own TURN server, credentials and hub, and
    joins the hub as its terminal would: all pass; the same with its host gone says 4107; a
    hub that is not there says 4101."""
    hub, host, ticket = host_behind_hub(e2e, coturn, "nina")
    status, report = netcheck("--link", ticket["connect_url"])
    assert status == 0 and report["code"] is None, report
    kinds = {p["kind"]: p for p in report["probes"]}
    assert kinds["turn"]["ok"] and kinds["turn"]["relayed"].startswith("127.0.0.1:")
    assert kinds["signaling"]["ok"] and kinds["signaling"]["peer_id"].startswith("rtc-host/")

    saved = ticket_file(e2e, ticket)
    host.process.kill()
    host.process.wait(5)
    hub.log.wait_event(event="signaling.unregistered", attrs={"host": "rtc-host"})
    status, report = netcheck("--link", saved, "--signaling-timeout", "1")
    assert status == 1 and report["code"] == 4107, report
    signaling = next(p for p in report["probes"] if p["kind"] == "signaling")
    assert signaling["error"] == "no server peer registered for host rtc-host in 1.0 s"

    status, report = netcheck("--signaling", "ws://127.0.0.1:9/signal")
    assert status == 1 and report["code"] == 4101


def test_a_wrong_signaling_url_is_logged_once_by_the_server_peer(e2e: E2E, coturn: Coturn) -> None:
    hub = e2e.server()
    wrong = f"ws://127.0.0.1:{hub.port}/no-such-hub"
    host = frp8_server(e2e, coturn, signaling_url=wrong)
    down = host.log.wait_event(event="signaling.unregistered", source="server")
    assert down["attrs"]["url"] == wrong and "InvalidStatus" in down["attrs"]["error"]
    time.sleep(1.5)  # several retries later: still one line for the outage
    assert len(host.log.find(event="signaling.unregistered")) == 1


def test_netcheck_link_of_an_frp7_session_opens_its_websocket(e2e: E2E) -> None:
    """An FRP7 session has no ICE servers: --link checks that its WebSocket opens from here,
    without joining (the session is not disturbed), and says so."""
    server = e2e.server()
    ticket = server.launch("omar")
    status, report = netcheck("--link", ticket["connect_url"])
    assert status == 0 and report["code"] is None, report
    [probe] = report["probes"]
    assert (probe["kind"], probe["ok"], probe["server"]) == ("frp7", True, ticket["ws_url"])
    assert server.session(ticket["session_id"])["state"] == "created"  # nobody joined
    done = subprocess.run(
        [OPENFRP, "netcheck", "--link", ticket["connect_url"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.splitlines()[-1] == (
        "verdict: every probe passed; FRP7 (WebSocket) can connect from here"
    )


def test_netcheck_link_says_when_a_session_has_no_stun_or_turn(e2e: E2E) -> None:
    """An FRP8 launchpad with no STUN or TURN server: its peers meet only on a direct path.
    The probes all pass from here, so netcheck says what they cannot show (it said only "can
    connect from here")."""
    server = e2e.server(launchpads={"rtc": FRP8_PAD})
    ticket = server.launch("pia", "rtc")
    status, report = netcheck("--link", ticket["connect_url"])
    assert status == 0 and report["code"] is None and report["direct_only"] is True, report
    assert [p["kind"] for p in report["probes"]] == ["signaling"]
    done = subprocess.run(
        [OPENFRP, "netcheck", "--link", ticket["connect_url"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stdout.splitlines()
    assert "set server.stun_url and server.turn_url" in lines[-2]
    assert lines[-1] == (
        "verdict: every probe passed; FRP8 (WebRTC) can connect from here over a direct path only"
    )


def test_netcheck_link_of_an_frp7_session_waits_as_long_as_its_terminal_would(e2e: E2E) -> None:
    """A path that takes the connection and never answers: the probe gives up after the
    session's own connect_timeout, as its terminal would (it waited the default 15 s)."""
    server = e2e.server(launchpads={"quick": {"connect_timeout": 3.0}})
    ticket = server.launch("quinn", "quick")
    proxy = e2e.proxy(server.port)
    assert proxy.control("blackhole") == "ok"
    saved = e2e.root / "quick-ticket.json"
    saved.write_text(json.dumps({**ticket, "ws_url": f"ws://127.0.0.1:{proxy.port}/frp7"}))
    status, report = netcheck("--link", str(saved))
    assert status == 1 and report["code"] == 4101, report
    [probe] = report["probes"]
    assert (probe["kind"], probe["error"]) == ("frp7", "no answer in 3.0 s")
