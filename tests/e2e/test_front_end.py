"""Run behind a real front end: OPENFRP_* settings, public_url in every link, a dual-stack
bind, X-Forwarded-* only from trusted proxies, direct TLS, and Debian's nginx with a
self-signed certificate in front of the server, used by the Python terminal and Chromium."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.e2e.browser import ARGS, CHROMIUM, Browser
from tests.e2e.conftest import E2E, FRP8_PAD
from tests.e2e.harness import (
    OPENFRP,
    REPO_ROOT,
    JsonlLog,
    bounded,
    free_port,
    stop_process,
    write_config,
)
from tests.support.coturn import PASSWORD, TURNSERVER, USER, Coturn

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class Served:
    """`openfrp serve` started with extra environment; its ready file's URL and admin key."""

    def __init__(
        self,
        root: Path,
        env: dict[str, str],
        server: dict[str, Any] | None = None,
        launchpads: dict[str, dict[str, Any]] | None = None,
    ):
        root.mkdir(parents=True, exist_ok=True)
        # A launched session waits idle_timeout for its terminal: longer than a loaded
        # machine takes to start one.
        account = {"idle_timeout": 30.0}
        config = write_config(root / "server.toml", root / "data", launchpads, account, server)
        ready = root / "ready.txt"
        self.stderr = root / "stderr.txt"
        with self.stderr.open("wb") as err:
            self.process = subprocess.Popen(
                [OPENFRP, "serve", f"--config={config}", f"--ready-file={ready}"],
                cwd=root,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        for _ in bounded(15.0):
            lines = ready.read_text().splitlines() if ready.exists() else []
            if len(lines) >= 2 or self.process.poll() is not None:
                break
        assert len(lines) >= 2, self.stderr.read_text()
        self.url, self.admin_key = lines[0], lines[1]
        self.log = JsonlLog(root / "data" / "logs" / "server-events.jsonl")

    def launch(
        self, base: str, context: ssl.SSLContext | None = None, launchpad: str = "desktop"
    ) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{base}/api/sessions",
            data=json.dumps({"user": "alice", "launchpad": launchpad}).encode(),
            headers={"Authorization": f"Bearer {self.admin_key}"},
        )
        with urllib.request.urlopen(request, timeout=10, context=context) as answer:
            ticket: dict[str, Any] = json.loads(answer.read())
            return ticket

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture
def served() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for server in started:
        server.stop()


def status(url: str, context: ssl.SSLContext | None = None) -> int:
    with urllib.request.urlopen(url, timeout=10, context=context) as answer:
        code: int = answer.status
        return code


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def rejected_remote(
    server: Served, ws_url: str, headers: dict[str, str], context: ssl.SSLContext | None = None
) -> str:
    """Where the server says a connection came from (a hello for no session is refused)."""
    before = len(server.log.find(event="connection.rejected"))
    with connect(ws_url, additional_headers=headers, open_timeout=5, ssl=context) as ws:
        ws.send(json.dumps({"type": "hello", "session_id": "s-nowhere"}))
        event = server.log.wait_event(event="connection.rejected", count=before + 1)
    remote: str = event["attrs"]["remote"]
    return remote


