"""Secondary monitors and 4028, at exact milliseconds with a fake clock."""

from __future__ import annotations

from dataclasses import replace

from openfrp.protocol.actions import Close, Deliver, Relayout, Send
from openfrp.protocol.monitors import Monitor
from openfrp.protocol.server_session import SessionState
from tests.protocol.harness import (
    FAST,
    ServerHarness,
    closes,
    codes_of,
    logs,
    ms,
    of_type,
    sends,
)

SLOW_RECEIVE = replace(FAST, receive_timeout=100.0, idle_timeout=1000.0)
TIMEOUT = ms(SLOW_RECEIVE.display_change_timeout)


def with_primary(size: tuple[int, int] = (1280, 720)) -> ServerHarness:
    h = ServerHarness(SLOW_RECEIVE)
    h.join("p", screen={"width": size[0], "height": size[1]})
    h.send("p", {"type": "resize", "width": size[0], "height": size[1]})
    assert h.session.state is SessionState.ACTIVE
    return h


def change_ids(actions: list[object], cid: str) -> list[int]:
    return [s.message["change_id"] for s in sends(actions, "display_change", cid)]


def test_a_secondary_joins_beside_the_primary_and_the_layout_is_a_row() -> None:
    h = with_primary()
    out = h.join("m1", monitor=1, screen={"width": 1024, "height": 768})
    assert sends(out, "welcome", "m1") and sends(out, "started", "m1")
    assert h.session.primary == "p"  # no takeover, no 4006
    assert not closes(out)
    [relayout] = of_type(out, Relayout)
    assert relayout.monitors == (
        Monitor(0, "p", 0, 0, 1280, 720),
        Monitor(1, "m1", 1280, 0, 1024, 768),
    )
    assert change_ids(out, "m1") == [1]
    established = logs(out, "connection.established")[0]
    assert established.attrs["monitor"] == 1


