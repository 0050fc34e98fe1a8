"""One FRP8 connection attempt of the Python terminal: signaling, offer, ICE, control channel.

The offer carries the data channel and a receive-only video transceiver: the display comes as
a WebRTC video track (aiortc decodes it), handed frame by frame to `on_frame`.

PeerSetup (sans-I/O) times each phase; this module feeds it what signaling and aiortc report
and posts the outcome to the terminal's inbox like the FRP7 transport does ("opened", "data",
"closed", "failed"), plus "setup_failed" with the code of the phase that did not finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from openfrp import codes
from openfrp.codes import CodeNumber
from openfrp.protocol.peer_setup import PeerSetup, Phase, SetupFailed
from openfrp.protocol.terminal_connection import SessionTicket
from openfrp.rtc import configuration, rtp_timestamp, video_codec
from openfrp.settings import SessionSettings, setup_budget_ms
from openfrp.timing import now_ms

if TYPE_CHECKING:
    from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection, RTCRtpReceiver

Post = Callable[..., None]
FrameSink = Callable[[Any, str | None, int | None], None]  # (av.VideoFrame, codec, RTP time)
EVENTS_BOUND = 256  # events waiting for the attempt's loop


class PeerAttempt:
    """Runs one attempt; after the channel opens it is the terminal's transport (send/close)."""

    def __init__(
        self,
        gen: int,
        post: Post,
        ticket: SessionTicket,
        settings: SessionSettings,
        signaling_url: str | None = None,
        on_frame: FrameSink | None = None,
    ) -> None:
        """`signaling_url` overrides the one the session configuration names."""
        self.gen = gen
        self.signaling_url = signaling_url
        self._post = post
        self.ticket = ticket
        self.block: dict[str, Any] = dict(ticket.config.get("frp8") or {})
        self.setup = PeerSetup(settings, now_ms(), budget_ms=setup_budget_ms(settings))
        self._gathering: asyncio.Future[None] | None = None
        self._events: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue(EVENTS_BOUND)
        self._signaling: ClientConnection | None = None
        self._pc: RTCPeerConnection | None = None
        self._channel: RTCDataChannel | None = None
        self._done = False
        self._teardown_task: asyncio.Future[None] | None = None
        self._on_frame = on_frame
        self._video_codec: str | None = None
        self._video_reader: asyncio.Future[None] | None = None
        self._video_bytes = 0

    # -- the transport the terminal sees once the channel is open ---------------------------

    async def send(self, text: str) -> None:
        if self._channel is None or self._channel.readyState != "open":
            raise ConnectionError("data channel is not open")
        self._channel.send(text)

    def abort(self) -> None:
        self._done = True
        self._teardown_task = asyncio.ensure_future(self._teardown())

    async def close(self, code: int, reason: str) -> None:
        self._done = True
        await self._teardown()

    # -- the attempt ------------------------------------------------------------------------

    async def run(self) -> None:
        url = self.signaling_url or str(self.block.get("signaling_url", ""))
        try:
            self._signaling = await asyncio.wait_for(
                connect(url, open_timeout=None, ping_interval=None, max_size=1 << 18),
                self._remaining(),
            )
        except Exception as exc:
            if not self._done:
                self._post("failed", self.gen, f"signaling {url}: {type(exc).__name__}: {exc}")
            return
        join = {
            "type": "join",
            "session_id": self.ticket.session_id,
            "token": self.ticket.token,
            "host": self.ticket.config.get("host"),
        }
        reader = asyncio.ensure_future(self._read_signaling(self._signaling))
        try:
            await self._signaling.send(json.dumps(join))
            await self._loop()
        except Exception as exc:  # this side's WebRTC stack failed: the peer connection did
            error = f"{type(exc).__name__}: {exc}"
            attrs = {"phase": self.setup.phase.value, "error": error}
            self._fail_setup(SetupFailed(CodeNumber.PEER_CONNECTION_FAILED, "peer.failed", attrs))
        finally:
            reader.cancel()
            if not self._done:
                self._done = True
            await self._teardown()

    async def _loop(self) -> None:
        while not self._done:
            deadline = self.setup.next_deadline()
            timeout = None if deadline is None else max(0, deadline - now_ms()) / 1000
            try:
                kind, *args = await asyncio.wait_for(self._events.get(), timeout)
            except TimeoutError:
                failed = self.setup.tick(now_ms())
                if failed is not None:
                    self._fail_setup(failed)
                continue
            await self._handle(kind, args)

    async def _handle(self, kind: str, args: list[Any]) -> None:
        now = now_ms()
        opened = self.setup.phase is Phase.OPEN
        if kind == "peer":
            self.setup.peer_found(now)
            self._gathering = asyncio.ensure_future(self._gather())
        elif kind == "gathered":
            await self._offer()
        elif kind == "stack_error":
            raise args[0]
        elif kind == "answer":
            from aiortc import RTCSessionDescription

            assert self._pc is not None
            await self._pc.setRemoteDescription(RTCSessionDescription(args[0], "answer"))
            self._video_codec = video_codec(args[0])
            self.setup.answered(now)
        elif kind == "signal_close":
            code, reason = args
            row = codes.lookup(code)
            if not opened and row is not None and row.frp_versions == (8,):
                attrs = {"close_code": code, "close_reason": reason, "via": "signaling"}
                self._fail_setup(SetupFailed(code, "connection.closed", attrs))
            else:  # a session's own code (4009 after its end, say): as FRP7 gets it
                self._finish("closed", code, reason)
        elif kind == "signal_error":
            if not opened:
                self._done = True
                self._post("failed", self.gen, f"signaling refused: {args[0]}")
        elif kind == "ice" and self._pc is not None:
            failed = self.setup.ice_state(self._pc.iceConnectionState, now)
            if failed is not None:
                self._fail_setup(failed)
        elif kind == "connection" and self._pc is not None:
            state = self._pc.connectionState
            if opened and state in ("failed", "closed"):
                self._finish("closed", None, f"peer connection {state}")
            failed = None if opened else self.setup.connection_state(state, now)
            if failed is not None:
                self._fail_setup(failed)
        elif kind == "open":
            self.setup.channel_open(now)
            self._post("opened", self.gen, self)
        elif kind == "message":
            self._post("data", self.gen, args[0])
        elif kind == "channel_closed" and opened:
            self._finish("closed", None, "data channel closed")

    async def _gather(self) -> None:
        """Make the offer and gather its candidates beside the loop, whose timers keep
        running: an unreachable STUN/TURN server holds gathering for seconds."""
        try:
            await self._prepare()
            self._event(("gathered",))
        except Exception as exc:
            self._event(("stack_error", exc))

    async def _offer(self) -> None:
        assert self._pc is not None and self._signaling is not None
        sdp = self._pc.localDescription.sdp
        self.setup.gathered(candidate_types(sdp), now_ms())
        await self._signaling.send(json.dumps({"type": "offer", "sdp": sdp}))

    async def _prepare(self) -> None:
        from aiortc import RTCPeerConnection

        pc = self._pc = RTCPeerConnection(configuration(self.block))
        channel = self._channel = pc.createDataChannel("control")
        channel.on("open", lambda: self._event(("open",)))
        channel.on("message", lambda m: self._event(("message", m)))
        channel.on("close", lambda: self._event(("channel_closed",)))
        pc.on("iceconnectionstatechange", lambda: self._event(("ice",)))
        pc.on("connectionstatechange", lambda: self._event(("connection",)))
        if self._on_frame is not None:
            pc.addTransceiver("video", direction="recvonly")
            pc.on("track", self._on_track)
        await pc.setLocalDescription(await pc.createOffer())

    async def _read_signaling(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    message = json.loads(raw)
                    kind = message["type"]
                    if kind == "peer":
                        self._event(("peer", str(message["peer_id"])))
                    elif kind == "answer":
                        self._event(("answer", str(message["sdp"])))
                    elif kind == "close":
                        code, reason = int(message["code"]), str(message.get("reason", ""))
                        self._event(("signal_close", code, reason))
                    elif kind == "error":
                        self._event(("signal_error", str(message["error"])))

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video" and self._video_reader is None and self._pc is not None:
            receiver = next(r for r in self._pc.getReceivers() if r.track is track)
            self._video_reader = asyncio.ensure_future(self._read_video(track, receiver))

    async def _read_video(self, track: MediaStreamTrack, receiver: RTCRtpReceiver) -> None:
        from aiortc.mediastreams import MediaStreamError

        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if self._on_frame is not None:
                    self._on_frame(frame, self._video_codec, rtp_timestamp(receiver, frame.pts))

    async def video_bytes(self) -> int:
        """Bytes of video the server sent since the last call (from its RTCP sender reports)."""
        pc = self._pc
        if pc is None:
            return 0
        total: int = sum(
            int(stats.bytesSent)
            for stats in (await pc.getStats()).values()
            if stats.type == "remote-outbound-rtp" and stats.kind == "video"
        )
        delta, self._video_bytes = max(0, total - self._video_bytes), total
        return delta

    def _fail_setup(self, failed: SetupFailed) -> None:
        if not self._done:
            self._done = True
            self._post("setup_failed", self.gen, failed)

    def _event(self, item: tuple[Any, ...]) -> None:
        """One for the loop. The data channel cannot be paused: a loop EVENTS_BOUND events
        behind it gives the connection up (lost, then resumed) rather than hold more."""
        try:
            self._events.put_nowait(item)
        except asyncio.QueueFull:
            self._finish("closed", None, f"this terminal is {EVENTS_BOUND} events behind")

    def _finish(self, kind: str, code: int | None, reason: str) -> None:
        if not self._done:
            self._done = True
            self._post(kind, self.gen, code, reason)

    def _remaining(self) -> float:
        deadline = self.setup.next_deadline()
        return 0.0 if deadline is None else max(0, deadline - now_ms()) / 1000

    async def _teardown(self) -> None:
        pc, ws = self._pc, self._signaling
        self._pc = self._signaling = None
        if self._video_reader is not None:
            self._video_reader.cancel()
        if self._gathering is not None:
            self._gathering.cancel()
        if pc is not None:
            with contextlib.suppress(Exception):
                await pc.close()
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1)


def candidate_types(sdp: str) -> dict[str, int]:
    """How many ICE candidates of each type (host, srflx, relay) an SDP carries."""
    found = {"host": 0, "srflx": 0, "relay": 0}
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            words = line.split()
            if "typ" in words[:-1]:
                kind = words[words.index("typ") + 1]
                found[kind] = found.get(kind, 0) + 1
    return found
