"""Checking a presented credential (admin key, guest key, peer key) against the right one."""

from __future__ import annotations

import hmac


def matches(given: str, expected: str) -> bool:
    """Constant-time comparison; a credential with non-ASCII characters (a header may carry
    any byte) is a wrong credential, never a server error."""
    return given.isascii() and hmac.compare_digest(given, expected)
