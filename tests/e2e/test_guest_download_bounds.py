"""The guest `download` endpoint against a hostile app: a request past the cap of downloads in
progress, past the session's policy or past file_transfer_limit is refused before its body is
read, so many large parallel requests cannot run the server out of memory; a body sent without
Content-Length is never held past the limit; a normal download still crosses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import select
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from openfrp.server.desk import MAX_OPEN
from tests.e2e.conftest import E2E
from tests.e2e.harness import OPENFRP, SECRET, RawClient, ServerProcess, hello_for
from tests.e2e.test_desk import offer

MIB = 1 << 20
LIMIT = 64 * MIB
PAD = {"idle_timeout": 60.0, "app_command": "sleep 120", "file_transfer_limit": LIMIT}
PARALLEL = 12  # hostile requests at once, past the cap
BODY = 40 * MIB  # each under the limit: read whole before the fix
PIECE = 256 * 1024
# The raw terminal below sends nothing on its own: keep it connected through the test.
QUIET_TERMINAL = {"receive_timeout": 30.0, "keepalive_timeout": 60.0, "idle_timeout": 60.0}
FULL = f"download refused: {MAX_OPEN} downloads are already in progress"


def _guest_key(sid: str) -> str:
    return hmac.new(SECRET.encode(), f"guest:{sid}".encode(), hashlib.sha256).hexdigest()


def _high_water(pid: int) -> int:
    """The server's peak resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


class Post:
    """One raw POST to the guest download endpoint, sending its body piece by piece and
    stopping as soon as an answer comes: what it sent, and the answer."""

    def __init__(self, server: ServerProcess, sid: str, size: int, chunked: bool = False) -> None:
        self.server, self.sid, self.size, self.chunked = server, sid, size, chunked
        self.sent = 0
        self.status = 0
        self.body: dict[str, Any] = {}
        self.error = ""

    def run(self, deadline: float = 60.0) -> None:
        try:
            self._run(deadline)
        except Exception as exc:  # reported by the test's assertions
            self.error = repr(exc)

    def _run(self, deadline: float) -> None:
        framing = "Transfer-Encoding: chunked" if self.chunked else f"Content-Length: {self.size}"
        head = (
            f"POST /api/sessions/{self.sid}/guest/download?name=f.bin HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nX-OpenFRP-Guest-Key: {_guest_key(self.sid)}\r\n"
            f"Content-Type: application/octet-stream\r\n{framing}\r\n\r\n"
        ).encode()
        piece = b"h" * PIECE
        if self.chunked:
            piece = b"%x\r\n" % PIECE + piece + b"\r\n"
        end = time.monotonic() + deadline
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=deadline) as sock:
            sock.sendall(head)
            while self.sent < self.size and not select.select([sock], [], [], 0)[0]:
                sock.sendall(piece[: len(piece) if self.chunked else self.size - self.sent])
                self.sent += min(PIECE, self.size - self.sent)
            if self.chunked and self.sent >= self.size:
                sock.sendall(b"0\r\n\r\n")
            answer = b""
            while b"\r\n\r\n" not in answer or len(answer) < self._length(answer):
                sock.settimeout(max(0.1, end - time.monotonic()))
                got = sock.recv(65536)
                if not got:
                    break
                answer += got
        head_text, _, body = answer.partition(b"\r\n\r\n")
        self.status = int(head_text.split(b" ", 2)[1])
        self.body = json.loads(body[: self._length(answer) - len(head_text) - 4])

    @staticmethod
    def _length(answer: bytes) -> int:
        head, sep, _ = answer.partition(b"\r\n\r\n")
        if not sep:
            return 1 << 62
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                return len(head) + 4 + int(value)
        return 1 << 62


