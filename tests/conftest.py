"""Put the repository root on sys.path so tests import helpers as `tests.support...`; fixtures
every suite shares."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


from tests.support.coturn import TURNSERVER, Coturn, start_coturn  # noqa: E402
from tests.support.sandbox import shared_folder  # noqa: E402


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    """A real coturn on loopback that relays between local peers; skips without coturn."""
    if TURNSERVER is None:
        pytest.skip("needs coturn (Debian package coturn)")
    server = start_coturn(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary folder any user may write to: a session's app runs as its own user."""
    with shared_folder() as folder:
        yield folder
