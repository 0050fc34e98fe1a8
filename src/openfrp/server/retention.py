"""Ended sessions leave the registry after `registry_retention`, so launches cannot grow it
without bound; the event log keeps their history."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

from openfrp.events import Event, EventLog, format_ts
from openfrp.server.registry import Registry, RegistryError

MAX_INTERVAL = 3600.0  # seconds between prunes at most


async def prune_forever(registry: Registry, log: EventLog, host: str, retention: float) -> None:
    """Prune every retention/4 (at most hourly) until cancelled; an unreachable registry is
    tried again at the next round, one that refuses is logged."""
    interval = max(0.25, min(retention / 4, MAX_INTERVAL))
    while True:
        await asyncio.sleep(interval)
        cut = format_ts(datetime.now(UTC) - timedelta(seconds=retention))
        with contextlib.suppress(RegistryError):
            try:
                gone = await registry.prune(cut)
            except RegistryError:
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.write(
                    Event(
                        "registry.prune_failed",
                        host=host,
                        severity="warning",
                        attrs={"error": error},
                    )
                )
                continue
            if gone:
                attrs = {"sessions": gone, "ended_before": cut}
                log.write(Event("registry.pruned", host=host, attrs=attrs))
