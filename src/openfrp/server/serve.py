"""Run the server under uvicorn: its data folder, listening socket, session service and app;
the start-up and shut-down between are the app's lifespan (lifespan.py)."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import secrets
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from openfrp.datadir import using
from openfrp.events import Event, EventLog
from openfrp.server import health, openapi
from openfrp.server.app import create_app
from openfrp.server.isolation import check as check_isolation
from openfrp.server.isolation import write_private
from openfrp.server.lifespan import Lifespan, StartFailed
from openfrp.server.limits import PerAddress, Throttled, guarded_h11, raise_open_files
from openfrp.server.metrics import Metrics, ObservedEventLog, counted_registry
from openfrp.server.peers import Apps, ProxyHeaders
from openfrp.server.registry import Registry, RegistryError
from openfrp.server.registry.opener import is_url, open_registry
from openfrp.server.sessions import ServerState
from openfrp.settings import Config, ServerOptions, SettingsError

oplog = logging.getLogger("openfrp.server")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: ours ends the sessions (4019) first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def data_dir(config: Config) -> Path:
    """Where the secret and admin key live: server.data_dir (the command line always sets it,
    see environment.in_data_dir), else, for a config built in code, beside a SQLite
    registry, else above the logs."""
    if config.server.data_dir:
        return Path(config.server.data_dir)
    if is_url(config.server.registry):
        return Path(config.server.log_dir).parent
    return Path(config.server.registry).parent


def load_secret(config: Config) -> bytes:
    """The signing secret: from the config, else kept in the data folder across restarts."""
    if config.server.secret:
        return config.server.secret.encode()
    folder = data_dir(config)
    path = folder / "secret"
    if not path.exists():
        with using(folder, "write secret"):
            folder.mkdir(parents=True, exist_ok=True)
            write_private(path, secrets.token_hex(32).encode())
    with using(folder, "read secret"):
        path.chmod(0o600)
        return path.read_text().strip().encode()


def protect_data(config: Config) -> None:
    """Only the server's user may read its registry, logs and keys: everything it creates
    from now on is private to it (umask 077: new folders 0700, files 0600), and the files it
    kept from an earlier run become 0600. An existing folder keeps its mode: it may be one
    others use too (log_dir = "/var/log", say)."""
    os.umask(0o077)
    folder, logs = data_dir(config), Path(config.server.log_dir)
    with using(folder, "create it"):
        folder.mkdir(parents=True, exist_ok=True)
    with _in_data(config, logs, "create {}/"):
        logs.mkdir(parents=True, exist_ok=True)
    kept = [folder / "secret", admin_key_path(config), *logs.glob("server-events.jsonl*")]
    if not is_url(config.server.registry):
        kept += [Path(config.server.registry + end) for end in ("", "-wal", "-shm", "-journal")]
    for path in kept:
        with _in_data(config, path, "make {} private"), contextlib.suppress(FileNotFoundError):
            path.chmod(0o600)


def _in_data(config: Config, path: Path, doing: str) -> contextlib.AbstractContextManager[None]:
    """An OSError on `path` said in one line, `doing` with its name in it: as part of the data
    folder, or of its own folder when it is elsewhere (an absolute log_dir or registry)."""
    folder = data_dir(config)
    if path.is_relative_to(folder):
        return using(folder, doing.format(path.relative_to(folder)))
    fix = "give folders this user can write (log_dir, registry)"
    return using(path.parent, doing.format(path.name), "folder", fix)


def admin_key_path(config: Config) -> Path:
    return data_dir(config) / "admin.key"


def open_checked(config: Config) -> Registry:
    """The configured registry, not yet started; a RegistryError says what is wrong in one
    line."""
    registry = open_registry(config.server.registry)
    if registry.shared and not config.server.secret:
        raise RegistryError(
            "server.secret: required with a shared registry "
            "(every host must sign and check tokens with the same secret)"
        )
    return registry


async def serve(
    config: Config,
    ready_file: str | None = None,
    on_ready: Callable[[ServerState], Awaitable[None]] | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT (0); a server that cannot start says why in one line (2).

    uvicorn's own lifespan is off: serve enters the app's around uvicorn itself, so a failed
    step is that one line here, not uvicorn's traceback."""
    opts = config.server
    try:
        check_tls(opts)
        if ready_file:
            check_ready_file(Path(ready_file))
        check_isolation(config)
        protect_data(config)
        secret = load_secret(config)
        registry = open_checked(config)
    except (RegistryError, SettingsError, OSError) as exc:
        print(f"openfrp serve: {exc}", file=sys.stderr)
        return 2
    open_files = raise_open_files(opts.max_open_files)
    try:
        sock = listening_socket(opts.host, opts.port)
    except (OSError, OverflowError, ValueError) as exc:  # a port out of range, a NUL in host
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        step = _LISTEN_STEPS.get(exc.errno or 0, "") if isinstance(exc, OSError) else ""
        print(
            f"openfrp serve: cannot listen on {opts.host}:{opts.port}: {reason}{step}",
            file=sys.stderr,
        )
        return 2
    metrics = Metrics()
    path = Path(opts.log_dir) / "server-events.jsonl"
    log = ObservedEventLog(path, metrics, opts.log_max_bytes, opts.log_keep)
    with sock, contextlib.closing(log):
        port = sock.getsockname()[1]
        local = f"{'https' if opts.tls_cert else 'http'}://{_local(opts.host)}:{port}"
        state = ServerState(
            config,
            secret,
            log,
            counted_registry(registry, metrics),
            public_url(opts, port),
            local_url=local,
        )
        metrics.watch(lambda: state.runtimes)

        def leave() -> None:
            server.should_exit = True

        async def ready() -> None:
            with using(data_dir(config), "write admin.key"):
                write_private(admin_key_path(config), state.admin_key.encode())
            _announce(config, state, open_files)
            if ready_file:
                write_private(Path(ready_file), f"{state.public_url}\n{state.admin_key}\n".encode())
            print(
                f"openfrp server on {state.public_url} (data folder {data_dir(config)}, "
                f"admin key in {admin_key_path(config)})",
                flush=True,
            )
            if on_ready is not None:
                await on_ready(state)

        app = create_app(state, Lifespan(state, registry, leave, ready))
        app.state.metrics = metrics
        app.router.routes.extend([*health.ROUTES, *openapi.ROUTES])
        server = _Server(_uvicorn_config(app, config, log))
        try:
            async with app.router.lifespan_context(app):
                await server.serve(sockets=[sock])
        except StartFailed as exc:
            print(f"openfrp serve: {exc}", file=sys.stderr)
            return 2
    oplog.info("stopped")
    return 0


