"""The fleet's queue of registry writes is bounded: a write waiting for the same thing of the
same session is replaced by the newer one (the final state wins), and past the limit the
oldest is dropped and said, against a real SQLite registry and event log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from openfrp.events import EventLog
from openfrp.server.fleet import Fleet
from openfrp.server.registry import SqliteRegistry


def test_writes_of_one_session_coalesce_and_the_oldest_past_the_limit_is_dropped(
    tmp_path: Path,
) -> None:
    done: list[str] = []
    log_path = tmp_path / "events.jsonl"

    async def main() -> None:
        registry = SqliteRegistry(tmp_path / "registry.sqlite3")
        await registry.start()
        log = EventLog(log_path)
        fleet = Fleet(registry, "host-a", 15.0, {}, log, limit=2)
        await fleet.start()

        def write(name: str) -> Callable[[], Awaitable[None]]:
            async def job() -> None:
                done.append(name)

            return job

        # Queued in one turn of the loop, before the writer takes any of them.
        fleet.later(write("s-1 active"), ("state", "s-1"))
        fleet.later(write("s-1 disconnected"), ("state", "s-1"))
        fleet.later(write("s-2 ended"), ("state", "s-2"))
        fleet.later(write("s-1 ended"), ("state", "s-1"))  # replaces, moves behind s-2
        assert not done
        fleet.later(write("s-3 ended"), ("state", "s-3"))  # a third session: s-2 goes
        await fleet.close()
        await registry.close()
        log.close()

    asyncio.run(main())
    assert done == ["s-1 ended", "s-3 ended"]
    events = [json.loads(line) for line in log_path.read_text().splitlines()]
    dropped = [e for e in events if e["event"] == "registry.writes_dropped"]
    assert len(dropped) == 1
    assert dropped[0]["attrs"] == {"limit": 2, "write": ["state", "s-2"]}
    replayed = [e for e in events if e["event"] == "registry.replayed"]
    assert replayed and replayed[0]["attrs"]["dropped"] == 1
