"""The session configuration and token the server issues and checks in `hello`.

The configuration travels to the terminal at launch and comes back in `hello`; its digest and
the token's signature (a JSON Web Token) let the server tell a wrong, stale or tampered
terminal apart (4002).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

import jwt


def _json_value(value: Any) -> Any:
    """JSON has one number type: 30.0 and 30 are the same value, and a browser sends 30 back
    for the 30.0 it was given. Integral floats become ints so both digest alike."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(_json_value(data), sort_keys=True, separators=(",", ":")).encode()


def digest(config: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(config)).hexdigest()


TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def _signing_key(secret: bytes) -> bytes:
    """Tokens are signed with a key of their own, 32 bytes whatever the secret's length, so a
    token can never stand for the admin, guest or signaling keys derived from the same secret."""
    return hmac.new(secret, b"openfrp-token", hashlib.sha256).digest()


def sign_token(secret: bytes, claims: dict[str, Any]) -> str:
    """A JSON Web Token (HS256, PyJWT) over `claims`."""
    return jwt.encode(claims, _signing_key(secret), algorithm="HS256")


class TokenError(ValueError):
    """The token is malformed, its signature does not match, or it has expired."""


def verify_token(secret: bytes, token: str, now: float | None = None) -> dict[str, Any]:
    """The claims of a genuine token. Only base64url characters are accepted (a decoder that
    skips junk would let `!*` inside a signature pass). With `now` (UNIX seconds), a token
    whose `exp` has passed is refused; the clock is the caller's."""
    if not TOKEN_SHAPE.fullmatch(token):
        raise TokenError("token is not of the form HEADER.CLAIMS.SIGNATURE in base64url")
    try:
        claims: Any = jwt.decode(
            token,
            _signing_key(secret),
            algorithms=["HS256"],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.InvalidSignatureError:
        raise TokenError("token signature does not match") from None
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"token is malformed ({exc})") from None
    if not isinstance(claims, dict):
        raise TokenError("token claims are not an object")
    expires = claims.get("exp")
    if now is not None and isinstance(expires, int | float) and now >= expires:
        raise TokenError("token has expired")
    return claims


@dataclass(frozen=True)
class Issued:
    """What the server keeps of a launched session to check each `hello` against."""

    session_id: str
    user: str
    config: dict[str, Any]
    config_digest: str


def token_generation(claims: dict[str, Any]) -> int:
    """Which revocation round a token belongs to: one issued before the session's tokens were
    revoked carries an older generation than the session's own."""
    generation = claims.get("gen", 0)
    return generation if isinstance(generation, int) else -1


def check_hello(
    hello: dict[str, Any],
    issued: Issued,
    secret: bytes,
    version: int,
    generation: int = 0,
    now: float | None = None,
) -> tuple[str, str] | None:
    """Return (field, problem) for the first mismatch, or None when the hello fits;
    `generation`: the session's tokens of older generations are revoked; `now` (UNIX
    seconds): a token whose expiry has passed is refused, as the API refuses it."""
    if hello["version"] != version:
        return "version", f"terminal speaks protocol {hello['version']}, server {version}"
    if hello["session_id"] != issued.session_id:
        return "session_id", "hello names another session"
    try:
        claims = verify_token(secret, hello["token"], now)
    except TokenError as exc:
        return "token", str(exc)
    if claims.get("session_id") != issued.session_id or claims.get("user") != issued.user:
        return "token", "token was issued for another session or user"
    if token_generation(claims) < generation:
        return "token", "token has been revoked"
    try:
        own_digest = digest(hello["config"])
    except RecursionError:  # parsed, yet too deep to serialise again: a peer's garbage
        return "config", "configuration is nested too deeply"
    if own_digest != hello["config_digest"]:
        return "config", "configuration does not match its own digest (corrupted)"
    if hello["config_digest"] != issued.config_digest:
        return "config_digest", "configuration differs from the one the server issued"
    return None