def _uvicorn_config(app: Starlette, config: Config, log: EventLog) -> uvicorn.Config:
    opts = config.server
    apps = Apps(pad.run_as for pad in config.launchpads.values())
    refused = Throttled(log, opts.name, "server.connections_refused")
    per_address = PerAddress(opts.max_connections_per_address, refused, apps)
    late = {
        part: Throttled(log, opts.name, f"server.{part}_timed_out") for part in ("head", "body")
    }
    return uvicorn.Config(
        ProxyHeaders(app, trusted_proxies(opts.trusted_proxies), apps),
        log_level="warning",
        http=guarded_h11(
            opts.header_timeout,
            opts.body_timeout,
            per_address,
            lambda part, address, limit: late[part](address, limit),
        ),
        ws="websockets-sansio",
        ws_ping_interval=None,
        ws_per_message_deflate=False,
        ws_max_size=1 << 20,
        lifespan="off",
        proxy_headers=False,  # ProxyHeaders above, which sessions' apps cannot use
        ssl_certfile=opts.tls_cert or None,
        ssl_keyfile=opts.tls_key or None,
    )


READY = "give --ready-file a file path in a folder this user can write"


def check_ready_file(path: Path) -> None:
    """The ready file is written once the server listens, after every service started: a
    path that cannot be written stops the start before them, naming the option."""
    if path.is_dir():
        raise SettingsError(f"--ready-file {path}: is a folder; {READY}")
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK | os.X_OK):
        raise SettingsError(f"--ready-file {path}: no folder {path.parent} to write in; {READY}")


