"""A window resized while its session is still starting: the stream starts at the new size,
not at the one the connection's hello asked for (the resize found no stream to apply it)."""

from __future__ import annotations

import json

from openfrp.server.stream import Hello, SessionStream

HELLO = {
    "type": "hello",
    "version": 1,
    "session_id": "s-1",
    "token": "t",
    "config": {},
    "config_digest": "d",
    "screen": {"width": 640, "height": 400, "scale": 1},
    "decoders": ["palette"],
}


def test_a_resize_before_the_stream_exists_is_the_size_it_starts_with() -> None:
    stream = SessionStream({}, lambda log: None, lambda *args: None, 30)
    stream.note_hello("c-1", json.dumps(HELLO))
    assert stream.hello_of("c-1") == Hello(["palette"], (640, 400), 1.0)
    assert stream.streamer is None  # the session is starting: no stream to resize
    resize = {"type": "resize", "width": 800, "height": 480, "scale": 2}
    assert not stream.handle("c-1", resize)
    assert stream.hello_of("c-1") == Hello(["palette"], (800, 480), 2.0)
    stream.handle("c-1", {"type": "resize", "width": 1024, "height": 768})  # no scale: kept
    assert stream.hello_of("c-1") == Hello(["palette"], (1024, 768), 2.0)
    # A secondary monitor's resize is its own; another connection's hello is untouched.
    stream.handle("c-1", {"type": "resize", "width": 320, "height": 200, "monitor": 1})
    stream.handle("c-2", {"type": "resize", "width": 320, "height": 200})
    assert stream.hello_of("c-1").size == (1024, 768) and stream.hello_of("c-2") == Hello()
