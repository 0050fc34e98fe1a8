"""An upload sent while the session starts waits for the session's home folder, bounded, and
is refused at once when the session ends without one."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from openfrp.server.desk import SessionDesk
from openfrp.settings import SessionSettings

BEGIN = {"type": "file_begin", "id": "t1", "name": "a.txt", "size": 1}


def _desk(sent: list[dict[str, Any]], home_wait: float) -> SessionDesk:
    return SessionDesk(
        SessionSettings(),
        lambda _log: None,
        lambda _cid, message: sent.append(message),
        lambda: "c1",
        lambda _where, _error: None,
        home_wait=home_wait,
    )


def test_an_upload_waits_for_the_home_the_start_gives(tmp_path: Path) -> None:
    async def run() -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        desk = _desk(sent, home_wait=5.0)
        upload = asyncio.create_task(desk.receive("c1", BEGIN))
        await asyncio.sleep(0.2)
        assert not sent  # held, not refused, while the session starts
        desk.start(None, "", lambda: True, tmp_path, None)
        await asyncio.wait_for(upload, 2)
        await desk.close()
        return sent

    assert asyncio.run(run()) == [{"type": "file_ack", "id": "t1", "offset": 0}]


def test_an_upload_is_refused_when_the_session_ends_or_never_gets_a_home() -> None:
    async def run(home_wait: float, end: bool) -> tuple[list[dict[str, Any]], float]:
        sent: list[dict[str, Any]] = []
        desk = _desk(sent, home_wait)
        began = time.monotonic()
        upload = asyncio.create_task(desk.receive("c1", BEGIN))
        if end:
            await asyncio.sleep(0.1)
            await desk.close()
        await asyncio.wait_for(upload, 3)
        return sent, time.monotonic() - began

    for home_wait, end in ((30.0, True), (0.3, False)):
        sent, took = asyncio.run(run(home_wait, end))
        assert [m["state"] for m in sent] == ["refused"], sent
        assert sent[0]["reason"] == "the session has no home folder"
        assert took < 2.0, took
