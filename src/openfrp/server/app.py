"""The HTTP API over the session service (sessions.py) and the Starlette app that serves it
with the FRP7 endpoint (admission.py) and the signaling hub."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Lifespan, Receive, Scope, Send

from openfrp.codes import CodeNumber
from openfrp.protocol.handshake import TokenError, token_generation, verify_token
from openfrp.server import web
from openfrp.server.admission import frp7
from openfrp.server.desk import Refused
from openfrp.server.keys import matches
from openfrp.server.registry import RegistryError, SessionRecord
from openfrp.server.runtime import SessionRuntime
from openfrp.server.sessions import ApiError, ServerState
from openfrp.server.signaling import Hub
from openfrp.settings import SettingsError
from openfrp.sizes import size_text

REMOTE_WAIT = 5.0  # seconds to wait for another host to end a session closed through this one


# -- authorization ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """The admin, or the holder of a token naming one session of one user."""

    admin: bool
    user: str | None
    session_id: str | None = None
    generation: int = 0


def _caller(request: Request, state: ServerState) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential:
        raise ApiError(401, "missing 'Authorization: Bearer <token>' header")
    if matches(credential, state.admin_key):
        return Caller(admin=True, user=None)
    try:
        claims = verify_token(state.secret, credential, time.time())
    except TokenError as exc:
        raise ApiError(401, f"invalid token: {exc}") from None
    session_id = claims.get("session_id")
    if not isinstance(session_id, str):
        raise ApiError(401, "invalid token: it names no session")
    return Caller(False, str(claims.get("user")), session_id, token_generation(claims))


def _token_still_good(state: ServerState, caller: Caller, record: SessionRecord) -> None:
    """A token is refused once its session has ended (410, with the final code) or once the
    session's tokens were revoked after it was issued (401): on the session's host, or on any
    host of the fleet through the registry's record."""
    runtime = state.runtimes.get(record.session_id)
    final_code = record.final_code if runtime is None else runtime.machine.final_code
    if final_code is not None or (runtime is not None and runtime.ended.is_set()):
        raise ApiError(410, f"session '{record.session_id}' has ended", final_code=final_code)
    generation = record.token_generation
    if runtime is not None:
        generation = max(generation, runtime.machine.token_generation)
    if caller.generation < generation:
        raise ApiError(401, "invalid token: token has been revoked")


async def _own_record(request: Request, state: ServerState, caller: Caller) -> SessionRecord:
    session_id = request.path_params["session_id"]
    if not caller.admin and session_id != caller.session_id:
        raise ApiError(404, f"no session '{session_id}' for this caller")
    try:
        record = await state.registry.get(session_id)
    except RegistryError:  # this host still answers for the sessions it serves
        if session_id not in state.launched:
            raise
        record = state.launched[session_id]
    if record is None or (not caller.admin and record.user != caller.user):
        raise ApiError(404, f"no session '{session_id}' for this caller")
    if not caller.admin:
        _token_still_good(state, caller, record)
    return record


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.openfrp
    return state


# -- routes ----------------------------------------------------------------------------------


async def launch(request: Request) -> Response:
    state = _state(request)
    if not _caller(request, state).admin:
        raise ApiError(403, "launching a session needs the admin key")
    body = await _json_body(request)
    user, launchpad = body.get("user"), body.get("launchpad", "desktop")
    if not isinstance(user, str) or not user:
        raise ApiError(400, "field 'user' (a non-empty string) is required")
    if not isinstance(launchpad, str):
        raise ApiError(400, "field 'launchpad' must be a string")
    try:
        return JSONResponse(await state.launch(user, launchpad), status_code=201)
    except SettingsError as exc:
        raise ApiError(400, str(exc)) from None


def _public(state: ServerState, record: SessionRecord, up: set[str]) -> dict[str, Any]:
    """A session as the API shows it; `host_up` false: its host is gone (crashed, say), so
    its last recorded state may no longer hold."""
    data = record.public()
    runtime = state.runtimes.get(record.session_id)
    if runtime is not None:
        data["state"] = runtime.machine.state.value
        data["final_code"] = runtime.machine.final_code
    data["host_up"] = record.host == state.host or record.host in up
    return data


async def _hosts_up(state: ServerState, records: list[SessionRecord]) -> set[str]:
    others = {r.host for r in records if r.host != state.host}
    return await state.registry.listening(others)


