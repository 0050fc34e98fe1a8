"""The registry in Redis, shared by every host behind one entry point.

Keys (all under `openfrp:`): `session:ID` a hash per session record, `sessions` and
`user-sessions:USER` sorted sets by creation time (the listings), `owner:USER` the token
owner's live connection with a TTL its host keeps renewing (so a crashed host frees the user
once it lapses), and the pub/sub channel `host:NAME` for requests only that host can carry out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.typing import EncodableT, FieldT

from openfrp.events import parse_ts
from openfrp.server.registry import Handler, Holder, RegistryError, SessionRecord

PREFIX = "openfrp:"
TIMEOUT = 2.0  # seconds for any one Redis call: a stalled Redis must not stall a session
PRUNE_BATCH = 500  # session records read per round when pruning

# The owner key is free when empty, held by this very session, or left by this host (whose
# in-memory sessions decide for themselves); otherwise the holder is returned untouched.
_CLAIM = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local h = cjson.decode(cur)
  if h['session_id'] ~= ARGV[2] and h['host'] ~= ARGV[3] then return cur end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
return false
"""
_REFRESH = """
local cur = redis.call('GET', KEYS[1])
if cur and cjson.decode(cur)['session_id'] ~= ARGV[2] then return cur end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return false
"""
_RELEASE = """
local cur = redis.call('GET', KEYS[1])
if cur and cjson.decode(cur)['session_id'] == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""
_SET_STATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'final_code', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'ended_ts', ARGV[3]) end
return 1
"""
_SET_GENERATION = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local cur = tonumber(redis.call('HGET', KEYS[1], 'token_generation') or '0')
if tonumber(ARGV[1]) > cur then redis.call('HSET', KEYS[1], 'token_generation', ARGV[1]) end
return 1
"""


P = ParamSpec("P")
T = TypeVar("T")


def _answering(
    method: Callable[Concatenate[RedisRegistry, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[RedisRegistry, P], Coroutine[Any, Any, T]]:
    """A Redis that cannot be reached leaves as RegistryError, an outage the server rides out;
    one that answers with an error (out of memory, a read-only replica) is a refused write,
    passed on as it is (the session whose state it was ends: 4001 or 4004)."""

    async def call(self: RedisRegistry, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(self, *args, **kwargs)
        except ResponseError:
            raise
        except (RedisError, OSError) as exc:
            raise RegistryError(f"registry: Redis at {redacted(self.url)}: {exc}") from exc

    return call


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _login(url: str) -> str:
    """Why a Redis that answers refused this URL's login, and what to give instead."""
    form = "redis://:PASSWORD@HOST:PORT/DB, or redis://USER:PASSWORD@HOST:PORT/DB for an ACL user"
    if urlsplit(url).password is None:
        return f"asks for a password and the URL gives none: give it in the URL, {form}"
    return f"refused the URL's user and password: check them against Redis's ({form})"


