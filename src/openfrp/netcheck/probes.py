"""The probes themselves, over real sockets, each under its own timeout.

aiortc drops STUN/TURN errors silently and uses only the first server of each kind, so openfrp
asks the servers itself: a STUN Binding request (retransmitted as RFC 5389 says) and a TURN
Allocate through aioice, which answers 401 when the credentials are wrong. The signaling probe
opens the hub's WebSocket and, for a session, joins it as its terminal would, to see whether
the session's server peer is registered there. The FRP7 probe opens an FRP7 session's own
WebSocket and closes it at once, sending no hello: whether the upgrade gets through (a proxy or
front end that does not pass it answers with a plain HTTP status).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import time
import urllib.parse
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from aioice import stun
from aioice.turn import (
    DEFAULT_ALLOCATION_LIFETIME,
    DEFAULT_CHANNEL_REFRESH_TIME,
    TurnClientUdpProtocol,
    create_turn_endpoint,
)
from websockets.asyncio.client import connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from openfrp.netcheck.verdict import ProbeResult
from openfrp.rtc import Server, parse_server

__all__ = [
    "Server",
    "Unparsed",
    "ice_servers",
    "parse_server",
    "probe_frp7",
    "probe_signaling",
    "probe_stun",
    "probe_turn",
]

FIRST_RETRANSMIT = 0.25  # seconds; doubles after each silent retransmission


@dataclass(frozen=True)
class Unparsed(Server):
    """A session's ICE server URL that does not parse: probing it fails at once with the
    reason, so a bad URL is a finding (5009, 5010) rather than a server left out unsaid."""

    url: str = ""
    problem: str = ""

    def __str__(self) -> str:
        return self.url


def ice_servers(block: dict[str, Any]) -> list[tuple[Server, str, str]]:
    """The STUN and TURN servers of a session's `frp8` block, each with the user and password
    to present ("" for STUN); a URL that does not parse is there as Unparsed."""
    found: list[tuple[Server, str, str]] = []
    for server in block.get("ice_servers", []):
        for url in map(str, server.get("urls", [])):
            kind = "turn" if url.lower().startswith("turn") else "stun"
            user = (server.get("username") or "") if kind == "turn" else ""
            password = (server.get("credential") or "") if kind == "turn" else ""
            try:
                parsed = parse_server(kind, url, bare=False)
            except ValueError as exc:
                problem = f"not a {kind.upper()} address: {str(exc).removeprefix(f'{url!r}: ')}"
                parsed = Unparsed(kind, "", 0, url=url, problem=problem)
            found.append((parsed, user, password))
    return found


def _unparsed(server: Server) -> ProbeResult | None:
    """The failed probe of an address that does not parse, else None."""
    if isinstance(server, Unparsed):
        return ProbeResult(server.kind, server.url, False, detail=server.problem)
    return None


class _StunClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future[stun.Message] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        with contextlib.suppress(ValueError):
            message = stun.parse_message(data)
            if not self.answer.done():
                self.answer.set_result(message)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


async def probe_stun(server: Server, timeout: float) -> ProbeResult:
    """Send a Binding request until an answer or `timeout`; report the reflexive address."""
    if (unparsed := _unparsed(server)) is not None:
        return unparsed
    loop = asyncio.get_running_loop()
    began = time.perf_counter()
    try:
        transport, client = await loop.create_datagram_endpoint(
            _StunClient, remote_addr=(server.host, server.port)
        )
    except OSError as exc:  # a name that does not resolve, say
        return ProbeResult("stun", str(server), False, detail=_os_error(exc, server.host))
    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    try:
        wait = FIRST_RETRANSMIT
        deadline = began + timeout
        while True:
            transport.sendto(bytes(request))
            left = deadline - time.perf_counter()
            if left <= 0:
                return ProbeResult("stun", str(server), False, detail=f"no answer in {timeout} s")
            try:
                answer = await asyncio.wait_for(asyncio.shield(client.answer), min(wait, left))
                break
            except TimeoutError:
                wait *= 2
    except OSError as exc:
        return ProbeResult("stun", str(server), False, detail=_os_error(exc, server.host))
    finally:
        transport.close()
    rtt = (time.perf_counter() - began) * 1000
    mapped = answer.attributes.get("XOR-MAPPED-ADDRESS")
    attrs = {"mapped": f"{mapped[0]}:{mapped[1]}"} if mapped else {}
    return ProbeResult("stun", str(server), True, rtt_ms=rtt, attrs=attrs)


async def probe_turn(server: Server, username: str, password: str, timeout: float) -> ProbeResult:
    """Allocate a relay with the credentials under `timeout`; report the relayed address."""
    if (unparsed := _unparsed(server)) is not None:
        return unparsed
    began = time.perf_counter()
    try:
        relayed = await asyncio.wait_for(_allocate(server, username, password), timeout)
    except TimeoutError:
        return ProbeResult("turn", str(server), False, detail=f"no answer in {timeout} s")
    except stun.TransactionFailed as exc:
        code, reason = exc.response.attributes.get("ERROR-CODE", (0, "failed"))
        detail = f"rejected: {code} {reason}"
        if code == 401:
            detail = "credentials rejected (401): check the TURN user and password"
        return ProbeResult("turn", str(server), False, detail=detail, attrs={"status": code})
    except stun.TransactionTimeout:
        return ProbeResult("turn", str(server), False, detail="no answer (retransmissions ran out)")
    except OSError as exc:
        return ProbeResult("turn", str(server), False, detail=_os_error(exc, server.host))
    rtt = (time.perf_counter() - began) * 1000
    attrs = {"relayed": f"{relayed[0]}:{relayed[1]}", "transport": server.transport}
    return ProbeResult("turn", str(server), True, rtt_ms=rtt, attrs=attrs)


async def _allocate(server: Server, username: str, password: str) -> tuple[str, int]:
    """A relay allocated, and given back at once; the relayed address."""
    if server.transport == "udp":
        return await _allocate_udp(server, username, password)
    relay, _ = await create_turn_endpoint(
        asyncio.DatagramProtocol,
        (server.host, server.port),
        username=username,
        password=password,
        ssl=server.secure or None,
        transport=server.transport,
    )
    relayed: tuple[str, int] = relay.get_extra_info("sockname")
    relay.close()
    return relayed


class _UdpTurnClient(TurnClientUdpProtocol):
    """aioice's TURN client over UDP, noting the ICMP error its socket gets (aioice ignores
    it and retransmits until the timeout): a closed port is "refused" at once, as for STUN."""

    def __init__(self, server: tuple[str, int], username: str, password: str) -> None:
        super().__init__(
            server,
            username=username,
            password=password,
            lifetime=DEFAULT_ALLOCATION_LIFETIME,
            channel_refresh_time=DEFAULT_CHANNEL_REFRESH_TIME,
        )
        self.refused: asyncio.Future[OSError] = asyncio.get_running_loop().create_future()

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError) and not self.refused.done():
            self.refused.set_result(exc)


async def _allocate_udp(server: Server, username: str, password: str) -> tuple[str, int]:
    """Allocate over a connected UDP socket, so an ICMP error ends the wait: OSError."""
    address = (server.host, server.port)
    transport, client = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _UdpTurnClient(address, username, password), remote_addr=address
    )
    allocating = asyncio.ensure_future(client.connect())
    try:
        await asyncio.wait((allocating, client.refused), return_when=asyncio.FIRST_COMPLETED)
        if not allocating.done():
            raise client.refused.result()
        relayed = allocating.result()
    except BaseException:
        allocating.cancel()
        transport.close()
        raise
    _background(client.delete())  # gives the allocation back, then closes the socket
    return relayed


_PENDING: set[asyncio.Task[None]] = set()


def _background(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` on its own, kept referenced until it ends."""
    task = asyncio.ensure_future(work)
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


