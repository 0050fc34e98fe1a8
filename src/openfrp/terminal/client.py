"""The Python terminal's I/O: one control loop feeding the terminal state machine.

Each transport gets a generation number; events of a transport the machine has already
left behind are dropped, so a late close of an old connection never touches the new one.
The transport is a WebSocket (FRP7) or a WebRTC data channel (FRP8, terminal/frp8.py); the
session configuration says which.

Both queues are bounded. The inbox: a transport's reader waits while INBOX_BOUND of its events
are waiting (the server's messages then wait in the socket, and TCP holds the server back);
the loop's own events, each bounded where it comes from (the alarm, a leave, a transport's
opening and end), have INBOX_SPARE places more; FRP8's data channel cannot be paused, so a
loop that far behind it gives the connection up. The outbox: see terminal/outbox.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import time
from typing import Any, Protocol, TextIO

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from openfrp import codes
from openfrp.events import Context, EventLog
from openfrp.media.wire import TRACK_TILES
from openfrp.protocol.actions import Log
from openfrp.protocol.input import input_message
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
    TerminalState,
    Transmit,
)
from openfrp.settings import SessionSettings
from openfrp.sizes import size_text
from openfrp.terminal.desk import USAGE as DESK_USAGE
from openfrp.terminal.desk import WORDS as DESK_WORDS
from openfrp.terminal.desk import TerminalDesk
from openfrp.terminal.dial import open_tcp, refused_connect
from openfrp.terminal.frp8 import PeerAttempt
from openfrp.terminal.keyboard import USAGE, input_command
from openfrp.terminal.keyboard import WORDS as INPUT_WORDS
from openfrp.terminal.outbox import Outbox
from openfrp.terminal.preflight import judged, probe_ice_servers
from openfrp.terminal.script import (
    LEAVES,
    Commands,
    ending,
    parse_size,
    resume_line,
    size_note,
)
from openfrp.terminal.video import DECODERS, VideoReceiver
from openfrp.timing import Alarm, now_ms

SHIP_BATCH = 200
STATS_PERIOD = 10.0
SCREENSHOT_WAIT = 2.0
SIZE_WAIT = 3.0  # seconds `size` waits for the session's screen (none while it starts)
INBOX_BOUND = 256  # a transport's events waiting for the control loop
INBOX_SPARE = 16  # places beyond those for the loop's own events


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
        screenshot: str | None = None,
        screen: tuple[int, int] | None = None,
        downloads: str | None = None,
    ) -> None:
        """`screenshot`: a PNG written when the session ends; `screen`: the window size
        (device pixels) the hello asks the server's display for; `downloads`: the folder
        files offered from inside the session are saved in."""
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
        self._inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue(INBOX_BOUND + INBOX_SPARE)
        self._taken = asyncio.Event()  # the control loop took an event from the inbox
        self._gen = 0
        self._ws: Channel | None = None
        self._attempt: PeerAttempt | None = None
        self._outbox: Outbox | None = None
        self._unshipped: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.frames = 0
        self._retrying = False  # a first connection attempt has failed and is retried
        self.final_code: int | None = None
        self.screenshot = screenshot
        self.screen = screen
        self.video = VideoReceiver(self._from_video)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pings: dict[int, float] = {}
        self._sizing: asyncio.Future[tuple[int, int]] | None = None  # a `size` awaits its screen
        self.rtt_ms: float | None = None
        self.desk = TerminalDesk(
            self._send, self._print, self._write_event, downloads, settings.clipboard_limit
        )
        self.commands = Commands(
            self._command, lambda: self.post("leave", "disconnect"), self._print
        )

    def post(self, *item: Any) -> None:
        """One of the loop's own events (bounded where it comes from): never waits."""
        self._inbox.put_nowait(item)

    async def _deliver(self, *item: Any) -> None:
        """A transport's event, or a command's: waits while INBOX_BOUND events are waiting."""
        while self._inbox.qsize() >= INBOX_BOUND:
            self._taken.clear()
            await self._taken.wait()
        self._inbox.put_nowait(item)

    async def run(self) -> int:
        """Run until the machine finishes; the exit status is 0 for info codes, else 1."""
        self._loop = asyncio.get_running_loop()
        self._track(self._report_stats())
        self._track(self.commands.run())
        alarm = Alarm(self._inbox)
        actions = self.machine.start(now_ms())
        while not await self._apply(actions):
            alarm.arm(self.machine.next_deadline())
            item = await self._inbox.get()
            self._taken.set()
            if item[0] == "tick":
                alarm.fired()
                actions = self.machine.tick(now_ms())
            else:
                actions = self._dispatch(item)
        alarm.arm(None)
        await self._drop_transport(abort=False)
        self.video.close()
        self._loop = None  # the decoder's late reports are not acted on
        code = self.final_code
        row = codes.lookup(code) if code is not None else None
        if row is not None and self.machine.connection_id is None:
            return 1  # refused before any welcome: it joined nothing, whatever the code
        return 0 if row is None or row.kind is codes.Kind.INFO else 1

    def _dispatch(self, item: tuple[Any, ...]) -> list[TerminalAction]:
        kind, *args = item
        now = now_ms()
        if kind == "probed":
            return judged(args[0])
        if kind == "leave":
            if args[0] == "close":
                return self.machine.close_session(now)
            return self.machine.disconnect(now)
        if args[0] != self._gen:
            return []
        if kind == "opened":
            self._ws, self._outbox = args[1], Outbox(self.machine.settings.send_buffer_limit)
            self._track(self._write(args[1], self._outbox))
            self.video.new_connection(over_track=self._over_track())
            return self.machine.transport_opened(now)
        if kind == "data":
            data = args[1]
            if isinstance(data, bytes):
                if self.video.feed(data) is not None:  # acknowledged once decoded
                    self.frames += 1
            elif '"pong"' in data:
                self._pong(data)
            else:
                self._screen_given(data)
                self._track(self.desk.peek(data))
            return self.machine.receive(data, now)
        if kind == "closed":
            self._ws = None
            return self.machine.transport_closed(args[1], args[2], now)
        if kind == "failed":
            refused = args[2] if len(args) > 2 else "ConnectionRefusedError" in args[1]
            return self.machine.transport_failed(args[1], now, refused=refused)
        if kind == "setup_failed":
            failed = args[1]
            return self.machine.setup_failed(failed.code, failed.event, failed.attrs, now)
        raise ValueError(f"unknown inbox item {kind!r}")

    async def _command(self, line: str) -> None:
        """One command, done before the next one starts (script.py runs them in order)."""
        word, _, rest = line.partition(" ")
        if word in LEAVES:
            await self._deliver("leave", word)
        elif word == "screenshot" and rest.strip():
            await self._screenshot(rest.strip())
        elif word == "size":
            await self._resize(rest)
        elif word == "stats" and not rest.strip():
            await self._stats_now()
        elif word in DESK_WORDS:
            await self.desk.command(word, rest)
        elif word in INPUT_WORDS:
            await self._input(word, rest)
        else:
            known = (
                f"close, disconnect, screenshot FILE, size WxH, stats, wait SECONDS, {USAGE}, "
                f"{DESK_USAGE}"
            )
            said = "commands:" if word == "help" else f"unknown command {line!r}; use:"
            self._print(f"{said} {known}")

    async def _apply(self, actions: list[TerminalAction]) -> bool:
        for action in actions:
            if isinstance(action, Connect):
                await self._drop_transport(abort=True)
                self._gen += 1
                self._track(self._open(self._gen, action.frp))
                if action.frp == 8 and action.attempt <= 1:  # the first try after a loss
                    self._track(self._probe())
            elif isinstance(action, Transmit):
                self._send(self._outgoing(action.message))
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
                if action.event == "connect.retry" and not self._retrying:
                    self._retrying = True  # said once: the person sees why nothing happens yet
                    why = action.attrs.get("error") or "the attempt failed"
                    limit = self.machine.settings.connect_timeout
                    self._print(
                        f"cannot reach the session yet ({why}); trying again for up to "
                        f"{limit:g} s (connect_timeout)"
                    )
            elif isinstance(action, ShipEvents):
                self._ship()
            elif isinstance(action, Finished):
                self.final_code = action.code
                self._print(f"video frames received: {self.frames}")
                await self._video_summary()
                for line in ending(self.machine, resume_line(self.ticket, self.ws_url)):
                    self._print(line)
                return True
        return False

    # -- transport -------------------------------------------------------------------------

    async def _open(self, gen: int, frp: int) -> None:
        if frp == 8:
            self._attempt = PeerAttempt(
                gen,
                self._from_peer,
                self.ticket,
                self.machine.settings,
                self.signaling_url,
                on_frame=self.on_track_frame,
            )
            await self._attempt.run()
            return
        try:
            ws = await connect(
                self.ws_url,
                sock=await open_tcp(self.ws_url),
                open_timeout=None,
                ping_interval=None,
                compression=None,
                close_timeout=1,
                max_size=1 << 22,
            )
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            await self._deliver("failed", gen, error, refused_connect(exc))
            return
        if gen != self._gen:
            ws.transport.abort()
            return
        await self._deliver("opened", gen, _WebSocketChannel(ws))
        try:
            async for message in ws:
                await self._deliver("data", gen, message)
        except ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
        code = rcvd.code if rcvd is not None and rcvd.code not in (1005, 1006) else None
        await self._deliver("closed", gen, code, rcvd.reason if rcvd is not None else "")

    def _from_peer(self, *item: Any) -> None:
        """FRP8's events. Its data channel cannot be paused: a control loop INBOX_BOUND events
        behind it gives the connection up rather than hold more."""
        if item[0] == "data" and self._inbox.qsize() >= INBOX_BOUND:
            if item[1] == self._gen:
                self._lose(f"this terminal is {INBOX_BOUND} messages behind the session")
            return
        self.post(*item)

    async def _probe(self) -> None:
        block = self.ticket.config.get("frp8") or {}
        await self._deliver("probed", await probe_ice_servers(block, self.machine.settings))

    async def _write(self, ws: Channel, outbox: Outbox) -> None:
        with contextlib.suppress(ConnectionClosed, OSError, ConnectionError):
            await outbox.drain(ws.send)

    async def _input(self, word: str, rest: str) -> None:
        """Send a typed command's key and pointer events, in order, on the live connection.
        A long burst waits for room in the outbox; a server that gives none within the
        keepalive time has stopped reading, and the connection is given up."""
        try:
            events = input_command(word, rest) or []
        except ValueError as exc:
            self._print(str(exc))
            return
        outbox = self._outbox
        if self.machine.state is not TerminalState.ESTABLISHED or outbox is None:
            self._print(f"{word}: not connected, nothing sent")
            return
        wait = self.machine.keepalive_ms / 1000
        for sent, event in enumerate(events):
            if not await outbox.room(wait):
                self._lose(f"the server has not read this terminal's input for {wait:g} s")
            if self._outbox is not outbox:
                left = len(events) - sent
                self._print(f"{word}: connection lost; {left} of {len(events)} events not sent")
                return
            self._send(input_message(event))

    async def _resize(self, rest: str) -> None:
        """`size WxH`: this window's new size; the display follows, and a resume asks for it.
        The session fits a size to its limits: its `screen` answer says when it gave another
        (waited for at most SIZE_WAIT: a session still starting answers once its stream runs)."""
        try:
            self.screen = parse_size(rest)
        except ValueError as exc:
            self._print(f"size: {exc}")
            return
        width, height = self.screen
        if self.machine.state is not TerminalState.ESTABLISHED or self._outbox is None:
            self._print(f"size: not connected; the next connection asks for {width}x{height}")
            return
        self._sizing = asyncio.get_running_loop().create_future()
        self._send({"type": "resize", "width": width, "height": height, "scale": 1})
        try:
            given = await asyncio.wait_for(self._sizing, SIZE_WAIT)
        except TimeoutError:
            return
        finally:
            self._sizing = None
        note = size_note((width, height), given)
        if note is not None:
            self._print(f"size {width}x{height}: {note}")

    def _screen_given(self, data: str) -> None:
        """The session's `screen` message (its display's size), to the `size` waiting for it."""
        sizing = self._sizing
        if sizing is None or sizing.done() or '"screen"' not in data:
            return
        with contextlib.suppress(ValueError, KeyError, TypeError):
            message = json.loads(data)
            if message["type"] == "screen" and message.get("monitor", 0) == self.ticket.monitor:
                sizing.set_result((int(message["width"]), int(message["height"])))

    def _send(self, message: dict[str, Any]) -> None:
        outbox = self._outbox
        if outbox is not None and not outbox.put(encode(message)):
            self._lose(f"the server has not read the {size_text(outbox.limit)} this terminal sent")

    def _lose(self, why: str) -> None:
        """Give a stuck connection up: it counts as lost, as when the network drops it (the
        machine reconnects and resumes)."""
        self._print(f"{why}: the connection counts as lost")
        ws = self._detach()
        if ws is not None:
            ws.abort()
        self.post("closed", self._gen, None, why)

    async def _drop_transport(self, abort: bool, code: int = 1000, reason: str = "") -> None:
        ws = self._detach()
        if ws is None:
            return
        if abort:
            ws.abort()
        else:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code, reason), 2)

    def _detach(self) -> Channel | None:
        """Forget the transport (its late events are dropped by generation); the open one is
        returned, to be ended."""
        ws, self._ws = self._ws, None
        outbox, self._outbox = self._outbox, None
        if outbox is not None:
            outbox.close()
        attempt, self._attempt = self._attempt, None
        self._gen += 1
        if attempt is not None and attempt is not ws:
            attempt.abort()
        return ws

    def _track(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- video -----------------------------------------------------------------------------

    def _from_video(self, *report: Any) -> None:
        """The decoder thread's reports, run on the loop's thread but not through the inbox:
        one per frame the loop fed it, they are bounded by the decoder's queue."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._video_report, *report)

    def _video_report(self, kind: str, value: Any) -> None:
        if self._loop is None:
            return
        if kind in ("shown", "skipped"):
            self._send({"type": "frame_ack", "frame": value})
        elif kind == "keyframe":
            self._send({"type": "keyframe", "reason": value})
            self._write_event(Log("video.keyframe_requested", attrs={"reason": value}))

    def _outgoing(self, message: dict[str, Any]) -> dict[str, Any]:
        """The hello says what this terminal can draw and how big its window is; a ping's
        send time is kept for the round-trip time."""
        if message["type"] == "hello":
            decoders = [*DECODERS, TRACK_TILES] if self._over_track() else DECODERS
            message = {**message, "decoders": decoders}
            if self.screen is not None:
                width, height = self.screen
                message["screen"] = {"width": width, "height": height, "scale": 1}
        elif message["type"] == "ping":
            self._pings = {message["id"]: time.monotonic()}
        return message

    def _over_track(self) -> bool:
        """Whether the open transport is FRP8's data channel, beside a video track."""
        return self._ws is not None and not isinstance(self._ws, _WebSocketChannel)

    def _pong(self, data: str) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            sent = self._pings.pop(json.loads(data)["id"], None)
            if sent is not None:
                self.rtt_ms = round((time.monotonic() - sent) * 1000, 1)

    def on_track_frame(self, frame: Any, codec: str | None, rtp: int | None) -> None:
        """A frame of the FRP8 video track (aiortc has decoded it), with its RTP timestamp."""
        self.frames += 1
        self.video.feed_track(frame, codec, rtp)

    async def _screenshot(self, path: str) -> None:
        try:
            size = await asyncio.to_thread(self._save_picture, path)
        except (OSError, ValueError) as exc:
            self._print(f"screenshot {path} failed: {exc}")
            return
        if size is None:
            self._print(f"screenshot {path}: no picture yet")
        else:
            self._print(f"screenshot saved: {path} ({size[0]}x{size[1]})")

    def _save_picture(self, path: str) -> tuple[int, int] | None:
        self.video.drain(SCREENSHOT_WAIT)
        return self.video.screenshot(path)

    async def _report_stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_PERIOD)
            await self._write_stats(final=False)

    async def _write_stats(self, final: bool) -> None:
        """A `stats` event: what the person got over the period (the whole stream at the end)."""
        await self._count_track_bytes()
        stats = self.video.stats(whole=final)
        attrs = {**stats.attrs(), "rtt_ms": self.rtt_ms, "final": final}
        self._write_event(Log("stats", attrs=attrs))

    async def _video_summary(self) -> None:
        await asyncio.to_thread(self.video.drain, SCREENSHOT_WAIT)
        await self._write_stats(final=True)
        self._print_stats()
        if self.screenshot:
            await self._screenshot(self.screenshot)

    async def _stats_now(self) -> None:
        """`stats`: the stream so far, as the summary at the end says it."""
        await self._count_track_bytes()
        self._print_stats()

    async def _count_track_bytes(self) -> None:
        """Over FRP8 the track's bytes come decoded: count them from the sender's reports."""
        ws = self._ws
        if isinstance(ws, PeerAttempt):
            self.video.add_wire_bytes(await ws.video_bytes())

    def _print_stats(self) -> None:
        stats = self.video.stats(whole=True)
        rtt = f", rtt {self.rtt_ms:g} ms" if self.rtt_ms is not None else ""
        self._print(
            f"video: {stats.frames} frames shown, {stats.fps:g} fps, {stats.mbit_s:g} Mbit/s, "
            f"codec {stats.codec or 'none'}, {stats.width}x{stats.height}, "
            f"{stats.dropped} dropped{rtt}"
        )

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
        if self.machine.state is TerminalState.ESTABLISHED:
            self._ship()  # as the page does: the server's log has it while it matters
        if action.event == "transport.fallback":
            self._print("FRP8 could not connect: continuing over FRP7 (WebSocket)")
        if action.event == "connection.established":
            self.commands.connected.set()
            resumed = " (resumed)" if action.attrs.get("resume") else ""
            self._print(
                f"connected to {self.ticket.session_id} as {self.machine.connection_id}{resumed}"
            )

    def _ship(self) -> None:
        while self._unshipped:
            batch, self._unshipped = self._unshipped[:SHIP_BATCH], self._unshipped[SHIP_BATCH:]
            self._send({"type": "events", "items": batch})


def read_commands(terminal: Terminal, loop: asyncio.AbstractEventLoop) -> None:
    """Feed stdin lines (close, disconnect, type TEXT, click X Y...) and then its end to the
    terminal's commands from a daemon thread (left waiting if the loop ends first). Only the
    line's end is cut from the right: the spaces that end `type echo ` are typed too."""

    def put(command: str | None) -> None:
        """Hand the line over, waiting while the terminal holds MAX_WAITING: then stdin waits
        too, and so does whatever writes to it."""
        asyncio.run_coroutine_threadsafe(terminal.commands.put(command), loop).result()

    def pump() -> None:
        with contextlib.suppress(RuntimeError):  # the terminal ended and its loop closed
            for line in sys.stdin:
                put(line.rstrip("\r\n").lstrip())
            put(None)

    threading.Thread(target=pump, daemon=True).start()
