"""A session's monitors on its one X screen: a row of regions, each window showing its own.

The machine (protocol/monitors.py) decides the row; here it is applied. Each monitor's size
is fitted like a single window's (even, within max_width x max_height) and the screen is
resized to hold the whole row, which is why Xvfb starts MONITORS times max_width wide
(server/host.py). Each monitor is a RandR monitor, so a maximised window fills one monitor,
not the row. The primary's stream and each secondary's own stream grab only their region,
and a secondary's pointer input is moved by its region's offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openfrp.media.randr import set_monitors
from openfrp.media.streamer import Callbacks, Streamer
from openfrp.protocol.actions import Log
from openfrp.protocol.input import InputEvent, PointerInput
from openfrp.protocol.messages import MessageError, decode_from_terminal, encode
from openfrp.protocol.monitors import Monitor
from openfrp.server.host import Display, fit_size
from openfrp.server.links import Link
from openfrp.settings import SessionSettings

Region = tuple[int, int, int, int]  # x, y, width, height


class Layout:
    """Where each monitor is on the screen: read by stream workers, set by a relayout.
    No regions: one monitor, the whole screen, sized by the primary's stream as ever."""

    def __init__(self, display: Display) -> None:
        self.display = display
        self.lock = threading.Lock()  # one screen size change at a time
        self._regions: dict[int, Region] = {}

    def region(self, index: int) -> Region | None:
        return self._regions.get(index)

    def apply(self, regions: dict[int, Region]) -> tuple[int, int]:
        """Size the screen to hold `regions` and make them its RandR monitors; blocking."""
        display = self.display
        width = max(x + w for x, _, w, _ in regions.values())
        height = max(y + h for _, y, _, h in regions.values())
        fit = getattr(display, "fit", None)
        held = fit.hold() if fit is not None else contextlib.nullcontext()
        with self.lock, held:  # the app's windows are fitted to the whole new layout, once
            size = display.resize(width, height)
            if display.number is not None:
                named = {f"openfrp-{i}": r for i, r in sorted(regions.items())}
                set_monitors(display.env, named if len(regions) > 1 else {})
            self._regions = regions if len(regions) > 1 else {}
        return size


class RegionView:
    """One monitor's part of the screen, with the face of a screen a Streamer can stream."""

    def __init__(self, layout: Layout, index: int) -> None:
        self._layout = layout
        self._index = index

    def _region(self) -> Region:
        region = self._layout.region(self._index)
        if region is None:
            display = self._layout.display
            return 0, 0, display.width, display.height
        return region

    @property
    def width(self) -> int:
        return self._region()[2]

    @property
    def height(self) -> int:
        return self._region()[3]

    def grab(self) -> NDArray[np.uint8]:
        region = self._layout.region(self._index)
        if region is None:
            return self._layout.display.grab()
        return self._layout.display.grab_region(*region)

    def resize(self, width: int, height: int) -> tuple[int, int]:
        """A single monitor follows its window; in a row, only a relayout sizes monitors."""
        with self._layout.lock:
            if self._layout.region(self._index) is None:
                return self._layout.display.resize(width, height)
        return self.width, self.height


