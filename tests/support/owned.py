"""TCP sockets owned by another local user, as a session's app's are."""

from __future__ import annotations

import os
import socket


def sockets_of(
    uid: int, count: int, family: socket.AddressFamily = socket.AF_INET
) -> list[socket.socket]:
    """`count` unconnected sockets owned by `uid`: made in a child switched to that user (a
    socket stays its maker's) and handed back over a Unix socket; needs root."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        pid = os.fork()
        if pid == 0:  # the child only switches, makes and sends: nothing of pytest's
            try:
                os.setresuid(uid, uid, uid)
                made = [socket.socket(family) for _ in range(count)]
                socket.send_fds(theirs, [b"s"], [sock.fileno() for sock in made])
            finally:
                os._exit(0)
        _, fds, _, _ = socket.recv_fds(ours, 1, count)
        os.waitpid(pid, 0)
    assert len(fds) == count
    return [socket.socket(fileno=fd) for fd in fds]
