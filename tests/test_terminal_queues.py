"""The Python terminal's two queues are bounded, against a real WebSocket server in a thread.

The inbox: a server that floods the terminal faster than its control loop takes the messages
finds them waiting in the socket, not in the terminal (it held all of them), and none is lost.
The outbox: a server that stops reading was sent to without end (a `type` of a long text, the
acks of what it kept sending); now at most send_buffer_limit bytes wait, and the terminal gives
the connection up as stuck, reconnects and resumes, and says what it did not send.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from openfrp.events import EventLog
from openfrp.protocol.terminal_connection import SessionTicket
from openfrp.settings import SessionSettings
from openfrp.terminal import client
from openfrp.terminal.client import INBOX_BOUND, INBOX_SPARE, Terminal
from openfrp.terminal.frp8 import EVENTS_BOUND, PeerAttempt
from openfrp.terminal.outbox import Outbox

SID = "s-queues"
LIMIT = 64 * 1024
BUFFER = 16 * 1024  # each side's socket buffer: what the kernel holds is soon full
Handler = Callable[[ServerConnection, dict[str, Any], int], None]


class FakeServer:
    """Welcomes every connection (its hello kept), then runs `handler(ws, hello, number)`."""

    def __init__(self, handler: Handler) -> None:
        self.hellos: list[dict[str, Any]] = []
        self._handler = handler
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        self.url = f"ws://127.0.0.1:{sock.getsockname()[1]}/frp7"
        self._server: Server = serve(self._serve, sock=sock, compression=None, max_size=None)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _serve(self, ws: ServerConnection) -> None:
        hello = json.loads(ws.recv())
        self.hellos.append(hello)
        number = len(self.hellos)
        welcome = {
            "type": "welcome",
            "session_id": SID,
            "connection_id": f"c{number}",
            "resume": bool(hello["resume"]),
            "state": "active",
            "last_seq": 0,
        }
        ws.send(json.dumps(welcome))
        with contextlib.suppress(ConnectionClosed):
            self._handler(ws, hello, number)

    def close(self) -> None:
        self._server.shutdown()


def read_all(ws: ServerConnection) -> None:
    for _ in ws:
        pass


def ping_forever(ws: ServerConnection) -> None:
    """Write (the terminal's keepalive is met) and never read, as a server whose reader is
    stuck."""
    while not threading.Event().wait(0.3):
        ws.send(json.dumps({"type": "ping", "id": 1}))


@pytest.fixture
def small_send_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The terminal's socket holds BUFFER bytes, not the megabytes Linux may let it grow to."""
    real = client.open_tcp

    async def opened(url: str) -> socket.socket | None:
        sock = await real(url)
        assert sock is not None
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
        return sock

    monkeypatch.setattr(client, "open_tcp", opened)


@pytest.fixture
def most_queued(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The most bytes any outbox held."""
    most = [0]
    real = Outbox.put

    def put(self: Outbox, text: str) -> bool:
        taken = real(self, text)
        most[0] = max(most[0], self.queued)
        return taken

    monkeypatch.setattr(Outbox, "put", put)
    yield most


class InboxSpy(asyncio.Queue[tuple[Any, ...]]):
    """The terminal's inbox, with the most events it held."""

    most = 0

    def put_nowait(self, item: tuple[Any, ...]) -> None:
        super().put_nowait(item)
        self.most = max(self.most, self.qsize())


def terminal(tmp_path: Path, url: str, **settings: Any) -> tuple[Terminal, io.StringIO]:
    ticket = SessionTicket(SID, "token", {"frp": 7}, "digest")
    out = io.StringIO()
    log = EventLog(tmp_path / "terminal.jsonl")
    return Terminal(ticket, SessionSettings(**settings), url, log, out=out), out


async def until(term: Terminal, done: Callable[[], bool], timeout: float) -> None:
    """Run the terminal until `done()`, then disconnect."""
    run = asyncio.create_task(term.run())
    async with asyncio.timeout(timeout):
        while not done():
            await asyncio.sleep(0.05)
    term.post("leave", "disconnect")
    await asyncio.wait_for(run, 10)


def test_a_flood_waits_in_the_socket_and_every_message_arrives(tmp_path: Path) -> None:
    count = 20_000

    def flood(ws: ServerConnection, hello: dict[str, Any], number: int) -> None:
        for seq in range(1, count + 1):
            ws.send(json.dumps({"type": "msg", "seq": seq, "body": {"n": seq}}))
        read_all(ws)

    server = FakeServer(flood)
    term, out = terminal(tmp_path, server.url)
    inbox = term._inbox = InboxSpy(term._inbox.maxsize)
    try:
        asyncio.run(until(term, lambda: term.machine.last_seq == count, 60))
    finally:
        server.close()
    assert inbox.most <= INBOX_BOUND + INBOX_SPARE
    got = [line for line in out.getvalue().splitlines() if line.startswith("msg ")]
    assert got == [f'msg {seq} {{"n": {seq}}}' for seq in range(1, count + 1)]


@pytest.mark.usefixtures("small_send_buffer")
def test_input_to_a_server_that_stopped_reading_waits_then_gives_the_connection_up(
    tmp_path: Path, most_queued: list[int]
) -> None:
    def stop_reading_but_ping(ws: ServerConnection, hello: dict[str, Any], number: int) -> None:
        if number > 1:
            read_all(ws)
            return
        ping_forever(ws)

    server = FakeServer(stop_reading_but_ping)
    term, out = terminal(
        tmp_path,
        server.url,
        send_buffer_limit=LIMIT,
        keepalive_timeout=2.0,
        reconnect_backoff_initial=0.1,
    )
    text = "a" * 20_000  # 40,000 key events, 2.5 MB of messages

    async def typed() -> None:
        await term.commands.put(f"type {text}")
        await until(term, lambda: term.machine.connection_id == "c2", 30)

    try:
        asyncio.run(typed())
    finally:
        server.close()
    assert server.hellos[1]["resume"] is True
    said = out.getvalue()
    assert (
        "the server has not read this terminal's input for 2 s: the connection counts as lost"
        in said
    )
    assert "type: connection lost; " in said and " of 40000 events not sent" in said
    assert LIMIT // 2 <= most_queued[0] <= LIMIT


class StuckChannel:
    """A transport whose peer takes nothing: what is sent waits, and it can only be ended."""

    aborted = False

    async def send(self, text: str) -> None:
        await asyncio.Event().wait()

    def abort(self) -> None:
        self.aborted = True

    async def close(self, code: int, reason: str) -> None:
        self.abort()


def test_the_loops_own_messages_past_the_limit_give_the_connection_up(tmp_path: Path) -> None:
    """Acks are the loop's own: they do not wait; one that does not fit ends the connection
    as lost (the machine then reconnects and resumes)."""
    term, out = terminal(tmp_path, "ws://127.0.0.1:9/frp7", send_buffer_limit=LIMIT)
    channel = StuckChannel()
    term._ws, term._outbox = channel, Outbox(LIMIT)
    gen = term._gen
    acks = 0
    while term._outbox is not None and acks < LIMIT:  # bounded: an ack is 20 bytes or more
        term._send({"type": "ack", "seq": acks})
        acks += 1
    assert term._outbox is None
    assert LIMIT // len('{"type":"ack","seq":9999}') <= acks <= LIMIT // 10
    assert channel.aborted and term._ws is None
    assert term._inbox.get_nowait() == (
        "closed",
        gen + 1,
        None,
        "the server has not read the 64 KiB this terminal sent",
    )
    lost = "the server has not read the 64 KiB this terminal sent: the connection counts as lost"
    assert out.getvalue().splitlines() == [lost]


def test_the_outbox_bound_and_its_room() -> None:
    asyncio.run(outbox_bound_and_room())


async def outbox_bound_and_room() -> None:
    outbox = Outbox(100)
    assert outbox.put("x" * 50) and await outbox.room(0)  # half the limit: room still
    assert outbox.put("x" * 50) and not outbox.put("x")  # full: refused, nothing queued
    assert outbox.queued == 100
    assert not await outbox.room(0.05)  # past half: a command's input waits
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    drain = asyncio.create_task(outbox.drain(send))
    assert await outbox.room(1.0) and outbox.queued <= 50
    drain.cancel()
    full = Outbox(10)
    assert full.put("x" * 10)
    full.close()  # the connection is gone: a waiting command goes on, and finds it so
    assert await full.room(0)


def test_an_frp8_attempt_far_behind_its_data_channel_gives_the_connection_up() -> None:
    """aiortc's data channel cannot be paused: an attempt whose loop is EVENTS_BOUND events
    behind it ends the connection as lost, once, and holds no more."""
    posted: list[tuple[Any, ...]] = []

    async def flood() -> PeerAttempt:
        ticket = SessionTicket(SID, "token", {"frp": 8}, "digest")
        attempt = PeerAttempt(3, lambda *item: posted.append(item), ticket, SessionSettings())
        for n in range(EVENTS_BOUND * 4):
            attempt._event(("message", f"m{n}"))
        return attempt

    attempt = asyncio.run(flood())
    assert attempt._events.qsize() == EVENTS_BOUND
    assert posted == [("closed", 3, None, f"this terminal is {EVENTS_BOUND} events behind")]