async def probe_signaling(url: str, join: dict[str, Any] | None, timeout: float) -> ProbeResult:
    """Reach the hub at `url`; with `join` (a session's join message), wait for the session's
    server peer id. `attrs.stage` says how far it got: "connect" (no hub) or "peer"."""
    began = time.perf_counter()
    stage = "connect"
    try:
        async with asyncio.timeout(timeout):
            async with connect(url, open_timeout=None, ping_interval=None) as ws:
                stage = "peer"
                await ws.send(json.dumps(join or {"type": "probe"}))
                answer = json.loads(await ws.recv())
    except TimeoutError:
        if stage == "peer" and join is not None:
            detail = f"no server peer registered for host {join.get('host')} in {timeout} s"
            return ProbeResult("signaling", url, False, detail=detail, attrs={"stage": "peer"})
        return _signaling_failed(url, f"no answer in {timeout} s")
    except OSError as exc:
        return _signaling_failed(url, _os_error(exc, _host(url)))
    except (InvalidHandshake, InvalidURI, ConnectionClosed, ValueError) as exc:
        return _signaling_failed(url, f"not a signaling hub ({type(exc).__name__}: {exc})")
    rtt = (time.perf_counter() - began) * 1000
    if join is None:  # the hub refuses a probe with a clear error: it is alive
        return ProbeResult("signaling", url, answer.get("type") == "error", rtt_ms=rtt)
    if answer.get("type") == "peer":
        attrs = {"peer_id": answer.get("peer_id"), "stage": "peer"}
        return ProbeResult("signaling", url, True, rtt_ms=rtt, attrs=attrs)
    detail = f"refused: {answer.get('error', answer)}"
    return ProbeResult("signaling", url, False, detail=detail, attrs={"stage": "join"})


