"""The registry behind its one interface: SQLite and Redis (a real redis-server of the test's
own), the owner records behind 4006 across hosts, requests between hosts, and the one-line
errors of a registry that cannot be opened."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from openfrp.server.registry import (
    Holder,
    Registry,
    RegistryError,
    SessionRecord,
    SqliteRegistry,
)
from openfrp.server.registry.opener import is_url, open_registry
from openfrp.server.registry.redis import RedisRegistry
from tests.support.redis_server import RedisServer

OPENFRP = str(Path(sys.executable).with_name("openfrp"))
A1 = Holder("host-a", "s-a1", "c-1")
A2 = Holder("host-a", "s-a2", "c-2")
B1 = Holder("host-b", "s-b1", "c-3")


def record(session_id: str, user: str, host: str, created: str) -> SessionRecord:
    return SessionRecord(
        session_id, user, "acme", "desktop", host, "created", None, created, None, {"n": 1}
    )


def run(registry: Registry, body: Callable[[Registry], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        await registry.start()
        try:
            return await body(registry)
        finally:
            await registry.close()

    return asyncio.run(main())


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer.running(tmp_path / "redis") as server:
        yield server


@pytest.fixture(params=["sqlite", "redis"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "registry.sqlite3")
        return
    with RedisServer.running(tmp_path / "redis") as server:
        yield server.url


def test_records_round_trip_either_registry(location: str) -> None:
    async def body(r: Registry) -> None:
        await r.add(record("s-2", "bob", "host-b", "2026-03-02T10:00:01.000000Z"))
        await r.add(record("s-1", "alice", "host-a", "2026-03-02T10:00:00.000000Z"))
        await r.set_state("s-1", "active")
        await r.set_state("s-1", "ended", 4019, "2026-03-02T10:05:00.000000Z")
        await r.set_state("s-1", "ended")  # no code: the final code and end time stay
        await r.set_state("s-unknown", "active")  # no record appears for an unknown id

        one = await r.get("s-1")
        assert one is not None
        assert (one.state, one.final_code, one.ended_ts) == (
            "ended",
            4019,
            "2026-03-02T10:05:00.000000Z",
        )
        assert (one.host, one.config, one.user) == ("host-a", {"n": 1}, "alice")
        assert await r.get("s-unknown") is None
        assert [s.session_id for s in await r.sessions()] == ["s-1", "s-2"]  # creation order
        bobs = await r.sessions("bob")
        assert [(s.session_id, s.host, s.final_code) for s in bobs] == [("s-2", "host-b", None)]
        assert await r.sessions("nobody") == []

    run(open_registry(location), body)


def test_a_revoked_generation_is_shared_and_only_ever_raised(redis_server: RedisServer) -> None:
    async def body(r: Registry) -> None:
        await r.add(record("s-1", "alice", "host-a", "2026-03-02T10:00:00.000000Z"))
        assert (await r.get("s-1")).token_generation == 0  # type: ignore[union-attr]
        await r.set_generation("s-1", 2)
        await r.set_generation("s-1", 1)  # a late write does not bring gen-1 tokens back
        await r.set_generation("s-unknown", 3)  # no record appears for an unknown id
        assert (await r.get("s-1")).token_generation == 2  # type: ignore[union-attr]
        assert await r.get("s-unknown") is None

    run(RedisRegistry(redis_server.url), body)


def test_sqlite_keeps_no_owner_records_one_host_decides_alone(tmp_path: Path) -> None:
    async def body(r: Registry) -> None:
        assert r.shared is False
        assert await r.claim_owner("alice", A1, 5) is None
        assert await r.claim_owner("alice", B1, 5) is None
        assert await r.send("host-b", {"op": "close"}) == 0

    run(SqliteRegistry(tmp_path / "r.sqlite3"), body)


def test_owner_record_claim_take_refresh_release(redis_server: RedisServer) -> None:
    async def body(r: Registry) -> None:
        assert r.shared is True
        assert await r.claim_owner("alice", A1, 30) is None
        assert await r.claim_owner("alice", B1, 30) == A1  # another host holds it: refused
        assert await r.claim_owner("alice", A1, 30) is None  # the same session again
        assert await r.claim_owner("bob", B1, 30) is None  # owners are per user
        # A holder left by the claiming host itself: its in-memory sessions decide.
        assert await r.claim_owner("alice", A2, 30) is None
        assert await r.refresh_owner("alice", A1, 30) == A2  # A1 lost it to A2
        assert await r.refresh_owner("alice", A2, 30) is None
        assert await r.take_owner("alice", B1, 30) == A2  # takeover: whatever was there
        await r.release_owner("alice", "s-a2")  # not A2's any more: stays
        assert await r.claim_owner("alice", A1, 30) == B1
        await r.release_owner("alice", "s-b1")
        assert await r.claim_owner("alice", A1, 30) is None

    run(RedisRegistry(redis_server.url), body)


def test_owner_record_lapses_unless_its_host_renews_it(redis_server: RedisServer) -> None:
    async def body(r: Registry) -> None:
        assert await r.claim_owner("alice", A1, 0.4) is None
        assert await r.claim_owner("carol", A2, 0.4) is None
        for _ in range(4):  # alice's host keeps renewing, carol's has gone quiet
            await asyncio.sleep(0.15)
            assert await r.refresh_owner("alice", A1, 0.4) is None
        assert await r.claim_owner("alice", B1, 5) == A1
        assert await r.claim_owner("carol", B1, 5) is None  # lapsed: free for another host
        # A renewal after a lapse re-creates the record (a host that was only slow).
        await r.release_owner("alice", "s-a1")
        assert await r.refresh_owner("alice", A1, 5) is None
        assert await r.claim_owner("alice", B1, 5) == A1

    run(RedisRegistry(redis_server.url), body)


def test_requests_reach_the_host_that_listens(redis_server: RedisServer) -> None:
    got: list[dict[str, Any]] = []

    async def handler(request: dict[str, Any]) -> None:
        got.append(request)

    async def main() -> tuple[int, int]:
        a, b = RedisRegistry(redis_server.url), RedisRegistry(redis_server.url)
        await a.start()
        await b.start()
        try:
            await b.listen("host-b", handler)
            sent = await a.send("host-b", {"op": "close", "session_id": "s-1"})
            nobody = await a.send("host-c", {"op": "close", "session_id": "s-2"})
            for _ in range(100):
                if got:
                    break
                await asyncio.sleep(0.02)
            return sent, nobody
        finally:
            await a.close()
            await b.close()

    assert asyncio.run(main()) == (1, 0)
    assert got == [{"op": "close", "session_id": "s-1"}]


def test_bad_registry_locations_fail_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="unsupported URL scheme 'http'"):
        open_registry("http://127.0.0.1:6379/0")
    with pytest.raises(RegistryError, match="bad Redis URL"):
        open_registry("redis://127.0.0.1:notaport/0")
    # A mistyped URL is refused, not made a SQLite file named after it.
    for typo in ("redis:/127.0.0.1:6379/0", "redis//127.0.0.1/0", "rediss:host", "unix//x"):
        with pytest.raises(RegistryError, match=f"'{typo}' is neither a URL nor a file path"):
            open_registry(typo)
    assert not list(Path.cwd().glob("redis*"))
    for path in ("registry.sqlite3", "redis/registry.sqlite3", "./a:b.sqlite3", "/x/a:b"):
        assert not is_url(path), path
    port = RedisServer.free_port()
    nowhere = open_registry(f"redis://:hunter2@127.0.0.1:{port}/0")
    with pytest.raises(
        RegistryError, match=f"cannot reach Redis at redis://:\\*\\*\\*@127.0.0.1:{port}/0"
    ) as err:
        asyncio.run(nowhere.start())
    assert "hunter2" not in str(err.value)


def test_a_redis_that_asks_for_a_password_says_where_it_goes(redis_server: RedisServer) -> None:
    """A Redis with requirepass: the line was redis-py's 'HELLO must be called with the client
    already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used...'."""
    import redis

    redis.Redis(port=redis_server.port).config_set("requirepass", "right-one")
    bare = open_registry(redis_server.url)
    with pytest.raises(RegistryError) as err:
        asyncio.run(bare.start())
    assert str(err.value) == (
        f"registry: Redis at {redis_server.url} asks for a password and the URL gives none: "
        "give it in the URL, redis://:PASSWORD@HOST:PORT/DB, or "
        "redis://USER:PASSWORD@HOST:PORT/DB for an ACL user"
    )
    wrong = open_registry(redis_server.url.replace("//", "//:hunter2@"))
    with pytest.raises(RegistryError, match="refused the URL's user and password") as err:
        asyncio.run(wrong.start())
    assert "hunter2" not in str(err.value)
    right = open_registry(redis_server.url.replace("//", "//:right-one@"))

    async def login() -> None:
        await right.start()
        await right.close()

    asyncio.run(login())


