"""Open the registry a location names: a SQLite file path, or a Redis URL (the Redis client is
imported only then)."""

from __future__ import annotations

from openfrp.server.registry import Registry, RegistryError, SqliteRegistry

SCHEMES = ("redis", "rediss", "unix")
ACCEPTED = "use redis://HOST:PORT/DB, rediss://, unix:// or a SQLite file path"


def is_url(location: str) -> bool:
    """Whether `location` is meant as a URL, mistyped ones included: it has `://`, a ':'
    before its first '/' (`redis:/HOST:6379/0`), or a known scheme followed by `//`
    (`redis//HOST`). Such a value is never a file path: taken as one, it became a SQLite file
    under the working directory and the host ran alone without a word. A file whose name
    has a ':' is still reached as `./NAME`."""
    if "://" in location or ":" in location.split("/", 1)[0]:
        return True
    return any(location.startswith(f"{scheme}//") for scheme in SCHEMES)


def open_registry(location: str) -> Registry:
    """A `redis://HOST:PORT/DB` (or `rediss://`, `unix://`) URL, else a SQLite file path."""
    if not is_url(location):
        return SqliteRegistry(location)
    if "://" not in location:
        raise RegistryError(
            f"registry: '{location}' is neither a URL nor a file path "
            f"({ACCEPTED}; ./NAME for a file so named)"
        )
    scheme = location.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise RegistryError(f"registry: unsupported URL scheme '{scheme}' ({ACCEPTED})")
    from openfrp.server.registry.redis import RedisRegistry

    return RedisRegistry(location)