def check_tls(opts: ServerOptions) -> None:
    """Load the certificate and key once before anything starts: uvicorn loads them only
    once the services run, and a file that is not PEM was its traceback. SettingsError
    names the file; an encrypted key is refused, not asked about on the terminal."""
    if not opts.tls_cert:
        return
    for key, path, what in (
        ("tls_cert", opts.tls_cert, "CERTIFICATE"),
        ("tls_key", opts.tls_key, "PRIVATE KEY"),
    ):
        try:
            text = Path(path).read_bytes()
        except OSError as exc:
            raise SettingsError(f"server.{key} {path!r}: cannot read it ({exc.strerror})") from None
        if f"{what}-----".encode() not in text:
            raise SettingsError(
                f"server.{key} {path!r}: not a PEM {what.lower()} (no BEGIN {what} line)"
            )
    files = f"server.tls_cert {opts.tls_cert!r}, server.tls_key {opts.tls_key!r}"

    def no_passphrase() -> str:
        raise SettingsError(f"{files}: the key is encrypted; give it without a passphrase")

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            opts.tls_cert, opts.tls_key, password=no_passphrase
        )
    except ssl.SSLError as exc:
        mismatch = "MISMATCH" in str(exc)
        why = "the key is not the certificate's" if mismatch else "not a usable certificate and key"
        raise SettingsError(f"{files}: {why} ({exc.reason or exc})") from None


# What to do when the listening socket cannot be had, by its errno.
_LISTEN_STEPS = {
    errno.EADDRINUSE: ": another process (another openfrp server?) listens there; stop it, "
    "or give this server another port (--port, server.port)",
    errno.EADDRNOTAVAIL: ": no network interface of this machine has that address; give one "
    "it has (--host, server.host), or 0.0.0.0 or :: for all",
    errno.EACCES: ": a port below 1024 needs root (or CAP_NET_BIND_SERVICE); give a higher "
    "port (--port, server.port)",
}


def listening_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket; "::" listens on IPv6 and IPv4 alike (dual stack)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(host != "::"))
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def trusted_proxies(text: str) -> list[str]:
    """The proxies whose X-Forwarded-* headers count, each IPv4 one also as the IPv4-mapped
    IPv6 address it has on a dual-stack socket (::ffff:127.0.0.1)."""
    trusted: list[str] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        trusted.append(item)
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            continue
        if network.version == 4:
            mapped = f"::ffff:{network.network_address}"
            trusted.append(
                mapped if network.prefixlen == 32 else f"{mapped}/{96 + network.prefixlen}"
            )
    return trusted


def _local(host: str) -> str:
    """How this process reaches its own listening address."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def public_url(opts: ServerOptions, port: int) -> str:
    """Where people reach the server: server.public_url, else its own address (the machine's
    name when it listens on every address), https with direct TLS."""
    if opts.public_url:
        return opts.public_url.rstrip("/")
    host = opts.host
    if host in ("", "0.0.0.0", "::"):
        host = socket.getfqdn()
    elif ":" in host:
        host = f"[{host}]"
    return f"{'https' if opts.tls_cert else 'http'}://{host}:{port}"


def _announce(config: Config, state: ServerState, open_files: int) -> None:
    """Started: the event log and the operator's log say so, and what with."""
    opts = config.server
    state.log.write(
        Event(
            "server.started",
            host=opts.name,
            attrs={"url": state.public_url, "open_files_limit": open_files},
        )
    )
    if not state.isolation.available:
        state.log.write(
            Event(
                "isolation.unavailable",
                host=opts.name,
                severity="warning",
                message="the server does not run as root: each session's app runs as the "
                "server's own user and can read the server's secret, keys and logs",
                attrs={"user": os.geteuid()},
            )
        )
    _log_start(config, state)


def _log_start(config: Config, state: ServerState) -> None:
    opts = config.server
    registry = "redis" if is_url(opts.registry) else f"sqlite {opts.registry}"
    oplog.info("openfrp server %s listening on %s", opts.name, state.public_url)
    oplog.info("data folder %s", data_dir(config))
    pads = ", ".join(f"{name} (FRP{pad.frp})" for name, pad in config.launchpads.items())
    oplog.info(
        "config: registry %s, event log %s, display %s, launchpads %s",
        registry,
        state.log.path,
        opts.display,
        pads,
    )
    for doubt in config.doubts():
        oplog.warning(doubt)
    if not state.isolation.available:
        oplog.warning("not running as root: session apps run as the server's own user")