def _serve(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`openfrp serve ARGS` run in `folder`, which a path taken from a URL would land in."""
    return subprocess.run(
        [OPENFRP, "serve", *args],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        cwd=folder,
    )


@pytest.mark.parametrize(
    ("registry", "secret", "expected"),
    [
        ("redis://127.0.0.1:{port}/0", True, "openfrp serve: registry: cannot reach Redis at "),
        ("ftp://127.0.0.1/x", True, "openfrp serve: registry: unsupported URL scheme 'ftp'"),
        ("redis:/127.0.0.1:6379/0", True, "openfrp serve: registry: 'redis:/127.0.0.1:6379/0' "),
        ("redis//x", False, "openfrp serve: registry: 'redis//x' is neither a URL nor a file "),
        ("redis://127.0.0.1:{port}/0", False, "openfrp serve: server.secret: required with a "),
    ],
)
def test_serve_with_an_unusable_registry_exits_with_one_line(
    tmp_path: Path, registry: str, secret: bool, expected: str
) -> None:
    config = tmp_path / "server.toml"
    config.write_text(
        "[server]\nport = 0\n"
        + ('secret = "s"\n' if secret else "")
        + f'data_dir = "{tmp_path / "data"}"\n'
        + f'log_dir = "{tmp_path / "logs"}"\n'
    )
    location = registry.format(port=RedisServer.free_port())
    started = time.monotonic()
    result = _serve(tmp_path, "--config", str(config), "--registry", location)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 20
    assert not list(tmp_path.rglob("redis*"))  # no SQLite file named after the URL


def test_a_mistyped_url_in_the_settings_file_stops_the_server_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text(
        f'[server]\nport = 0\ndata_dir = "{tmp_path / "data"}"\nregistry = "redis:/h:6379/0"\n'
    )
    result = _serve(tmp_path, "--config", str(config))
    assert result.returncode == 2, result
    assert result.stderr.splitlines() == [
        "openfrp serve: registry: 'redis:/h:6379/0' is neither a URL nor a file path "
        "(use redis://HOST:PORT/DB, rediss://, unix:// or a SQLite file path; "
        "./NAME for a file so named)"
    ]
    assert not list(tmp_path.rglob("redis*"))


def test_a_second_host_of_the_same_name_is_refused(redis_server: RedisServer) -> None:
    async def ignore(request: dict[str, Any]) -> None:
        return None

    async def main() -> None:
        first, second = RedisRegistry(redis_server.url), RedisRegistry(redis_server.url)
        await first.start()
        await second.start()
        try:
            await first.listen("host-a", ignore)
            with pytest.raises(RegistryError, match="another server named 'host-a'"):
                await second.listen("host-a", ignore)
            await second.listen("host-b", ignore)
        finally:
            await first.close()
            await second.close()

    asyncio.run(main())
