"""One host's part in a fleet of hosts that share a registry.

4006 across hosts: the host that carries a token owner's live connection records it in the
registry and renews it every third of `live_connection_ttl`, so a crashed host frees the user
once the record lapses. Requests only the owning host can carry out (displace an older
connection, close a session, push a message, revoke its tokens) reach it through the registry.
Writes that follow a session's changes go through one ordered queue, so a late renewal never
recreates a record after its release. A write the registry cannot take because it is
unreachable waits at the head of the queue and is tried again (backoff up to REPLAY_MAX) until
it goes through, so nothing a session did during an outage is lost; when the registry answers
again, this host publishes its sessions the registry no longer holds (a Redis restarted empty).
The queue is bounded: a write waiting for the same thing of the same session (its state, its
owner record, its token generation) is replaced by the newer one, so an outage holds at most a
few writes per session, and past `limit` the oldest is dropped, said at once
(registry.writes_dropped) and made good after the outage by writing that session's state as it
is then. With a registry that is not shared (SQLite) only the local rules apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from openfrp.codes import CodeNumber
from openfrp.events import Event, EventLog, now_ts
from openfrp.server.registry import Holder, Registry, RegistryError, SessionRecord
from openfrp.server.runtime import SessionRuntime

Job = Callable[[], Awaitable[None]]
Key = tuple[str, str]  # what a write is about ("state", "owner", "generation") and its session
REPLAY_FIRST, REPLAY_MAX = 0.5, 5.0  # seconds between tries of a write during an outage


def takeover_reason(session_id: str, host: str | None = None) -> str:
    return f"taken over by session {session_id}" + (f" on host {host}" if host else "")


class Fleet:
    def __init__(
        self,
        registry: Registry,
        host: str,
        ttl: float,
        runtimes: dict[str, SessionRuntime],
        log: EventLog,
        records: dict[str, SessionRecord] | None = None,
        limit: int = 10000,
    ) -> None:
        self.registry = registry
        self._records = records if records is not None else {}  # this host's, as launched
        self.host = host
        self.ttl = ttl
        self._runtimes = runtimes
        self._log = log
        self.limit = limit
        self._pending: OrderedDict[Key | int, Job] = OrderedDict()
        self._serial = itertools.count()  # keys of writes that replace none
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._lost: set[str] = set()  # sessions whose dropped writes are made good later
        self._dropped = 0  # since the registry last answered
        self._held: dict[str, str] = {}  # session id -> user: owner records this host keeps
        self._tasks: set[asyncio.Task[Any]] = set()
        self._failing: set[str] = set()
        self._closing = False

    async def start(self) -> None:
        self._spawn(self._writer())
        if self.registry.shared:
            await self.registry.listen(self.host, self._on_request)
            self._spawn(self._keeper())

    def later(self, job: Job, key: Key | None = None) -> None:
        """Run `job` after every write queued before it (errors are logged, not raised); it
        replaces a write of the same `key` still waiting."""
        slot: Key | int = next(self._serial) if key is None else key
        self._pending.pop(slot, None)
        self._pending[slot] = job
        if len(self._pending) > self.limit:
            self._drop(self._pending.popitem(last=False)[0])
        self._drained.clear()
        self._wake.set()

    def _drop(self, slot: Key | int) -> None:
        self._dropped += 1
        if isinstance(slot, tuple):
            self._lost.add(slot[1])
        if self._dropped > 1:
            return
        self._log.write(
            Event(
                "registry.writes_dropped",
                host=self.host,
                severity="error",
                message=f"more than {self.limit} registry writes wait: the oldest are dropped "
                "and each session's state is written again once the registry answers",
                attrs={"limit": self.limit, "write": list(slot) if isinstance(slot, tuple) else []},
            )
        )

    # -- 4006: the token owner's live connection -------------------------------------------

    async def admit(self, runtime: SessionRuntime, cid: str) -> Holder | None:
        """Apply the newcomer's duplicate_policy; returns the live holder that refuses it."""
        sid, user = runtime.identity.session_id, runtime.identity.user or ""
        refuse = runtime.machine.settings.duplicate_policy == "refuse"
        local = self._live_here(runtime)
        if local is not None and local.machine.primary is not None:
            if refuse:
                return Holder(self.host, local.identity.session_id, local.machine.primary)
            local.post("displace", takeover_reason(sid))
        if not self.registry.shared:
            return None
        me = Holder(self.host, sid, cid)
        try:
            if refuse:
                holder = await self.registry.claim_owner(user, me, self.ttl)
                if holder is not None:
                    return holder
            else:
                previous = await self.registry.take_owner(user, me, self.ttl)
                if previous is not None and previous.host != self.host:
                    await self.ask(
                        previous.host,
                        "displace",
                        previous.session_id,
                        reason=takeover_reason(sid, self.host),
                    )
        except Exception as exc:  # the registry is down: admit, as one host alone would
            self._error("owner check", exc)
            return None
        self._held[sid] = user
        return None

    def _live_here(self, runtime: SessionRuntime) -> SessionRuntime | None:
        """Another session on this host whose token owner is the same and live."""
        for other in self._runtimes.values():
            if (
                other is not runtime
                and other.identity.user == runtime.identity.user
                and other.machine.primary
            ):
                return other
        return None

    def primary_changed(self, runtime: SessionRuntime) -> None:
        """Renew, update or release the owner record once a session's connection changes."""
        if self.registry.shared:
            self.later(lambda: self._sync(runtime), ("owner", runtime.identity.session_id))

    async def _sync(self, runtime: SessionRuntime) -> None:
        sid, user = runtime.identity.session_id, runtime.identity.user or ""
        cid = runtime.machine.primary
        if cid is None or runtime.ended.is_set() or self._closing:
            if self._held.pop(sid, None) is not None:
                await self.registry.release_owner(user, sid)
            return
        holder = await self.registry.refresh_owner(user, Holder(self.host, sid, cid), self.ttl)
        self._held[sid] = user
        if holder is not None:  # another session took the owner over
            del self._held[sid]
            if holder.host != self.host:  # (this host's own takeovers displace directly)
                runtime.post("displace", takeover_reason(holder.session_id, holder.host))

    async def _keeper(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            for runtime in list(self._runtimes.values()):
                if runtime.machine.primary or runtime.identity.session_id in self._held:
                    self.primary_changed(runtime)

    # -- requests between hosts ------------------------------------------------------------

    async def ask(self, host: str, op: str, session_id: str, **fields: Any) -> int:
        """Send `op` for a session to the host that owns it; returns how many got it."""
        request = {"op": op, "session_id": session_id, "from": self.host, **fields}
        return await self.registry.send(host, request)

    async def _on_request(self, request: dict[str, Any]) -> None:
        sid = request.get("session_id")
        runtime = self._runtimes.get(sid) if isinstance(sid, str) else None
        if runtime is None or runtime.ended.is_set():
            return
        op, sender = request.get("op"), request.get("from")
        if op == "displace":
            runtime.post("displace", str(request.get("reason", "")))
        elif op == "close":
            reason = f"closed from outside by {request.get('by', 'admin API')} via host {sender}"
            self._spawn(runtime.stop(CodeNumber.CLOSED_REMOTELY, reason))
        elif op == "push" and isinstance(request.get("body"), dict):
            runtime.post("push", request["body"])
        elif op == "revoke":
            reason = f"tokens revoked by the {request.get('by', 'admin API')} via host {sender}"
            self._spawn(self.revoke(runtime, reason))

    async def revoke(self, runtime: SessionRuntime, reason: str) -> int | None:
        """Revoke a session's tokens on its own host, ending the connections that used them,
        and tell the fleet at once (a registry that cannot be reached takes the new generation
        when it returns); the new generation, None when the session ended first."""
        generation = await runtime.revoke(reason)
        if generation is None:
            return None
        sid = runtime.identity.session_id
        try:
            await self.registry.set_generation(sid, generation)
        except RegistryError:
            self.later(lambda: self.registry.set_generation(sid, generation), ("generation", sid))
        return generation

    # -- plumbing --------------------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            while not self._pending:
                self._drained.set()
                self._wake.clear()
                await self._wake.wait()
            job = self._pending.popitem(last=False)[1]
            try:
                await self._until_written(job)
            except Exception as exc:
                self._error("write", exc)

    async def _until_written(self, job: Job) -> None:
        """Run `job`; while the registry cannot be reached, try it again, then publish what
        the registry lost before going on with the queue."""
        delay, waited = REPLAY_FIRST, 0
        while True:
            try:
                await job()
                break
            except RegistryError as exc:
                self._error("write", exc)
                waited += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, REPLAY_MAX)
        self._failing.clear()
        if waited or self._lost:
            await self._republish()

    async def _republish(self) -> None:
        """Put back this host's sessions the registry does not hold (it restarted empty), and
        write the state of those whose writes were dropped as it is now."""
        restored = []
        lost, dropped = self._lost, self._dropped
        self._lost, self._dropped = set(), 0
        for sid, record in list(self._records.items()):
            missing = await self.registry.get(sid) is None
            if not missing and sid not in lost:
                continue
            if missing:
                await self.registry.add(record)
            runtime = self._runtimes.get(sid)
            if runtime is not None:
                code = runtime.machine.final_code
                ended = now_ts() if code is not None else None
                await self.registry.set_state(sid, runtime.machine.state.value, code, ended)
                await self.registry.set_generation(sid, runtime.machine.token_generation)
            restored.append(sid)
        self._log.write(
            Event(
                "registry.replayed",
                host=self.host,
                message="the registry answers again: writes held during the outage are done",
                attrs={"republished": restored, "dropped": dropped},
            )
        )

    def _error(self, where: str, exc: Exception) -> None:
        """Log a registry failure once until the registry answers again."""
        if where in self._failing:
            return
        self._failing.add(where)
        self._log.write(
            Event(
                "error.exception",
                host=self.host,
                severity="error",
                message=f"registry {where} failed: {type(exc).__name__}: {exc}",
                attrs={"where": f"registry {where}", "error": f"{type(exc).__name__}: {exc}"},
            )
        )

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, timeout: float = 3.0) -> None:
        """Release the owner records still held, bounded, then stop."""
        self._closing = True
        for runtime in list(self._runtimes.values()):
            if runtime.identity.session_id in self._held:
                self.primary_changed(runtime)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), timeout)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