def _post_all(posts: list[Post]) -> None:
    threads = [threading.Thread(target=p.run, daemon=True) for p in posts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert not any(t.is_alive() for t in threads)


def _complete(raw: RawClient, tid: str, data: bytes) -> None:
    """Take a download offered to this raw terminal, acking each chunk, and say it is saved."""
    got = b""
    raw.send({"type": "file_ack", "id": tid, "offset": 0})
    while len(got) < len(data):
        message = raw.wait_message("file_chunk", where=lambda m: m["id"] == tid)
        assert message["offset"] == len(got)
        got += base64.b64decode(message["data"])
        raw.send({"type": "file_ack", "id": tid, "offset": len(got)})
    raw.wait_message("file_end", where=lambda m: m["id"] == tid)
    assert got == data
    raw.send({"type": "file_status", "id": tid, "state": "saved"})


def test_guest_downloads_are_bounded_before_their_body_is_read(e2e: E2E) -> None:
    server = e2e.server(
        launchpads={
            "dl": PAD,
            "small": {**PAD, "file_transfer_limit": MIB},
            "nodl": {**PAD, "file_transfer": "to_session"},
        },
        account=QUIET_TERMINAL,
    )
    ticket = server.launch("alice", "dl")
    sid = ticket["session_id"]
    raw = e2e.raw(server.ws_url, max_queue=None)
    raw.handshake(hello_for(ticket))
    server.log.wait_event(event="session.started", session_id=sid, timeout=15)

    # A normal download crosses whole.
    data = bytes(range(256)) * 1000
    answer = offer(server.url, sid, "report.bin", data)
    assert answer["offered"]["size"] == len(data)
    _complete(raw, answer["offered"]["id"], data)
    server.log.wait_event(
        event="file.transfer",
        session_id=sid,
        attrs={"direction": "from_session", "bytes": len(data), "name": "report.bin"},
    )

    # Fill the cap: the terminal never takes these.
    for n in range(MAX_OPEN):
        assert offer(server.url, sid, f"held{n}.txt", b"held")["offered"]["size"] == 4
    before = _high_water(server.process.pid)

    # Many large requests at once past the cap: each refused before its body is read, and the
    # server's peak memory does not grow by what they would send.
    posts = [Post(server, sid, BODY) for _ in range(PARALLEL)]
    started = time.monotonic()
    _post_all(posts)
    took = time.monotonic() - started
    grew = _high_water(server.process.pid) - before
    would_send = PARALLEL * BODY
    assert grew < would_send / 10, (grew, would_send)
    assert all(not p.error for p in posts), [p.error for p in posts]
    assert [(p.status, p.body.get("error")) for p in posts] == [(403, FULL)] * PARALLEL
    assert max(p.sent for p in posts) <= 16 * MIB, [p.sent for p in posts]
    assert took < 20, took
    refused = server.log.find(event="file.refused", session_id=sid)
    assert len(refused) == PARALLEL
    assert {r["attrs"]["reason"] for r in refused} == {FULL.removeprefix("download refused: ")}

    # A body declared over file_transfer_limit is refused at once, whatever else is full.
    over = Post(server, sid, LIMIT + 1)
    over.run()
    assert not over.error, over.error
    assert over.status == 413
    assert over.body["error"] == "the file is larger than file_transfer_limit (64 MiB)"
    assert over.sent <= 16 * MIB, over.sent
    last = server.log.find(event="file.refused", session_id=sid)[-1]
    assert last["attrs"] == {
        "direction": "from_session",
        "bytes": LIMIT + 1,
        "reason": "over the size limit of 64 MiB",
    }

    # A body without Content-Length is read only up to the limit, then refused.
    small = server.launch("bob", "small")
    chunked = Post(server, small["session_id"], 8 * MIB, chunked=True)
    chunked.run()
    assert not chunked.error, chunked.error
    assert chunked.status == 413
    assert chunked.body["error"] == "the file is larger than file_transfer_limit (1 MiB)"
    assert chunked.sent < 8 * MIB
    last = server.log.wait_event(event="file.refused", session_id=small["session_id"])
    assert last["attrs"]["reason"] == "over the size limit of 1 MiB"

    # A session whose policy forbids downloads refuses before the body too.
    nodl = server.launch("carol", "nodl")
    forbidden = Post(server, nodl["session_id"], BODY)
    forbidden.run()
    assert not forbidden.error, forbidden.error
    assert (forbidden.status, forbidden.body["error"]) == (
        403,
        "download refused: file transfer policy is 'to_session'",
    )
    assert forbidden.sent <= 16 * MIB

    # Once the terminal ends the held downloads, a normal download crosses again.
    for tid in _offers(raw):
        raw.send({"type": "file_status", "id": tid, "state": "refused", "reason": "test"})
    answer = offer(server.url, sid, "again.bin", data)
    _complete(raw, answer["offered"]["id"], data)
    server.log.wait_event(
        event="file.transfer",
        session_id=sid,
        attrs={"direction": "from_session", "bytes": len(data), "name": "again.bin"},
    )
    assert server.process.poll() is None


def _offers(raw: RawClient) -> list[str]:
    """The ids of the held downloads offered to the raw terminal (read from its messages)."""
    ids: list[str] = []
    while len(ids) < MAX_OPEN:
        message = raw.wait_message("file_offer", where=lambda m: m["name"].startswith("held"))
        ids.append(message["id"])
    return ids


def test_the_guest_command_names_the_limit_of_a_file_far_over_it(e2e: E2E, tmp_path: Path) -> None:
    """`openfrp guest download` of a file many times over file_transfer_limit says the limit
    (413, exit 1): the server answers before reading the body and closes, and the command kept
    writing, got a reset and said "server not reachable" (exit 2). A file under it goes whole."""
    server = e2e.server(
        launchpads={"dl": {**PAD, "file_transfer_limit": MIB}}, account=QUIET_TERMINAL
    )
    ticket = server.launch("alice", "dl")
    sid = ticket["session_id"]
    raw = e2e.raw(server.ws_url, max_queue=None)
    raw.handshake(hello_for(ticket))
    raw.wait_message("started", timeout=10)
    env = {
        **os.environ,
        "OPENFRP_GUEST_URL": f"{server.url}/api/sessions/{sid}/guest",
        "OPENFRP_GUEST_KEY": _guest_key(sid),
    }
    big = tmp_path / "big.bin"
    big.write_bytes(b"b" * (32 * MIB))
    for _ in range(3):
        done = subprocess.run(
            [OPENFRP, "guest", "download", str(big)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (done.returncode, done.stderr.split(": ", 2)[-1].strip()) == (
            1,
            "413 the file is larger than file_transfer_limit (1 MiB)",
        ), done.stderr
    small = tmp_path / "small.bin"
    small.write_bytes(bytes(range(256)) * 1000)
    done = subprocess.run(
        [OPENFRP, "guest", "download", str(small)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "offered small.bin (250 KiB)" in done.stdout, done.stderr
    offered = raw.wait_message("file_offer", where=lambda m: m["name"] == "small.bin")
    _complete(raw, offered["id"], small.read_bytes())
    refused = server.log.find(event="file.refused", session_id=sid)
    assert [e["attrs"]["bytes"] for e in refused] == [32 * MIB] * 3
