"""A stream worker told of every change (the X DAMAGE extension) rests on a still screen and
looks at once when something is drawn: a real Streamer over a screen in memory, and a real
DamageWatch over a real Xvfb."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest
from numpy.typing import NDArray

from openfrp.media.damage import DamageWatch
from openfrp.media.streamer import Callbacks, Streamer
from openfrp.server.host import start_display
from openfrp.server.stream import SessionStream
from openfrp.settings import SessionSettings
from tests.e2e.harness import bounded

FPS = 30


class Screen:
    """A 64x64 screen whose picture is `value`, noting when it was grabbed."""

    width = height = 64

    def __init__(self) -> None:
        self.value = 0
        self.grabs: list[float] = []

    def grab(self) -> NDArray[np.uint8]:
        self.grabs.append(time.monotonic())
        return np.full((self.height, self.width, 4), self.value, np.uint8)

    def resize(self, width: int, height: int) -> tuple[int, int]:
        return self.width, self.height


def test_a_still_screen_rests_until_drawn_on_then_is_looked_at_at_once() -> None:
    screen = Screen()
    sent: list[float] = []
    out: dict[str, list[float]] = {}

    async def run() -> None:
        loop = asyncio.get_running_loop()
        streamer: Streamer

        def offer(cid: str, data: bytes) -> bool:
            sent.append(time.monotonic())
            loop.call_soon(streamer.acked, int.from_bytes(data[:4], "big"))
            return True

        callbacks = Callbacks(offer, lambda *_: None, lambda *_: None, lambda *_: None)
        streamer = Streamer(screen, callbacks, FPS, loop, lambda w, h: (w, h))
        streamer.follow("c1", ["rgb-zlib"], None)  # a still picture's keep-alive: 5 s
        try:
            await asyncio.sleep(0.5)
            streamer.damage_live(True)
            await asyncio.sleep(0.2)
            rested = len(screen.grabs)
            await asyncio.sleep(1.0)
            out["resting"] = [float(len(screen.grabs) - rested)]
            draws = []
            for value in (40, 80, 120):
                await asyncio.sleep(0.3)
                screen.value = value
                draws.append(time.monotonic())
                streamer.damaged()
            await asyncio.sleep(0.3)
            out["draws"], out["sent"] = draws, list(sent)
            streamer.damage_live(False)  # the watch is gone: back to the tick's pace
            await asyncio.sleep(0.1)
            ticking = len(screen.grabs)
            await asyncio.sleep(1.0)
            out["ticking"] = [float(len(screen.grabs) - ticking)]
        finally:
            streamer.stop()

    asyncio.run(run())
    assert out["resting"] == [0.0]  # a still screen, told of no change: not looked at
    for drawn in out["draws"]:
        shown = min(t for t in out["sent"] if t > drawn)
        assert shown - drawn < 0.02  # looked at and sent at once, not at the next tick
    assert out["ticking"][0] >= 0.7 * FPS


def test_a_video_drawn_after_a_look_that_found_nothing_is_looked_at_at_once() -> None:
    """Told of each picture of a 30 fps video, the worker looks at it at once even when the
    look before found nothing new (drawing that left no trace): paced from that look, each
    picture waited 23 ms."""
    screen = Screen()
    drawn: dict[int, float] = {}
    sent: dict[int, float] = {}

    async def run() -> None:
        loop = asyncio.get_running_loop()
        streamer: Streamer

        def offer(cid: str, data: bytes) -> bool:
            sent.setdefault(screen.value, time.monotonic())
            loop.call_soon(streamer.acked, int.from_bytes(data[:4], "big"))
            return True

        callbacks = Callbacks(offer, lambda *_: None, lambda *_: None, lambda *_: None)
        streamer = Streamer(screen, callbacks, FPS, loop, lambda w, h: (w, h))
        streamer.follow("c1", ["rgb-zlib"], None)
        streamer.damage_live(True)
        try:
            await asyncio.sleep(0.3)
            for value in range(1, 61):  # two seconds at 30 fps
                await asyncio.sleep(1 / FPS - 0.01)
                streamer.damaged()  # drawing that changed nothing
                await asyncio.sleep(0.01)
                screen.value = value
                drawn[value] = time.monotonic()
                streamer.damaged()
            await asyncio.sleep(0.2)
        finally:
            streamer.stop()

    asyncio.run(run())
    delays = sorted(sent[v] - drawn[v] for v in drawn if v in sent)
    assert len(delays) >= 57
    assert delays[len(delays) // 2] < 0.01, delays


@pytest.mark.skipif(shutil.which("Xvfb") is None or shutil.which("xsetroot") is None, reason="X")
def test_the_watch_hears_what_is_drawn_and_stops() -> None:
    async def run() -> tuple[list[bool], int, float]:
        display = await start_display("xvfb", SessionSettings(display_ready_timeout=10.0))
        damaged = threading.Event()
        live: list[bool] = []
        watch = DamageWatch(f":{display.number}", display.cookie, damaged.set, live.append)
        try:
            for _ in bounded(5.0):
                if live:
                    break
            damaged.clear()
            started = time.monotonic()
            await asyncio.to_thread(
                subprocess.run, ["xsetroot", "-solid", "#123456"], env=display.env, timeout=10
            )
            heard = await asyncio.to_thread(damaged.wait, 5.0)
            took = time.monotonic() - started
            watch.stop()
            for _ in bounded(5.0):
                if len(live) > 1:
                    break
            return live, heard, took
        finally:
            watch.stop()
            await display.stop()

    live, heard, took = asyncio.run(run())
    assert heard and took < 2.0  # xsetroot's start included
    assert live == [True, False]


def test_a_watch_of_no_display_never_says_it_is_live() -> None:
    live: list[bool] = []
    watch = DamageWatch(":999", "", lambda: None, live.append)
    watch.stop()
    time.sleep(0.3)
    assert True not in live


class Listener:
    def __init__(self) -> None:
        self.live: list[bool] = []

    def damaged(self) -> None:
        pass

    def damage_live(self, live: bool) -> None:
        self.live.append(live)


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb")
def test_a_new_watch_is_not_undone_by_the_last_word_of_the_one_it_replaced() -> None:
    async def run() -> list[bool]:
        display = await start_display("xvfb", SessionSettings(display_ready_timeout=10.0))
        stream = SessionStream({}, lambda log: None, lambda *args: None, FPS)
        listener = Listener()
        stream.listen(listener)
        try:
            for _ in range(2):  # a watch, then one that replaces it (a display restarted)
                stream.watch(f":{display.number}", display.cookie)
                for _ in bounded(5.0):
                    if listener.live[-1]:
                        break
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # the first watch's thread has ended by now
            before_stop = list(listener.live)
            stream.watch(None, "")
            return [*before_stop, *listener.live[len(before_stop) :]]
        finally:
            stream.watch(None, "")
            await display.stop()

    assert asyncio.run(run()) == [False, True, False, True, False]