class RedisRegistry:
    shared = True

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self._redis: aioredis.Redis = aioredis.from_url(
                url,
                decode_responses=True,
                socket_timeout=TIMEOUT,
                socket_connect_timeout=TIMEOUT,
            )
        except ValueError as exc:
            raise RegistryError(f"registry: bad Redis URL {redacted(url)}: {exc}") from None
        self._claim = self._redis.register_script(_CLAIM)
        self._refresh = self._redis.register_script(_REFRESH)
        self._release = self._redis.register_script(_RELEASE)
        self._set_state = self._redis.register_script(_SET_STATE)
        self._set_generation = self._redis.register_script(_SET_GENERATION)
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self._redis.ping()
        except AuthenticationError:
            await self.close()
            raise RegistryError(
                f"registry: Redis at {redacted(self.url)} {_login(self.url)}"
            ) from None
        except (RedisError, OSError) as exc:
            await self.close()
            raise RegistryError(
                f"registry: cannot reach Redis at {redacted(self.url)}: {exc}"
            ) from None

    # -- session records -------------------------------------------------------------------

    @_answering
    async def add(self, record: SessionRecord) -> None:
        fields: dict[FieldT, EncodableT] = {
            k: v for k, v in record.public().items() if v is not None
        }
        fields["config"] = json.dumps(record.config)
        fields["token_generation"] = record.token_generation
        score = parse_ts(record.created_ts).timestamp()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(f"{PREFIX}session:{record.session_id}", mapping=fields)
            pipe.zadd(f"{PREFIX}sessions", {record.session_id: score})
            pipe.zadd(f"{PREFIX}user-sessions:{record.user}", {record.session_id: score})
            await pipe.execute()

    @_answering
    async def set_state(
        self,
        session_id: str,
        state: str,
        final_code: int | None = None,
        ended_ts: str | None = None,
    ) -> None:
        code = "" if final_code is None else str(final_code)
        key = f"{PREFIX}session:{session_id}"
        await self._set_state(keys=[key], args=[state, code, ended_ts or ""])

    @_answering
    async def set_generation(self, session_id: str, generation: int) -> None:
        """Only ever raised: a late write cannot bring revoked tokens back."""
        key = f"{PREFIX}session:{session_id}"
        await self._set_generation(keys=[key], args=[generation])

    @_answering
    async def get(self, session_id: str) -> SessionRecord | None:
        found = await self._records([session_id])
        return found[0] if found else None

    @_answering
    async def sessions(self, user: str | None = None) -> list[SessionRecord]:
        index = f"{PREFIX}sessions" if user is None else f"{PREFIX}user-sessions:{user}"
        ids = await self._redis.zrange(index, 0, -1)
        return await self._records([str(i) for i in ids])

    @_answering
    async def prune(self, ended_before: str) -> int:
        """Only a session created before the cut can have ended before it: look at those."""
        cut = parse_ts(ended_before).timestamp()
        ids = [str(i) for i in await self._redis.zrangebyscore(f"{PREFIX}sessions", 0, cut)]
        gone = 0
        for start in range(0, len(ids), PRUNE_BATCH):
            old = [
                r
                for r in await self._records(ids[start : start + PRUNE_BATCH])
                if r.ended_ts is not None and r.ended_ts < ended_before
            ]
            async with self._redis.pipeline(transaction=True) as pipe:
                for record in old:
                    pipe.delete(f"{PREFIX}session:{record.session_id}")
                    pipe.zrem(f"{PREFIX}sessions", record.session_id)
                    pipe.zrem(f"{PREFIX}user-sessions:{record.user}", record.session_id)
                await pipe.execute()
            gone += len(old)
        return gone

    async def _records(self, ids: list[str]) -> list[SessionRecord]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.hgetall(f"{PREFIX}session:{session_id}")
            rows: list[dict[str, str]] = await pipe.execute()
        return [_record(row) for row in rows if row]

    # -- the token owners' live connections (4006 across hosts) ----------------------------

    @_answering
    async def claim_owner(self, user: str, holder: Holder, ttl: float) -> Holder | None:
        args: list[str | int] = [holder.dumps(), holder.session_id, holder.host, _ms(ttl)]
        return _holder(await self._claim(keys=[_owner(user)], args=args))

    @_answering
    async def take_owner(self, user: str, holder: Holder, ttl: float) -> Holder | None:
        previous = await self._redis.set(_owner(user), holder.dumps(), px=_ms(ttl), get=True)
        return _holder(previous)

    @_answering
    async def refresh_owner(self, user: str, holder: Holder, ttl: float) -> Holder | None:
        args: list[str | int] = [holder.dumps(), holder.session_id, _ms(ttl)]
        return _holder(await self._refresh(keys=[_owner(user)], args=args))

    @_answering
    async def release_owner(self, user: str, session_id: str) -> None:
        await self._release(keys=[_owner(user)], args=[session_id])

    # -- requests to the host that owns a session ------------------------------------------

    @_answering
    async def send(self, host: str, message: dict[str, Any]) -> int:
        receivers: int = await self._redis.publish(f"{PREFIX}host:{host}", json.dumps(message))
        return receivers

    @_answering
    async def listening(self, hosts: set[str]) -> set[str]:
        """A host that crashed dropped its Redis connection, and its subscription with it."""
        if not hosts:
            return set()
        counts = await self._redis.pubsub_numsub(*(f"{PREFIX}host:{h}" for h in hosts))
        prefix = f"{PREFIX}host:"
        return {str(channel)[len(prefix) :] for channel, n in counts if int(n) > 0}

    async def listen(self, host: str, handler: Handler) -> None:
        """Requests for `host` would be split between two servers of the same name: the
        second one is refused."""
        channel = f"{PREFIX}host:{host}"
        (_, listeners), *_ = await self._redis.pubsub_numsub(channel)
        if int(listeners):
            raise RegistryError(
                f"server.name: another server named '{host}' is already running "
                "with this registry (every host needs its own name)"
            )
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(channel)
        self._listener = asyncio.create_task(self._listen(pubsub, handler), name="registry-listen")

    async def _listen(self, pubsub: Any, handler: Handler) -> None:
        """Pass each request on; a lost Redis connection is retried once a second."""
        while True:
            try:
                message = await pubsub.get_message(timeout=1.0)
            except (RedisError, OSError):
                await asyncio.sleep(1.0)
                continue
            if message is None or message.get("type") != "message":
                continue
            with contextlib.suppress(ValueError):
                request = json.loads(message["data"])
                if isinstance(request, dict):
                    await handler(request)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        with contextlib.suppress(RedisError, OSError):
            await self._redis.aclose()


def _owner(user: str) -> str:
    return f"{PREFIX}owner:{user}"


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _holder(value: Any) -> Holder | None:
    return Holder.loads(value) if isinstance(value, str) else None


def _record(row: dict[str, str]) -> SessionRecord:
    code = row.get("final_code")
    return SessionRecord(
        session_id=row["session_id"],
        user=row["user"],
        account=row["account"],
        launchpad=row["launchpad"],
        host=row["host"],
        state=row["state"],
        final_code=int(code) if code else None,
        created_ts=row["created_ts"],
        ended_ts=row.get("ended_ts"),
        config=json.loads(row.get("config", "{}")),
        token_generation=int(row.get("token_generation") or 0),
    )
