"""The server's key files are private to it, and a credential with non-ASCII bytes (Bearer,
guest key, signaling peer key, a key file) is a wrong credential: 401 (the hub's refusal),
never a 500 with a traceback. A wrong guest key is 401 too; 404 is for a session not served."""

from __future__ import annotations

import http.client
import json
import subprocess
from pathlib import Path

from websockets.sync.client import connect

from tests.e2e.conftest import E2E
from tests.e2e.harness import OPENFRP, ServerProcess

ODD = "\u00e9\u00ff"  # bytes 0xE9 0xFF as a latin-1 header carries them


def raw_request(server: ServerProcess, method: str, path: str, header: str, value: bytes) -> int:
    """One request with a header value sent byte for byte; its HTTP status."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest(method, path)
        conn.putheader(header, value)
        conn.putheader("Content-Type", "application/json")
        body = b'{"action": "logoff"}'
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        return conn.getresponse().status
    finally:
        conn.close()


def mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)


def test_key_files_are_private_to_the_server(e2e: E2E) -> None:
    server = e2e.server(server={"secret": ""})  # the server makes and keeps its own secret
    data = server.root / "data"
    assert (data / "secret").read_text().strip()
    assert mode(data / "secret") == mode(data / "admin.key") == "0o600"
    assert mode(server.root / "ready.txt") == "0o600"
    assert mode(data) == mode(data / "logs") == "0o700"
    assert mode(data / "logs" / "server-events.jsonl") == "0o600"
    assert mode(data / "registry.sqlite3") == "0o600"
    ticket_file = server.root / "ticket.json"
    done = subprocess.run(
        [
            *(OPENFRP, "launch", "--server", server.url, "--data-dir", str(data)),
            *("--user", "u", "--out", str(ticket_file)),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert mode(ticket_file) == "0o600" and json.loads(ticket_file.read_text())["token"]


def test_files_an_earlier_run_left_readable_become_private(tmp_path: Path) -> None:
    root = tmp_path / "server"
    logs = root / "data" / "logs"
    logs.mkdir(parents=True, mode=0o755)
    (root / "data").chmod(0o755)  # a folder the operator made: it keeps its mode
    old = {root / "data" / "secret": "ab" * 32, logs / "server-events.jsonl": ""}
    for path, text in old.items():
        path.write_text(text)
        path.chmod(0o644)
    server = ServerProcess.start(root, server={"secret": ""})
    try:
        assert mode(root / "data") == "0o755"
        for path in [*old, root / "data" / "admin.key", root / "data" / "registry.sqlite3"]:
            assert mode(path) == "0o600", path
        assert server.log.find(event="server.started")
    finally:
        server.stop()


def test_non_ascii_credentials_are_refused_not_a_server_error(e2e: E2E) -> None:
    server = e2e.server(launchpads={"app": {"app_command": "sleep 30"}})
    ticket = server.launch("alice", "app")
    sid = ticket["session_id"]
    odd = ODD.encode("latin-1")
    admin = server.admin_key.encode()

    assert raw_request(server, "GET", "/api/sessions", "Authorization", b"Bearer " + odd) == 401
    for value in (admin + odd, odd + admin, ticket["token"].encode() + odd):
        assert (
            raw_request(server, "GET", "/api/sessions", "Authorization", b"Bearer " + value) == 401
        )
    guest = f"/api/sessions/{sid}/guest"
    for key in (odd, b"0" * 64, b""):
        assert raw_request(server, "POST", guest, "X-OpenFRP-Guest-Key", key) == 401, key
        assert raw_request(server, "POST", f"{guest}/download", "X-OpenFRP-Guest-Key", key) == 401
    assert raw_request(server, "POST", "/api/sessions/s-0/guest", "X-OpenFRP-Guest-Key", odd) == 404

    with connect(f"ws://127.0.0.1:{server.port}/signal", open_timeout=5) as ws:
        ws.send(json.dumps({"type": "register", "host": "e2e-host", "key": ODD}))
        answer = json.loads(ws.recv(timeout=5))
    assert answer == {"type": "error", "error": "bad peer key"}

    # The command line: a key file or --admin-key with such bytes is one line, exit 2.
    key_file = server.root / "odd" / "admin.key"
    key_file.parent.mkdir()
    key_file.write_bytes(b"\xe9\xff" + admin)
    for extra in (["--data-dir", str(key_file.parent)], ["--admin-key", "k\u20ac"]):
        done = subprocess.run(
            [OPENFRP, "sessions", "--server", server.url, *extra],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr

    assert server.api("GET", f"/api/sessions/{sid}").status == 200  # still serving
    assert "Traceback" not in server.stderr()
    assert not server.log.find(severity="error", event="error.exception")


def test_the_admin_key_rotates_without_changing_the_secret(e2e: E2E) -> None:
    before = e2e.server()
    ticket = before.launch("alice")
    after = e2e.server(server={"admin_key_epoch": 1})  # the same secret, a new epoch
    assert after.admin_key != before.admin_key
    assert (after.root / "data" / "admin.key").read_text() == after.admin_key
    assert after.api("GET", "/api/sessions", key=before.admin_key).status == 401
    assert after.api("GET", "/api/sessions").status == 200
    # What the secret signs (a user's token) still holds.
    assert after.api("GET", "/api/sessions", key=ticket["token"]).status == 200
    assert before.api("GET", "/api/sessions", key=after.admin_key).status == 401
