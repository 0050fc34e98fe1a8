"""Redis stopped, then started again empty on the same port: the session closed during the
outage is recorded as ended once Redis is back (its write was held, not dropped), and the
host publishes its live session again, so every host sees the truth."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.e2e.conftest import E2E
from tests.e2e.harness import bounded, hello_for, outcome
from tests.support.redis_server import RedisServer, _pong


def _restart_empty(old: RedisServer, root: Path) -> RedisServer:
    """A new redis-server on the old one's port, with nothing in it."""
    binary = shutil.which("redis-server")
    assert binary is not None
    args = [binary, "--port", str(old.port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--dir", str(root), "--logfile", str(root / "again.log")]
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
    again = RedisServer(process, old.port, root / "again.log")
    for _ in bounded(10.0):
        if _pong(old.port):
            return again
    again.stop()
    pytest.fail("redis-server did not start again")


def test_writes_held_during_a_redis_outage_are_replayed_on_an_empty_redis(
    e2e: E2E, tmp_path: Path
) -> None:
    first = RedisServer.start(tmp_path / "redis")
    again: RedisServer | None = None
    try:
        server = e2e.server(
            account={"idle_timeout": 60.0, "receive_timeout": 30.0},
            server={"registry": first.url, "name": "host-a"},
        )
        closed, live = server.launch("alice"), server.launch("bob")
        raw = e2e.raw(server.ws_url)
        raw.handshake(hello_for(live))

        first.stop()
        assert server.api("DELETE", f"/api/sessions/{closed['session_id']}").status == 200
        server.log.wait_event(event="error.exception", timeout=10)  # the outage, said once
        time.sleep(1.0)  # a few failed tries of the held write
        again = _restart_empty(first, tmp_path / "redis")

        replayed = server.log.wait_event(event="registry.replayed", timeout=15)
        assert set(replayed["attrs"]["republished"]) == {closed["session_id"], live["session_id"]}
        store = redis.Redis.from_url(again.url, decode_responses=True)
        ended = store.hgetall(f"openfrp:session:{closed['session_id']}")
        assert (ended["state"], ended["final_code"]) == ("ended", "4019")
        running = store.hgetall(f"openfrp:session:{live['session_id']}")
        assert running["state"] == "active" and "final_code" not in running
        store.close()
        listed = {s["session_id"]: s for s in server.api("GET", "/api/sessions").body["sessions"]}
        assert listed[closed["session_id"]]["final_code"] == 4019
        raw.send({"type": "ping", "id": 5})
        assert outcome(raw) == ("pong", 5)  # the live session was served throughout
    finally:
        for store_server in (first, again):
            if store_server is not None:
                store_server.stop()
