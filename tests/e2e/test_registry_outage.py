"""Redis stopped, then started again empty on the same port: the session closed during the
outage is recorded as ended once Redis is back (its write was held, not dropped), and the
host publishes its live session again, so every host sees the truth."""

from __future__ import annotations

import shutil
import signal
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


def test_writes_held_past_the_limit_drop_the_oldest_and_each_final_state_still_wins(
    e2e: E2E, tmp_path: Path
) -> None:
    """Redis frozen (SIGSTOP: it keeps its data but answers nothing) while six sessions end:
    with room for three held writes the oldest are dropped, said at once, and once Redis
    answers every session is recorded ended all the same."""
    store_server = RedisServer.start(tmp_path / "redis")
    try:
        server = e2e.server(
            launchpads={"brief": {"open_timeout": 3.0}},  # no terminal comes: 4019 at 3 s
            server={"registry": store_server.url, "max_pending_registry_writes": 3},
        )
        sids = [server.launch(f"user{i}", "brief")["session_id"] for i in range(6)]
        store_server.process.send_signal(signal.SIGSTOP)
        try:
            for sid in sids:
                server.log.wait_event(event="session.ended", session_id=sid, timeout=10)
            dropped = server.log.wait_event(event="registry.writes_dropped", timeout=5)
            assert dropped["attrs"]["limit"] == 3 and dropped["attrs"]["write"][0] == "state"
            assert len(server.log.find(event="registry.writes_dropped")) == 1
            held = server.api("GET", f"/api/sessions/{sids[-1]}")
            assert (held.status, held.body["final_code"]) == (200, 4019)  # served from memory
        finally:
            store_server.process.send_signal(signal.SIGCONT)
        replayed = server.log.wait_event(event="registry.replayed", timeout=30)
        assert replayed["attrs"]["dropped"] >= 2  # six writes, one in flight, three held
        store = redis.Redis.from_url(store_server.url, decode_responses=True)
        for _ in bounded(10.0, step=0.2):
            rows = [store.hgetall(f"openfrp:session:{sid}") for sid in sids]
            if all(row.get("final_code") == "4019" for row in rows):
                break
        store.close()
        assert [(r["state"], r.get("final_code")) for r in rows] == [("ended", "4019")] * 6
        assert "Traceback" not in server.stderr()
    finally:
        store_server.process.send_signal(signal.SIGCONT)
        store_server.stop()