def test_environment_public_url_dual_stack_and_trusted_proxies(
    tmp_path: Path, served: list[Served]
) -> None:
    port = free_port()
    env = {
        "OPENFRP_HOST": "::",
        "OPENFRP_PORT": str(port),
        "OPENFRP_PUBLIC_URL": "https://desk.example.org:8443/ofrp/",
        "OPENFRP_TRUSTED_PROXIES": "127.0.0.1",
    }
    server = Served(tmp_path / "s", env)
    served.append(server)
    assert server.url == "https://desk.example.org:8443/ofrp"  # the file said 127.0.0.1:0
    local = f"http://127.0.0.1:{port}"
    assert status(local + "/livez") == 200  # IPv4 on the IPv6 socket: dual stack
    if ipv6_loopback():
        assert status(f"http://[::1]:{port}/livez") == 200
    ticket = server.launch(local)
    assert ticket["connect_url"].startswith("https://desk.example.org:8443/ofrp/s/s-")
    assert ticket["ws_url"] == "wss://desk.example.org:8443/ofrp/frp7"

    spoof = {"X-Forwarded-For": "198.51.100.7"}
    assert rejected_remote(server, f"ws://127.0.0.1:{port}/frp7", spoof).startswith("198.51.100.7:")
    if ipv6_loopback():  # ::1 is not in the trusted list: its header is ignored
        assert rejected_remote(server, f"ws://[::1]:{port}/frp7", spoof).startswith("::1:")

    bad = subprocess.run(
        [OPENFRP, "serve", "--port", "0"],
        env={**os.environ, "OPENFRP_VIDEO_FPS": "fast"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "openfrp serve: OPENFRP_VIDEO_FPS: expected a whole number, got 'fast'"
    ]


@pytest.fixture
def certificate(tmp_path: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 and localhost (cert.pem, key.pem)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path / "tls"
    folder.mkdir()
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
            *("-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return folder


def test_direct_tls_serves_https_and_wss(
    e2e: E2E, certificate: Path, served: list[Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = {"tls_cert": str(certificate / "cert.pem"), "tls_key": str(certificate / "key.pem")}
    server = Served(e2e.root / "tls", {}, server=tls)
    served.append(server)
    assert server.url.startswith("https://127.0.0.1:")
    trusted = ssl.create_default_context(cafile=certificate / "cert.pem")
    assert status(server.url + "/livez", trusted) == 200
    with pytest.raises(urllib.error.URLError):  # an unknown certificate is refused
        status(server.url + "/livez")
    ticket = server.launch(server.url, trusted)
    assert ticket["ws_url"] == server.url.replace("https", "wss") + "/frp7"
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate / "cert.pem"))
    term = e2e.terminal(ticket["connect_url"])
    term.wait_line(rf"^connected to {ticket['session_id']} as c-")
    server.log.wait_event(event="session.started", session_id=ticket["session_id"])


NGINX_CONF = """
worker_processes 1;
error_log {root}/error.log;
pid {root}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {root}/openfrp.conf;
}}
"""


def documented_server_block(port: int, upstream: int, certificate: Path) -> str:
    """docs/nginx.conf with the test's address, certificate and upstream port."""
    text = (REPO_ROOT / "docs/nginx.conf").read_text()
    for old, new in (
        ("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
        ("/etc/ssl/certs/desk.example.org.pem", str(certificate / "cert.pem")),
        ("/etc/ssl/private/desk.example.org.key", str(certificate / "key.pem")),
        ("http://127.0.0.1:8470/", f"http://127.0.0.1:{upstream}/"),
    ):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


@pytest.fixture
def nginx_in_front(certificate: Path, tmp_path: Path) -> Iterator[tuple[Path, int, int]]:
    """Debian's nginx running docs/nginx.conf on https://127.0.0.1:PORT/openfrp/, in front of
    a server on UPSTREAM."""
    if not os.path.exists(NGINX):
        pytest.skip("nginx is not installed (Debian package nginx)")
    root = tmp_path / "nginx"
    root.mkdir()
    port, upstream = free_port(), free_port()
    (root / "openfrp.conf").write_text(documented_server_block(port, upstream, certificate))
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(root=root))
    process = subprocess.Popen(
        [NGINX, "-p", str(root), "-c", str(conf), "-g", "daemon off;"],
        stdin=subprocess.DEVNULL,
        stderr=(root / "stderr.txt").open("wb"),
    )
    try:
        for _ in bounded(10.0):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
        yield root, port, upstream
    finally:
        stop_process(process)


def test_nginx_with_tls_in_front_of_the_server(
    e2e: E2E,
    certificate: Path,
    nginx_in_front: tuple[Path, int, int],
    served: list[Served],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, port, upstream = nginx_in_front
    public = f"https://127.0.0.1:{port}/openfrp"
    server = Served(e2e.root / "behind", {}, server={"port": upstream, "public_url": public})
    served.append(server)
    trusted = ssl.create_default_context(cafile=certificate / "cert.pem")
    assert status(public + "/readyz", trusted) == 200

    # The Python terminal, over wss through nginx, with the link the server made.
    ticket = server.launch(public, trusted)
    assert ticket["connect_url"].startswith(public + "/s/")
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate / "cert.pem"))
    term = e2e.terminal(ticket["connect_url"])
    term.wait_line(rf"^connected to {ticket['session_id']} as c-")
    opened = server.log.wait_event(event="connection.opened", session_id=ticket["session_id"])
    assert opened["attrs"]["remote"].startswith("127.0.0.1:")
    term.send("close")
    term.wait_line(r"^session over: 4000 USER_CLOSED")

    # A client's own X-Forwarded-For is replaced at the edge, not appended to: a client on
    # this host (a session's app) would come through as loopback, which is trusted.
    spoof = {"X-Forwarded-For": "198.51.100.7"}
    remote = rejected_remote(server, f"wss://127.0.0.1:{port}/openfrp/frp7", spoof, trusted)
    assert remote.startswith("127.0.0.1:")

    # Chromium, from the page's link under the prefix to a session over wss.
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), args=[*ARGS, "--ignore-certificate-errors"]
        )
        try:
            browser = Browser(chromium.new_page())
            ticket = server.launch(public, trusted)  # idle_timeout is short: launch when ready
            browser.page.goto(ticket["connect_url"])
            browser.wait("v.state.startsWith('connected')", timeout=15)
            assert browser.page.evaluate("() => window.isSecureContext") is True
            assert browser.errors == []
        finally:
            chromium.close()
    server.log.wait_event(event="session.started", session_id=ticket["session_id"])


