"""The server's FRP8 peer: registered with signaling, it answers each terminal's offer.

The control data channel of each answered peer connection becomes one server connection,
served like an FRP7 WebSocket (its first message is the hello). An exception in this WebRTC
machinery is 4026: sent back on signaling while the channel is not up yet, a fault of the
connection once it is. The peer also times its side of the setup (PeerSetup), so the server's
log says when ICE (5006) or DTLS/SCTP (5008) never came up for a session.

When the offer has a video transceiver, the session's display goes out as a WebRTC video
track (media/track.py, in the codec the offer lists first of those aiortc has: VP8 or H.264);
the data channel then carries no frames of the FRP7 stream, only the track's palette tiles
(exact text beside the video, media/track_tiles.py), control, input and acknowledgements.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import traceback
from collections.abc import Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from openfrp import codes
from openfrp.codes import CodeNumber
from openfrp.events import Context, Event
from openfrp.protocol.messages import encode
from openfrp.protocol.peer_setup import PeerSetup, Phase
from openfrp.rtc import configuration, video_codec
from openfrp.server.admission import Gone, serve_connection
from openfrp.server.registry import RegistryError
from openfrp.server.sessions import ServerState
from openfrp.server.signaling import peer_key
from openfrp.timing import now_ms

if TYPE_CHECKING:
    from aiortc import RTCDataChannel, RTCPeerConnection

    from openfrp.media.track import DisplayTrack
    from openfrp.server.runtime import SessionRuntime

REGISTER_RETRY_MAX = 5.0
CLOSE_FLUSH = 0.5


class DataChannelConnection:
    """A control data channel as a server connection (what serve_connection reads and writes).

    A server code goes out as a `close` message before the peer connection closes, since a
    data channel has no close code."""

    def __init__(
        self, pc: RTCPeerConnection, channel: RTCDataChannel, track: DisplayTrack | None = None
    ) -> None:
        self._pc = pc
        self._channel = channel
        # The display goes as this track, not as frames here; the session tells it what the
        # page says of its palette tiles.
        self.track = track
        self._inbox: asyncio.Queue[str | bytes | Gone] = asyncio.Queue()
        channel.on("message", self._inbox.put_nowait)
        channel.on("close", lambda: self.gone())

    def gone(self) -> None:
        self._inbox.put_nowait(Gone(None))

    async def receive(self) -> str | bytes | Gone:
        return await self._inbox.get()

    async def send_text(self, data: str) -> None:
        self._check_open()
        self._channel.send(data)

    async def send_bytes(self, data: bytes) -> None:
        self._check_open()
        self._channel.send(data)

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            if self._channel.readyState == "open":
                self._channel.send(encode({"type": "close", "code": code, "reason": reason}))
                for _ in range(int(CLOSE_FLUSH / 0.05)):
                    if self._channel.bufferedAmount == 0:
                        break
                    await asyncio.sleep(0.05)
        await self._pc.close()

    def _check_open(self) -> None:
        if self._channel.readyState != "open":
            raise ConnectionError(f"data channel is {self._channel.readyState}")


class PeerHost:
    """Keeps the registration with signaling alive and answers offers."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.url = state.signaling_url
        self.host = state.config.server.name
        self._peers: dict[str, RTCPeerConnection] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def run(self) -> None:
        """Register, serve, and register again after a loss (bounded backoff, until cancelled).
        An outage is logged once, when it starts, with the reason (a wrong URL shows here)."""
        delay, down = 0.2, False
        while True:
            try:
                async with connect(self.url, open_timeout=5, ping_interval=5) as ws:
                    delay, down = 0.2, False
                    try:
                        await self._serve(ws)
                    except asyncio.CancelledError:
                        # Stopping: the server's own hub stops with it and would never answer
                        # a closing handshake, which held the stop for its 10 s timeout.
                        ws.transport.abort()
                        raise
                error = "the hub closed the registration"
            except (OSError, WebSocketException, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            if not down:
                self._log("signaling.unregistered", attrs={"url": self.url, "error": error})
                down = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, REGISTER_RETRY_MAX)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(pc.close() for pc in self._peers.values()), return_exceptions=True)

    async def _serve(self, ws: ClientConnection) -> None:
        key = peer_key(self.state.secret, self.host)
        await ws.send(json.dumps({"type": "register", "host": self.host, "key": key}))
        self._log("signaling.registered", attrs={"url": self.url})
        async for raw in ws:
            with contextlib.suppress(ValueError):
                message = json.loads(raw)
                if not isinstance(message, dict):
                    continue
                if message.get("type") == "offer":
                    self._track(self._answer(ws, message))
                elif message.get("type") == "gone":
                    relay = str(message.get("relay"))
                    pc = self._peers.get(relay)
                    if pc is not None and pc.connectionState != "connected":
                        self._track(pc.close())

    async def _answer(self, ws: ClientConnection, offer: dict[str, Any]) -> None:
        from aiortc import RTCPeerConnection, RTCSessionDescription

        relay = str(offer.get("relay"))
        identity = self._identity(str(offer.get("session_id")))
        if relay in self._peers:  # one peer connection per join, whatever a hub relays
            self.state.log.write(
                identity.event("peer.offer_refused", attrs={"relay": relay, "reason": "busy"})
            )
            return
        runtime = self.state.runtimes.get(identity.session_id)
        if runtime is not None and runtime.machine.final_code is not None:
            # Ended but still in memory: its final code, without a WebRTC setup.
            final = runtime.machine.final_code
            await self._signal(ws, relay, final, codes.ended_reason(final))
            return
        if runtime is None:  # forgotten after its end (its final code), or never here (4002)
            record = None
            with contextlib.suppress(RegistryError):
                record = await self.state.registry.get(identity.session_id)
            if record is not None and record.final_code is not None:
                code = record.final_code
                await self._signal(ws, relay, code, codes.ended_reason(code))
            else:
                await self._signal(ws, relay, CodeNumber.CONFIG_MISMATCH, "CONFIG_MISMATCH")
            return
        settings = runtime.machine.settings
        try:
            pc = RTCPeerConnection(configuration(runtime.machine.issued.config.get("frp8", {})))
            self._peers[relay] = pc
            pc.on("datachannel", lambda channel: self._track(self._channel(pc, channel)))
            opened = asyncio.Event()
            pc.on("datachannel", lambda _: opened.set())
            await pc.setRemoteDescription(RTCSessionDescription(str(offer.get("sdp")), "offer"))
            track = _send_display(pc, runtime)
            await pc.setLocalDescription(await pc.createAnswer())
            codec = video_codec(pc.localDescription.sdp)
            if track is not None:
                track.encoded_as(codec)
            await ws.send(json.dumps({"type": "answer", "relay": relay, **_sdp(pc)}))
        except Exception as exc:
            error = "".join(traceback.format_exception_only(exc)).strip()
            self.state.log.write(
                identity.event(
                    "error.exception",
                    code=CodeNumber.FRP8_ERROR,
                    attrs={"where": "frp8 answer", "error": error, "relay": relay},
                )
            )
            await self._signal(ws, relay, CodeNumber.FRP8_ERROR, "FRP8_ERROR")
            await self._drop(relay)
            return
        self.state.log.write(
            identity.event("peer.answered", attrs={"relay": relay, "video_track": codec})
        )
        setup = PeerSetup(settings, now_ms(), Phase.CONNECTING)
        await self._watch_setup(pc, setup, opened, identity)
        self._peers.pop(relay, None)

    async def _watch_setup(
        self, pc: RTCPeerConnection, setup: PeerSetup, opened: asyncio.Event, who: Context
    ) -> None:
        """This side's view of the setup: log 5006/5008 when the channel never opens."""
        changed = asyncio.Event()
        pc.on("iceconnectionstatechange", changed.set)
        pc.on("connectionstatechange", changed.set)
        pc.on("datachannel", lambda _: changed.set())
        ice = ""
        while setup.phase is Phase.CONNECTING:
            deadline = setup.next_deadline()
            timeout = None if deadline is None else max(0, deadline - now_ms()) / 1000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout)
            changed.clear()
            now = now_ms()
            if opened.is_set():
                setup.channel_open(now)
                return
            failed = None
            if pc.iceConnectionState != ice:  # each state once, as it is reached
                ice = pc.iceConnectionState
                failed = setup.ice_state(ice, now)
            failed = failed or setup.connection_state(pc.connectionState, now) or setup.tick(now)
            if failed is not None:
                self.state.log.write(who.event(failed.event, code=failed.code, attrs=failed.attrs))
                await pc.close()

    def _channel(self, pc: RTCPeerConnection, channel: RTCDataChannel) -> Coroutine[Any, Any, None]:
        """Serve a channel from its first message (the handlers are in place before it)."""
        from openfrp.media.track import DisplayTrack

        tracks = [t.sender.track for t in pc.getTransceivers()]
        display = next((t for t in tracks if isinstance(t, DisplayTrack)), None)
        if display is not None:
            display.attach(channel)  # its palette tiles go here, beside the video
        connection = DataChannelConnection(pc, channel, display)
        pc.on(
            "connectionstatechange",
            lambda: connection.gone() if pc.connectionState in ("failed", "closed") else None,
        )
        return serve_connection(self.state, connection, f"frp8:{channel.label}", 8)

    async def _signal(self, ws: ClientConnection, relay: str, code: int, reason: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(
                json.dumps({"type": "close", "relay": relay, "code": code, "reason": reason})
            )

    async def _drop(self, relay: str) -> None:
        pc = self._peers.pop(relay, None)
        if pc is not None:
            await pc.close()

    def _identity(self, session_id: str) -> Context:
        runtime = self.state.runtimes.get(session_id)
        if runtime is not None:
            return runtime.identity
        return Context("server", self.host, session_id, None, None, None, 8)

    def _track(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _log(self, name: str, **fields: Any) -> None:
        self.state.log.write(Event(name, host=self.host, frp=8, **fields))


def _send_display(pc: RTCPeerConnection, runtime: SessionRuntime) -> DisplayTrack | None:
    """Answer a video transceiver in the offer with the session's display (the primary's
    monitor of it while secondary windows show the others)."""
    from openfrp.media.track import DisplayTrack

    if not any(t.kind == "video" for t in pc.getTransceivers()):
        return None
    track = DisplayTrack(
        lambda: None if runtime.display is None else runtime.monitors.view(runtime.display),
        on_grab=partial(runtime.post, "video"),
    )
    sender = pc.addTrack(track)
    track.spend(sender, partial(runtime.note, "stream.budget"))
    track.listen(sender)
    runtime.stream.listen(track)
    return track


def _sdp(pc: RTCPeerConnection) -> dict[str, str]:
    description = pc.localDescription
    return {"sdp": description.sdp, "sdp_type": description.type}
