"""One session's asyncio life: a control loop that feeds the state machine and applies actions.

All calls into the state machine happen on this loop, in arrival order; connection readers,
the start task, the video pump and the API only post to its inbox. An exception in the loop
itself is 4001 before the session is active and 4004 after; in an auxiliary task, 4005.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from openfrp.codes import CodeNumber
from openfrp.desk.cursor import CursorWatch
from openfrp.desk.feed import InputFeed
from openfrp.events import Context, EventLog
from openfrp.protocol.actions import (
    Action,
    Close,
    Deliver,
    EndSession,
    Log,
    Relayout,
    Send,
    StartSession,
)
from openfrp.protocol.input import parse_input
from openfrp.protocol.messages import encode
from openfrp.protocol.server_session import ServerSession, SessionState
from openfrp.server.desk import DESK_MESSAGES, SessionDesk
from openfrp.server.host import (
    Display,
    StartFailure,
    mount_profile,
    set_dpi,
    start_app,
    start_display,
)
from openfrp.server.isolation import Account, Isolation
from openfrp.server.links import Link, Transport
from openfrp.server.monitors import SessionMonitors
from openfrp.server.registry import Holder
from openfrp.server.shipped import ShippedEvents
from openfrp.server.stream import SessionStream
from openfrp.timing import Alarm, now_ms

# Seconds after a session begins to start during which what is typed waits for its display
# and the app's first window instead of reaching nobody (type-ahead).
TYPE_AHEAD_S = 10.0
# Seconds an app that failed waits for its display to be seen dead: killed under it, the app
# can see its X connection drop before Xvfb's exit shows (display.alive).
APP_DISPLAY_GRACE_S = 1.0


def app_exit_reason(status: int) -> str:
    """How the session's app ended, from its return code (a signal is a negative one)."""
    if status >= 0:
        return f"the session's app exited with status {status}"
    try:
        name = signal.Signals(-status).name
    except ValueError:
        name = "unknown signal"
    return f"the session's app was killed by signal {-status} ({name})"


