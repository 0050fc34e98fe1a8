"""Whose socket is at the other end of a connection from this host.

A session's app runs on the server's host, so it connects from 127.0.0.1 just like the
operator's own local clients (health checks, a same-host front end). Linux tells whose a
local socket is (sock_diag: one exact look-up, which the kernel answers within the send, so
it never waits): a connection from a session's app (a pool user, a launchpad's `run_as` user)
is counted apart from its address's others (limits.PerAddress) and its X-Forwarded-* headers
are never believed (ProxyHeaders). Where the kernel cannot tell (not Linux, no sock_diag),
every local connection is its address's, as it was; a server that is not root runs the apps
as its own user, and they cannot be told apart from it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import ipaddress
import pwd
import socket
import struct
from collections.abc import Iterable
from typing import Any, cast

from starlette.types import ASGIApp
from uvicorn._types import ASGI3Application, Scope
from uvicorn._types import ASGIReceiveCallable as Receive
from uvicorn._types import ASGISendCallable as Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from openfrp.server.isolation import POOL_PREFIX

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR = 2
NLM_F_REQUEST = 1
ALL_STATES = 0xFFFFFFFF
NO_COOKIE = 0xFFFFFFFF
GONE = -1  # the peer's socket is closed already (or was never this host's)

Address = tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]


def _address(value: Any) -> Address | None:
    """An (ip, port) of a transport's peername/sockname or an ASGI client/server; an
    IPv4-mapped IPv6 address (a dual-stack socket's) as the IPv4 one."""
    if not isinstance(value, tuple | list) or len(value) < 2:
        return None
    try:
        ip = ipaddress.ip_address(value[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip, int(value[1])


def owner(peer: Any, local: Any) -> int | None:
    """The uid of this host's TCP socket at `peer` connected to our `local` end; GONE when
    there is none alive (closed: the kernel keeps only its address, owned by no one); None
    when the peer is not on this host or the kernel cannot tell."""
    ours, theirs = _address(local), _address(peer)
    if ours is None or theirs is None or not (theirs[0].is_loopback or theirs[0] == ours[0]):
        return None
    family = socket.AF_INET if theirs[0].version == 4 else socket.AF_INET6
    # inet_diag_req_v2 for one socket: its own end is the source, ours the destination.
    request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, ALL_STATES)
    request += struct.pack("!HH", theirs[1], ours[1])
    request += theirs[0].packed.ljust(16, b"\0") + ours[0].packed.ljust(16, b"\0")
    request += struct.pack("=III", 0, NO_COOKIE, NO_COOKIE)
    header = struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 0, 0)
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as diag:
            diag.sendto(header + request, (0, 0))
            answer = diag.recv(4096, socket.MSG_DONTWAIT)
    except (OSError, AttributeError):  # no AF_NETLINK: not Linux
        return None
    if len(answer) >= 20 and struct.unpack_from("=H", answer, 4)[0] == NLMSG_ERROR:
        gone = struct.unpack_from("=i", answer, 16)[0] == -errno.ENOENT
        return GONE if gone else None
    if len(answer) < 88:
        return None
    uid, inode = struct.unpack_from("=II", answer, 80)  # inet_diag_msg's idiag_uid, idiag_inode
    return uid if inode else GONE


@functools.cache
def _name(uid: int) -> str:
    return pwd.getpwuid(uid).pw_name  # KeyError is not cached: a user made later is seen


class Apps:
    """The local users sessions' apps run as: the pool users and the launchpads' run_as
    users (resolved once: the server checked at start that they exist)."""

    def __init__(self, run_as: Iterable[str]) -> None:
        self._run_as = frozenset(pwd.getpwnam(name).pw_uid for name in run_as if name)

    def _is_app(self, uid: int) -> bool:
        if uid in self._run_as:
            return True
        with contextlib.suppress(KeyError):
            return _name(uid).startswith(POOL_PREFIX)
        return False

    def uid(self, peer: Any, local: Any) -> int | None:
        """The uid of the session's app at the other end of this connection, else None."""
        uid = owner(peer, local)
        return uid if uid is not None and uid != GONE and self._is_app(uid) else None

    def believed(self, peer: Any, local: Any) -> bool:
        """Whether this peer may speak for others (X-Forwarded-*): not a session's app, nor a
        socket closed before it could be told whose it was (the peer's own doing, and it reads
        no answer); as before where the kernel cannot tell."""
        uid = owner(peer, local)
        return uid is None or (uid != GONE and not self._is_app(uid))


class ProxyHeaders(ProxyHeadersMiddleware):
    """uvicorn's X-Forwarded-For/-Proto from trusted proxies, never from a session's app."""

    def __init__(self, app: ASGIApp, trusted: list[str], apps: Apps) -> None:
        super().__init__(cast(ASGI3Application, app), trusted)  # the same, typed more loosely
        self._apps = apps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or self._apps.believed(
            scope.get("client"), scope.get("server")
        ):
            await super().__call__(scope, receive, send)
        else:
            await self.app(scope, receive, send)
