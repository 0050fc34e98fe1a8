"""A session's MAX_OPEN downloads count those being read (in a slot) and those offered and not
ended, each once: a file is refused before it is read when they are all taken, and a slot
given back (its read failed or was refused) or a download ended frees one."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from openfrp.protocol.actions import Log
from openfrp.server.desk import MAX_OPEN, Refused, SessionDesk
from openfrp.settings import SessionSettings

LIMIT = 1024
FULL = f"{MAX_OPEN} downloads are already in progress"


def _desk(logs: list[Log], file_transfer: str = "both") -> SessionDesk:
    return SessionDesk(
        SessionSettings(file_transfer=file_transfer, file_transfer_limit=LIMIT),
        logs.append,
        lambda _cid, _message: None,
        lambda: "c1",
        lambda _where, _error: None,
    )


def _refusals(logs: list[Log]) -> list[dict[str, Any]]:
    return [log.attrs for log in logs if log.event == "file.refused"]


def _full(desk: SessionDesk) -> bool:
    try:
        with desk.download_slot(0):
            return False
    except Refused as refused:
        assert str(refused) == FULL
        return True


def test_the_cap_counts_slots_being_read_and_downloads_offered_each_once() -> None:
    logs: list[Log] = []
    desk = _desk(logs)
    with contextlib.ExitStack() as reading:
        slots = [reading.enter_context(desk.download_slot(5)) for _ in range(MAX_OPEN)]
        with pytest.raises(Refused, match=FULL), desk.download_slot(7):
            pass
        assert _refusals(logs) == [{"direction": "from_session", "bytes": 7, "reason": FULL}]
        offered = [desk.offer(slot, f"f{n}", bytearray(b"abc")) for n, slot in enumerate(slots)]
        assert _full(desk)
        with pytest.raises(ValueError):
            desk.offer(slots[0], "again", b"x")  # a slot offers one file
        done = {"type": "file_status", "id": offered[0]["id"], "state": "saved"}
        asyncio.run(desk.receive("c1", done))
        assert not _full(desk)  # an offer took its slot: it counts as offered only
    with desk.download_slot(0):  # the reads ending give back no slot their offers took
        assert _full(desk)


def test_a_slot_given_back_frees_the_cap_and_a_refused_offer_gives_it_back() -> None:
    logs: list[Log] = []
    desk = _desk(logs)
    with contextlib.ExitStack() as reading:
        for _ in range(MAX_OPEN - 1):
            reading.enter_context(desk.download_slot(0))
        with pytest.raises(OSError), desk.download_slot(0):
            raise OSError("the body read failed")
        with pytest.raises(Refused, match="over the size limit"), desk.download_slot(0) as slot:
            desk.offer(slot, "big", bytes(LIMIT + 1))
        assert not _full(desk)
        with desk.download_slot(0):
            assert _full(desk)
    assert not _full(desk)


def test_a_policy_that_forbids_downloads_refuses_before_the_read() -> None:
    logs: list[Log] = []
    desk = _desk(logs, file_transfer="to_session")
    with pytest.raises(Refused, match="policy is 'to_session'"), desk.download_slot(9):
        pytest.fail("the file would be read")
    reason = "file transfer policy is 'to_session'"
    assert _refusals(logs) == [{"direction": "from_session", "bytes": 9, "reason": reason}]