class SessionRuntime:
    def __init__(
        self,
        machine: ServerSession,
        identity: Context,
        log: EventLog,
        display_kind: str,
        on_state: Callable[[SessionRuntime], None],
        video_fps: int = 5,
        guest_env: dict[str, str] | None = None,
        admit_owner: Callable[[SessionRuntime, str], Awaitable[Holder | None]] | None = None,
        on_primary: Callable[[SessionRuntime], None] = lambda _: None,
        isolation: Isolation | None = None,
    ) -> None:
        self.machine = machine
        self.identity = identity
        self._log = log
        self._display_kind = display_kind
        self._on_state = on_state
        self._state = machine.state
        self._video_fps = video_fps
        self.links: dict[str, Link] = {}
        self.display: Display | None = None
        self.app: asyncio.subprocess.Process | None = None
        self._guest_env = guest_env or {}
        self._isolation = isolation or Isolation()
        self.account: Account | None = None
        self._admit_owner = admit_owner
        self._on_primary = on_primary
        self._primary = machine.primary
        self._inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stream = SessionStream(self.links, self._write, self.post, video_fps)
        self.monitors = SessionMonitors(self.links, self._write, video_fps, self.stream.listen)
        self._input: InputFeed | None = None
        self._input_dropped = 0
        self._type_ahead_until = 0.0  # monotonic; set when the session begins to start
        self._cursor: CursorWatch | None = None
        self._cursor_shape: dict[str, Any] | None = None
        self.ended = asyncio.Event()
        settings = machine.settings
        self._shipped = ShippedEvents(
            identity, settings.terminal_events_per_minute, settings.terminal_event_bytes_per_minute
        )
        self.desk = SessionDesk(
            machine.settings,
            self._write,
            self._send_to,
            lambda: self.machine.primary,
            lambda where, error: self.post("fault", CodeNumber.SERVER_AUX_ERROR, where, error),
            home_wait=TYPE_AHEAD_S,
        )
        self._loop_task = asyncio.create_task(self._control_loop(), name=identity.session_id)

    # -- what the transport and API call ---------------------------------------------------

    def post(self, *item: Any) -> None:
        self._inbox.put_nowait(item)

    def note(self, event: str, attrs: dict[str, Any]) -> None:
        """An event of the session's stream that changes no state (the FRP8 track's budget)."""
        self._write(Log(event, attrs=attrs))

    def attach(self, cid: str, transport: Transport, attrs: dict[str, Any]) -> None:
        limit = self.machine.settings.send_buffer_limit
        self.links[cid] = Link(cid, transport, self._send_failed, limit, self._overflow)
        self.post("opened", cid, attrs)

    async def _send_failed(self, cid: str, error: str) -> None:
        self.post("send_failed", cid, error)

    def _overflow(self, cid: str, queued_bytes: int) -> None:
        self.post("overflow", cid, queued_bytes)

    async def stop(self, code: int, reason: str, wait: float = 3.0) -> None:
        """End the session from outside (4019) and wait, bounded, for its close to go out."""
        self.post("host", code, reason)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ended.wait(), wait)

    async def revoke(self, reason: str, wait: float = 3.0) -> int | None:
        """Revoke the tokens issued so far, ending the connections that came in with them;
        the new token generation, or None when the session ended first."""
        done: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.post("revoke", reason, done)
        return await asyncio.wait_for(done, wait)

    def forget(self) -> None:
        """Release what is left of an ended session: its loop, its tasks, stray connections."""
        code = self.machine.final_code or 1000
        for link in self.links.values():
            link.close(code, "session has ended")
        self.links.clear()
        self._loop_task.cancel()
        for task in list(self._tasks):
            task.cancel()

    # -- the control loop ------------------------------------------------------------------

    async def _control_loop(self) -> None:
        alarm = Alarm(self._inbox)
        while True:
            alarm.arm(self.machine.next_deadline())
            item = await self._inbox.get()
            try:
                now = now_ms()
                if item[0] == "data" and item[1] in self.machine.pending:
                    self.stream.note_hello(item[1], item[2])
                    self.monitors.note_hello(item[1], item[2])
                if item[0] == "tick":
                    alarm.fired()
                    actions = self.machine.tick(now)
                elif item[0] == "data" and self._admitting(item[1], item[2]):
                    actions = await self._admit(item[1], item[2], now)
                elif item[0] == "lost":
                    actions = await self._lost(item[1], item[2], now)
                else:
                    actions = self._dispatch(item, now)
                await self._apply(actions)
            except Exception as exc:
                await self._crash(exc)
            self._note_state()
            if self.machine.primary != self._primary:
                self._primary = self.machine.primary
                if self._input is not None:  # dropped or resumed: no key stays held
                    self._input.release()
                self._show_cursor(None)
                self._on_primary(self)

    async def _crash(self, exc: Exception) -> None:
        """A bug in the loop itself: 4001 before the session is active, 4004 after."""
        state = self.machine.state
        code = (
            CodeNumber.SERVER_CONTROL_ERROR
            if state in (SessionState.ACTIVE, SessionState.DISCONNECTED)
            else CodeNumber.SERVER_START_ERROR
        )
        error = "".join(traceback.format_exception_only(exc)).strip()
        detail = traceback.format_exc(limit=8)
        with contextlib.suppress(Exception):
            await self._apply(self.machine.fault(code, "control loop", error, now_ms(), detail))

    def _dispatch(self, item: tuple[Any, ...], now: int) -> list[Action]:
        kind, *args = item
        m = self.machine
        if kind == "opened":
            return m.connection_opened(args[0], now, args[1])
        if kind == "data":
            return m.receive(args[0], args[1], now)
        if kind == "displace":
            return m.displace(args[0], now)
        if kind == "send_failed":
            return m.send_failed(args[0], args[1], now)
        if kind == "overflow":
            return m.queue_overflow(args[0], args[1], now)
        if kind == "start_ok":
            return m.start_succeeded(now)
        if kind == "start_failed":
            return m.start_failed(args[0], args[1], now)
        if kind == "push":
            return m.push(args[0], now)
        if kind == "host":
            return m.host_event(args[0], args[1], now)
        if kind == "revoke":
            actions = m.revoke_tokens(args[0], now)
            if not args[1].done():  # (its caller may have stopped waiting)
                args[1].set_result(None if m.ended else m.token_generation)
            return actions
        if kind == "app_exit":
            return self._app_exited(args[0], args[1], now)
        if kind == "fault":
            return m.fault(args[0], args[1], args[2], now)
        if kind == "video":
            return m.video_result(args[0], args[1], now)
        raise ValueError(f"unknown inbox item {kind!r}")

    async def _lost(self, cid: str, peer_code: int | None, now: int) -> list[Action]:
        """A connection gone without a close frame while a send to it was in progress failed
        on the send path (4025: the peer reset it under a burst, say), not merely dropped."""
        link = self.links.get(cid)
        error = await link.failed_send() if link is not None and peer_code is None else None
        self._drop_link(cid)
        if error is not None:
            return self.machine.send_failed(cid, error, now)
        return self.machine.connection_lost(cid, now, peer_code)

    def _admitting(self, cid: str, data: str | bytes) -> bool:
        """A fitting hello that would make `cid` the session's only live connection."""
        m = self.machine
        return cid in m.pending and m.primary is None and m.hello_fits(data)

    async def _admit(self, cid: str, hello: str | bytes, now: int) -> list[Action]:
        """Apply duplicate_policy when the token owner is live in another session, on this
        host or another (4006)."""
        m = self.machine
        holder = None if self._admit_owner is None else await self._admit_owner(self, cid)
        if holder is not None:
            live = {"live_session_id": holder.session_id, "live_host": holder.host}
            return m.refuse_duplicate(cid, holder.connection_id, live)
        return m.receive(cid, hello, now)

    async def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                link = self.links.get(action.connection_id)
                if link is not None:
                    link.send(encode(action.message))
            elif isinstance(action, Close):
                link = self.links.pop(action.connection_id, None)
                if link is not None:
                    self._track(link.close(action.code, action.reason, action.abort))
            elif isinstance(action, Log):
                if action.event == "connection.closed" and action.connection_id:
                    self.stream.closed(action.connection_id)  # its final stats come first
                self._write(action)
            elif isinstance(action, StartSession):
                self._track(asyncio.create_task(self._start()))
            elif isinstance(action, Deliver):
                self._deliver(action)
            elif isinstance(action, Relayout):
                relayout = self.monitors.relayout(action.monitors, self.machine.settings)
                self._track(asyncio.create_task(relayout))
                for secondary in self.machine.monitors.secondaries:  # one that just joined
                    if self._cursor_shape is not None:
                        self._send_to(secondary, self._cursor_shape)
            elif isinstance(action, EndSession):
                await self._end()

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _drop_link(self, cid: str) -> None:
        link = self.links.pop(cid, None)
        if link is not None:
            link.close(1000, "")

    # -- session start, video, auxiliary work ----------------------------------------------

    async def _start(self) -> None:
        self._type_ahead_until = time.monotonic() + TYPE_AHEAD_S
        settings = self.machine.settings
        env = {
            "OPENFRP_SESSION_ID": self.identity.session_id,
            "OPENFRP_USER": self.identity.user or "",
            **self._guest_env,
        }
        try:
            self.account = account = await self._isolation.acquire(
                self.identity.session_id, settings.run_as
            )
            self._write(Log("session.account", attrs=account.describe()))
            await mount_profile(settings, {**env, "OPENFRP_SESSION_HOME": str(account.home)})
            hello = self.stream.hello_of(self.machine.primary)
            self.display = await start_display(self._display_kind, settings, hello.size)
            dpi = await set_dpi(self.display, hello.scale)
            self._write(Log("display.ready", attrs={**self.display.describe(), "dpi": dpi}))
            if self.display.cookie:
                await asyncio.to_thread(
                    account.give_cookie, self.display.cookie, self.display.number
                )
            app_env = {k: v for k, v in env.items() if k != "OPENFRP_USER"}
            self.app = await start_app(
                settings, account.app_env(app_env, self.display.env), account
            )
        except StartFailure as failure:
            self.post("start_failed", failure.code, failure.error)
            return
        except Exception as exc:
            self.post("start_failed", CodeNumber.SERVER_START_ERROR, f"{type(exc).__name__}: {exc}")
            return
        if self.ended.is_set():  # ended while starting (closed from outside, say)
            await self._release()
            return
        self.post("start_ok")
        self._start_desk()
        self._watch_cursor()
        if self.app is not None:
            self._track(asyncio.create_task(self._watch_app(self.app, self.display)))
        if self._video_fps > 0:
            self._track(asyncio.create_task(self._video_pump()))

    def _start_desk(self) -> None:
        """Clipboard on the X display (if any); uploads into the app's home, as its user."""
        display, account = self.display, self.account
        x_display = None if display is None or display.number is None else f":{display.number}"
        home = owner = None
        if account is not None:
            home, owner = account.home, (account.uid, account.gid)
        cookie = display.cookie if display is not None else ""
        self.desk.start(
            x_display, cookie, lambda: display is not None and display.alive, home, owner
        )

    def _watch_cursor(self) -> None:
        """The cursor shape of the X display (if any), for the terminal to draw itself."""
        if self._cursor is not None:
            self._cursor.stop(0)
        target = self._input_target()
        if target is None:
            return
        loop = asyncio.get_running_loop()

        def shape(message: dict[str, Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(self._show_cursor, message)

        self._cursor = CursorWatch(target[1], target[2], shape)

    def _show_cursor(self, message: dict[str, Any] | None) -> None:
        """Send a new shape (to secondary monitor windows too), or the last one again to a
        connection that just became live."""
        if message is not None:
            self._cursor_shape = message
            for secondary in self.machine.monitors.secondaries:
                self._send_to(secondary, message)
        cid = self.machine.primary
        live = cid is not None and self.machine.state is SessionState.ACTIVE
        if self._cursor_shape is not None and cid is not None and live:
            self._send_to(cid, self._cursor_shape)

    def _send_to(self, cid: str, message: dict[str, Any]) -> None:
        link = self.links.get(cid)
        if link is not None:
            link.send(encode(message))

    async def _watch_app(self, app: asyncio.subprocess.Process, display: Display) -> None:
        """The app's exit ends the session: 4018, or 4005 when the display it ran on died
        under it (an X app exits on its connection's I/O error, often before the video path
        sees the display gone: that is the display's failure, not a logoff)."""
        status = await app.wait()
        exited = app_exit_reason(status)
        died = status != 0 and await display.dies_within(APP_DISPLAY_GRACE_S)
        if self.ended.is_set():
            return
        if died:
            error = f"{display.gone()}, and {exited}"
            self.post("fault", CodeNumber.SERVER_AUX_ERROR, "display", error)
        else:
            self.post("app_exit", status, exited)

    def _app_exited(self, status: int, reason: str, now: int) -> list[Action]:
        """4018, its end saying how the app ended (`exit_status`, which the analyzer reads);
        an app that failed (a non-zero status, a signal) is a fault, logged as an error."""
        actions = self.machine.host_event(CodeNumber.GUEST_LOGOFF, reason, now)
        return [
            replace(
                a,
                severity="error" if status != 0 else a.severity,
                attrs={**a.attrs, "exit_status": status},
            )
            if isinstance(a, Log) and a.event == "session.ended"
            else a
            for a in actions
        ]

    async def _video_pump(self) -> None:
        """Stream the display to the live connection from a worker thread (media/streamer.py);
        failures in a row become 4011 in the machine. A display that died is restarted once
        the session waits for a resume."""
        assert self.display is not None
        self.stream.start(self.monitors.view(self.display), self.machine.settings)
        self._watch_damage()
        try:
            while not self.ended.is_set():
                active = self.machine.state is SessionState.ACTIVE
                self.stream.follow(self.machine.primary if active else None)
                if not active and self.display is not None and not self.display.alive:
                    await self._restart_display()
                    self.stream.set_display(self.monitors.view(self.display))
                    self._watch_damage()
                await asyncio.sleep(0.05)
        finally:
            self.stream.stop()

    def _watch_damage(self) -> None:
        display = self.display
        if display is None or display.number is None:
            self.stream.watch(None, "")
        else:
            self.stream.watch(f":{display.number}", display.cookie)

    async def _restart_display(self) -> None:
        """After 4011 for a dead display, give the resumed session a new one."""
        assert self.display is not None
        gone = self.display.describe()
        await self.display.stop()
        try:
            display = await start_display(self._display_kind, self.machine.settings)
        except StartFailure as failure:
            self._write(
                Log(
                    "video.error",
                    severity="error",
                    attrs={"error": failure.error, "restarting": gone},
                )
            )
            return
        if self.ended.is_set():  # the session ended while the display was starting
            await display.stop()
            return
        self.display = display
        if self.account is not None and display.cookie:
            await asyncio.to_thread(self.account.give_cookie, display.cookie, display.number)
        self._write(Log("display.ready", attrs={**display.describe(), "replaces": gone}))
        self._start_desk()  # the clipboard follows the new display
        self._watch_cursor()

    def _deliver(self, action: Deliver) -> None:
        message = action.message
        if self.monitors.handle(action.connection_id, message):
            return
        if message["type"] == "resize" and self.machine.monitors.secondaries:
            return  # a row of monitors is sized by the Relayout that came with it
        if self.stream.handle(action.connection_id, message):
            return
        if message["type"] == "input":
            self._feed_input(action.connection_id, message)
            return
        if message["type"] == "clipboard":
            self._offer_clipboard(action.connection_id, message["text"])
            return
        if message["type"] == "frame_ack":
            link = self.links.get(action.connection_id)
            if link is not None:
                link.frame_acked()
            return
        self._track(asyncio.create_task(self._auxiliary(action)))

    def _offer_clipboard(self, cid: str, text: str) -> None:
        """Text for the session's clipboard, offered before the input that follows it is
        queued, and that input held until the text is the session's: a paste key sent right
        after it pastes it."""
        try:
            owned = self.desk.paste(cid, text)
        except Exception as exc:
            self.post("fault", CodeNumber.SERVER_AUX_ERROR, "deliver clipboard", repr(exc))
            return
        feed = self._input_feed()
        if owned is not None and feed is not None:
            feed.barrier(owned)

    def _feed_input(self, cid: str, message: dict[str, Any]) -> None:
        """Queue a key, pointer or wheel event for the display's input worker (in order,
        bounded); a failure there is 4005. A synthetic display has nowhere to type."""
        feed = self._input_feed()
        if feed is None:
            return
        if feed.offer(self.monitors.place(cid, parse_input(message))):
            if self._input_dropped:
                self._log_dropped(cid, ended=True)
            return
        self._input_dropped += 1
        if self._input_dropped == 1:
            self._log_dropped(cid, ended=False)

    def _input_feed(self) -> InputFeed | None:
        """The display's input worker, started on first use; None when there is nowhere to
        type (a synthetic display, the session over). Until TYPE_AHEAD_S after the session
        began to start, the worker holds what is typed for the display and the app's window."""
        starting = time.monotonic() < self._type_ahead_until
        if (self._input_target() is None and not starting) or self.ended.is_set():
            return None
        if self._input is None:
            loop = asyncio.get_running_loop()

            def failed(error: str) -> None:
                with contextlib.suppress(RuntimeError):  # the loop is already closed
                    loop.call_soon_threadsafe(
                        self.post, "fault", CodeNumber.SERVER_AUX_ERROR, "input", error
                    )

            self._input = InputFeed(self._input_target, failed, ready_by=self._type_ahead_until)
        return self._input

    def _log_dropped(self, cid: str, ended: bool) -> None:
        """A flood beyond the queue's bound: said when it starts and, with its size, when
        it ends; held keys were let go."""
        assert self._input is not None
        attrs = {"dropped": self._input_dropped, "limit": self._input.limit, "over": ended}
        self._write(Log("input.dropped", severity="warning", connection_id=cid, attrs=attrs))
        if ended:
            self._input_dropped = 0

    def _input_target(self) -> tuple[object, str, str] | None:
        display = self.display
        if display is None or display.number is None:
            return None
        return display, f":{display.number}", display.cookie

    async def _auxiliary(self, action: Deliver) -> None:
        """Work beside the control loop (event upload, input); a failure here is 4005."""
        message = action.message
        try:
            if message["type"] == "events":
                self._ingest_terminal_events(message["items"], action.connection_id)
            elif message["type"] in DESK_MESSAGES:
                await self.desk.receive(action.connection_id, message)
        except Exception as exc:
            self.post(
                "fault",
                CodeNumber.SERVER_AUX_ERROR,
                f"deliver {message['type']}",
                f"{type(exc).__name__}: {exc}",
            )

    def _ingest_terminal_events(self, items: list[Any], cid: str) -> None:
        accepted, notes = self._shipped.admit(items[:1000], cid, time.monotonic())
        for event in [*accepted, *notes]:
            self._log.write(event)

    def _note_state(self) -> None:
        """Tell the host of the machine's new state, which it records in the registry."""
        if self.machine.state is not self._state:
            self._state = self.machine.state
            self._show_cursor(None)
            self._on_state(self)

    async def _end(self) -> None:
        # The end is recorded before `ended` is set: a stopping server waits for `ended`, not
        # for the teardown below, and then for the writes queued so far (an end recorded
        # after it was lost, and the next start took the session for one a crash left open).
        self._note_state()
        self.ended.set()
        self.monitors.stop()
        if self._cursor is not None:
            await asyncio.to_thread(self._cursor.stop)
        await self.desk.close()
        if self._input is not None:
            await asyncio.to_thread(self._input.close)
        await self._release()

    async def _release(self) -> None:
        """Stop the session's app and display (each only once it exists), then give back its
        account (its leftover processes ended, its home removed)."""
        if self.app is not None and self.app.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.app.pid, signal.SIGTERM)
        self.stream.stop()  # before its display goes: no grab of a display being torn down
        if self.display is not None:
            await self.display.stop()
        account, self.account = self.account, None
        if account is not None:
            await self._isolation.release(account)

    # -- the event log ---------------------------------------------------------------------

    def _write(self, action: Log) -> None:
        self._log.write(
            self.identity.event(
                action.event,
                code=action.code,
                severity=action.severity,
                message=action.message,
                connection_id=action.connection_id,
                previous_connection_id=action.previous_connection_id,
                attrs=action.attrs,
            )
        )
