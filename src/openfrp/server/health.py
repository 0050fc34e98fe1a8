"""Liveness, readiness and metrics for the operator's probes and scrapers.

/livez answers while the event loop runs; /readyz says whether this host can take sessions
now (registry reachable, event log writable, FRP8 server peer registered where a launchpad
uses FRP8), each with its reason; /metrics is the Prometheus text format.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from openfrp.server.metrics import Metrics

REGISTRY_PROBE_TIMEOUT = 2.0


def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def livez(request: Request) -> Response:
    """The server's event loop answers."""
    return JSONResponse({"live": True})


async def _registry_problem(state: Any) -> str | None:
    try:
        await asyncio.wait_for(state.registry.get("readyz-probe"), REGISTRY_PROBE_TIMEOUT)
    except TimeoutError:
        return f"registry: no answer within {REGISTRY_PROBE_TIMEOUT:g} s"
    except Exception as exc:
        return f"registry: {type(exc).__name__}: {exc}"
    return None


def _log_problem(state: Any, metrics: Metrics) -> str | None:
    path = state.log.path
    if metrics.log_failing is not None:
        return f"event log {path}: last write failed: {metrics.log_failing}"
    if not path.exists() or not os.access(path, os.W_OK):
        return f"event log {path}: not writable"
    return None


def _peer_problem(state: Any, metrics: Metrics) -> str | None:
    if not metrics.peer_up:
        return f"frp8 peer: not registered with signaling at {state.signaling_url}"
    return None


async def readyz(request: Request) -> Response:
    """Whether this host can take sessions now; 503 names every reason it cannot. The FRP8
    peer is checked only where a launchpad uses FRP8: elsewhere there is none to be ok."""
    state, metrics = request.app.state.openfrp, _metrics(request)
    checks = {
        "registry": await _registry_problem(state),
        "event_log": _log_problem(state, metrics),
    }
    if any(pad.frp == 8 for pad in state.config.launchpads.values()):
        checks["frp8_peer"] = _peer_problem(state, metrics)
    reasons = [problem for problem in checks.values() if problem is not None]
    body = {
        "ready": not reasons,
        "checks": {name: problem or "ok" for name, problem in checks.items()},
        "reasons": reasons,
    }
    return JSONResponse(body, status_code=503 if reasons else 200)


async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    data = generate_latest(_metrics(request).registry)
    return Response(data, media_type=CONTENT_TYPE_LATEST)


ROUTES = [
    Route("/livez", livez),
    Route("/readyz", readyz),
    Route("/metrics", metrics),
]