class SessionMonitors:
    def __init__(
        self,
        links: dict[str, Link],
        write: Callable[[Log], None],
        fps: int,
        listen: Callable[[Streamer], None],
    ) -> None:
        self._links = links
        self._write = write
        self._fps = fps
        self._listen = listen  # a secondary's stream hears what is drawn, as the primary's
        self.layout: Layout | None = None
        self._decoders: dict[str, list[str] | None] = {}
        self._streams: dict[str, Streamer] = {}  # secondary connection id -> its stream
        self._offsets: dict[str, tuple[int, int]] = {}
        self._sizes: dict[str, tuple[int, int]] = {}  # what each window was last told
        self._relayouts = asyncio.Lock()

    def note_hello(self, cid: str, data: str | bytes) -> None:
        """Remember the decoders of a secondary window's hello, for its own stream."""
        try:
            hello = decode_from_terminal(data)
        except MessageError:
            return
        if hello["type"] == "hello" and hello.get("monitor"):
            decoders = hello.get("decoders")
            self._decoders[cid] = None if decoders is None else [str(d) for d in decoders]

    def view(self, display: Display) -> RegionView:
        """The primary's part of `display` (all of it until a secondary joins)."""
        if self.layout is None or self.layout.display is not display:
            self.layout = Layout(display)
        return RegionView(self.layout, 0)

    def place(self, cid: str, event: InputEvent) -> InputEvent:
        """A pointer position in a secondary window is one on the row's screen."""
        dx, dy = self._offsets.get(cid, (0, 0))
        if isinstance(event, PointerInput) and (dx or dy):
            return replace(event, x=event.x + dx, y=event.y + dy)
        return event

    def handle(self, cid: str, message: dict[str, Any]) -> bool:
        """A secondary window's stream messages; True when nothing else needs them."""
        streamer = self._streams.get(cid)
        if streamer is None:
            return False
        if message["type"] == "frame_ack":
            streamer.acked(message["frame"])
            link = self._links.get(cid)
            if link is not None:
                link.frame_acked()
            return True
        if message["type"] == "keyframe":
            streamer.keyframe(message.get("reason") or "asked")
            return True
        return False

    async def relayout(self, monitors: tuple[Monitor, ...], settings: SessionSettings) -> None:
        """Apply a new row in order; a failure is logged and the windows keep the last one."""
        async with self._relayouts:
            layout = self.layout
            if layout is None:
                return
            regions: dict[int, Region] = {}
            x = 0
            for monitor in monitors:
                width, height = fit_size(monitor.width, monitor.height, settings)
                regions[monitor.index] = (x, 0, width, height)
                x += width
            try:
                size = await asyncio.to_thread(layout.apply, regions)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                self._write(Log("display.layout", severity="error", attrs={"error": error}))
                return
            listed = [[m.index, *regions[m.index]] for m in monitors]
            self._write(
                Log(
                    "display.layout",
                    attrs={"width": size[0], "height": size[1], "monitors": listed},
                )
            )
            self._follow(monitors, regions, layout, settings)

    def _follow(
        self,
        monitors: tuple[Monitor, ...],
        regions: dict[int, Region],
        layout: Layout,
        settings: SessionSettings,
    ) -> None:
        owners = {m.connection_id: m.index for m in monitors if m.connection_id is not None}
        for cid in [c for c in self._streams if owners.get(c, 0) == 0]:
            self._streams.pop(cid).stop()
        self._offsets = {}
        for cid, index in owners.items():
            x, y, width, height = regions[index]
            if index:
                self._offsets[cid] = (x, y)
                self._stream(cid, index, layout, settings)
            if self._sizes.get(cid) != (width, height):
                self._sizes[cid] = (width, height)
                screen = {"type": "screen", "width": width, "height": height}
                link = self._links.get(cid)
                if link is not None:
                    link.send(encode({**screen, "monitor": index} if index else screen))
        for cid in [c for c in self._sizes if c not in owners]:
            del self._sizes[cid]

    def _stream(self, cid: str, index: int, layout: Layout, settings: SessionSettings) -> None:
        link = self._links.get(cid)
        if cid in self._streams or link is None or not link.wants_frames or self._fps <= 0:
            return
        callbacks = Callbacks(
            offer=lambda c, data: (lk := self._links.get(c)) is not None and lk.offer_frame(data),
            log=lambda event, c, attrs: self._write(
                Log(event, connection_id=c, attrs={**attrs, "monitor": index})
            ),
            result=lambda ok, error: None if ok else self._failed(cid, index, error),
            screen=lambda c, width, height: None,
        )
        streamer = Streamer(
            RegionView(layout, index),
            callbacks,
            self._fps,
            asyncio.get_running_loop(),
            lambda w, h: fit_size(w, h, settings),
            settings.x264_params,
        )
        streamer.follow(cid, self._decoders.pop(cid, None), None)
        self._listen(streamer)
        self._streams[cid] = streamer

    def _failed(self, cid: str, index: int, error: str) -> None:
        attrs = {"error": error, "monitor": index}
        self._write(Log("video.error", severity="warning", connection_id=cid, attrs=attrs))

    def stop(self) -> None:
        for streamer in self._streams.values():
            streamer.stop()
        self._streams.clear()
