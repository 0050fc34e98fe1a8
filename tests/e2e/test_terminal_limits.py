"""The Python terminal's commands against a real server (synthetic display): what the protocol
cannot carry is said and never sent (the server closed with 4024 on it), a long scroll goes as
several messages, and a `size` the session fits to its limits (in the shape asked) says the size
it gave."""

from __future__ import annotations

from tests.e2e.conftest import E2E


def test_out_of_range_input_and_sizes_are_said_and_the_connection_stays(e2e: E2E) -> None:
    server = e2e.server(launchpads={"pad": {"idle_timeout": 30.0}})
    ticket = server.launch("alice", "pad")
    terminal = e2e.connected(server, ticket)
    server.log.wait_event(event="stream.codec", session_id=ticket["session_id"])  # it answers
    for line in (
        "move 99999 1",
        "scroll 200",
        "size 10x10",
        "size 99999x99999",
        "size 2880x1800",
        "size 640x480",
        "scroll -65",
        "stats",
    ):
        terminal.send(line)
    said = [
        terminal.wait_line(pattern).string
        for pattern in (
            r"^move: coordinate 99999 out of range \(-32767 to 32767\) \(use: ",
            r"^size 10x10: the session's screen is 320x200 \(its smallest\)$",
            # in the shape asked, scaled by one factor (it was cut on each side alone)
            r"^size 99999x99999: the session's screen is 1080x1080 \(its largest\)$",
            r"^size 2880x1800: the session's screen is 1728x1080 \(its largest\)$",
            r"^video: ",  # after every command before it
        )
    ]
    assert [terminal.lines.index(line) for line in said] == sorted(
        terminal.lines.index(line) for line in said
    )
    assert terminal.count(r"^size 640x480") == 0
    assert terminal.count(r"RECEIVE_ERROR|^\[41") == 0  # no 4024, no reconnect
    assert len(server.log.find(event="connection.closed", session_id=ticket["session_id"])) == 0
    terminal.send("close")
    assert terminal.wait_exit(10) == 0
