"""A loopback TCP proxy that breaks connections on demand, for fault tests.

Besides loopback it serves the addresses of the network namespaces tests make themselves
(tests/support/netns.py), so a path can run through one where nft makes it lossy.

End-to-end tests put it between terminal and server to produce the network conditions behind
the code table: a black-holed path (bytes vanish, no FIN, no RST: 4023 at the server, 4102 at the
terminal) and reset connections (RST without a close handshake: 4029 and 4102); stalled, it
stops reading what the server sends, so the server's writes back up until they block (a cut
then is 4025). It runs inside the test (`FaultProxy`) or as its own process steered over a
one-line TCP control port (`start_proxy_process`, `ProxyControl`), since server, proxy and
terminal run as separate processes in end-to-end tests.

    python -m tests.support.faultproxy --listen 127.0.0.1:0 --target 127.0.0.1:PORT \\
        --control-port-file FILE

writes {"port": ..., "control_port": ..., "pid": ...} to FILE once both ports listen. The control
port takes one command per connection (forward, blackhole, stall, cut, restore, stats) and
answers one line: "ok", the stats as JSON, or "error: ...".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.netns import NETWORK, Namespace

CHUNK = 65536
RATE_STEP = 0.02  # seconds of a rate-capped link's bytes passed on at a time
CONNECT_TIMEOUT = 5.0
CONTROL_TIMEOUT = 5.0
CONTROL_LINE_LIMIT = 4096
STOP_TIMEOUT = 5.0
REPO_ROOT = Path(__file__).resolve().parents[2]


class Mode(StrEnum):
    FORWARD = "forward"
    BLACKHOLE = "blackhole"
    STALL = "stall"
    CUT = "cut"


class ProxyError(RuntimeError):
    """The proxy process failed to start or refused a control command."""


def require_local(host: str) -> str:
    """Refuse anything but a loopback IP literal or one of a test namespace's veth pair: fault
    tests must never touch a real network."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address (faultproxy is local only)") from None
    if not (address.is_loopback or address in NETWORK):
        raise ValueError(
            f"{host} is neither loopback nor a test namespace's ({NETWORK}): faultproxy is "
            "local only"
        )
    return host


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST, not FIN, so the peer sees a connection that dropped without goodbye."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass
class ProxyStats:
    accepted: int = 0
    refused: int = 0
    bytes_to_target: int = 0
    bytes_to_client: int = 0
    bytes_discarded: int = 0


class _Link:
    """One client connection and its connection to the target.

    A link accepted while black-holed never gets a target: like a dead path, it never reaches the
    server, and it stays dead after forward().
    """

    def __init__(self, client: asyncio.StreamWriter, blackholed: bool) -> None:
        self.client = client
        self.target: asyncio.StreamWriter | None = None
        self.blackholed = blackholed
        self.aborted = False
        self.flowing = asyncio.Event()  # cleared: what the target sends is left unread
        self.flowing.set()

    def abort(self) -> None:
        self.aborted = True
        self.flowing.set()
        for writer in (self.client, self.target):
            if writer is not None:
                _reset(writer)


