"""A real Xvfb display for the desk's X clients."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from openfrp.server.host import Display, start_display
from openfrp.settings import SessionSettings


@pytest.fixture
def display() -> Iterator[Display]:
    loop = asyncio.new_event_loop()
    shown = loop.run_until_complete(
        start_display("xvfb", SessionSettings(display_ready_timeout=10.0))
    )
    yield shown
    loop.run_until_complete(shown.stop())
    loop.close()
