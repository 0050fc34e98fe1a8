"""Clipboard both ways and files both ways, end to end: a real server with a real Xvfb, the
Python terminal, real X clients copying and pasting, and the guest command inside the session.

Each test asserts what the person gets (what an X app pastes, what the terminal prints, the
files on disk) and what the event logs hold (every transfer and refusal, never the text).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from Xlib import X

from openfrp.desk.xconnect import open_display
from openfrp.server.command import DEMO_APP
from tests.e2e.conftest import E2E, shared_e2e_env
from tests.e2e.harness import SECRET, ServerProcess, bounded, diagnosis, hello_for
from tests.support.xselection import XApp, read_cookie

needs_xvfb = pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")
# A slow machine may take seconds from launch to connect: no 4009 meanwhile.
PAD = {"idle_timeout": 30.0}
X_PAD = {**PAD, "display_ready_timeout": 10.0, "app_command": "sleep 60"}
HOSTILE = ["../../etc/evil", "..", "a\x00b.txt", "é" * 300 + ".txt", ".bashrc", "dir\\..\\x"]


@pytest.fixture
def shared_e2e() -> Iterator[E2E]:
    """Servers under a folder the session's own user may traverse (its app runs as that
    user when the tests run as root)."""
    with shared_e2e_env() as env:
        yield env


class Session:
    """A launched, connected session: its terminal, X display and home folder."""

    def __init__(
        self, e2e: E2E, server: ServerProcess, pad: str, extra: list[str], user: str = "alice"
    ) -> None:
        self.ticket = server.launch(user, pad)
        self.sid = self.ticket["session_id"]
        self.term = e2e.terminal(self.ticket["connect_url"], name=pad, extra=extra)
        self.term.wait_line(rf"^connected to {self.sid} as c-")
        account = server.log.wait_event(event="session.account", session_id=self.sid)
        self.home = Path(account["attrs"]["home"])
        ready = server.log.wait_event(event="display.ready", session_id=self.sid, timeout=15)
        self.display = f":{ready['attrs'].get('display')}"
        server.log.wait_event(event="session.started", session_id=self.sid)

    def x_app(self) -> XApp:
        return XApp(self.display, read_cookie(str(self.home / ".Xauthority")))


def desk_events(server: ServerProcess, sid: str, prefix: str) -> list[dict[str, Any]]:
    return [
        e
        for e in server.log.events()
        if e.get("session_id") == sid and str(e.get("event", "")).startswith(prefix)
    ]


def _a_window_shows(display: str, cookie: str) -> bool:
    """Whether a top-level window is mapped on `display` (an app's, once it shows)."""
    connection = open_display(display, cookie)
    try:
        children = connection.screen().root.query_tree().children
        return any(w.get_attributes().map_state == X.IsViewable for w in children)
    finally:
        connection.close()


@needs_xvfb
@pytest.mark.skipif(shutil.which("xterm") is None, reason="needs xterm")
def test_the_terminal_pastes_into_the_demo_xterm_with_ctrl_shift_v(e2e: E2E) -> None:
    """`key ctrl+shift+v` is the demo xterm's paste, as in the browser: with Shift the v is a
    V, so the xterm sees Ctrl+Shift+V, not Ctrl+V (the tty's literal-next)."""
    pad = {**X_PAD, "app_command": DEMO_APP, "fit_windows": True}
    server = e2e.server(server={"display": "xvfb"}, launchpads={"x": pad})
    s = Session(e2e, server, "x", [])
    for _ in bounded(15.0):  # keys reach the xterm once its window shows
        if _a_window_shows(s.display, read_cookie(str(s.home / ".Xauthority"))):
            break
    s.term.send("type echo ")  # the space at its end is typed too
    s.term.send("paste pasted")  # the key right after it waits until the session has it
    s.term.send("key ctrl+shift+v")
    s.term.send("wait 0.5")  # the xterm asks the clipboard's owner; the text comes later
    s.term.send('type  | rev > "$HOME/out.txt"')
    s.term.send("key Return")
    out = s.home / "out.txt"
    for _ in bounded(10.0):
        if out.exists() and out.read_text().endswith("\n"):
            break
    assert out.read_text() == "detsap\n"
    server.log.wait_event(event="clipboard.transfer", session_id=s.sid)


@needs_xvfb
def test_clipboard_both_ways_honours_each_policy(e2e: E2E) -> None:
    policies = ["both", "to_session", "from_session", "off"]
    server = e2e.server(
        server={"display": "xvfb", "video_fps": 1},
        launchpads={p: {**X_PAD, "clipboard": p} for p in policies},
    )
    for policy in policies:
        s = Session(e2e, server, policy, [])
        app = s.x_app()
        try:
            # Terminal -> session: what an X app pastes is exactly what the terminal sent.
            text = f"pasted into {policy}: héllo €"
            s.term.send(f"paste {text}")
            inbound = policy in ("both", "to_session")
            if inbound:
                for _ in bounded(5.0):
                    if app.paste() == text:
                        break
                assert app.paste("CLIPBOARD") == text
                assert app.paste("PRIMARY") == text
                server.log.wait_event(
                    event="clipboard.transfer",
                    session_id=s.sid,
                    attrs={"direction": "to_session", "bytes": len(text.encode())},
                )
            else:
                refused = server.log.wait_event(
                    event="clipboard.refused", session_id=s.sid, attrs={"direction": "to_session"}
                )
                assert refused["attrs"]["reason"] == f"clipboard policy is '{policy}'"
                assert app.paste() is None  # nobody owns the clipboard
                # and the person is told, not left pasting the old text
                s.term.wait_line(
                    rf"^clipboard to the session refused: clipboard policy is '{policy}'$"
                )

            # Session -> terminal: a copy in an X app reaches the terminal.
            copied = f"copied in {policy} ✓"
            app.copy(copied)
            if policy in ("both", "from_session"):
                s.term.wait_line(r"^clipboard from the session: \d+ characters")
                mark = s.term.mark()
                s.term.send("clipboard")
                s.term.wait_line(r"^clipboard: " + re.escape(json.dumps(copied)), start=mark)
                server.log.wait_event(
                    event="clipboard.transfer",
                    session_id=s.sid,
                    attrs={"direction": "from_session", "bytes": len(copied.encode())},
                )
            else:
                refused = server.log.wait_event(
                    event="clipboard.refused",
                    session_id=s.sid,
                    attrs={"direction": "from_session"},
                )
                assert refused["attrs"]["reason"] == f"clipboard policy is '{policy}'"
                s.term.wait_line(
                    rf"^clipboard from the session refused: clipboard policy is '{policy}'$"
                )
                s.term.send("clipboard")
                s.term.wait_line(r"^clipboard: \(nothing copied in the session yet\)")
        finally:
            app.close()
        s.term.send("close")
        assert s.term.wait_exit() == 0
        # The log says who, which way and how much, never the text itself.
        logged = json.dumps(desk_events(server, s.sid, "clipboard."))
        assert "héllo" not in logged and "✓" not in logged and "copied in" not in logged


@needs_xvfb
def test_a_large_copy_is_refused_and_logged(e2e: E2E) -> None:
    server = e2e.server(
        server={"display": "xvfb", "video_fps": 1},
        launchpads={"small": {**X_PAD, "clipboard_limit": 100}},
    )
    s = Session(e2e, server, "small", [])
    app = s.x_app()
    try:
        s.term.send("paste " + "x" * 150)
        refused = server.log.wait_event(event="clipboard.refused", session_id=s.sid)
        assert refused["attrs"] == {
            "direction": "to_session",
            "bytes": 150,
            "reason": "over the size limit of 100 bytes",
        }
        app.copy("y" * 500)
        refused = server.log.wait_event(
            event="clipboard.refused", session_id=s.sid, attrs={"direction": "from_session"}
        )
        assert refused["attrs"]["bytes"] == 500
        assert refused["attrs"]["reason"] == "over the size limit of 100 bytes"
        assert s.term.count(r"^clipboard from the session: ") == 0  # nothing received
        # The person is told both times, and the terminal's log holds it too.
        s.term.wait_line(r"^clipboard to the session refused: over the size limit of 100 bytes$")
        s.term.wait_line(r"^clipboard from the session refused: over the size limit of 100 ")
        told = s.term.log.wait_event(event="clipboard.refused", attrs={"direction": "from_session"})
        assert told["attrs"]["bytes"] == 500 and told["severity"] == "warning"
    finally:
        app.close()


@needs_xvfb
def test_4005_when_the_clipboard_client_is_killed_while_the_display_lives(e2e: E2E) -> None:
    server = e2e.server(server={"display": "xvfb", "video_fps": 1}, launchpads={"x": X_PAD})
    s = Session(e2e, server, "x", [])
    app = s.x_app()
    try:
        s.term.send("paste owned by the session's clipboard client")
        for _ in bounded(5.0):
            if app.paste() == "owned by the session's clipboard client":
                break
        app.kill_owner()  # the X server drops that client, as xkill would
    finally:
        app.close()
    s.term.wait_line(r"^\[4005 [A-Z_]+\] ")
    s.term.wait_line(r"^session over: 4005 ")
    assert s.term.wait_exit() == 1
    failed = server.log.wait_event(event="error.exception", code=4005, session_id=s.sid)
    assert failed["attrs"]["where"] == "clipboard"
    ended = server.log.wait_event(event="session.ended", code=4005, session_id=s.sid)
    assert ended["attrs"]["where"] == "clipboard"
    s.term.log.wait_event(event="connection.closed", code=4005)
    facts = diagnosis(s.sid, server.log, s.term.log)
    assert (facts["final_code"], facts["category"]) == (4005, "server_fault")


def _files_under(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and p.name != ".Xauthority"
    }


def test_upload_lands_in_the_sessions_home_and_hostile_names_stay_inside(
    shared_e2e: E2E,
) -> None:
    server = shared_e2e.server(launchpads={"files": {**PAD, "app_command": "sleep 60"}})
    s = Session(shared_e2e, server, "files", [])
    payload = os.urandom(200_000)  # five chunks
    local = shared_e2e.root / "report.bin"
    local.write_bytes(payload)

    s.term.send(f"upload {local}")
    s.term.wait_line(r"^uploaded report\.bin as report\.bin$")
    assert (s.home / "report.bin").read_bytes() == payload
    stat = (s.home / "report.bin").stat()
    account = server.log.find(event="session.account", session_id=s.sid)[0]["attrs"]
    assert stat.st_uid == account["uid"]  # the session's user owns what it was given
    s.term.send(f"upload {local}")
    s.term.wait_line(r"^uploaded report\.bin as report \(1\)\.bin$")  # never replaced
    transfer = server.log.wait_event(event="file.transfer", session_id=s.sid)
    assert transfer["attrs"] == {"direction": "to_session", "bytes": 200_000, "name": "report.bin"}

    # A terminal that names its files to escape the folder: each lands inside, renamed.
    s.term.send("disconnect")
    s.term.wait_exit()
    raw = shared_e2e.raw(s.ticket["ws_url"])
    raw.handshake(hello_for(s.ticket, resume=True))
    before = set(_files_under(s.home))
    outside = {p: p.exists() for p in (Path("/etc/evil"), s.home.parent / "evil")}
    for n, name in enumerate(HOSTILE):
        data = f"file {n}".encode()
        raw.send({"type": "file_begin", "id": f"h{n}", "name": name, "size": len(data)})
        raw.wait_message("file_ack", where=lambda m, n=n: m["id"] == f"h{n}")
        chunk = {"type": "file_chunk", "id": f"h{n}", "offset": 0}
        raw.send({**chunk, "data": base64.b64encode(data).decode()})
        raw.wait_message("file_ack", where=lambda m: m["offset"] > 0)
        raw.send({"type": "file_end", "id": f"h{n}"})
        saved = raw.wait_message("file_status")
        assert saved["state"] == "saved", saved
    new = {k: v for k, v in _files_under(s.home).items() if k not in before}
    assert sorted(new.values()) == sorted(f"file {n}".encode() for n in range(len(HOSTILE)))
    for name in new:
        assert "/" not in name and "\x00" not in name and not name.startswith(".")
        assert len(name.encode()) <= 200
    assert "evil" in new and "b.txt" not in new and "ab.txt" in new and "bashrc" in new
    assert {p: p.exists() for p in outside} == outside  # nothing written outside

    # An upload cut off with its connection leaves no partial file once the terminal is back.
    raw.send({"type": "file_begin", "id": "cut", "name": "partial.bin", "size": 100})
    raw.wait_message("file_ack", where=lambda m: m["id"] == "cut")
    assert (s.home / "partial.bin").exists()
    raw.close()
    server.log.wait_event(event="session.disconnected", session_id=s.sid, count=2)
    again = shared_e2e.raw(s.ticket["ws_url"])
    again.handshake(hello_for(s.ticket, resume=True))
    again.send({"type": "file_begin", "id": "next", "name": "next.txt", "size": 0})
    again.wait_message("file_ack", where=lambda m: m["id"] == "next")
    assert not (s.home / "partial.bin").exists()
    left = server.log.wait_event(event="file.refused", session_id=s.sid)
    assert left["attrs"] == {"direction": "to_session", "bytes": 100, "reason": "the terminal left"}


def test_an_upload_sent_as_the_session_starts_waits_for_its_home(e2e: E2E) -> None:
    """A script's first command is an upload: it reaches the server while the session is
    still starting (a profile mount that takes a second) and lands once the home is made."""
    pad = {**PAD, "app_command": "sleep 60", "profile_mount_command": "sleep 1"}
    server = e2e.server(launchpads={"slow": pad})
    local = e2e.root / "small.txt"
    local.write_text("small")
    ticket = server.launch("alice", "slow")
    sid = ticket["session_id"]
    term = e2e.terminal(ticket["connect_url"])
    term.send(f"upload {local}")
    term.wait_line(r"^uploaded small\.txt as small\.txt$", timeout=10)
    home = Path(server.log.wait_event(event="session.account", session_id=sid)["attrs"]["home"])
    assert (home / "small.txt").read_text() == "small"
    assert not server.log.find(event="file.refused", session_id=sid)
    names = server.log.names(sid, "server")
    assert names.index("session.started") < names.index("file.transfer")
    term.send("close")
    assert term.wait_exit() == 0


def test_upload_refusals_are_logged(e2e: E2E) -> None:
    """The person reads the limit in binary units; the log keeps the exact byte count."""
    server = e2e.server(
        launchpads={
            "none": {**PAD, "file_transfer": "from_session"},
            "tiny": {**PAD, "file_transfer_limit": 1536},
        }
    )
    cases = {
        "none": "file transfer policy is 'from_session'",
        "tiny": "over the size limit of 1.5 KiB",
    }
    local = e2e.root / "notes.txt"
    local.write_text("a line of notes\n" * 200)  # 3200 bytes
    tickets = {pad: server.launch(f"user-{pad}", pad) for pad in cases}
    terms = {pad: e2e.terminal(t["connect_url"], name=pad) for pad, t in tickets.items()}
    for pad, reason in cases.items():
        term, sid = terms[pad], tickets[pad]["session_id"]
        term.wait_line(rf"^connected to {sid} as c-")
        term.send(f"upload {local}")
        term.wait_line(rf"^upload notes\.txt refused: {re.escape(reason)}$")
        refused = server.log.wait_event(event="file.refused", session_id=sid)
        assert refused["attrs"] == {"direction": "to_session", "bytes": 3200, "reason": reason}
        assert not server.log.find(event="file.transfer", session_id=sid)


def test_download_from_inside_the_session_with_hostile_names(shared_e2e: E2E) -> None:
    downloads = shared_e2e.root / "downloads"
    downloads.mkdir()
    script = shared_e2e.root / "offer.sh"
    script.write_text(
        'head -c 120000 /dev/zero | tr "\\0" "z" > "$HOME/big report.txt"\n'
        'while [ ! -e "$HOME/go" ]; do sleep 0.05; done\n'
        'openfrp guest download "$HOME/big report.txt" > "$HOME/said" 2>&1\n'
        "exec sleep 60\n"
    )
    server = shared_e2e.server(
        launchpads={
            "dl": {**PAD, "app_command": f"sh {script}"},
            "nodl": {
                **PAD,
                "app_command": "sleep 60",
                "file_transfer": "to_session",
                "file_transfer_limit": 2048,
            },
        }
    )
    s = Session(shared_e2e, server, "dl", ["--downloads", str(downloads)])
    (s.home / "go").touch()
    s.term.wait_line(r"^downloaded .*big report\.txt$", timeout=20)
    assert (downloads / "big report.txt").read_bytes() == b"z" * 120000
    for _ in bounded(5.0):
        if (s.home / "said").exists() and (s.home / "said").read_text():
            break
    said = (s.home / "said").read_text()
    assert "offered big report.txt (117.1 KiB) to the terminal" in said
    s.term.wait_line(r"^download offered: big report\.txt \(117\.1 KiB\), saving as ")
    server.log.wait_event(
        event="file.transfer",
        session_id=s.sid,
        attrs={"direction": "from_session", "bytes": 120000, "name": "big report.txt"},
    )

    # Hostile names offered through the same guest API land inside the downloads folder.
    for n, name in enumerate(HOSTILE):
        mark = s.term.mark()
        answer = offer(server.url, s.sid, name, b"dl %d" % n)
        assert answer["offered"]["size"] == len(f"dl {n}")
        s.term.wait_line(rf"^downloaded {downloads}/", start=mark)
    for _ in bounded(10.0):
        if len(_files_under(downloads)) == len(HOSTILE) + 1:
            break
    got = _files_under(downloads)
    assert sorted(v for k, v in got.items() if k != "big report.txt") == sorted(
        f"dl {n}".encode() for n in range(len(HOSTILE))
    )
    assert all("/" not in k and not k.startswith(".") for k in got)

    # A launchpad that allows uploads only: the guest is told, the log says why.
    other = Session(shared_e2e, server, "nodl", ["--downloads", str(downloads)], user="bob")
    with pytest.raises(AssertionError, match="403"):
        offer(server.url, other.sid, "x.txt", b"x")
    refused = server.log.wait_event(event="file.refused", session_id=other.sid)
    assert refused["attrs"]["reason"] == "file transfer policy is 'to_session'"
    # A file over the limit is refused once the limit is read, and logged.
    with pytest.raises(AssertionError, match=r"413.*file_transfer_limit \(2 KiB\)"):
        offer(server.url, other.sid, "x.txt", b"x" * 100_000)
    refused = server.log.wait_event(event="file.refused", session_id=other.sid, count=2)
    assert refused["attrs"]["reason"] == "over the size limit of 2 KiB"


def offer(server_url: str, sid: str, name: str, data: bytes) -> dict[str, Any]:
    """What `openfrp guest download` sends: the file as the body, its name in the query."""
    key = hmac.new(SECRET.encode(), f"guest:{sid}".encode(), hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        f"{server_url}/api/sessions/{sid}/guest/download?name={urllib.parse.quote(name)}",
        data=data,
        method="POST",
        headers={"X-OpenFRP-Guest-Key": key, "Content-Type": "application/octet-stream"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{exc.code} {exc.read()!r}") from None