class FaultProxy:
    """Forwards loopback TCP connections; forward/blackhole/cut/restore switch its behaviour."""

    def __init__(self) -> None:
        self.stats = ProxyStats()
        self._mode = Mode.FORWARD
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._target = ("127.0.0.1", 0)
        self._port = 0
        self.rate_kbit = 0  # a cap on what reaches the client, in kbit/s (0: none)

    async def start(
        self,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        target_host: str = "127.0.0.1",
        target_port: int,
    ) -> None:
        self._target = (require_local(target_host), target_port)
        self._server = await asyncio.start_server(
            self._on_client, require_local(listen_host), listen_port
        )
        self._port = self._server.sockets[0].getsockname()[1]

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FaultProxy.start() has not run")
        return self._port

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def active(self) -> int:
        return len(self._links)

    def stats_dict(self) -> dict[str, Any]:
        return {"mode": self._mode.value, "active": self.active, **asdict(self.stats)}

    def forward(self) -> None:
        """Relay normally, including on connections that were black-holed (bytes lost meanwhile
        stay lost)."""
        self._mode = Mode.FORWARD
        for link in self._links:
            link.blackholed = False
            link.flowing.set()

    def blackhole(self) -> None:
        """Keep every connection open but discard all bytes both ways: no FIN, no RST."""
        self._mode = Mode.BLACKHOLE
        for link in self._links:
            link.blackholed = True

    def stall(self) -> None:
        """Stop reading from the target on every connection (the client's bytes still pass):
        the target's writes fill the kernel buffers and then block, as before a reader that
        hangs. forward() or restore() lets them flow again; cut() resets them."""
        self._mode = Mode.STALL
        for link in self._links:
            link.flowing.clear()

    def limit(self, kbit_s: int) -> None:
        """Deliver at most `kbit_s` kbit/s to the client (0: no limit), as a slow link does:
        the target's bytes wait in the kernel buffers and its writes then block."""
        self.rate_kbit = max(0, kbit_s)

    def cut(self) -> None:
        """Reset every connection (both sides) and reset new ones as soon as they arrive."""
        self._mode = Mode.CUT
        for link in list(self._links):
            link.abort()

    def restore(self) -> None:
        """Forward new connections; connections black-holed earlier stay dead, as after an
        outage that the session must recover from by reconnecting."""
        self._mode = Mode.FORWARD
        for link in self._links:
            link.flowing.set()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), STOP_TIMEOUT)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.accepted += 1
        if self._mode is Mode.CUT:
            self.stats.refused += 1
            _reset(writer)
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        link = _Link(writer, blackholed=self._mode is Mode.BLACKHOLE)
        if self._mode is Mode.STALL:
            link.flowing.clear()
        self._links.add(link)
        try:
            await self._relay(link, reader)
        finally:
            self._links.discard(link)
            self._tasks.discard(task)
            for end in (link.client, link.target):
                if end is not None:
                    end.close()

    async def _relay(self, link: _Link, client_reader: asyncio.StreamReader) -> None:
        if link.blackholed:
            await self._pump(link, client_reader, None, to_target=True)
            return
        try:
            target_reader, link.target = await asyncio.wait_for(
                asyncio.open_connection(*self._target), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError):
            link.abort()
            return
        if link.aborted:
            link.abort()
            return
        await asyncio.gather(
            self._pump(link, client_reader, link.target, to_target=True),
            self._pump(link, target_reader, link.client, to_target=False),
        )

    async def _pump(
        self,
        link: _Link,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter | None,
        *,
        to_target: bool,
    ) -> None:
        """Copy one direction until EOF, a reset or cancellation; a reset in forward mode is
        passed on as a reset, anything in black-hole mode is swallowed."""
        while not link.aborted:
            try:
                data = await source.read(CHUNK)
            except OSError:
                if not link.blackholed:
                    link.abort()
                return
            if not to_target:  # stalled: hold this chunk and read no more until flowing
                await link.flowing.wait()
                if link.aborted:
                    return
            if not data:
                if sink is not None and not link.blackholed and not link.aborted:
                    with contextlib.suppress(OSError):
                        sink.write_eof()
                return
            if sink is None or link.blackholed:
                self.stats.bytes_discarded += len(data)
                continue
            if not await self._write(link, sink, data, to_target):
                return

    async def _write(
        self, link: _Link, sink: asyncio.StreamWriter, data: bytes, to_target: bool
    ) -> bool:
        """Pass `data` on; toward the client under a rate cap, in slices of RATE_STEP seconds
        each (a whole chunk at once, then a pause, came as 2 s bursts at 250 kbit/s). False
        when the link broke."""
        step = len(data)
        if not to_target and self.rate_kbit:
            step = max(1024, int(self.rate_kbit * 1000 / 8 * RATE_STEP))
        for start in range(0, len(data), step):
            piece = data[start : start + step]
            sink.write(piece)
            if to_target:
                self.stats.bytes_to_target += len(piece)
            else:
                self.stats.bytes_to_client += len(piece)
            try:
                await sink.drain()
            except OSError:
                link.abort()
                return False
            if not to_target and self.rate_kbit:
                await asyncio.sleep(len(piece) * 8 / (self.rate_kbit * 1000))
        return True


# --- process mode -------------------------------------------------------------------------


def _parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    try:
        return require_local(host), int(port)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def apply_command(proxy: FaultProxy, command: str) -> str:
    """Run one control command and return its one-line answer."""
    if command == "stats":
        return json.dumps(proxy.stats_dict())
    if command.startswith("rate ") and command[5:].strip().isdigit():
        proxy.limit(int(command[5:]))
        return "ok"
    actions: dict[str, Callable[[], None]] = {
        "forward": proxy.forward,
        "blackhole": proxy.blackhole,
        "stall": proxy.stall,
        "cut": proxy.cut,
        "restore": proxy.restore,
    }
    action = actions.get(command)
    if action is None:
        return (
            f"error: unknown command {command!r} (forward, blackhole, stall, cut, restore, stats,"
            " rate KBIT_S)"
        )
    action()
    return "ok"


async def _on_control(
    proxy: FaultProxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        line = await asyncio.wait_for(reader.readline(), CONTROL_TIMEOUT)
        answer = apply_command(proxy, line.decode("utf-8", "replace").strip())
    except (TimeoutError, ValueError, OSError) as exc:
        answer = f"error: {exc or type(exc).__name__}"
    with contextlib.suppress(OSError):
        writer.write(answer.encode() + b"\n")
        await writer.drain()
    writer.close()


def _write_atomically(path: Path, data: dict[str, int]) -> None:
    """Write then rename, so a launcher polling for the file never reads half of it."""
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(data), encoding="utf-8")
    os.replace(partial, path)


