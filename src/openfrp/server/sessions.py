"""The session service behind the HTTP API (ServerState): launches sessions, signs their tokens
and keeps this host's live ones in memory, recording their lives in the registry.

Launching a session issues its configuration and a signed token naming its owner; the
token is what the terminal presents and what limits a user to their own sessions.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from openfrp import PROTOCOL_VERSION
from openfrp.codes import CodeNumber
from openfrp.events import Context, Event, EventLog, now_ts
from openfrp.protocol.handshake import Issued, digest, sign_token, token_generation
from openfrp.protocol.server_session import ServerSession, SessionState
from openfrp.server.fleet import Fleet
from openfrp.server.isolation import Isolation
from openfrp.server.limits import Burst
from openfrp.server.registry import Registry, RegistryError, SessionRecord
from openfrp.server.runtime import SessionRuntime
from openfrp.settings import Config
from openfrp.timing import now_ms

TERMINAL_SETTINGS = (
    "connect_timeout",
    "keepalive_timeout",
    "heartbeat_interval",
    "reconnect_attempts",
    "reconnect_window",
    "reconnect_backoff_initial",
    "reconnect_backoff_max",
    "signaling_peer_timeout",
    "negotiation_timeout",
    "ice_disconnected_after",
    "ice_failed_after",
    "stun_timeout",
    "clipboard",
    "clipboard_limit",
    "file_transfer",
    "file_transfer_limit",
    "max_width",
    "max_height",
    "turn_timeout",
    "frp8_fallback",
    # Not acted on by a terminal: named, with their values, in what it says after a loss.
    "idle_timeout",
    "receive_timeout",
    "max_receive_timeouts",
)
TOKEN_MARGIN = 60.0  # a session token outlives the longest session by this much
REFUSAL_REPORT_EVERY = 10.0  # seconds between launch.refused events


# What the launcher can do about each launch limit (the answer's `next`).
LIMIT_NEXT_STEPS = {
    "max_launches_per_minute": "try again in a minute, or raise server.max_launches_per_minute",
    "max_live_sessions": "end a session (openfrp sessions lists them, openfrp close ID ends "
    "one), launch on another host, or raise server.max_live_sessions",
    "max_live_sessions_per_user": "end one of this user's sessions (openfrp sessions lists "
    "them, openfrp close ID ends one), or raise server.max_live_sessions_per_user",
}


class ApiError(Exception):
    """A refusal the HTTP API answers with `status`; the service raises it too (429, 503 at
    launch)."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


