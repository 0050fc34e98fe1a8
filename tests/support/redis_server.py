"""A throwaway redis-server of the test's own on a free loopback port (no persistence).

Tests that need one define a fixture around it:

    redis = RedisServer.start(tmp_path)   # pytest.skip when redis-server is not installed
    redis.url                             # redis://127.0.0.1:PORT/0
    redis.stop()                          # SIGTERM to its PID, SIGKILL after a bounded wait
    with RedisServer.running(tmp_path) as redis: ...   # the same, stopped on the way out
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

STOP_TIMEOUT = 5.0


def _pong(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5) as s:
        s.settimeout(0.5)
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")
    return False


class RedisServer:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log
        self.url = f"redis://127.0.0.1:{port}/0"

    @staticmethod
    def free_port() -> int:
        """A loopback port nobody listens on (bound then released)."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            return port

    @classmethod
    def start(cls, root: Path, timeout: float = 10.0) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (Debian package redis-server)")
        root.mkdir(parents=True, exist_ok=True)
        log = root / "redis.log"
        for _ in range(3):  # a port taken between picking and binding: pick another
            port = cls.free_port()
            args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            args += ["--appendonly", "no", "--dir", str(root), "--logfile", str(log)]
            process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and process.poll() is None:
                if _pong(port):
                    return cls(process, port, log)
                time.sleep(0.02)
            cls._end(process)
        told = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise AssertionError(f"redis-server did not answer within {timeout}s: {told}")

    @staticmethod
    def _end(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)

    def stop(self) -> None:
        self._end(self.process)

    @classmethod
    @contextlib.contextmanager
    def running(cls, root: Path) -> Iterator[RedisServer]:
        server = cls.start(root)
        try:
            yield server
        finally:
            server.stop()