async def _serve(listen: tuple[str, int], target: tuple[str, int], port_file: Path) -> None:
    proxy = FaultProxy()
    await proxy.start(
        listen_host=listen[0], listen_port=listen[1], target_host=target[0], target_port=target[1]
    )
    control = await asyncio.start_server(
        lambda r, w: _on_control(proxy, r, w), "127.0.0.1", 0, limit=CONTROL_LINE_LIMIT
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    control_port = control.sockets[0].getsockname()[1]
    _write_atomically(
        port_file, {"port": proxy.port, "control_port": control_port, "pid": os.getpid()}
    )
    await stopping.wait()
    control.close()
    await proxy.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.faultproxy")
    parser.add_argument("--listen", type=_parse_address, default=("127.0.0.1", 0))
    parser.add_argument("--target", type=_parse_address, required=True)
    parser.add_argument("--control-port-file", type=Path, required=True)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.listen, args.target, args.control_port_file))
    return 0


class ProxyControl:
    """Blocking client for the control port, usable from sync test code."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = CONTROL_TIMEOUT):
        self.address = (require_local(host), port)
        self.timeout = timeout

    def send(self, command: str) -> str:
        """Send one command and return the answer line; ProxyError if the proxy refuses it."""
        with socket.create_connection(self.address, timeout=self.timeout) as sock:
            sock.sendall(command.encode() + b"\n")
            with sock.makefile("rb") as stream:
                answer = stream.readline(CONTROL_LINE_LIMIT).decode("utf-8", "replace").strip()
        if not answer or answer.startswith("error"):
            raise ProxyError(f"faultproxy control {command!r}: {answer or 'no answer'}")
        return answer

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.send("stats"))
        return data


class ProxyProcess:
    """A proxy running as a child process; stop() ends that one PID and nothing else."""

    def __init__(
        self, process: subprocess.Popen[bytes], port: int, control_port: int, workdir: Path
    ) -> None:
        self.process = process
        self.port = port
        self.control_port = control_port
        self._workdir = workdir

    @property
    def pid(self) -> int:
        return self.process.pid

    def control(self, command: str) -> str:
        return ProxyControl(self.control_port).send(command)

    def stats(self) -> dict[str, Any]:
        return ProxyControl(self.control_port).stats()

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status (None if it outlived
        both waits)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout)
        shutil.rmtree(self._workdir, ignore_errors=True)
        return self.process.poll()

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_proxy_process(
    target_port: int,
    *,
    target_host: str = "127.0.0.1",
    listen_host: str = "127.0.0.1",
    listen_port: int = 0,
    startup_timeout: float = 10.0,
    prefix: tuple[str, ...] = (),
) -> ProxyProcess:
    """Start `python -m tests.support.faultproxy` (after `prefix`: `ip netns exec NAME` runs
    it in a namespace, where its control port is that namespace's) and wait until its ports
    are known."""
    require_local(target_host)
    require_local(listen_host)
    workdir = Path(tempfile.mkdtemp(prefix="faultproxy-"))
    port_file = workdir / "ports.json"
    stderr_path = workdir / "stderr.txt"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [
                *prefix,
                sys.executable,
                "-m",
                "tests.support.faultproxy",
                "--listen",
                f"{listen_host}:{listen_port}",
                "--target",
                f"{target_host}:{target_port}",
                "--control-port-file",
                str(port_file),
            ],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    launched = ProxyProcess(process, 0, 0, workdir)
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if port_file.exists():
            ports = json.loads(port_file.read_text(encoding="utf-8"))
            launched.port = ports["port"]
            launched.control_port = ports["control_port"]
            return launched
        if process.poll() is not None:
            break
        time.sleep(0.02)
    error = stderr_path.read_text(encoding="utf-8", errors="replace").strip()[-2000:]
    status = process.poll()
    launched.stop()
    raise ProxyError(
        f"faultproxy did not start within {startup_timeout}s (exit status {status}): {error}"
    )


def start_route_through(namespace: Namespace, port: int) -> list[ProxyProcess]:
    """Relays that carry connections to loopback `port` through `namespace`, where nft can
    make the path lossy: one inside it, at namespace.ns_ip (connect to it: it comes first),
    and one on this side of the veth pair that it relays to, back to `port`."""
    back = start_proxy_process(port, listen_host=namespace.host_ip)
    try:
        inside = start_proxy_process(
            back.port,
            target_host=namespace.host_ip,
            listen_host=namespace.ns_ip,
            prefix=tuple(namespace.prefix),
        )
    except BaseException:
        back.stop()
        raise
    return [inside, back]


if __name__ == "__main__":
    sys.exit(main())