@dataclass
class ServerState:
    """This host's sessions: those it launched and serves, and the fleet's records of them."""

    config: Config
    secret: bytes
    log: EventLog
    registry: Registry
    public_url: str
    local_url: str = ""  # this process's own address, for callers on this host (the guest)
    runtimes: dict[str, SessionRuntime] = field(default_factory=dict)
    launched: dict[str, SessionRecord] = field(default_factory=dict)  # this host's, in memory
    recent_launches: deque[float] = field(default_factory=deque)  # monotonic times, last minute
    refused_launches: int = 0  # since the last launch.refused event (one per 10 s at most)
    unserved_rejections: Burst = field(default_factory=Burst)  # hellos for no session here
    refusal_logged: float = -REFUSAL_REPORT_EVERY
    fleet: Fleet = field(init=False)
    isolation: Isolation = field(init=False)

    def __post_init__(self) -> None:
        opts = self.config.server
        self.isolation = Isolation(opts.session_homes)
        self.fleet = Fleet(
            self.registry,
            opts.name,
            opts.live_connection_ttl,
            self.runtimes,
            self.log,
            self.launched,
            opts.max_pending_registry_writes,
        )

    @property
    def host(self) -> str:
        return self.config.server.name

    @property
    def admin_key(self) -> str:
        """Derived from the secret, so every host of a fleet has the same one; a new
        admin_key_epoch gives a new key (the old one stops working) with the same secret."""
        epoch = self.config.server.admin_key_epoch
        label = b"admin" if epoch == 0 else f"admin:{epoch}".encode()
        return hmac.new(self.secret, label, hashlib.sha256).hexdigest()

    def guest_key(self, session_id: str) -> str:
        return hmac.new(self.secret, f"guest:{session_id}".encode(), hashlib.sha256).hexdigest()

    def launch_refusal(self, user: str) -> tuple[str, int] | None:
        """Which of this host's launch limits a new session of `user` would pass, with the
        limit, or None when it fits."""
        opts, now = self.config.server, time.monotonic()
        while self.recent_launches and now - self.recent_launches[0] >= 60:
            self.recent_launches.popleft()
        live = [r for r in self.runtimes.values() if not r.ended.is_set()]
        if len(self.recent_launches) >= opts.max_launches_per_minute:
            return "max_launches_per_minute", opts.max_launches_per_minute
        if len(live) >= opts.max_live_sessions:
            return "max_live_sessions", opts.max_live_sessions
        if sum(1 for r in live if r.identity.user == user) >= opts.max_live_sessions_per_user:
            return "max_live_sessions_per_user", opts.max_live_sessions_per_user
        self.recent_launches.append(now)
        return None

    async def launch(self, user: str, launchpad: str) -> dict[str, Any]:
        settings = self.config.for_launchpad(launchpad)
        if not self.log.recovered():  # a session nobody could explain afterwards
            raise ApiError(
                503, "the server cannot write its event log (disk full?): no new sessions now"
            )
        refusal = self.launch_refusal(user)
        if refusal is not None:
            limit, value = refusal
            self.refused_launches += 1
            if time.monotonic() - self.refusal_logged >= REFUSAL_REPORT_EVERY:
                self.refusal_logged = time.monotonic()
                self.log.write(
                    Event(
                        "launch.refused",
                        host=self.host,
                        user=user,
                        launchpad=launchpad,
                        severity="warning",
                        message=f"launches refused: {limit} ({value}) reached",
                        attrs={"limit": limit, "value": value, "refused": self.refused_launches},
                    )
                )
                self.refused_launches = 0
            raise ApiError(
                429,
                f"too many sessions: {limit} ({value}) reached on this host",
                next=LIMIT_NEXT_STEPS[limit],
            )
        session_id = "s-" + secrets.token_hex(8)
        host = self.config.server.name
        config = {
            "protocol": PROTOCOL_VERSION,
            "session_id": session_id,
            "user": user,
            "account": self.config.account_name,
            "launchpad": launchpad,
            "frp": settings.frp,
            "host": host,
            "terminal": {k: getattr(settings, k) for k in TERMINAL_SETTINGS},
        }
        if settings.frp == 8:
            config["frp8"] = self.frp8_block()
        issued = Issued(session_id, user, config, digest(config))
        token = self.token(session_id, user, settings.max_session_duration + TOKEN_MARGIN, 0)
        link_token = self.token(session_id, user, settings.link_ttl, 0)
        machine = ServerSession(issued, settings, self.secret, now_ms())
        identity = Context(
            "server", host, session_id, user, self.config.account_name, launchpad, settings.frp
        )
        record = SessionRecord(
            session_id,
            user,
            self.config.account_name,
            launchpad,
            host,
            "created",
            None,
            now_ts(),
            None,
            config,
        )
        try:
            await self.registry.add(record)
        except RegistryError:
            raise
        except Exception as exc:  # the registry answers but refuses (its disk is full, say)
            error = f"{type(exc).__name__}: {exc}"
            raise ApiError(503, f"the registry refused the new session: {error}") from None
        self.launched[session_id] = record
        self.log.write(identity.event("session.created", attrs={"settings": settings.to_dict()}))
        self.runtimes[session_id] = SessionRuntime(
            machine,
            identity,
            self.log,
            self.config.server.display,
            self._state_changed,
            self.config.server.video_fps,
            {
                "OPENFRP_GUEST_URL": f"{self.local_url or self.public_url}"
                f"/api/sessions/{session_id}/guest",
                "OPENFRP_GUEST_KEY": self.guest_key(session_id),
            },
            self.fleet.admit,
            self.fleet.primary_changed,
            self.isolation,
        )
        return {
            "session_id": session_id,
            "token": token,
            "config": config,
            "config_digest": issued.config_digest,
            "ws_url": self.public_url.replace("http", "ws", 1) + "/frp7",
            "connect_url": self.connect_url(session_id, link_token),
        }

    def token(self, session_id: str, user: str, ttl: float, generation: int) -> str:
        """A token for one session of one user, valid for `ttl` seconds unless revoked."""
        now = int(time.time())
        claims = {
            "session_id": session_id,
            "user": user,
            "gen": generation,
            "iat": now,
            "exp": now + max(1, round(ttl)),
            "jti": secrets.token_hex(8),
        }
        return sign_token(self.secret, claims)

    def token_problem(self, claims: dict[str, Any]) -> str | None:
        """Why a genuine token may no longer join signaling for a session this host serves:
        its tokens were revoked after this one was issued. (A join for an ended session goes
        on: the server's peer answers its offer with the final code, no WebRTC set up.)"""
        runtime = self.runtimes.get(str(claims.get("session_id")))
        if runtime is None:
            return None
        if token_generation(claims) < runtime.machine.token_generation:
            return "invalid token: token has been revoked"
        return None

    def connect_url(self, session_id: str, link_token: str) -> str:
        """The token rides in the fragment, which browsers never send, so it stays out of
        server and proxy logs; the page sends it as a header."""
        return f"{self.public_url}/s/{session_id}#token={link_token}"

    @property
    def signaling_url(self) -> str:
        return self.config.server.signaling_url or (
            self.public_url.replace("http", "ws", 1) + "/signal"
        )

    def frp8_block(self) -> dict[str, Any]:
        """What both FRP8 peers need besides the timers: where to signal, which ICE servers."""
        opts = self.config.server
        servers: list[dict[str, Any]] = []
        if opts.stun_url:
            servers.append({"urls": [opts.stun_url]})
        if opts.turn_url:
            servers.append(
                {
                    "urls": [opts.turn_url],
                    "username": opts.turn_user,
                    "credential": opts.turn_password,
                }
            )
        return {
            "signaling_url": self.signaling_url,
            "ice_servers": servers,
            "ice_policy": opts.ice_policy,
        }

    def _state_changed(self, runtime: SessionRuntime) -> None:
        machine = runtime.machine
        ended = machine.state is SessionState.ENDED
        if ended:
            asyncio.get_running_loop().call_later(
                self.config.server.forget_ended_after, self._forget, runtime
            )
        args = (
            runtime.identity.session_id,
            machine.state.value,
            machine.final_code,
            now_ts() if ended else None,
        )
        self.fleet.later(lambda: self._record(runtime, *args), ("state", args[0]))

    async def _record(
        self, runtime: SessionRuntime, sid: str, state: str, code: int | None, ts: str | None
    ) -> None:
        """Write a session's new state to the registry, as a step of that session's life.

        A registry that cannot be reached (RegistryError) is an outage the sessions ride out:
        it is logged once and the sessions go on. A write the registry refuses (its disk is
        full, say) is an unexpected failure of the session itself: 4001 while it starts, 4004
        once it is active. After the end only the log can tell."""
        try:
            await self.registry.set_state(sid, state, code, ts)
        except RegistryError:
            raise
        except Exception as exc:
            if state == SessionState.ENDED.value:
                raise
            early = state in (SessionState.CREATED.value, SessionState.STARTING.value)
            where = f"control loop: recording state '{state}' in the registry"
            runtime.post(
                "fault",
                CodeNumber.SERVER_START_ERROR if early else CodeNumber.SERVER_CONTROL_ERROR,
                where,
                f"{type(exc).__name__}: {exc}",
            )

    def _forget(self, runtime: SessionRuntime) -> None:
        """An ended session leaves memory; the registry answers for it from then on."""
        self.runtimes.pop(runtime.identity.session_id, None)
        self.launched.pop(runtime.identity.session_id, None)
        runtime.forget()

    def ticket(self, session_id: str) -> dict[str, Any]:
        runtime = self.runtimes[session_id]
        machine = runtime.machine
        issued = machine.issued
        ttl = machine.settings.max_session_duration + TOKEN_MARGIN
        token = self.token(session_id, issued.user, ttl, machine.token_generation)
        return {
            "session_id": session_id,
            "token": token,
            "config": issued.config,
            "config_digest": issued.config_digest,
            "ws_url": self.public_url.replace("http", "ws", 1) + "/frp7",
        }

    def fresh_link(self, record: SessionRecord, generation: int) -> dict[str, Any]:
        """A ticket and connect link whose tokens are of `generation` (what a revoke answers),
        made from the session's record: the session may live on another host of the fleet."""
        runtime = self.runtimes.get(record.session_id)
        settings = (
            runtime.machine.settings
            if runtime is not None
            else self.config.for_launchpad(record.launchpad)
        )
        sid, user = record.session_id, record.user
        ttl = settings.max_session_duration + TOKEN_MARGIN
        link_token = self.token(sid, user, settings.link_ttl, generation)
        return {
            "session_id": sid,
            "token": self.token(sid, user, ttl, generation),
            "config": record.config,
            "config_digest": digest(record.config),
            "ws_url": self.public_url.replace("http", "ws", 1) + "/frp7",
            "connect_url": self.connect_url(sid, link_token),
        }

    async def stop_all(self, reason: str) -> None:
        live = [r for r in self.runtimes.values() if not r.ended.is_set()]
        await asyncio.gather(*(r.stop(CodeNumber.CLOSED_REMOTELY, reason) for r in live))

    def lives_elsewhere(self, record: SessionRecord) -> bool:
        """Whether a session is live on another host that shares this registry."""
        return self.registry.shared and record.host != self.host and record.final_code is None