async def list_sessions(request: Request) -> Response:
    state = _state(request)
    caller = _caller(request, state)
    records = await state.registry.sessions(None if caller.admin else caller.user)
    if not caller.admin:  # a token reaches the one session it names, while it lives
        records = [r for r in records if r.session_id == caller.session_id]
        for record in records:
            _token_still_good(state, caller, record)
    up = await _hosts_up(state, records)
    return JSONResponse({"sessions": [_public(state, r, up) for r in records]})


async def get_session(request: Request) -> Response:
    state = _state(request)
    record = await _own_record(request, state, _caller(request, state))
    return JSONResponse(_public(state, record, await _hosts_up(state, [record])))


# What the person holding a connect link can do when its ticket is refused (an ended session
# answers 410 with its final code, whose message and action say it).
LINK_NEXT_STEPS = {
    401: "Ask whoever sent you this link for a new one.",
    404: "Check that the link was copied whole, or ask whoever sent it for a new one.",
    410: "This session is over: ask whoever sent you the link for a new session.",
    421: "Open the link at the address it came with, which reaches every host.",
}


async def get_ticket(request: Request) -> Response:
    """The ticket a connect link's page or `openfrp connect` joins with; a refusal names what
    to do next."""
    state = _state(request)
    try:
        record = await _own_record(request, state, _caller(request, state))
        _not_elsewhere(state, record)
    except ApiError as exc:
        if exc.status in LINK_NEXT_STEPS:
            exc.extra.setdefault("next", LINK_NEXT_STEPS[exc.status])
        raise
    if record.session_id not in state.runtimes:
        raise ApiError(
            410,
            f"session '{record.session_id}' has ended",
            final_code=record.final_code,
            next=LINK_NEXT_STEPS[410],
        )
    return JSONResponse(state.ticket(record.session_id))


async def revoke_tokens(request: Request) -> Response:
    """Revoke every token issued so far for a live session (a leaked link, a user to cut off)
    and answer with a fresh connect link and ticket: the connections that came in with the old
    tokens end with 4002, the old tokens get 401, and 4002 in a hello. On another host of the
    fleet the request reaches the session's host through the registry."""
    state = _state(request)
    if not _caller(request, state).admin:
        raise ApiError(403, "revoking tokens needs the admin key")
    record = await _own_record(request, state, Caller(admin=True, user=None))
    runtime = state.runtimes.get(record.session_id)
    generation = None
    if _elsewhere(state, record):
        generation = await _revoke_elsewhere(state, record)
    elif runtime is not None and not runtime.ended.is_set():
        try:
            generation = await state.fleet.revoke(runtime, "tokens revoked by the admin API")
        except TimeoutError:
            raise ApiError(
                503,
                f"session '{record.session_id}' did not take the revoke in time (its loop is "
                "busy): ask again",
            ) from None
    if generation is None:
        raise ApiError(409, f"session '{record.session_id}' has ended")
    return JSONResponse(state.fresh_link(record, generation))


async def _revoke_elsewhere(state: ServerState, record: SessionRecord) -> int | None:
    """Have the session's host revoke its tokens; the new generation once the registry holds
    it (None: the session ended instead)."""
    await _ask_owner(state, record, "revoke", by="admin API")
    now = await _await_record(
        state,
        record,
        lambda r: r.final_code is not None or r.token_generation > record.token_generation,
    )
    if now is None:
        raise ApiError(
            504,
            f"host '{record.host}' did not revoke the tokens of session "
            f"'{record.session_id}' in time",
        )
    return None if now.final_code is not None else now.token_generation


async def _await_record(
    state: ServerState, record: SessionRecord, done: Callable[[SessionRecord], bool]
) -> SessionRecord | None:
    """The session's record once `done` holds for it, waiting up to REMOTE_WAIT for another
    host to carry out a request; None if it never did."""
    deadline = asyncio.get_running_loop().time() + REMOTE_WAIT
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        now = await state.registry.get(record.session_id)
        if now is not None and done(now):
            return now
    return None


