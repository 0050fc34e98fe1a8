"""Connection admission, FRP7 and FRP8 alike: a connection's first frame (the hello) names its
session; the live session on this host takes the connection, anything else is refused with the
code that says why (an ended session's final code, else 4002). Also the FRP7 WebSocket endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from typing import Protocol

from starlette.websockets import WebSocket

from openfrp import codes
from openfrp.codes import CodeNumber
from openfrp.events import Context, Event
from openfrp.protocol.messages import MessageError, decode_from_terminal
from openfrp.protocol.server_session import clip
from openfrp.server.links import Transport
from openfrp.server.registry import RegistryError, SessionRecord
from openfrp.server.sessions import ServerState

NO_CLOSE_FRAME = (1005, 1006)
CLOSED_POLL = 0.05  # seconds between looks at a closing socket


class Gone:
    """A connection ended; `code` is the peer's close code, None when it sent none."""

    def __init__(self, code: int | None) -> None:
        self.code = code


class Connection(Transport, Protocol):
    """A transport the server reads from as well: the next frame, or Gone."""

    async def receive(self) -> str | bytes | Gone: ...


class _WebSocketConnection:
    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket

    async def send_text(self, data: str) -> None:
        await self._ws.send_text(data)

    async def send_bytes(self, data: bytes) -> None:
        await self._ws.send_bytes(data)

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code, reason)

    def abort(self) -> None:
        """Drop the socket now, unsent bytes and all (see KeepTransport)."""
        transport = self._ws.scope.get("openfrp.transport")
        if transport is not None:
            transport.abort()

    async def wait_closed(self) -> None:
        """Until the socket is closed: the peer answered the close frame (or it was dropped)."""
        transport = self._ws.scope.get("openfrp.transport")
        while transport is not None and not transport.is_closing():
            await asyncio.sleep(CLOSED_POLL)

    async def receive(self) -> str | bytes | Gone:
        try:
            message = await self._ws.receive()
        except RuntimeError:
            return Gone(None)
        if message["type"] == "websocket.disconnect":
            code = message.get("code")
            return Gone(None if code in NO_CLOSE_FRAME else code)
        data: str | bytes = message.get("text") or message.get("bytes") or b""
        return data


def _session_id_of(data: str | bytes) -> str | None:
    """The session a hello names; issued ids are ASCII, so anything else (a lone surrogate
    the registry could not even encode) names none."""
    if not isinstance(data, str):
        return None
    with contextlib.suppress(ValueError, RecursionError):
        message = json.loads(data)
        session_id = message.get("session_id") if isinstance(message, dict) else None
        if isinstance(session_id, str) and session_id.isascii():
            return session_id
    return None


async def _refuse_unserved(
    state: ServerState,
    connection: Connection,
    data: str | bytes | None,
    cid: str,
    remote: str,
    session_id: str,
    frp: int,
) -> None:
    """No live session for this hello: an ended one is refused with its final code (a late
    resume after 4009 gets 4009), a live one of another host and anything else with 4002.
    `data` None: no hello in time."""
    record = None
    reason: str | None = None
    with contextlib.suppress(RegistryError):  # unreachable: refused as an unknown session
        record = await state.registry.get(session_id) if session_id else None
    if record is not None and state.lives_elsewhere(record):
        code: int = CodeNumber.CONFIG_MISMATCH
        event = _context(state, record, frp).event(
            "connection.rejected",
            code=code,
            severity="error",
            message=f"hello names session {session_id}, which lives on host {record.host}, "
            f"not on {state.host}: the terminal was routed to the wrong host",
            connection_id=cid,
            attrs={
                "field": "session_id",
                "problem": f"session lives on host {record.host}",
                "owner_host": record.host,
                "remote": remote,
                "code_name": "CONFIG_MISMATCH",
            },
        )
    elif record is not None and record.final_code is not None:
        code = record.final_code
        reason = codes.ended_reason(code)
        event = _context(state, record, frp).event(
            "connection.rejected",
            code=code,
            connection_id=cid,
            attrs={"reason": "session has ended", "remote": remote},
        )
    else:
        held = state.unserved_rejections.allow()
        field, problem = "session_id", "unknown session"
        if data is None:
            field, problem = "hello", "no hello in time"
        else:
            try:
                decode_from_terminal(data)
            except MessageError as exc:
                field, problem = "hello", str(exc)
        code = CodeNumber.CONFIG_MISMATCH
        event = Event(
            "connection.rejected",
            host=state.config.server.name,
            connection_id=cid,
            frp=frp,
            code=CodeNumber.CONFIG_MISMATCH,
            severity="error",
            message="hello names no session served here",
            attrs={
                "field": field,
                "problem": clip(problem),
                "remote": remote,
                "code_name": "CONFIG_MISMATCH",
                **({"held_back": held} if held else {}),
            },
        )
        if held is None:  # a flood of them: counted in the next one written
            event = None
    if event is not None:
        state.log.write(event)
    if reason is None:
        row = codes.lookup(code)
        reason = row.name if row is not None else ""
    with contextlib.suppress(Exception):
        await connection.close(code, reason)


async def serve_connection(
    state: ServerState, connection: Connection, remote: str, frp: int
) -> None:
    """One connection from its first frame (the hello, which names the session) to its end."""
    cid = "c-" + secrets.token_hex(6)
    try:
        first = await asyncio.wait_for(connection.receive(), state.config.account.handshake_timeout)
    except TimeoutError:
        first = None
    if isinstance(first, Gone):
        return
    session_id = _session_id_of(first or b"") or ""
    runtime = state.runtimes.get(session_id)
    if runtime is None or first is None:
        await _refuse_unserved(state, connection, first, cid, remote, session_id, frp)
        return
    runtime.attach(cid, connection, {"remote": remote, "frp": frp})
    runtime.post("data", cid, first)
    while not isinstance(data := await connection.receive(), Gone):
        runtime.post("data", cid, data)
    runtime.post("lost", cid, data.code)


def _context(state: ServerState, record: SessionRecord, frp: int) -> Context:
    return Context(
        "server", state.host, record.session_id, record.user, record.account, record.launchpad, frp
    )


async def frp7(websocket: WebSocket) -> None:
    await websocket.accept()
    remote = f"{websocket.client.host}:{websocket.client.port}" if websocket.client else "?"
    await serve_connection(websocket.app.state.openfrp, _WebSocketConnection(websocket), remote, 7)
