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
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

LEAVES = ("close", "disconnect")  # commands that leave: the end of the input adds nothing
MAX_WAITING = 1000  # commands held while earlier ones run; more are dropped, and said so
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
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.connected = asyncio.Event()
        self._left = False  # a `close` or `disconnect` ran: the terminal is leaving already

    def put(self, line: str | None) -> None:
        """A command line, or None: the input has ended (never dropped)."""
        if line is not None and self._queue.qsize() >= MAX_WAITING:
            self._say(f"more than {MAX_WAITING} commands waiting: {line!r} dropped")
            return
        self._queue.put_nowait(line)

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