async def close_session(request: Request) -> Response:
    state = _state(request)
    caller = _caller(request, state)
    record = await _own_record(request, state, caller)
    by = "admin API" if caller.admin else f"user {caller.user}"
    if _elsewhere(state, record):
        return await _close_elsewhere(state, record, by)
    runtime = state.runtimes.get(record.session_id)
    if runtime is None or runtime.ended.is_set():
        raise ApiError(409, f"session '{record.session_id}' has already ended")
    await runtime.stop(CodeNumber.CLOSED_REMOTELY, f"closed from outside by {by}")
    return JSONResponse({"session_id": record.session_id, "final_code": CodeNumber.CLOSED_REMOTELY})


def _elsewhere(state: ServerState, record: SessionRecord) -> bool:
    return state.lives_elsewhere(record)


def _not_elsewhere(state: ServerState, record: SessionRecord) -> None:
    """A live session of another host is served there, not here (421, naming the host)."""
    if _elsewhere(state, record):
        raise ApiError(
            421,
            f"session '{record.session_id}' lives on host '{record.host}'",
            host=record.host,
        )


async def _ask_owner(state: ServerState, record: SessionRecord, op: str, **fields: Any) -> None:
    receivers = await state.fleet.ask(record.host, op, record.session_id, **fields)
    if receivers == 0:
        raise ApiError(
            503,
            f"session '{record.session_id}' lives on host '{record.host}', "
            "which is not listening on the registry",
            host=record.host,
        )


async def _close_elsewhere(state: ServerState, record: SessionRecord, by: str) -> Response:
    """Close a session of another host through the registry and wait, bounded, for its end."""
    await _ask_owner(state, record, "close", by=by)
    now = await _await_record(state, record, lambda r: r.final_code is not None)
    if now is None:
        raise ApiError(
            504, f"host '{record.host}' did not end session '{record.session_id}' in time"
        )
    return JSONResponse(
        {"session_id": now.session_id, "final_code": now.final_code, "host": now.host}
    )


async def push_message(request: Request) -> Response:
    state = _state(request)
    if not _caller(request, state).admin:
        raise ApiError(403, "pushing messages needs the admin key")
    record = await _own_record(request, state, Caller(admin=True, user=None))
    body = (await _json_body(request)).get("body")
    if not isinstance(body, dict):
        raise ApiError(400, "field 'body' (a JSON object) is required")
    if _elsewhere(state, record):
        await _ask_owner(state, record, "push", body=body)
        return JSONResponse({"queued": True, "host": record.host}, status_code=202)
    runtime = state.runtimes.get(record.session_id)
    if runtime is None or runtime.ended.is_set():
        raise ApiError(409, f"session '{record.session_id}' has ended")
    runtime.post("push", body)
    return JSONResponse({"queued": True}, status_code=202)


GUEST_ACTIONS = {"shutdown": CodeNumber.GUEST_SHUTDOWN, "logoff": CodeNumber.GUEST_LOGOFF}


def _guest_runtime(request: Request, state: ServerState, session_id: str) -> SessionRuntime:
    """The session a guest request names: 404 for one this host does not serve, 401 for a
    wrong guest key (as for any other wrong credential)."""
    runtime = state.runtimes.get(session_id)
    if runtime is None:
        raise ApiError(404, f"no session '{session_id}' on this host")
    if not matches(request.headers.get("x-openfrp-guest-key", ""), state.guest_key(session_id)):
        raise ApiError(401, "wrong guest key for this session")
    return runtime


async def guest_action(request: Request) -> Response:
    """Shutdown or logoff requested from inside the session, with the session's guest key."""
    state = _state(request)
    session_id = request.path_params["session_id"]
    runtime = _guest_runtime(request, state, session_id)
    action = (await _json_body(request)).get("action")
    if action not in GUEST_ACTIONS:
        raise ApiError(400, f"field 'action' must be one of {', '.join(GUEST_ACTIONS)}")
    await runtime.stop(GUEST_ACTIONS[action], f"guest {action}")
    return JSONResponse({"session_id": session_id, "final_code": GUEST_ACTIONS[action]})


def _refuse_download(runtime: SessionRuntime, size: int, reason: str) -> ApiError:
    """A 413 for a file over file_transfer_limit, logged as refused."""
    runtime.desk.refuse_download(size, reason)
    said = size_text(runtime.desk.limit)
    return ApiError(413, f"the file is larger than file_transfer_limit ({said})")


