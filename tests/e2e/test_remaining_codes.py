"""4001, 4004 and 4025, each produced by a real dependency failing under a running server.

4001 and 4004: the registry's disk fills up (a tmpfs of the test's own, root only), so the
session's next state cannot be recorded: while it starts that is 4001, once active 4004, and
the server keeps serving the other sessions. 4025: the terminal's TCP connection is reset
(a raw client's SO_LINGER 0 close, or the fault proxy's reset after it stopped reading) while
the server is blocked writing a burst to it; the session is resumable.
Each test asserts what the terminal saw, both event logs and the analyzer's verdict.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.e2e.conftest import E2E
from tests.e2e.harness import RESET_CODES, RawClient, diagnosis, hello_for

DISK = "1m"
# Reconnects that outlast the moments a test keeps the path cut, and sessions that wait for
# terminals slow to start on a busy machine.
PATIENT = {
    "reconnect_attempts": 10,
    "reconnect_backoff_initial": 0.3,
    "reconnect_backoff_max": 1.0,
    "reconnect_window": 20.0,
    "idle_timeout": 30.0,
}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs for the registry, unmounted (lazily: the server may hold it) at the end."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    disk = tmp_path / "registry-disk"
    disk.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK},mode=0700", "openfrp-test", str(disk)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=10)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full (ENOSPC); returns it, to free the room later."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


def test_4001_registry_disk_full_when_the_session_starts(e2e: E2E, small_disk: Path) -> None:
    server = e2e.server(account=PATIENT, server={"registry": str(small_disk / "registry.sqlite3")})
    ticket = server.launch("alice")
    sid = ticket["session_id"]
    filler = fill(small_disk)
    refused = server.api("POST", "/api/sessions", body={"user": "carol"})
    assert refused.status == 503 and "database or disk is full" in refused.body["error"], refused

    term = e2e.terminal(ticket["connect_url"], stdin=False)
    term.wait_line(r"^\[4001 [A-Z_]+\] ")
    term.wait_line(r"^session over: 4001 ")
    assert term.wait_exit() == 1
    closed = term.log.wait_event(event="connection.closed", code=4001)
    assert closed["attrs"]["close_code"] == 4001

    fault = server.log.wait_event(event="error.exception", code=4001, session_id=sid)
    assert fault["attrs"]["where"] == "control loop: recording state 'starting' in the registry"
    assert "database or disk is full" in fault["attrs"]["error"], fault
    server.log.wait_event(event="connection.closed", code=4001, session_id=sid)
    server.log.wait_event(event="session.ended", code=4001, session_id=sid)
    # The registry could not take the end either; this host still answers for the session.
    assert server.session(sid)["final_code"] == 4001

    facts = diagnosis(sid, server.log, term.log)
    assert (facts["category"], facts["final_code"]) == ("server_fault", 4001), facts

    # With room on the disk again the server starts sessions as before.
    filler.unlink()
    again = server.launch("bob")
    e2e.connected(server, again)
    assert server.session(again["session_id"])["state"] == "active"


def test_4004_registry_disk_full_when_an_active_session_resumes(e2e: E2E, small_disk: Path) -> None:
    server = e2e.server(account=PATIENT, server={"registry": str(small_disk / "registry.sqlite3")})
    ticket, other = server.launch("alice"), server.launch("bob")
    sid = ticket["session_id"]
    proxy = e2e.proxy(server.port)
    term = e2e.connected(server, ticket, proxy)
    bystander = e2e.connected(server, other, name="bob")

    proxy.control("cut")  # alice's connection drops: disconnected, recorded while there is room
    lost = server.log.wait_event(event="session.disconnected", session_id=sid)
    assert lost["code"] in RESET_CODES, lost
    term.wait_line(r"^\[4102 [A-Z_]+\] ")
    fill(small_disk)
    proxy.control("restore")

    # The resume makes the session active again, a state the registry can no longer take.
    term.wait_line(rf"^connected to {sid} as c-\w+ \(resumed\)$", timeout=8)
    term.wait_line(r"^\[4004 [A-Z_]+\] ")
    term.wait_line(r"^session over: 4004 ")
    assert term.wait_exit() == 1
    assert term.log.wait_event(event="connection.closed", code=4004)["attrs"]["close_code"] == 4004

    fault = server.log.wait_event(event="error.exception", code=4004, session_id=sid)
    assert fault["attrs"]["where"] == "control loop: recording state 'active' in the registry"
    assert "database or disk is full" in fault["attrs"]["error"], fault
    server.log.wait_event(event="connection.closed", code=4004, session_id=sid)
    server.log.wait_event(event="session.ended", code=4004, session_id=sid)

    # The other session goes on untouched.
    bob = other["session_id"]
    assert server.session(bob)["state"] == "active"
    assert not server.log.find(event="connection.closed", session_id=bob)
    assert bystander.count(r"^\[") == 0

    facts = diagnosis(sid, server.log, term.log)
    assert (facts["category"], facts["final_code"]) == ("server_fault", 4004), facts


def test_4004_redis_registry_out_of_memory_when_the_terminal_leaves(
    e2e: E2E,
) -> None:
    """Redis answers but refuses writes (maxmemory reached): the session whose state changes
    ends with 4004, and the terminal's resume is refused with it. (A Redis that is gone is an
    outage the sessions ride out: test_many_hosts.)"""
    store = e2e.redis()
    server = e2e.server(account=PATIENT, server={"registry": store.url})
    ticket = server.launch("alice")
    sid = ticket["session_id"]
    client = e2e.raw(server.ws_url)
    first = client.handshake(hello_for(ticket))
    client.wait_message("started")
    with redis.Redis.from_url(store.url) as admin:
        admin.config_set("maxmemory", 1)  # below what it holds: every write is refused

    client.ws.close(1000)  # the terminal leaves, meaning to come back
    fault = server.log.wait_event(event="error.exception", code=4004, session_id=sid)
    assert fault["attrs"]["where"] == (
        "control loop: recording state 'disconnected' in the registry"
    )
    assert "OutOfMemoryError: command not allowed" in fault["attrs"]["error"], fault
    ended = server.log.wait_event(event="session.ended", code=4004, session_id=sid)
    assert ended["attrs"]["where"] == fault["attrs"]["where"]

    again = e2e.raw(server.ws_url)
    again.send(hello_for(ticket, resume=True, previous_connection_id=first["connection_id"]))
    assert again.wait_closed() == 4004
    server.log.wait_event(event="connection.rejected", code=4004, session_id=sid)
    facts = diagnosis(sid, server.log)
    assert (facts["category"], facts["final_code"]) == ("server_fault", 4004), facts


def raw_with_small_buffer(url: str) -> RawClient:
    """A raw client whose socket takes little, so a burst soon blocks the server's writes."""
    sock = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0])))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return RawClient.open(url, max_queue=1, sock=sock)


