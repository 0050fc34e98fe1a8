"""Sessions left over from a crash: ended with a recorded code when their host starts again.

A server killed without the chance to end its sessions (kill -9, power loss) leaves them open
in the registry. Nothing of them survived (display, app, connections), so at start the host
ends every open session it owned: 4001 for one that never became active (its start failed),
4004 for one that was active or disconnected (an unexpected failure of the server while the
session ran). The end is logged like any other, so the analyzer sees a server fault, and a
late resume or link gets that code instead of "unknown session". Each one's home folder, which
the session's own end would have removed, is removed too (it may hold what the person worked
on).
"""

from __future__ import annotations

import asyncio

from openfrp import codes
from openfrp.codes import CodeNumber
from openfrp.events import Event, EventLog, now_ts, parse_ts
from openfrp.server.isolation import Isolation
from openfrp.server.registry import Registry

NEVER_ACTIVE = ("created", "starting")
REASON = "the server stopped without ending this session (a crash) and has started again"


async def end_left_over(
    registry: Registry, log: EventLog, host: str, isolation: Isolation
) -> list[str]:
    """End this host's sessions still open in the registry and remove their homes; returns
    their ids."""
    ended: list[str] = []
    for record in await registry.sessions():
        if record.host != host or record.final_code is not None or record.state == "ended":
            continue
        code = (
            CodeNumber.SERVER_START_ERROR
            if record.state in NEVER_ACTIVE
            else CodeNumber.SERVER_CONTROL_ERROR
        )
        ts = now_ts()
        await registry.set_state(record.session_id, "ended", code, ts)
        lasted = parse_ts(ts) - parse_ts(record.created_ts)
        log.write(
            Event(
                "session.ended",
                ts=ts,
                host=host,
                session_id=record.session_id,
                user=record.user,
                account=record.account,
                launchpad=record.launchpad,
                frp=8 if record.config.get("frp") == 8 else 7,
                code=code,
                severity="error",
                message=codes.get(code).message,
                attrs={
                    "reason": REASON,
                    "state_at_crash": record.state,
                    "duration_ms": int(lasted.total_seconds() * 1000),
                },
            )
        )
        ended.append(record.session_id)
    await asyncio.to_thread(isolation.remove_homes, ended)
    return ended