def _declared_size(request: Request) -> int | None:
    text = request.headers.get("content-length")
    if text is None:
        return None
    if not text.isascii() or not text.isdigit():
        raise ApiError(400, "Content-Length is not a number")
    return int(text)


async def _read_download(
    request: Request, runtime: SessionRuntime, declared: int | None
) -> bytearray:
    """The body, never more than file_transfer_limit of it held: a body that would pass the
    limit is refused (413) at the piece that would."""
    limit = runtime.desk.limit
    content = bytearray()
    async for piece in request.stream():
        if len(content) + len(piece) > limit:
            size = max(len(content) + len(piece), declared or 0)
            raise _refuse_download(runtime, size, f"over the size limit of {size_text(limit)}")
        content += piece
    return content


async def guest_download(request: Request) -> Response:
    """A file offered to the terminal from inside the session: the body is the file, the
    `name` query parameter its name. Refused before its body is read when its declared size
    is over file_transfer_limit (413) or the desk has no slot for it (403); then read only up
    to the limit, so a session holds at most MAX_OPEN such files, read or offered."""
    state = _state(request)
    session_id = request.path_params["session_id"]
    runtime = _guest_runtime(request, state, session_id)
    desk = runtime.desk
    declared = _declared_size(request)
    if declared is not None and declared > desk.limit:
        raise _refuse_download(runtime, declared, f"over the size limit of {size_text(desk.limit)}")
    try:
        with desk.download_slot(declared or 0) as slot:
            content = await _read_download(request, runtime, declared)
            offered = desk.offer(slot, request.query_params.get("name", ""), content)
    except Refused as refused:
        raise ApiError(403, f"download refused: {refused}") from None
    return JSONResponse({"session_id": session_id, "offered": offered})


async def health(request: Request) -> Response:
    state = _state(request)
    live = sum(1 for r in state.runtimes.values() if not r.ended.is_set())
    return JSONResponse({"ok": True, "live_sessions": live})


async def _api_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, RegistryError):  # its text names internal addresses: keep them in
        # the event log, where the outage is recorded, not in answers to users
        error = "the session registry cannot be reached; try again shortly (registry unavailable)"
        return JSONResponse({"error": error}, status_code=503)
    assert isinstance(exc, ApiError)
    return JSONResponse({"error": str(exc), **exc.extra}, status_code=exc.status)


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client left (or was cut off, its body late) before its request was read: there is
    no one to answer, and nothing went wrong on the server's side."""
    return Response(status_code=408)


class KeepTransport:
    """Keeps a WebSocket's socket in its scope so the server can abort it: a peer that stops
    reading never takes a close frame, and a plain close would hold the socket and its buffers
    until the peer reads. uvicorn's send is a method of the connection that owns the socket."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if isinstance(transport, asyncio.Transport):
                scope["openfrp.transport"] = transport
        await self.app(scope, receive, send)


def _hub(state: ServerState) -> Hub:
    opts = state.config.server
    timeout = state.config.account.handshake_timeout
    return Hub(state.secret, state.log, opts.name, timeout, state.token_problem)


def create_app(state: ServerState, lifespan: Lifespan[Starlette] | None = None) -> Starlette:
    app = Starlette(
        routes=[
            Route("/healthz", health),
            Route("/api/sessions", launch, methods=["POST"]),
            Route("/api/sessions", list_sessions, methods=["GET"]),
            Route("/api/sessions/{session_id}", get_session, methods=["GET"]),
            Route("/api/sessions/{session_id}", close_session, methods=["DELETE"]),
            Route("/api/sessions/{session_id}/ticket", get_ticket, methods=["GET"]),
            Route("/api/sessions/{session_id}/messages", push_message, methods=["POST"]),
            Route("/api/sessions/{session_id}/revoke", revoke_tokens, methods=["POST"]),
            Route("/api/sessions/{session_id}/guest", guest_action, methods=["POST"]),
            Route("/api/sessions/{session_id}/guest/download", guest_download, methods=["POST"]),
            WebSocketRoute("/frp7", frp7),
            WebSocketRoute("/signal", _hub(state).serve),
            *web.ROUTES,
        ],
        exception_handlers={
            ApiError: _api_error,
            RegistryError: _api_error,
            ClientDisconnect: _client_gone,
        },
        middleware=[Middleware(KeepTransport)],
        lifespan=lifespan,
    )
    app.state.openfrp = state
    return app
