"""The Python terminal's commands (typed, or piped in as a script), run one after another.

A command waits for the one before it (a screenshot is saved before the next key goes), and
commands read before the first connection wait for it, so a script piped in works (keys
typed while the session starts wait on the server for the app's window; the `wait` before
the screenshot gives the app time to answer):

    printf 'type ls\\nkey Return\\nwait 1\\nscreenshot a.png\\n' | openfrp connect LINK

When the input ends, the terminal disconnects once the commands before that are done, and the
session stays open for a resume (`--no-stdin` keeps a terminal connected without reading
any). `wait SECONDS` pauses the commands after it; `size WxH` asks for another screen size,
as a browser window resized does, and says so when the session gives another.

At the end the terminal says what happened and, when the session goes on without it, the
command that gets back in (`ending`).
"""

from __future__ import annotations

import asyncio
import math
import re
import shlex
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from openfrp import codes
from openfrp.codes import CodeNumber
from openfrp.protocol.terminal_connection import (
    SESSION_GOES_ON,
    SessionTicket,
    TerminalConnection,
)
from openfrp.settings import SessionSettings

LEAVES = ("close", "disconnect")  # commands that leave: the end of the input adds nothing
MAX_WAITING = 1000  # commands held while earlier ones run; the input's reader then waits
MAX_WAIT_S = 3600.0
ENDED = (
    "input ended: disconnecting; the session stays open for a resume "
    "(--no-stdin keeps a terminal connected without reading commands)"
)


class Commands:
    """Runs each command with `run_one` in order once `connected` is set; at the end of the
    input, `leave()`."""

    def __init__(
        self,
        run_one: Callable[[str], Awaitable[None]],
        leave: Callable[[], None],
        say: Callable[[str], None],
    ) -> None:
        self._run_one, self._leave, self._say = run_one, leave, say
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(MAX_WAITING)
        self.connected = asyncio.Event()
        self._left = False  # a `close` or `disconnect` ran: the terminal is leaving already

    async def put(self, line: str | None) -> None:
        """A command line, or None: the input has ended. Waits while MAX_WAITING are held,
        so a script piped in waits for the session rather than lose its commands."""
        await self._queue.put(line)

    async def run(self) -> None:
        await self.connected.wait()
        while True:
            line = await self._queue.get()
            if line is None:
                if not self._left:
                    self._say(ENDED)
                    self._leave()
                return
            word, _, rest = line.partition(" ")
            self._left = self._left or word in LEAVES
            if word == "wait":
                await self._wait(rest)
            elif line:
                try:
                    await self._run_one(line)
                except Exception as exc:  # the commands after it still run
                    self._say(f"{word} failed: {type(exc).__name__}: {exc}")

    async def _wait(self, rest: str) -> None:
        try:
            seconds = float(rest)
        except ValueError:
            seconds = math.nan
        if not 0 <= seconds <= MAX_WAIT_S:
            self._say(f"wait: expected seconds from 0 to {MAX_WAIT_S:.0f}, got {rest!r}")
            return
        await asyncio.sleep(seconds)


def parse_size(text: str) -> tuple[int, int]:
    """WxH (e.g. 1280x720) as (width, height); ValueError naming what was given."""
    width, sep, height = text.strip().lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit()) or not int(width) or not int(height):
        raise ValueError(f"{text.strip()!r} is not a size WxH (e.g. 1280x720)")
    return int(width), int(height)


def size_note(asked: tuple[int, int], given: tuple[int, int]) -> str | None:
    """What `size` says when the session's screen is not the size asked (None when it is): the
    server fits a size to its launchpad's smallest and largest, and to even numbers (H.264)."""
    if given == asked:
        return None
    grew = any(got > want for want, got in zip(asked, given, strict=True))
    shrank = any(got < want - 1 for want, got in zip(asked, given, strict=True))
    why = {
        (True, False): " (its smallest)",
        (False, True): " (its largest)",
        (False, False): " (even sizes only)",
    }.get((grew, shrank), "")
    return f"the session's screen is {given[0]}x{given[1]}{why}"


def resume_line(ticket: SessionTicket, ws_url: str, argv: list[str] | None = None) -> str:
    """The command that resumes the session: this terminal's own connect line, its link
    carrying the session's token, which lasts as long as the session (a link's expires after
    link_ttl); outside `openfrp connect`, a line made from the ticket."""
    argv = sys.argv if argv is None else argv
    swap = re.compile(r"([#?&]token=)[^&#\s]*")
    if "connect" in argv[1:]:
        return shlex.join([swap.sub(rf"\g<1>{ticket.token}", word) for word in argv])
    base = re.sub(r"^ws", "http", ws_url).removesuffix("/frp7")
    return f"openfrp connect {shlex.quote(f'{base}/s/{ticket.session_id}#token={ticket.token}')}"


def _seconds(value: float) -> str:
    return f"{value / 60:g} min" if value >= 120 else f"{value:g} s"


def ending(machine: TerminalConnection, line: str) -> list[str]:
    """The terminal's last words: "session over" only when the server ended the session;
    otherwise what happened and how to get back in (the command to run)."""
    code, refusal, given = machine.final_code, machine.refusal, machine.ticket.config
    if code is None:
        return ["session over: disconnected (the session can be resumed)"]
    said = codes.describe(code, refusal, machine.unreachable)
    known = given.get("terminal") or {}
    if code == CodeNumber.ALREADY_IN_SESSION:
        if machine.connection_id is not None:  # displaced: a newer connection took over
            step = f"it goes on there; to take it back here, run: {line}"
        else:
            step = f"not let in: {holding_note(machine.settings, known)}: {line}"
        return [f"open elsewhere: {said}", step]
    if machine.may_resume:
        if refusal is not None:
            step = f"close the other tab or device, then resume here: {line}"
        elif machine.unreachable:
            step = f"once the server is back, resume with: {line}"
        else:
            idle = known.get("idle_timeout")
            until = f"idle_timeout, {_seconds(idle)}" if idle else "its idle_timeout"
            step = f"the session may still be waiting ({until}): to resume it, run: {line}"
        return [f"could not reconnect: {said}", step]
    if refusal in SESSION_GOES_ON:
        return [f"could not resume: {said}"]
    return [f"session over: {said}"]


def holding_note(settings: SessionSettings, known: dict[str, Any]) -> str:
    """How long the server holds a connection it no longer hears from (a device that lost its
    network): receive_timeout x max_receive_timeouts, from the session's settings when the
    ticket carries them."""
    held = settings.receive_timeout * settings.max_receive_timeouts
    named = "max_receive_timeouts times receive_timeout"
    exact = "receive_timeout" in known and "max_receive_timeouts" in known
    after = f"after {held:g} s ({named})" if exact else f"after {named} ({held:g} s by default)"
    return (
        "close the session's other tab or device, then connect again; if it is off or lost its "
        f"network, the server lets its connection go {after} without hearing from it, then "
        "connect again"
    )
