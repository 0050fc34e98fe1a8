"""The FRP8 terminal's own STUN/TURN probes, run beside a connection attempt.

aiortc drops STUN and TURN errors silently and uses only the first server of each kind, so
the terminal probes every configured ICE server itself (netcheck's probes, under the
session's stun_timeout and turn_timeout). The verdict (5009, 5010, 5019) is logged and shown:
it explains a 5006 that follows, or a 4108 whose relay went away. Shown with the code's line
are the failed servers and why, and the next step: the code alone does not say what to mend.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from openfrp.netcheck.probes import ice_servers, probe_stun, probe_turn
from openfrp.netcheck.verdict import ProbeResult, failure_lines, verdict
from openfrp.protocol.terminal_connection import TerminalAction, show
from openfrp.settings import SessionSettings


async def probe_ice_servers(block: dict[str, Any], settings: SessionSettings) -> list[ProbeResult]:
    """Probe each STUN and TURN server of a session's `frp8` block."""
    probes = [
        probe_stun(server, settings.stun_timeout)
        if server.kind == "stun"
        else probe_turn(server, user, password, settings.turn_timeout)
        for server, user, password in ice_servers(block)
    ]
    return list(await asyncio.gather(*probes))


def judged(results: list[ProbeResult]) -> list[TerminalAction]:
    """The probe events, then (when a code applies) its line with the failures under it."""
    code, logs = verdict(results)
    if code is None:
        return list(logs)
    shown = show(code)
    text = "\n  ".join([shown.text, *failure_lines(results, code)])
    return [*logs, dataclasses.replace(shown, text=text)]
