"""The server's start-up and shut-down as Starlette's lifespan. Each step registers its undo as
it starts, so a step that fails stops what the earlier ones started, in reverse order, and
shut-down after serving is the same unwinding."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from openfrp.events import Event
from openfrp.server.leftovers import remove_unused_display_dirs
from openfrp.server.limits import ResourceAlarm
from openfrp.server.recovery import end_left_over
from openfrp.server.registry import Registry, RegistryError
from openfrp.server.retention import prune_forever
from openfrp.server.sessions import ServerState

oplog = logging.getLogger("openfrp.server")


class StartFailed(Exception):
    """A start-up step failed for a reason the operator can fix (registry, files): one line."""


@dataclass
class Lifespan:
    """`registry` is the state's registry unwrapped from the metrics, so one that cannot be
    opened is a failed start, not also an outage; `leave` asks uvicorn to stop serving;
    `ready` is the last step (files and messages for whoever waits for the server)."""

    state: ServerState
    registry: Registry
    leave: Callable[[], None]
    ready: Callable[[], Awaitable[None]]

    @contextlib.asynccontextmanager
    async def __call__(self, app: object) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            try:
                await self._start(stack)
            except (RegistryError, OSError) as exc:
                raise StartFailed(str(exc)) from exc
            yield

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        state, opts = self.state, self.state.config.server
        self._handle_signals(stack)
        stack.push_async_callback(self.registry.close)
        await self.registry.start()
        stack.push_async_callback(state.fleet.close)
        await state.fleet.start()
        await end_left_over(state.registry, state.log, opts.name, state.isolation)
        for folder in await asyncio.to_thread(remove_unused_display_dirs):
            oplog.info("removed %s, the display folder of a killed server", folder)
        if any(pad.frp == 8 for pad in state.config.launchpads.values()):
            from openfrp.server.frp8 import PeerHost  # aiortc, only where FRP8 is used

            peer = PeerHost(state)
            if not opts.signaling_url:  # its own hub: straight to this process, not the front end
                peer.url = state.local_url.replace("http", "ws", 1) + "/signal"
            stack.push_async_callback(peer.close)
            _until_shutdown(stack, peer.run())
        retention = prune_forever(state.registry, state.log, opts.name, opts.registry_retention)
        _until_shutdown(stack, retention)
        await self.ready()

    def _handle_signals(self, stack: contextlib.AsyncExitStack) -> None:
        """SIGTERM/SIGINT end every live session with 4019, then serving; SIGHUP reopens the
        event log. Installed first, so they hold until the last undo."""
        state, log, host = self.state, self.state.log, self.state.config.server.name
        loop = asyncio.get_running_loop()
        stack.callback(loop.set_exception_handler, loop.get_exception_handler())
        loop.set_exception_handler(ResourceAlarm(log, host))
        stopping: list[asyncio.Task[None]] = []

        async def stop(signame: str) -> None:
            oplog.info("stopping on %s: live sessions end with 4019", signame)
            log.write(Event("server.stopping", host=host, attrs={"signal": signame}))
            await state.stop_all(f"server received {signame}")
            self.leave()

        def on_signal(signame: str) -> None:
            if not stopping:
                stopping.append(asyncio.create_task(stop(signame)))

        def on_hangup() -> None:
            """logrotate moved the event log: write on in a new file at its path."""
            log.reopen()
            log.write(Event("server.log_reopened", host=host, attrs={"signal": "SIGHUP"}))

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig.name)
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            stack.callback(loop.remove_signal_handler, sig)


def _until_shutdown(stack: contextlib.AsyncExitStack, work: Coroutine[Any, Any, None]) -> None:
    """Run `work` as a task until the unwinding cancels it and waits for its end (an error
    it ended with is left unretrieved, so the loop still reports it)."""
    task = asyncio.create_task(work)

    async def cancel() -> None:
        task.cancel()
        await asyncio.wait([task])

    stack.push_async_callback(cancel)
