"""The video path of a link: what it queues and what it drops, with a transport that
writes only when the test lets it."""

from __future__ import annotations

import asyncio

from openfrp.server.links import MAX_FRAMES_IN_FLIGHT, Link


class Gate:
    """A transport whose sends wait until the test opens the gate."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.sent: list[str | bytes] = []

    async def send_text(self, data: str) -> None:
        await self.open.wait()
        self.sent.append(data)

    async def send_bytes(self, data: bytes) -> None:
        await self.open.wait()
        self.sent.append(data)

    async def close(self, code: int, reason: str) -> None:
        return None


async def _failed(cid: str, error: str) -> None:
    raise AssertionError(f"{cid}: {error}")


def test_a_capture_of_two_frames_after_unacknowledged_ones_is_queued_whole() -> None:
    async def run() -> None:
        gate = Gate()
        link = Link("c-1", gate, _failed)
        await asyncio.sleep(0)
        link.send('{"type": "ping"}')  # a control message waits behind the first frame
        offered = [link.offer_frame(b"frame %d" % n) for n in range(MAX_FRAMES_IN_FLIGHT + 1)]
        # The streamer captures while one picture is unacknowledged; both pictures' two
        # frames (H.264 after palette tiles) fit, one more does not.
        assert offered == [True] * MAX_FRAMES_IN_FLIGHT + [False]
        link.frame_acked()
        assert link.offer_frame(b"after an ack")
        gate.open.set()
        frames = [b"frame %d" % n for n in range(MAX_FRAMES_IN_FLIGHT)]
        for _ in range(1000):  # the writer's turns on the loop, bounded
            if len(gate.sent) == len(frames) + 2:
                break
            await asyncio.sleep(0)
        assert gate.sent == ['{"type": "ping"}', *frames, b"after an ack"]
        await link.close(4000, "done")

    asyncio.run(run())
