"""Shared fixtures: one simulated fleet and its analysis, built once per test run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from openfrp.analysis import sessions
from openfrp.analysis.simulate import simulate

FLEET_SESSIONS = 2000


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fleet") / "fleet.jsonl"
    simulate(path, FLEET_SESSIONS, seed=7)
    return path


@pytest.fixture(scope="session")
def truth(fleet: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(f"{fleet}.truth.json").read_text())
    return data


@pytest.fixture(scope="session")
def fleet_analysis(fleet: Path) -> sessions.Analysis:
    return sessions.analyze([str(fleet)])


def write_log(path: Path, lines: list[dict[str, Any] | str]) -> Path:
    """A JSONL file from events (dicts) and raw text lines (for bad lines)."""
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


def ev(
    session: str, second: float, source: str, event: str, code: int | None = None, **attrs: Any
) -> dict[str, Any]:
    """A minimal event as the server or terminal writes it."""
    whole = int(second)
    micros = round((second - whole) * 1_000_000)
    return {
        "ts": f"2026-03-02T10:{whole // 60:02d}:{whole % 60:02d}.{micros:06d}Z",
        "source": source,
        "host": "host-01",
        "session_id": session,
        "user": f"user-{session}",
        "account": "acme",
        "launchpad": "acme/office",
        "frp": 7,
        "event": event,
        "code": code,
        "severity": "info",
        "attrs": attrs,
    }
