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
import ipaddress
import json
import re
import socket
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from aioice import stun
from aioice.turn import create_turn_endpoint
from websockets.asyncio.client import connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from openfrp.netcheck.verdict import ProbeResult

FIRST_RETRANSMIT = 0.25  # seconds; doubles after each silent retransmission


@dataclass(frozen=True)
class Server:
    """A STUN or TURN server address as the operator wrote it: stun:HOST:PORT, turn:HOST:PORT
    (optionally ?transport=tcp), turns:HOST:PORT (TLS over TCP) or plain HOST:PORT."""

    kind: str
    host: str
    port: int
    transport: str = "udp"
    secure: bool = False  # turns: the TURN server is reached over TLS

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.secure:
            return f"{self.kind}s:{host}:{self.port}"
        suffix = "?transport=tcp" if self.transport == "tcp" else ""
        return f"{self.kind}:{host}:{self.port}{suffix}"


# The schemes each kind takes, in any case. STUN over TLS (stuns:) is not probed: aiortc skips
# it and server.stun_url takes stun: alone.
SCHEMES = {"stun": ("stun",), "turn": ("turn", "turns")}
# A URI scheme (RFC 3986) before its colon, unless all that follows is a port: HOST:PORT.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(?!\d+$)")
_NAME = re.compile(r"[A-Za-z0-9._-]+")  # a host name or an IPv4 address


def parse_server(kind: str, text: str) -> Server:
    """Parse a server address strictly: another scheme (http:, turn: for STUN) or a host that
    is no name would otherwise reach the resolver as a name. ValueError names what is wrong."""
    expected = f"expected {kind}:HOST:PORT" + (
        "[?transport=tcp] or turns:HOST:PORT" if kind == "turn" else ""
    )
    rest, _, query = text.partition("?")
    scheme = kind
    found = _SCHEME.match(rest)
    if found:
        scheme, rest = found.group(1).lower(), rest[found.end() :]
    if scheme == "stuns":
        raise ValueError(f"{text!r}: STUN over TLS is not probed (aiortc skips it); {expected}")
    if scheme not in SCHEMES[kind]:
        raise ValueError(f"{text!r}: {scheme}: is not a {kind} scheme; {expected}")
    secure = scheme == "turns"
    transport = "tcp" if secure else "udp"
    if query:
        if query not in ("transport=udp", "transport=tcp") or kind != "turn":
            raise ValueError(f"{text!r}: only turn: addresses take ?transport=udp|tcp")
        transport = query.split("=", 1)[1]
        if secure and transport == "udp":
            raise ValueError(f"{text!r}: turns: runs over TLS on TCP; {expected}")
    host, sep, port = rest.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    named = not bracketed and _NAME.fullmatch(host) is not None
    if not sep or not (named or _ipv6(host)) or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: {expected}")
    return Server(kind, host, int(port), transport, secure)


def _ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def ice_servers(block: dict[str, Any]) -> list[tuple[Server, str, str]]:
    """The STUN and TURN servers of a session's `frp8` block, each with the user and password
    to present ("" for STUN); a URL that does not parse is left out."""
    found = []
    for server in block.get("ice_servers", []):
        for url in server.get("urls", []):
            turn = str(url).startswith(("turn:", "turns:"))
            user = (server.get("username") or "") if turn else ""
            password = (server.get("credential") or "") if turn else ""
            with contextlib.suppress(ValueError):
                found.append((parse_server("turn" if turn else "stun", str(url)), user, password))
    return found


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
    began = time.perf_counter()
    try:
        relay, _ = await asyncio.wait_for(
            create_turn_endpoint(
                asyncio.DatagramProtocol,
                (server.host, server.port),
                username=username,
                password=password,
                ssl=server.secure or None,
                transport=server.transport,
            ),
            timeout,
        )
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
    relayed = relay.get_extra_info("sockname")
    relay.close()
    attrs = {"relayed": f"{relayed[0]}:{relayed[1]}", "transport": server.transport}
    return ProbeResult("turn", str(server), True, rtt_ms=rtt, attrs=attrs)


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
    return f"{type(exc).__name__}: {exc.strerror or exc}"
