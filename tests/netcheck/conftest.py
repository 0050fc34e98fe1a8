"""A real coturn for the probes, on loopback (or inside a network namespace a test made)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.coturn import TURNSERVER, Coturn, start_coturn


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    if TURNSERVER is None:
        pytest.skip("needs coturn (Debian package coturn)")
    server = start_coturn(tmp_path)
    yield server
    server.stop()
