"""The Python terminal's I/O: one control loop feeding the terminal state machine.

Each transport gets a generation number; events of a transport the machine has already
left behind are dropped, so a late close of an old connection never touches the new one.
The transport is a WebSocket (FRP7) or a WebRTC data channel (FRP8, terminal/frp8.py); the
session configuration says which.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
from typing import Any, Protocol, TextIO

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from openfrp import codes
from openfrp.events import Context, EventLog
from openfrp.media.synthetic import frame_number
from openfrp.netcheck.verdict import verdict
from openfrp.protocol.actions import Log
from openfrp.protocol.messages import encode
from openfrp.protocol.terminal_connection import (
    Connect,
    Finished,
    Hangup,
    Receive,
    SessionTicket,
    ShipEvents,
    Show,
    TerminalAction,
    TerminalConnection,
    Transmit,
    show,
)
from openfrp.settings import SessionSettings
from openfrp.terminal.frp8 import PeerAttempt
from openfrp.terminal.preflight import probe_ice_servers
from openfrp.timing import Alarm, now_ms

SHIP_BATCH = 200


class Channel(Protocol):
    """An open transport as the control loop uses it."""

    async def send(self, text: str) -> None: ...
    def abort(self) -> None: ...
    async def close(self, code: int, reason: str) -> None: ...


class _WebSocketChannel:
    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    async def send(self, text: str) -> None:
        await self._ws.send(text)

    def abort(self) -> None:
        self._ws.transport.abort()

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code, reason)


class Terminal:
    def __init__(
        self,
        ticket: SessionTicket,
        settings: SessionSettings,
        ws_url: str,
        log: EventLog,
        out: TextIO = sys.stdout,
        signaling_url: str | None = None,
    ) -> None:
        self.machine = TerminalConnection(ticket, settings)
        config = ticket.config
        self._context = Context(
            "terminal",
            config.get("host"),
            ticket.session_id,
            config.get("user"),
            config.get("account"),
            config.get("launchpad"),
            8 if config.get("frp") == 8 else 7,
        )
        self.ticket = ticket
        self.ws_url = ws_url
        self.signaling_url = signaling_url
        self.log = log
        self.out = out
        self._inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._gen = 0
        self._ws: Channel | None = None
        self._attempt: PeerAttempt | None = None
        self._sendq: asyncio.Queue[str] | None = None
        self._unshipped: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.frames = 0
        self.final_code: int | None = None

    def post(self, *item: Any) -> None:
        self._inbox.put_nowait(item)

    async def run(self) -> int:
        """Run until the machine finishes; the exit status is 0 for info codes, else 1."""
        alarm = Alarm(self._inbox)
        actions = self.machine.start(now_ms())
        while not await self._apply(actions):
            alarm.arm(self.machine.next_deadline())
            item = await self._inbox.get()
            if item[0] == "tick":
                alarm.fired()
                actions = self.machine.tick(now_ms())
            else:
                actions = self._dispatch(item)
        alarm.arm(None)
        await self._drop_transport(abort=False)
        code = self.final_code
        row = codes.lookup(code) if code is not None else None
        return 0 if row is None or row.kind is codes.Kind.INFO else 1

    def _dispatch(self, item: tuple[Any, ...]) -> list[TerminalAction]:
        kind, *args = item
        now = now_ms()
        if kind == "probed":
            code, logs = verdict(args[0])
            return [*logs, show(code)] if code is not None else list(logs)
        if kind == "command":
            if args[0] == "close":
                return self.machine.close_session(now)
            if args[0] == "disconnect":
                return self.machine.disconnect(now)
            self._print(f"unknown command {args[0]!r} (use: close, disconnect)")
            return []
        if args[0] != self._gen:
            return []
        if kind == "opened":
            self._ws, self._sendq = args[1], asyncio.Queue()
            self._track(self._write(args[1], self._sendq))
            return self.machine.transport_opened(now)
        if kind == "data":
            data = args[1]
            if isinstance(data, bytes):
                number = frame_number(data)
                if number is not None:
                    self.frames += 1
                    self._send({"type": "frame_ack", "frame": number})
            return self.machine.receive(data, now)
        if kind == "closed":
            self._ws = None
            return self.machine.transport_closed(args[1], args[2], now)
        if kind == "failed":
            return self.machine.transport_failed(args[1], now)
        if kind == "setup_failed":
            failed = args[1]
            return self.machine.setup_failed(failed.code, failed.event, failed.attrs, now)
        raise ValueError(f"unknown inbox item {kind!r}")

    async def _apply(self, actions: list[TerminalAction]) -> bool:
        for action in actions:
            if isinstance(action, Connect):
                await self._drop_transport(abort=True)
                self._gen += 1
                self._track(self._open(self._gen, action.frp))
                if action.frp == 8 and action.attempt <= 1:  # the first try after a loss
                    self._track(self._probe())
            elif isinstance(action, Transmit):
                self._send(action.message)
            elif isinstance(action, Hangup):
                await self._drop_transport(
                    abort=action.abort, code=action.code, reason=action.reason
                )
            elif isinstance(action, Show):
                self._print(action.text)
                self._write_event(
                    Log(
                        "message.shown",
                        code=action.code,
                        severity=action.level,
                        attrs={"text": action.text},
                    )
                )
            elif isinstance(action, Receive):
                self._print(f"msg {action.seq} {json.dumps(action.body, sort_keys=True)}")
            elif isinstance(action, Log):
                self._write_event(action)
            elif isinstance(action, ShipEvents):
                self._ship()
            elif isinstance(action, Finished):
                self.final_code = action.code
                self._print(f"video frames received: {self.frames}")
                self._print(
                    f"session over: {codes.describe(action.code)}"
                    if action.code
                    else "session over: disconnected (the session can be resumed)"
                )
                return True
        return False

    # -- transport -------------------------------------------------------------------------

    async def _open(self, gen: int, frp: int) -> None:
        if frp == 8:
            self._attempt = PeerAttempt(
                gen, self.post, self.ticket, self.machine.settings, self.signaling_url
            )
            await self._attempt.run()
            return
        try:
            ws = await connect(
                self.ws_url,
                open_timeout=None,
                ping_interval=None,
                compression=None,
                close_timeout=1,
                max_size=1 << 22,
            )
        except Exception as exc:
            self.post("failed", gen, f"{type(exc).__name__}: {exc}")
            return
        if gen != self._gen:
            ws.transport.abort()
            return
        self.post("opened", gen, _WebSocketChannel(ws))
        try:
            async for message in ws:
                self.post("data", gen, message)
        except ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
        code = rcvd.code if rcvd is not None and rcvd.code not in (1005, 1006) else None
        self.post("closed", gen, code, rcvd.reason if rcvd is not None else "")

    async def _probe(self) -> None:
        block = self.ticket.config.get("frp8") or {}
        self.post("probed", await probe_ice_servers(block, self.machine.settings))

    async def _write(self, ws: Channel, queue: asyncio.Queue[str]) -> None:
        with contextlib.suppress(ConnectionClosed, OSError, ConnectionError):
            while True:
                await ws.send(await queue.get())

    def _send(self, message: dict[str, Any]) -> None:
        if self._sendq is not None:
            self._sendq.put_nowait(encode(message))

    async def _drop_transport(self, abort: bool, code: int = 1000, reason: str = "") -> None:
        ws, self._ws, self._sendq = self._ws, None, None
        attempt, self._attempt = self._attempt, None
        self._gen += 1
        if attempt is not None and attempt is not ws:
            attempt.abort()
        if ws is None:
            return
        if abort:
            ws.abort()
        else:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code, reason), 2)

    def _track(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- output and events -----------------------------------------------------------------

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _write_event(self, action: Log) -> None:
        event = self._context.event(
            action.event,
            code=action.code,
            severity=action.severity,
            message=action.message,
            connection_id=action.connection_id or self.machine.connection_id,
            previous_connection_id=action.previous_connection_id,
            attrs=action.attrs,
        )
        self.log.write(event)
        self._unshipped.append(json.loads(event.to_json()))
        if action.event == "transport.fallback":
            self._print("FRP8 could not connect: continuing over FRP7 (WebSocket)")
        if action.event == "connection.established":
            resumed = " (resumed)" if action.attrs.get("resume") else ""
            self._print(
                f"connected to {self.ticket.session_id} as {self.machine.connection_id}{resumed}"
            )

    def _ship(self) -> None:
        while self._unshipped:
            batch, self._unshipped = self._unshipped[:SHIP_BATCH], self._unshipped[SHIP_BATCH:]
            self._send({"type": "events", "items": batch})


def read_commands(terminal: Terminal, loop: asyncio.AbstractEventLoop) -> None:
    """Feed stdin lines (close, disconnect) to the terminal from a daemon thread."""

    def pump() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(terminal.post, "command", line.strip())

    threading.Thread(target=pump, daemon=True).start()