async def probe_frp7(url: str, timeout: float) -> ProbeResult:
    """Open the WebSocket at `url` (an FRP7 session's) and close it again, hello unsent."""
    began = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            async with connect(url, open_timeout=None, ping_interval=None):
                rtt = (time.perf_counter() - began) * 1000
    except TimeoutError:
        return ProbeResult("frp7", url, False, detail=f"no answer in {timeout} s")
    except OSError as exc:
        return ProbeResult("frp7", url, False, detail=_os_error(exc, _host(url)))
    except InvalidStatus as exc:
        status = exc.response.status_code
        detail = (
            f"the WebSocket upgrade was answered with HTTP {status}: a proxy or front end "
            "between does not pass WebSocket upgrades (Upgrade and Connection headers; see "
            "docs/nginx.conf)"
        )
        return ProbeResult("frp7", url, False, detail=detail, attrs={"status": status})
    except (InvalidHandshake, InvalidURI, ConnectionClosed, ValueError) as exc:
        detail = f"no WebSocket there ({type(exc).__name__}: {exc})"
        return ProbeResult("frp7", url, False, detail=detail)
    return ProbeResult("frp7", url, True, rtt_ms=rtt)


def _signaling_failed(url: str, detail: str) -> ProbeResult:
    return ProbeResult("signaling", url, False, detail=detail, attrs={"stage": "connect"})


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).hostname or url


def _os_error(exc: OSError, host: str) -> str:
    if isinstance(exc, socket.gaierror):
        return f"{host} does not resolve ({exc.strerror}): check the name and this machine's DNS"
    if isinstance(exc, ConnectionRefusedError):
        return "refused (nothing listens on that port)"
    if isinstance(exc, PermissionError):
        return "blocked by a firewall on this machine (sending was refused)"
    if isinstance(exc, ssl.SSLCertVerificationError):  # turns: or wss:
        why = exc.verify_message or exc.reason or "not trusted"
        return (
            f"the TLS certificate of {host} is not accepted ({why}): give the server a "
            f"certificate for {host} from a CA this machine trusts"
        )
    if isinstance(exc, ssl.SSLError):
        return (
            f"the TLS handshake with {host} failed ({exc.reason or exc}): check that the port "
            "serves TLS (turns: and wss: need the server's TLS port)"
        )
    return f"{type(exc).__name__}: {exc.strerror or exc}"