def test_an_unacknowledged_display_change_closes_only_that_secondary_with_4028() -> None:
    h = with_primary()
    h.join("m1", monitor=1)
    h.join("m2", monitor=2)
    h.send("m1", {"type": "display_ack", "change_id": 2})
    h.send("m2", {"type": "display_ack", "change_id": 2})
    start = h.now
    out = h.send("p", {"type": "resize", "width": 1600, "height": 900})
    assert Deliver("p", {"type": "resize", "width": 1600, "height": 900}) in out
    assert change_ids(out, "m1") == [3] and change_ids(out, "m2") == [3]
    h.advance(TIMEOUT // 2)
    h.send("m2", {"type": "display_ack", "change_id": 3})  # m2 answers; m1 is frozen
    out = h.run_until(start + TIMEOUT - 1)
    assert not closes(out)
    out = h.run_until(start + TIMEOUT)
    assert closes(out) == [Close("m1", 4028, "SECONDARY_DISPLAY_TIMEOUT")]
    closed = logs(out, "connection.closed")[0]
    assert closed.code == 4028 and closed.attrs["monitor"] == 1
    assert closed.attrs["change_id"] == 3
    # the session goes on: same primary, m2 asked to acknowledge the smaller layout
    assert h.session.state is SessionState.ACTIVE and h.session.primary == "p"
    assert change_ids(out, "m2") == [4]
    [relayout] = of_type(out, Relayout)
    assert [m.connection_id for m in relayout.monitors] == ["p", "m2"]
    assert 4028 not in codes_of(logs(out, "session.ended"))


def test_an_acknowledged_change_cancels_the_deadline() -> None:
    h = with_primary()
    out = h.join("m1", monitor=1)
    h.send("m1", {"type": "display_ack", "change_id": change_ids(out, "m1")[0]})
    out = h.run_until(h.now + 5 * TIMEOUT)
    assert not closes(out) and 4028 not in codes_of(out)


def test_a_stale_acknowledgement_does_not_count() -> None:
    h = with_primary()
    h.join("m1", monitor=1)
    start = h.now
    h.send("p", {"type": "resize", "width": 800, "height": 600})
    h.send("m1", {"type": "display_ack", "change_id": 1})  # the earlier change
    out = h.run_until(start + TIMEOUT)
    assert Close("m1", 4028, "SECONDARY_DISPLAY_TIMEOUT") in closes(out)


def test_refusals_name_the_problem_and_never_touch_the_primary() -> None:
    h = with_primary()
    h.join("m1", monitor=1)
    out = h.join("dup", monitor=1)
    assert closes(out) == [Close("dup", 4002, "CONFIG_MISMATCH")]
    assert "already shown" in logs(out, "connection.rejected")[0].attrs["problem"]
    out = h.join("far", monitor=4)
    assert closes(out) == [Close("far", 4002, "CONFIG_MISMATCH")]
    lonely = ServerHarness(SLOW_RECEIVE)
    out = lonely.open("m") + lonely.hello("m", monitor=1)
    assert closes(out) == [Close("m", 4002, "CONFIG_MISMATCH")]
    assert h.session.primary == "p"


def test_a_secondary_cannot_end_the_session_and_garbage_closes_only_it() -> None:
    h = with_primary()
    h.join("m1", monitor=1)
    out = h.send("m1", {"type": "close"})
    assert closes(out) == [Close("m1", 1000, "MONITOR_CLOSED")]
    assert h.session.state is SessionState.ACTIVE
    h.join("m2", monitor=2)
    out = h.send("m2", "not json")
    assert [(c.connection_id, c.code) for c in closes(out)] == [("m2", 4024)]
    assert h.session.state is SessionState.ACTIVE and h.session.primary == "p"


def test_secondaries_get_pings_and_their_input_reaches_the_host_side() -> None:
    h = with_primary()
    h.join("m1", monitor=1)
    out = h.advance(ms(SLOW_RECEIVE.heartbeat_interval))
    assert sends(out, "ping", "m1") and sends(out, "ping", "p")
    key = {"type": "input", "kind": "key", "data": {"keysym": 97, "down": True}}
    assert h.send("m1", key) == [Deliver("m1", key)]
    assert h.send("m1", {"type": "ping", "id": 5}) == [Send("m1", {"type": "pong", "id": 5})]


def test_a_lost_secondary_leaves_the_layout_and_the_end_closes_every_window() -> None:
    h = with_primary()
    h.join("m1", monitor=1)
    h.join("m2", monitor=2)
    out = h.lose("m1")
    assert logs(out, "connection.closed")[0].attrs["monitor"] == 1
    [relayout] = of_type(out, Relayout)
    assert [m.index for m in relayout.monitors] == [0, 2]
    out = h.send("p", {"type": "close"})
    assert {c.connection_id: c.code for c in closes(out)} == {"p": 4000, "m2": 4000}


def test_the_row_starts_from_the_primary_window_as_it_is() -> None:
    h = ServerHarness(SLOW_RECEIVE)
    h.join("p", screen={"width": 1600, "height": 900})  # no resize before the secondary
    h.send("p", {"type": "resize", "width": 1500, "height": 800})  # alone: no display change
    out = h.join("m1", monitor=1, screen={"width": 800, "height": 600})
    [relayout] = of_type(out, Relayout)
    assert relayout.monitors == (
        Monitor(0, "p", 0, 0, 1500, 800),
        Monitor(1, "m1", 1500, 0, 800, 600),
    )


def test_a_resumed_primary_is_a_display_change_for_the_secondaries() -> None:
    h = with_primary()
    h.join("m1", monitor=1, screen={"width": 800, "height": 600})
    h.lose("p")
    assert h.session.state is SessionState.DISCONNECTED and "m1" in h.session.monitors.secondaries
    out = h.join(
        "p2", resume=True, previous_connection_id="p", screen={"width": 1024, "height": 768}
    )
    [relayout] = of_type(out, Relayout)
    assert relayout.monitors == (
        Monitor(0, "p2", 0, 0, 1024, 768),
        Monitor(1, "m1", 1024, 0, 800, 600),
    )
    assert change_ids(out, "m1") == [2]
