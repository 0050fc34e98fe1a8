"""Open the registry a location names: a SQLite file path, or a Redis URL (the Redis client is
imported only then)."""

from __future__ import annotations

from openfrp.server.registry import Registry, RegistryError, SqliteRegistry


def open_registry(location: str) -> Registry:
    """A `redis://HOST:PORT/DB` (or `rediss://`, `unix://`) URL, else a SQLite file path."""
    if "://" not in location:
        return SqliteRegistry(location)
    scheme = location.split("://", 1)[0].lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise RegistryError(
            f"registry: unsupported URL scheme '{scheme}' "
            "(use redis://HOST:PORT/DB, rediss://, unix:// or a SQLite file path)"
        )
    from openfrp.server.registry.redis import RedisRegistry

    return RedisRegistry(location)
