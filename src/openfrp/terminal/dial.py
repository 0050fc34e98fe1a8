"""The TCP connection under FRP7, opened here so that a failure keeps each address's errno:
asyncio (before 3.12) folds the errors of several addresses into one OSError whose only
trace of them is its text, and "nothing listens there" (refused) is a different failure
to the person than an address that does not answer."""

from __future__ import annotations

import asyncio
import errno
import socket

from websockets.proxy import get_proxy
from websockets.uri import parse_uri


class Unreachable(OSError):
    """Every address of the host failed; `errors` holds each one's."""

    def __init__(self, errors: list[OSError]) -> None:
        super().__init__("; ".join(str(error) for error in errors))
        self.errors = errors


def refused_connect(exc: BaseException) -> bool:
    """Whether the TCP connect was refused at every address: nothing listens there."""
    if isinstance(exc, Unreachable):
        return bool(exc.errors) and all(e.errno == errno.ECONNREFUSED for e in exc.errors)
    return isinstance(exc, ConnectionRefusedError)


async def open_tcp(url: str) -> socket.socket | None:
    """A connected socket to the WebSocket URL's host, each address tried in turn, or None
    where a proxy from the environment applies (the WebSocket library then goes through it).
    One address's failure is raised as it is; several are raised together (Unreachable)."""
    where = parse_uri(url)
    if get_proxy(where) is not None:
        return None
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(where.host, where.port, type=socket.SOCK_STREAM)
    errors: list[OSError] = []
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            errors.append(exc)
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    if len(errors) == 1:
        raise errors[0]
    raise Unreachable(errors)