@pytest.mark.skipif(TURNSERVER is None, reason="needs coturn (Debian package coturn)")
def test_frp8_signaling_through_nginx(
    certificate: Path,
    nginx_in_front: tuple[Path, int, int],
    served: list[Served],
    coturn: Coturn,
    tmp_path: Path,
) -> None:
    """Chromium's FRP8 session signals through nginx (wss /openfrp/signal), while the
    server's own peer registers with its hub directly."""
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright

    root, port, upstream = nginx_in_front
    public = f"https://127.0.0.1:{port}/openfrp"
    options = {
        "port": upstream,
        "public_url": public,
        "turn_url": f"turn:127.0.0.1:{coturn.port}?transport=udp",
        "turn_user": USER,
        "turn_password": PASSWORD,
        "ice_policy": "relay",
        "video_fps": 5,
    }
    server = Served(tmp_path / "rtc", {}, server=options, launchpads={"rtc": FRP8_PAD})
    served.append(server)
    server.log.wait_event(event="signaling.registered", source="server")
    trusted = ssl.create_default_context(cafile=certificate / "cert.pem")
    assert status(public + "/readyz", trusted) == 200  # the FRP8 peer is registered
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), args=[*ARGS, "--ignore-certificate-errors"]
        )
        try:
            browser = Browser(chromium.new_page())
            ticket = server.launch(public, trusted, "rtc")
            assert (
                ticket["config"]["frp8"]["signaling_url"]
                == f"wss://127.0.0.1:{port}/openfrp/signal"
            )
            browser.page.goto(ticket["connect_url"])
            browser.wait("v.state.startsWith('connected')", timeout=20)
            assert browser.errors == []
        finally:
            chromium.close()
    opened = server.log.wait_event(event="connection.opened", session_id=ticket["session_id"])
    assert opened["attrs"]["frp"] == 8
    server.log.wait_event(event="signaling.joined", session_id=ticket["session_id"])
    assert 'GET /openfrp/signal HTTP/1.1" 101' in (root / "access.log").read_text()


def test_the_guest_command_reaches_the_server_directly_behind_a_public_url(
    e2e: E2E, served: list[Served], shared_tmp: Path
) -> None:
    """The session's app asks this host itself, not the front end (which a session may not
    reach, or whose certificate it may not trust)."""
    marker = shared_tmp / "guest-behind.txt"
    app = f"sh -c 'sleep 0.5; openfrp guest logoff > {marker} 2>&1; sleep 30'"
    port = free_port()
    options = {"port": port, "public_url": "https://desk.example.invalid/openfrp"}
    server = Served(e2e.root / "guest", {}, options, {"guest": {"app_command": app}})
    served.append(server)
    ticket = server.launch(f"http://127.0.0.1:{port}", launchpad="guest")
    saved = e2e.root / "ticket.json"
    saved.write_text(json.dumps(ticket))
    term = e2e.terminal(str(saved), ws_url=f"ws://127.0.0.1:{port}/frp7")
    term.wait_line(r"^session over: 4018 GUEST_LOGOFF", timeout=15)
    ended = server.log.wait_event(event="session.ended", session_id=ticket["session_id"])
    said = marker.read_text() if marker.exists() else ""
    assert (ended["code"], ended["attrs"].get("reason")) == (4018, "guest logoff"), said


def test_data_dir_holds_the_server_state_wherever_it_starts(tmp_path: Path) -> None:
    data, elsewhere = tmp_path / "var" / "openfrp", tmp_path / "cwd"
    elsewhere.mkdir()
    ready = tmp_path / "ready.txt"
    env = {**os.environ, "OPENFRP_DATA_DIR": str(data), "OPENFRP_DISPLAY": "synthetic"}
    process = subprocess.Popen(
        [OPENFRP, "serve", "--port", "0", f"--ready-file={ready}"],
        cwd=elsewhere,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in bounded(15.0):
            if ready.exists() and len(ready.read_text().splitlines()) >= 2:
                break
        url = ready.read_text().splitlines()[0]
        listed = subprocess.run(  # the admin key is found through OPENFRP_DATA_DIR too
            [OPENFRP, "sessions", "--server", url, "--json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr
    finally:
        stop_process(process)
    assert {p.name for p in data.iterdir()} >= {"registry.sqlite3", "logs", "admin.key", "secret"}
    assert (data / "logs" / "server-events.jsonl").stat().st_size > 0
    assert not any(elsewhere.iterdir())  # nothing in the working directory