def test_4025_connection_reset_while_the_server_writes_a_burst(e2e: E2E) -> None:
    limit = 64 * 1024 * 1024  # far above the burst: this is not 4003
    big = {"send_buffer_limit": limit, "receive_timeout": 30.0}
    server = e2e.server(account=PATIENT, launchpads={"big": big})
    ticket = server.launch("alice", "big")
    sid = ticket["session_id"]
    client = raw_with_small_buffer(server.ws_url)
    first = client.handshake(hello_for(ticket))
    client.wait_message("started")

    blob = "x" * (256 * 1024)
    pushes = 40  # 10 MiB: more than the kernel buffers of both sides hold
    for n in range(pushes):
        assert server.push(sid, {"n": n, "blob": blob}).status == 202
    # The terminal goes away hard: RST, no close frame, with the server mid-write.
    sock = client.ws.socket
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    client.close()

    closed = server.log.wait_event(event="connection.closed", code=4025, session_id=sid)
    assert closed["connection_id"] == first["connection_id"]
    assert closed["attrs"]["error"], closed
    server.log.wait_event(event="session.disconnected", code=4025, session_id=sid)
    assert not server.log.find(event="connection.closed", code=4029, session_id=sid)
    assert not server.log.find(event="connection.closed", code=4003, session_id=sid)

    # Resumable: a new connection picks the session up and gets every message not yet read.
    again = e2e.raw(server.ws_url)
    welcome = again.handshake(hello_for(ticket, resume=True, last_seq=pushes - 1))
    assert welcome["resume"] is True and welcome["last_seq"] == pushes
    last = again.wait_message("msg")
    assert last["seq"] == pushes and last["body"]["n"] == pushes - 1
    server.log.wait_event(event="session.resumed", session_id=sid)
    again.send({"type": "close"})
    assert again.wait_closed() == 4000
    server.log.wait_event(event="session.ended", code=4000, session_id=sid)

    facts = diagnosis(sid, server.log)
    assert (facts["category"], facts["final_code"]) == ("expected_end", 4000), facts
    assert 4025 in facts["codes"] and facts["recovered"] is True, facts


def test_4025_terminal_reset_under_a_blocked_burst_then_resumed(e2e: E2E) -> None:
    """The Python terminal behind the fault proxy: the proxy stops reading the server's bytes
    until its writes block, then resets both sides. The terminal sees its connection drop
    (4102), reconnects (4103) and gets every message the reset lost."""
    quiet = {"receive_timeout": 30.0, "keepalive_timeout": 30.0}  # no timer beats the reset
    pad = {**quiet, "send_buffer_limit": 64 * 1024 * 1024}
    server = e2e.server(account=PATIENT, launchpads={"big": pad})
    ticket = server.launch("alice", "big")
    sid = ticket["session_id"]
    proxy = e2e.proxy(server.port)
    term = e2e.connected(server, ticket, proxy)
    first = server.log.wait_event(event="connection.established", session_id=sid)

    proxy.control("stall")
    blob = "x" * (192 * 1024)  # under the terminal's limit for one message
    pushes = 64  # 12 MiB, beyond what the kernel buffers of server and proxy hold
    for n in range(pushes):
        assert server.push(sid, {"n": n, "blob": blob}).status == 202
    proxy.control("cut")
    proxy.control("restore")

    closed = server.log.wait_event(event="connection.closed", code=4025, session_id=sid)
    assert closed["connection_id"] == first["connection_id"]
    server.log.wait_event(event="session.disconnected", code=4025, session_id=sid)
    term.wait_line(r"^\[4102 [A-Z_]+\] ")
    term.wait_line(r"^\[4103 [A-Z_]+\] ")
    term.wait_line(rf"^connected to {sid} as c-\w+ \(resumed\)$", timeout=8)
    term.wait_line(rf'^msg {pushes} \{{"blob": "x+", "n": {pushes - 1}\}}$', timeout=15)
    server.log.wait_event(event="session.resumed", session_id=sid)
    assert not server.log.find(event="connection.closed", code=4029, session_id=sid)

    term.send("close")
    assert term.wait_exit() == 0
    server.log.wait_event(event="session.ended", code=4000, session_id=sid)
    lost = term.log.wait_event(event="connection.lost", code=4102)
    assert lost["attrs"]["close_code"] is None  # the server's 4025 could not reach it
    facts = diagnosis(sid, server.log, term.log)
    assert (facts["category"], facts["final_code"]) == ("expected_end", 4000), facts
    assert {4025, 4102, 4103} <= set(facts["codes"]) and facts["recovered"] is True, facts
