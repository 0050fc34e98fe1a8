"""End-to-end harness: server, fault proxy and terminal as separate processes on loopback.

Everything here is bounded: every wait has a timeout, every loop a deadline, and every process
is ended by the PID this harness started (SIGTERM, then SIGKILL after a bounded wait).

    server = ServerProcess.start(tmp_path, launchpads={"short": {"max_session_duration": 3}})
    ticket = server.launch("alice", "short")
    proxy = start_proxy_process(server.port)
    term = TerminalProcess.start(ticket["connect_url"], tmp_path / "t.jsonl",
                                 ws_url=f"ws://127.0.0.1:{proxy.port}/frp7")
    term.wait_line(r"connected to ")
    server.log.wait_event(event="session.started", session_id=ticket["session_id"])
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

REPO_ROOT = Path(__file__).resolve().parents[2]
OPENFRP = str(Path(sys.executable).with_name("openfrp"))
SECRET = "e2e-secret-not-for-production"
STOP_TIMEOUT = 5.0
POLL = 0.02
# A reset path is 4029 to the server, or 4025 when the reset caught a write in progress
# (a stats or video frame): which one is a matter of microseconds.
RESET_CODES = (4029, 4025)

# Short account timers so every code fires within seconds (see the brief in tests/e2e).
ACCOUNT: dict[str, Any] = {
    "heartbeat_interval": 0.3,
    "receive_timeout": 0.6,
    "max_receive_timeouts": 2,
    "keepalive_timeout": 1.2,
    "connect_timeout": 1.5,
    "idle_timeout": 3.0,
    "reconnect_attempts": 3,
    "reconnect_backoff_initial": 0.2,
    "reconnect_backoff_max": 0.8,
    "reconnect_window": 8.0,
    "handshake_timeout": 2.0,
    "max_session_duration": 600.0,
    "warn_before": 0.0,
}

Event = dict[str, Any]


class E2EError(AssertionError):
    """A bounded wait ran out; the message says what was awaited and what was seen."""


def free_port() -> int:
    """A loopback port nobody listens on (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise TypeError(f"cannot write {value!r} as TOML")


def write_config(
    path: Path,
    data_dir: Path,
    launchpads: dict[str, dict[str, Any]] | None = None,
    account: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
) -> Path:
    """The TOML the server reads: short account timers, per-test launchpad overrides and
    `server` overrides of the [server] table (e.g. display = "xvfb", video_fps)."""
    server_table: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "name": "e2e-host",
        "secret": SECRET,
        "data_dir": str(data_dir),  # never the platform default: no test state in a real home
        "registry": str(data_dir / "registry.sqlite3"),
        "log_dir": str(data_dir / "logs"),
        "display": "synthetic",
        **(server or {}),
    }
    lines = ["[server]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in server_table.items()]
    lines += ["", "[account]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in {**ACCOUNT, **(account or {})}.items()]
    pads = {"desktop": {}, **(launchpads or {})}
    for name, values in pads.items():
        lines += ["", f"[launchpads.{name}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)  # it holds the signing secret, as an operator's file would
    return path


def stop_process(process: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> int | None:
    """SIGTERM this one PID, then SIGKILL after `timeout`; returns the exit status."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout)
    return process.poll()


# -- event logs ------------------------------------------------------------------------------


class JsonlLog:
    """A JSONL event log written by another process, read by polling with a deadline."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def events(self) -> list[Event]:
        """Every complete line so far (a line still being written is left for later)."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        events: list[Event] = []
        for line in text.splitlines(keepends=True):
            if not line.endswith("\n") or not line.strip():
                continue
            with contextlib.suppress(ValueError):
                item = json.loads(line)
                if isinstance(item, dict):
                    events.append(item)
        return events

    def find(self, **match: Any) -> list[Event]:
        """Events whose fields equal `match`; `attrs={...}` matches a subset of attrs and
        `where=callable` adds any other condition."""
        where: Callable[[Event], bool] | None = match.pop("where", None)
        attrs: dict[str, Any] = match.pop("attrs", {})
        found = []
        for event in self.events():
            if any(event.get(k) != v for k, v in match.items()):
                continue
            if any(event.get("attrs", {}).get(k) != v for k, v in attrs.items()):
                continue
            if where is not None and not where(event):
                continue
            found.append(event)
        return found

    def wait_event(self, timeout: float = 10.0, count: int = 1, **match: Any) -> Event:
        """Wait until `count` events match (see find) and return the last of them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(**dict(match))
            if len(found) >= count:
                return found[count - 1]
            if time.monotonic() > deadline:
                raise E2EError(
                    f"{self.path.name}: no {count} event(s) matching {match} within {timeout}s; "
                    f"log has: {self.summary()}"
                )
            time.sleep(POLL)

    def summary(self, limit: int = 60) -> str:
        return "; ".join(
            f"{e.get('source', '?')[0]}:{e.get('event')}"
            + (f"({e['code']})" if e.get("code") is not None else "")
            + f"@{(e.get('session_id') or '-')[-4:]}"
            for e in self.events()[-limit:]
        )

    def names(self, session_id: str | None = None, source: str | None = None) -> list[str]:
        """`event` or `event:code` of each event, in log order, for sequence assertions."""
        out = []
        for e in self.events():
            if session_id is not None and e.get("session_id") != session_id:
                continue
            if source is not None and e.get("source") != source:
                continue
            out.append(e["event"] + (f":{e['code']}" if e.get("code") is not None else ""))
        return out


# -- the server ------------------------------------------------------------------------------


class ApiResult:
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body

    def __repr__(self) -> str:
        return f"ApiResult({self.status}, {self.body!r})"


class ServerProcess:
    """`openfrp serve --config F --port 0 --ready-file R` with its own data folder."""

    def __init__(self, process: subprocess.Popen[bytes], root: Path, url: str, key: str) -> None:
        self.process = process
        self.root = root
        self.url = url
        self.admin_key = key
        self.port = int(url.rsplit(":", 1)[1])
        self.ws_url = f"ws://127.0.0.1:{self.port}/frp7"
        self.log = JsonlLog(root / "data" / "logs" / "server-events.jsonl")
        self.stderr_path = root / "server-stderr.txt"

    @classmethod
    def start(
        cls,
        root: Path,
        launchpads: dict[str, dict[str, Any]] | None = None,
        account: dict[str, Any] | None = None,
        timeout: float = 15.0,
        server: dict[str, Any] | None = None,
        port: int = 0,
    ) -> ServerProcess:
        """`port` 0: any free port; a restart on the same `root` and port keeps its data."""
        root.mkdir(parents=True, exist_ok=True)
        data = root / "data"
        config = write_config(root / "server.toml", data, launchpads, account, server)
        ready = root / "ready.txt"
        ready.unlink(missing_ok=True)
        with (
            (root / "server-stdout.txt").open("wb") as out,
            (root / "server-stderr.txt").open("wb") as err,
        ):
            process = subprocess.Popen(
                [OPENFRP, "serve", f"--config={config}", f"--port={port}", f"--ready-file={ready}"],
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = ready.read_text().splitlines() if ready.exists() else []
            if len(lines) >= 2:
                return cls(process, root, lines[0].strip(), lines[1].strip())
            if process.poll() is not None:
                break
            time.sleep(POLL)
        stop_process(process)
        error = (root / "server-stderr.txt").read_text(errors="replace")[-2000:]
        raise E2EError(f"server did not become ready within {timeout}s: {error}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def api(self, method: str, path: str, key: str | None = None, body: Any = None) -> ApiResult:
        """Call the API; HTTP errors come back as results, not exceptions."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {key or self.admin_key}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return ApiResult(response.status, json.loads(response.read() or b"null"))
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode(errors="replace")
            return ApiResult(exc.code, parsed)

    def launch(self, user: str, launchpad: str = "desktop") -> dict[str, Any]:
        result = self.api("POST", "/api/sessions", body={"user": user, "launchpad": launchpad})
        assert result.status == 201, result
        ticket: dict[str, Any] = result.body
        return ticket

    def push(self, session_id: str, body: dict[str, Any]) -> ApiResult:
        return self.api("POST", f"/api/sessions/{session_id}/messages", body={"body": body})

    def session(self, session_id: str) -> dict[str, Any]:
        result = self.api("GET", f"/api/sessions/{session_id}")
        assert result.status == 200, result
        data: dict[str, Any] = result.body
        return data

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise E2EError(
                f"server pid {self.process.pid} still running after {timeout}s"
            ) from None

    def stop(self) -> int | None:
        return stop_process(self.process)


# -- the terminal ----------------------------------------------------------------------------


class TerminalProcess:
    """`openfrp connect LINK --log F [--ws-url URL]`; stdout lines are collected by a thread."""

    def __init__(self, process: subprocess.Popen[str], log_path: Path) -> None:
        self.process = process
        self.log = JsonlLog(log_path)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def start(
        cls,
        link: str,
        log_path: Path,
        ws_url: str | None = None,
        stdin: bool = True,
        extra: list[str] | None = None,
        signaling_url: str | None = None,
        prefix: list[str] | None = None,
    ) -> TerminalProcess:
        """`prefix` runs it through another command (`ip netns exec NS`, say)."""
        args = [*(prefix or []), OPENFRP, "connect", link, "--log", str(log_path), *(extra or [])]
        if ws_url:
            args += ["--ws-url", ws_url]
        if signaling_url:
            args += ["--signaling-url", signaling_url]
        if not stdin:
            args.append("--no-stdin")
        stderr_path = log_path.with_suffix(".stderr.txt")
        with stderr_path.open("w") as err:
            process = subprocess.Popen(
                args,
                cwd=log_path.parent,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                bufsize=1,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return cls(process, log_path)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def mark(self) -> int:
        """The number of lines so far: pass as `start` to wait for a line printed later."""
        with self._cond:
            return len(self.lines)

    def wait_line(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match[str]:
        """Wait for a stdout line (from index `start`) matching the regex; return the match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    match = regex.search(line)
                    if match:
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise E2EError(
                        f"terminal: no line matching {pattern!r} within {timeout}s "
                        f"(exited={self.process.poll()}); lines: {self.lines}"
                    )
                self._cond.wait(min(left, 0.2))

    def count(self, pattern: str) -> int:
        regex = re.compile(pattern)
        with self._cond:
            return sum(1 for line in self.lines if regex.search(line))

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def wait_exit(self, timeout: float = 10.0) -> int:
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise E2EError(
                f"terminal pid {self.process.pid} still running after {timeout}s; "
                f"lines: {self.lines}"
            ) from None
        self._reader.join(2.0)
        return status

    def stop(self) -> int | None:
        """Stop it as a process that vanishes: SIGTERM first, then its input ends (an end of
        input alone is a polite disconnect)."""
        status = stop_process(self.process)
        self.end_input()
        self._reader.join(2.0)
        return status

    def end_input(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()


# -- a raw FRP7 client -----------------------------------------------------------------------


def hello_for(ticket: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The hello a correct terminal would send for `ticket`, with `changes` applied."""
    hello: dict[str, Any] = {
        "type": "hello",
        "version": ticket["config"]["protocol"],
        "session_id": ticket["session_id"],
        "token": ticket["token"],
        "config": ticket["config"],
        "config_digest": ticket["config_digest"],
        "client": "e2e-raw",
        "resume": False,
        "last_seq": 0,
    }
    hello.update(changes)
    return hello


class RawClient:
    """A websockets sync client that speaks FRP7 by hand, for what no real terminal sends."""

    def __init__(self, ws: ClientConnection, stack: contextlib.ExitStack) -> None:
        self.ws = ws
        self.connection_id: str | None = None
        self.close_reason: str | None = None
        self._stack = stack

    @classmethod
    def open(
        cls,
        url: str,
        max_queue: int | None = 16,
        timeout: float = 5.0,
        sock: socket.socket | None = None,
    ) -> RawClient:
        """`sock`: an already connected socket to speak over (one with small buffers, say)."""
        stack = contextlib.ExitStack()
        ws = stack.enter_context(
            connect(
                url,
                sock=sock,
                open_timeout=timeout,
                close_timeout=2,
                compression=None,
                max_size=1 << 22,
                max_queue=max_queue,
            )
        )
        return cls(ws, stack)

    def send(self, data: str | bytes | dict[str, Any]) -> None:
        self.ws.send(json.dumps(data) if isinstance(data, dict) else data)

    def recv(self, timeout: float) -> str | bytes:
        return self.ws.recv(timeout=timeout)

    def wait_message(
        self, kind: str, timeout: float = 5.0, where: Callable[[Event], bool] | None = None
    ) -> Event:
        """Read until a control message of type `kind` (skipping video frames and others)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise E2EError(f"raw client: no {kind!r} message within {timeout}s")
            try:
                data = self.ws.recv(timeout=left)
            except TimeoutError:
                continue
            if isinstance(data, bytes):
                continue
            message = json.loads(data)
            if message.get("type") == kind and (where is None or where(message)):
                result: Event = message
                return result

    def handshake(self, hello: dict[str, Any], timeout: float = 5.0) -> Event:
        """Send `hello`, wait for welcome (and, for a fresh session, started)."""
        self.send(hello)
        welcome = self.wait_message("welcome", timeout)
        self.connection_id = welcome["connection_id"]
        return welcome

    def wait_closed(self, timeout: float = 5.0) -> int | None:
        """Read (discarding) until the connection closes; the server's close code or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.ws.recv(timeout=max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                continue
            except ConnectionClosed as exc:
                self.close_reason = exc.rcvd.reason if exc.rcvd is not None else None
                return exc.rcvd.code if exc.rcvd is not None else None
        raise E2EError(f"raw client: connection still open after {timeout}s")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stack.close()


def outcome(client: RawClient, timeout: float = 5.0) -> tuple[str, int | None]:
    """What the server did after a message: ("welcome", None), ("pong", id) or ("closed", code)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = client.ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            continue
        except ConnectionClosed as exc:
            return "closed", exc.rcvd.code if exc.rcvd is not None else None
        if isinstance(data, bytes):
            continue
        message = json.loads(data)
        if message.get("type") == "welcome":
            client.connection_id = message["connection_id"]
            return "welcome", None
        if message.get("type") == "pong":
            return "pong", message.get("id")
    raise E2EError(f"raw client: no reply and no close within {timeout}s")


def healthy(url: str) -> bool:
    """Whether the server at `url` answers /healthz with ok, within a second."""
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
            return bool(json.loads(answer.read())["ok"])
    except OSError:
        return False


def bounded(timeout: float, step: float = POLL) -> Iterator[float]:
    """Yield until `timeout` passes (for polling loops with a hard bound)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        yield deadline - time.monotonic()
        time.sleep(step)


def diagnosis(sid: str, *logs: JsonlLog) -> dict[str, Any]:
    """`openfrp analyze LOGS --session SID --json` over the logs exactly as the processes left
    them: what the analyzer says of that one session."""
    done = subprocess.run(
        [OPENFRP, "analyze", *(str(log.path) for log in logs), "--session", sid, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    session: dict[str, Any] = json.loads(done.stdout)["session"]
    return session
