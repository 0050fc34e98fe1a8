"""The FRP8 signaling hub: server peers register by host name, terminals join a session's host.

Every server serves a hub at `/signal`; a server's FRP8 peer registers with the hub its
configuration names (its own by default, a shared one when several hosts sit behind one
entry). The hub hands a joining terminal the peer id of the session's host once that host is
registered, then relays offer, answer and `close` between them. A host that is not registered
leaves the terminal waiting: its own timer turns that into 4107.

Messages are JSON objects: register {host, key} and join {session_id, token, host} open a
socket's role; offer/answer/close travel with a relay id the hub assigns per join.

Bounds: a socket that names no role within the handshake timeout is closed; a join relays one
offer (a terminal joins again for another attempt); an expired or revoked token is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from openfrp.events import Event, EventLog
from openfrp.protocol.handshake import TokenError, verify_token
from openfrp.protocol.server_session import clip
from openfrp.server.keys import matches
from openfrp.server.limits import Burst

MAX_MESSAGE = 1 << 18


def peer_key(secret: bytes, host: str) -> str:
    """What a server peer presents to register as `host` (servers of one fleet share a secret)."""
    return hmac.new(secret, f"signaling-peer:{host}".encode(), hashlib.sha256).hexdigest()


@dataclass
class _Join:
    socket: WebSocket
    session_id: str
    host: str
    sent_peer: bool = False
    offered: bool = False


def _no_problem(claims: dict[str, Any]) -> str | None:
    return None


@dataclass
class Hub:
    secret: bytes
    log: EventLog
    name: str
    handshake_timeout: float = 10.0
    # why a genuine token may not join (its session ended here, its tokens revoked), or None
    token_problem: Callable[[dict[str, Any]], str | None] = _no_problem
    bad_keys: Burst = field(default_factory=Burst)  # registrations refused, as logged
    hosts: dict[str, tuple[str, WebSocket]] = field(default_factory=dict)
    joins: dict[str, _Join] = field(default_factory=dict)

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            first = await asyncio.wait_for(_receive(websocket), self.handshake_timeout)
        except TimeoutError:
            self._log(
                "signaling.idle_closed",
                severity="warning",
                message="a signaling socket sent no register or join in time and was closed",
                attrs={"handshake_timeout": self.handshake_timeout},
            )
            await _refuse(websocket, "no register or join within the handshake timeout")
            return
        if first is None:
            return
        if first.get("type") == "register":
            await self._serve_peer(websocket, first)
        elif first.get("type") == "join":
            await self._serve_terminal(websocket, first)
        else:
            await _refuse(websocket, "first message must be register or join")

    # -- server peers ----------------------------------------------------------------------

    async def _serve_peer(self, websocket: WebSocket, first: dict[str, Any]) -> None:
        host, key = first.get("host"), first.get("key")
        if not isinstance(host, str) or not isinstance(key, str):
            await _refuse(websocket, "register needs host and key")
            return
        if not matches(key, peer_key(self.secret, host)):
            held = self.bad_keys.allow()
            if held is not None:  # a flood of them: counted in the next one written
                attrs = {"host": clip(host), "reason": "bad peer key", "held_back": held}
                self._log("signaling.rejected", attrs=attrs)
            await _refuse(websocket, "bad peer key")
            return
        peer_id = f"{host}/{secrets.token_hex(4)}"
        previous = self.hosts.get(host)
        self.hosts[host] = (peer_id, websocket)
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous[1].close(1000, "replaced by a newer registration")
        self._log("signaling.registered", attrs={"host": host, "peer_id": peer_id})
        for join in list(self.joins.values()):
            if join.host == host:
                await self._send_peer(join)
        try:
            while (message := await _receive(websocket)) is not None:
                target = self.joins.get(str(message.get("relay")))
                if target is not None and message.get("type") in ("answer", "close"):
                    message.pop("relay")
                    await _send(target.socket, message)
        finally:
            if self.hosts.get(host, (None,))[0] == peer_id:
                del self.hosts[host]
                self._log("signaling.unregistered", attrs={"host": host, "peer_id": peer_id})

    # -- terminals -------------------------------------------------------------------------

    async def _serve_terminal(self, websocket: WebSocket, first: dict[str, Any]) -> None:
        session_id, host = first.get("session_id"), first.get("host")
        try:
            claims = verify_token(self.secret, str(first.get("token", "")), time.time())
        except TokenError as exc:
            await _refuse(websocket, f"invalid token: {exc}")
            return
        if claims.get("session_id") != session_id or not isinstance(host, str):
            await _refuse(websocket, "token does not name this session")
            return
        problem = self.token_problem(claims)
        if problem is not None:
            self._log("signaling.rejected", session_id=str(session_id), attrs={"reason": problem})
            await _refuse(websocket, problem)
            return
        relay = secrets.token_hex(6)
        join = _Join(websocket, str(session_id), host)
        self.joins[relay] = join
        self._log("signaling.joined", session_id=join.session_id, attrs={"host": host})
        try:
            if host in self.hosts:
                await self._send_peer(join)
            while (message := await _receive(websocket)) is not None:
                peer = self.hosts.get(host)
                if message.get("type") != "offer" or peer is None or not join.sent_peer:
                    continue
                if join.offered:
                    self._log(
                        "signaling.rejected",
                        session_id=join.session_id,
                        attrs={"reason": "a second offer on one join", "relay": relay},
                    )
                    await _refuse(websocket, "one offer per join: join again for another")
                    return
                join.offered = True
                await _send(peer[1], {**message, "relay": relay, "session_id": session_id})
        finally:
            del self.joins[relay]
            peer = self.hosts.get(host)
            if peer is not None:
                with contextlib.suppress(Exception):
                    await _send(peer[1], {"type": "gone", "relay": relay})

    async def _send_peer(self, join: _Join) -> None:
        if join.sent_peer:
            return
        join.sent_peer = True
        peer_id = self.hosts[join.host][0]
        with contextlib.suppress(Exception):
            await _send(join.socket, {"type": "peer", "peer_id": peer_id})

    def _log(self, name: str, session_id: str | None = None, **fields: Any) -> None:
        self.log.write(
            Event(name, source="signaling", host=self.name, session_id=session_id, frp=8, **fields)
        )


async def _receive(websocket: WebSocket) -> dict[str, Any] | None:
    """The next JSON object, or None once the socket is gone or sends anything else."""
    try:
        text = await websocket.receive_text()
    except (WebSocketDisconnect, RuntimeError, KeyError):
        return None
    if len(text) > MAX_MESSAGE:
        return None
    with contextlib.suppress(ValueError, RecursionError):
        message = json.loads(text)
        if isinstance(message, dict):
            return message
    return None


async def _send(websocket: WebSocket, message: dict[str, Any]) -> None:
    await asyncio.wait_for(websocket.send_text(json.dumps(message)), 5)


async def _refuse(websocket: WebSocket, why: str) -> None:
    with contextlib.suppress(Exception):
        await _send(websocket, {"type": "error", "error": why})
        await websocket.close(1008, why[:100])
