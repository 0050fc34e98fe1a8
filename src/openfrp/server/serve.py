"""Run the server under uvicorn; SIGTERM/SIGINT end every live session with 4019 first."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn

from openfrp.events import Event, EventLog
from openfrp.server.app import ServerState, create_app
from openfrp.server.registry import Registry
from openfrp.settings import Config


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: ours ends the sessions (4019) first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def load_secret(config: Config) -> bytes:
    """The signing secret: from the config, else kept in the data folder across restarts."""
    if config.server.secret:
        return config.server.secret.encode()
    path = Path(config.server.registry).parent / "secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip().encode()


def admin_key_path(config: Config) -> Path:
    return Path(config.server.registry).parent / "admin.key"


async def serve(
    config: Config,
    ready_file: str | None = None,
    on_ready: Callable[[ServerState], None] | None = None,
) -> int:
    opts = config.server
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((opts.host, opts.port))
    except OSError as exc:
        print(
            f"openfrp serve: cannot listen on {opts.host}:{opts.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    sock.listen(2048)
    port = sock.getsockname()[1]
    log = EventLog(Path(opts.log_dir) / "server-events.jsonl")
    state = ServerState(
        config, load_secret(config), log, Registry(opts.registry), f"http://{opts.host}:{port}"
    )
    admin_key_path(config).write_text(state.admin_key)
    uv_config = uvicorn.Config(
        create_app(state),
        log_level="warning",
        ws="websockets-sansio",
        ws_ping_interval=None,
        ws_per_message_deflate=False,
        ws_max_size=1 << 20,
        lifespan="off",
    )
    server = _Server(uv_config)
    loop = asyncio.get_running_loop()

    async def stop(signame: str) -> None:
        log.write(Event("server.stopping", host=opts.name, attrs={"signal": signame}))
        await state.stop_all(f"server received {signame}")
        server.should_exit = True

    stop_tasks: list[asyncio.Task[None]] = []

    def on_signal(signame: str) -> None:
        if not stop_tasks:
            stop_tasks.append(asyncio.create_task(stop(signame)))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    log.write(Event("server.started", host=opts.name, attrs={"url": state.public_url}))
    if ready_file:
        Path(ready_file).write_text(f"{state.public_url}\n{state.admin_key}\n")
    print(
        f"openfrp server on {state.public_url} (admin key in {admin_key_path(config)})", flush=True
    )
    if on_ready is not None:
        on_ready(state)
    peer = None
    if any(s.frp == 8 for s in config.launchpads.values()):
        from openfrp.server.frp8 import PeerHost

        peer = PeerHost(state)
        peer_task = asyncio.create_task(peer.run())
    await server.serve(sockets=[sock])
    if peer is not None:
        peer_task.cancel()
        await peer.close()
    log.close()
    state.registry.close()
    return 0
