"""The session's side of the display stream: which connection gets frames, with which codec
and screen size (from its hello), and what its messages ask of the stream worker."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple, Protocol

from openfrp.media.damage import DamageWatch
from openfrp.media.streamer import Callbacks, Screen, Streamer
from openfrp.protocol.actions import Log
from openfrp.protocol.messages import MessageError, decode_from_terminal, encode
from openfrp.server.links import Link
from openfrp.settings import SessionSettings

_REMEMBERED = 8  # hellos kept: the live connection's and a few recent ones


class Hello(NamedTuple):
    """What a connection's hello says about its window: decoders, size, device pixel ratio."""

    decoders: list[str] | None = None
    size: tuple[int, int] | None = None
    scale: float | None = None


class DamageListener(Protocol):
    def damaged(self) -> None: ...
    def damage_live(self, live: bool) -> None: ...


def _scale(value: object) -> float | None:
    """A window's device pixel ratio as a terminal says it, or None when it is no ratio."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 8:
        return None
    return float(value)


def fit(width: int, height: int, settings: SessionSettings) -> tuple[int, int]:
    from openfrp.server.host import fit_size

    return fit_size(width, height, settings)


class SessionStream:
    def __init__(
        self,
        links: dict[str, Link],
        write: Callable[[Log], None],
        post: Callable[..., None],
        fps: int,
    ) -> None:
        self._links = links
        self._write = write
        self._post = post
        self._fps = fps
        self._hellos: dict[str, Hello] = {}
        self._track_sized: str | None = None  # the FRP8 connection whose hello sized the display
        self.streamer: Streamer | None = None
        self._fit: Callable[[int, int], tuple[int, int]] = lambda w, h: (w, h)
        self._resizing: set[asyncio.Task[None]] = set()
        self._damage: DamageWatch | None = None
        self._watching = object()
        self._damage_live = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: weakref.WeakSet[DamageListener] = weakref.WeakSet()
        self._listeners_lock = threading.Lock()

    def note_hello(self, cid: str, data: str | bytes) -> None:
        """Remember what a connection's hello says about its window and decoders."""
        try:
            hello = decode_from_terminal(data)
        except MessageError:
            return
        if hello["type"] != "hello":
            return
        decoders = hello.get("decoders")
        names = [d for d in decoders if isinstance(d, str)] if decoders is not None else None
        screen = hello.get("screen") or {}
        width, height = screen.get("width"), screen.get("height")
        size = (width, height) if isinstance(width, int) and isinstance(height, int) else None
        self._hellos[cid] = Hello(names, size, _scale(screen.get("scale")))
        track = self._track_of(cid)
        if track is not None:
            track.heard_hello(names or [])
        while len(self._hellos) > _REMEMBERED:
            del self._hellos[next(iter(self._hellos))]

    def _resized(self, cid: str, message: dict[str, Any]) -> None:
        """A window resized: its hello's size is now this one, so a stream that starts after
        it (the session still starting) takes the new size, not the one the hello asked."""
        hello = self._hellos.get(cid)
        if hello is not None:
            size = (message["width"], message["height"])
            scale = _scale(message.get("scale")) or hello.scale
            self._hellos[cid] = hello._replace(size=size, scale=scale)

    def hello_of(self, cid: str | None) -> Hello:
        return self._hellos.get(cid, Hello()) if cid is not None else Hello()

    def start(self, display: Screen, settings: SessionSettings) -> None:
        callbacks = Callbacks(
            offer=self._offer, log=self._log, result=self._result, screen=self._screen
        )
        self._fit = lambda w, h: fit(w, h, settings)
        self._loop = asyncio.get_running_loop()
        self.streamer = Streamer(
            display,
            callbacks,
            self._fps,
            asyncio.get_running_loop(),
            self._fit,
            settings.x264_params,
        )

    def set_display(self, display: Screen) -> None:
        if self.streamer is not None:
            self.streamer.display = display

    def watch(self, name: str | None, cookie: str) -> None:
        """Rest the worker (and the FRP8 tracks that listen) on a still screen of X display
        `name` (":3"), woken by what is drawn (media/damage.py); None: no X display, they
        look at every tick."""
        old, self._damage = self._damage, None
        self._watching = object()  # first: the stopped watch's late "not live" is not heard
        if old is not None:
            old.stop()
            self._announce(False)  # back to ticks until a new watch is live
        if name is not None:
            live = partial(self._live, self._watching)
            self._damage = DamageWatch(name, cookie, self._drawn, live)

    def listen(self, listener: DamageListener) -> None:
        """Tell `listener` (an FRP8 track) of what is drawn, as long as it lives."""
        with self._listeners_lock:  # the watch's thread copies the set
            self._listeners.add(listener)
        listener.damage_live(self._damage_live)

    def _listening(self) -> list[DamageListener]:
        """Called from the watch's thread."""
        with self._listeners_lock:
            found: list[DamageListener] = list(self._listeners)
        if self.streamer is not None:
            found.append(self.streamer)
        return found

    def _drawn(self) -> None:
        for listener in self._listening():
            listener.damaged()

    def _live(self, watching: object, live: bool) -> None:
        """The current watch's word (from its thread), logged: a host whose displays are
        looked at on every tick says so."""
        if watching is self._watching:
            self._announce(live)
            if self._loop is not None:
                log = Log("stream.damage", attrs={"live": live})
                with contextlib.suppress(RuntimeError):  # the server's loop has closed
                    self._loop.call_soon_threadsafe(self._write, log)

    def _announce(self, live: bool) -> None:
        self._damage_live = live
        for listener in self._listening():
            listener.damage_live(live)

    def follow(self, cid: str | None) -> None:
        """Stream to connection `cid` (None: nobody); called again and again (the pump)."""
        if self.streamer is None:
            return
        link = self._links.get(cid) if cid is not None else None
        hello = self.hello_of(cid)
        if cid is not None and link is not None and not link.wants_frames:
            # FRP8: its video track carries the picture; the display still takes the size of
            # the window that joins (a resume from another window or device too), once: it
            # follows that window's own resizes afterwards.
            display = self.streamer.display
            if cid != self._track_sized and hello.size is not None:
                self._track_sized = cid
                if self._fit(*hello.size) != (display.width, display.height):
                    self._resize_track(cid, self.streamer, *hello.size)
            cid, hello = None, Hello()
        self.streamer.follow(cid, hello.decoders, hello.size)
        self.streamer.tick()

    def closed(self, cid: str) -> None:
        if self.streamer is not None:
            self.streamer.unfollow(cid)

    def _track_of(self, cid: str) -> Any:
        link = self._links.get(cid)
        return None if link is None else link.track

    def handle(self, cid: str, message: dict[str, Any]) -> bool:
        """Apply a stream message from connection `cid`; True when nothing else needs it."""
        streamer = self.streamer
        kind = message["type"]
        track = self._track_of(cid)
        if track is not None and kind == "frame_ack":
            track.heard_ack(message["frame"])
        elif track is not None and kind == "keyframe":
            track.heard_keyframe_ask()
        elif kind == "resize" and not message.get("monitor"):
            self._resized(cid, message)
        if streamer is None or kind not in ("frame_ack", "keyframe", "resize"):
            return False
        if kind == "frame_ack":
            streamer.acked(message["frame"])
            return False  # the link counts it too
        if kind == "keyframe":
            streamer.keyframe(message.get("reason") or "asked")
        elif not message.get("monitor"):
            link = self._links.get(cid)
            if link is not None and not link.wants_frames:
                self._resize_track(cid, streamer, message["width"], message["height"])
            else:
                streamer.resize(message["width"], message["height"])
        return True

    def _resize_track(self, cid: str, streamer: Streamer, width: int, height: int) -> None:
        task = asyncio.ensure_future(self._resize_for_track(cid, streamer, (width, height)))
        self._resizing.add(task)
        task.add_done_callback(self._resizing.discard)

    async def _resize_for_track(self, cid: str, streamer: Streamer, asked: tuple[int, int]) -> None:
        """FRP8: the stream worker follows no connection (the video track grabs the display
        itself), so the resize is applied here, in a worker thread; the track sends the new
        size and the terminal gets its `screen` message as over FRP7."""
        display = streamer.display
        before = (display.width, display.height)
        try:
            size = await asyncio.to_thread(display.resize, *self._fit(*asked))
        except Exception as exc:
            self._result(False, f"{type(exc).__name__}: {exc}")
            return
        self._screen(cid, *size)
        attrs = {"width": size[0], "height": size[1], "asked": list(asked), "was": list(before)}
        self._log("display.resized", cid, attrs)

    def stop(self) -> None:
        self.watch(None, "")
        if self.streamer is not None:
            self.streamer.stop()
            self.streamer = None

    def _offer(self, cid: str, data: bytes) -> bool:
        link = self._links.get(cid)
        return link is not None and link.offer_frame(data)

    def _log(self, event: str, cid: str | None, attrs: dict[str, Any]) -> None:
        self._write(Log(event, connection_id=cid, attrs=attrs))

    def _result(self, ok: bool, error: str) -> None:
        if self.streamer is not None:  # not a display torn down after the session ended
            self._post("video", ok, error)

    def _screen(self, cid: str, width: int, height: int) -> None:
        link = self._links.get(cid)
        if link is not None:
            link.send(encode({"type": "screen", "width": width, "height": height}))
