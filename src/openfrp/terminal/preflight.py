"""The FRP8 terminal's own STUN/TURN probes, run beside a connection attempt.

aiortc drops STUN and TURN errors silently and uses only the first server of each kind, so
the terminal probes every configured ICE server itself (netcheck's probes, under the
session's stun_timeout and turn_timeout). The verdict (5009, 5010, 5019) is logged and shown:
it explains a 5006 that follows, or a 4108 whose relay went away.
"""

from __future__ import annotations

import asyncio
from typing import Any

from openfrp.netcheck.probes import parse_server, probe_stun, probe_turn
from openfrp.netcheck.verdict import ProbeResult
from openfrp.settings import SessionSettings


async def probe_ice_servers(block: dict[str, Any], settings: SessionSettings) -> list[ProbeResult]:
    """Probe each STUN and TURN URL of a session's `frp8` block; unparsable URLs are skipped."""
    probes = []
    for server in block.get("ice_servers", []):
        for url in server.get("urls", []):
            kind = "turn" if str(url).startswith(("turn:", "turns:")) else "stun"
            try:
                address = parse_server(kind, str(url))
            except ValueError:
                continue
            if kind == "stun":
                probes.append(probe_stun(address, settings.stun_timeout))
            else:
                user, password = server.get("username") or "", server.get("credential") or ""
                probes.append(probe_turn(address, user, password, settings.turn_timeout))
    return list(await asyncio.gather(*probes))
