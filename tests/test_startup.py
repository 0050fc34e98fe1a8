"""A start-up step that fails for real stops what the steps before it started: serve() returns
2 with one line saying why, and leaves no task, thread, open file or socket, child process or
signal handler behind, nor the registry's lock."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import openfrp.server.frp8  # noqa: F401  (aiortc's imports open files of their own)
from openfrp.server.registry import SqliteRegistry
from openfrp.server.registry.redis import RedisRegistry
from openfrp.server.serve import serve
from openfrp.settings import load
from tests.support.redis_server import RedisServer

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@pytest.fixture(autouse=True)
def _keep_umask() -> Iterator[None]:
    """serve() makes everything it creates private (umask 077) for the rest of its process."""
    umask = os.umask(0o022)
    os.umask(umask)
    yield
    os.umask(umask)


def _write_config(root: Path, registry: str, frp: int) -> Path:
    path = root / "server.toml"
    path.write_text(
        f'[server]\nport = 0\nname = "startup-host"\nsecret = "s"\ndisplay = "synthetic"\n'
        f'registry = "{registry}"\nlog_dir = "{root / "logs"}"\ndata_dir = "{root / "data"}"\n'
        f"\n[launchpads.desktop]\nfrp = {frp}\n"
    )
    return path


def _running() -> dict[str, Any]:
    """What this process holds now: threads, open descriptors, children, signal handlers."""
    children: set[str] = set()
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            children.update((task / "children").read_text().split())
    return {
        "threads": set(threading.enumerate()),
        "fds": {os.readlink(fd) for fd in Path("/proc/self/fd").iterdir() if fd.exists()},
        "children": children,
        "signals": {sig: signal.getsignal(sig) for sig in SIGNALS},
    }


def _fails(
    root: Path,
    registry: str,
    frp: int,
    expected: str,
    capsys: pytest.CaptureFixture[str],
    hold: Callable[[], Any],
) -> None:
    """Start a server while `hold` (an async callable run first) keeps a step from working."""
    config = load(_write_config(root, registry, frp))
    capsys.readouterr()
    before = _running()

    async def main() -> int:
        release = await hold()
        held = asyncio.all_tasks()
        try:
            code = await serve(config)
            left = asyncio.all_tasks() - held
            assert not left, left
            return code
        finally:
            await release()

    assert asyncio.run(main()) == 2
    err = capsys.readouterr().err
    assert err.startswith("openfrp serve: ") and expected in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert _running() == before


def test_a_registry_held_by_another_server_stops_the_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "data" / "registry.sqlite3"

    async def hold() -> Any:
        other = SqliteRegistry(path)
        await other.start()
        return other.close

    _fails(tmp_path, str(path), 7, "registry: cannot open SQLite file", capsys, hold)


def test_a_host_of_the_same_name_stops_the_start_after_the_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The registry started and the fleet's writer ran before the name was refused."""
    with RedisServer.running(tmp_path / "redis") as redis:

        async def hold() -> Any:
            other = RedisRegistry(redis.url)
            await other.start()

            async def ignore(request: dict[str, Any]) -> None:
                return None

            await other.listen("startup-host", ignore)
            return other.close

        _fails(tmp_path, redis.url, 7, "another server named 'startup-host'", capsys, hold)


def test_an_unwritable_admin_key_stops_the_start_after_every_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The last step fails: the registry, the fleet, the FRP8 peer's registration with
    signaling and the retention pruner were all running; the registry's lock is released."""
    path = tmp_path / "data" / "registry.sqlite3"
    (tmp_path / "data" / "admin.key").mkdir(parents=True)

    async def hold() -> Any:
        async def release() -> None:
            return None

        return release

    _fails(tmp_path, str(path), 8, "admin.key", capsys, hold)
    assert not list((tmp_path / "data").glob(".admin.key.*"))  # its temporary file is gone

    async def reopen() -> None:
        again = SqliteRegistry(path)
        await again.start()
        await again.close()

    asyncio.run(reopen())
