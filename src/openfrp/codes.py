"""The code table: the single source of truth for every openfrp code.

Each row carries the reference description verbatim plus what openfrp adds: a short name,
who is at fault, whether the terminal may reconnect after it, a message for the person in the
session and an action for the operator. Messages, docs and diagnosis rules are checked against
this table by tests, so nothing else may define a code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Any


class Kind(StrEnum):
    INFO = "Info"
    ERROR = "Error"


class Component(StrEnum):
    SERVER = "Server"
    TERMINAL = "Terminal"
    VARIABLE = "Variable"


class Fault(StrEnum):
    USER = "user"
    POLICY = "policy"
    NETWORK = "network"
    SERVER = "server"
    CONFIG = "config"


@dataclass(frozen=True)
class Code:
    number: int
    name: str
    kind: Kind
    component: Component
    frp: str
    description: str
    fault: Fault
    reconnect: bool
    message: str
    action: str
    warning: str = ""  # the advance notice, for codes announced before they happen
    refused: str = ""  # said instead when the server refused, not the network ({refusal})
    # What 4106 says when this code turned a resume away ({refusal}: this code and its name);
    # a refusing code without one gets 4106's `refused`.
    resume_refused: str = ""
    unreachable: str = ""  # said instead when every attempt found nothing listening

    def warning_text(self, seconds_left: int) -> str:
        """The advance notice with the time left: minutes from two minutes on, else seconds."""
        left = f"{(seconds_left + 30) // 60} min" if seconds_left >= 120 else f"{seconds_left} s"
        return self.warning.replace("{left}", left)

    def message_for(self, refusal: int | None = None, unreachable: bool = False) -> str:
        """The message; after the server refused with code `refusal` (4106 on a resume it
        turned away), the refusing code's own account of it, so nobody is sent to check a
        network that works or to resume a session that ended; `unreachable`: every attempt
        found nothing listening (the server is down), which no network check mends."""
        if refusal is not None and self.refused:
            row = BY_NUMBER.get(refusal)
            text = (row.resume_refused if row is not None else "") or self.refused
            return text.replace("{refusal}", f"{refusal} {row.name if row else 'unknown'}")
        if unreachable and self.unreachable:
            return self.unreachable
        return self.message

    @property
    def severity(self) -> str:
        """The event-log severity of this code: info for Info rows, error for Error rows."""
        return "info" if self.kind is Kind.INFO else "error"

    def cells(self) -> list[str]:
        """The row as the CLI and docs show it."""
        return [
            str(self.number),
            self.name,
            self.kind.value,
            self.component.value,
            self.frp,
            self.fault.value,
            "yes" if self.reconnect else "no",
            self.message,
        ]

    @property
    def frp_versions(self) -> tuple[int, ...]:
        return (7, 8) if self.frp == "FRP 7/8" else (8,)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        data["component"] = self.component.value
        data["fault"] = self.fault.value
        data["frp_versions"] = list(self.frp_versions)
        return data


_S, _T, _V = Component.SERVER, Component.TERMINAL, Component.VARIABLE
_I, _E = Kind.INFO, Kind.ERROR
_U, _P, _N, _SV, _C = Fault.USER, Fault.POLICY, Fault.NETWORK, Fault.SERVER, Fault.CONFIG
_78, _8 = "FRP 7/8", "FRP 8"

TABLE: tuple[Code, ...] = (
    Code(
        4000,
        "USER_CLOSED",
        _I,
        _S,
        _78,
        'User initiated close to the session. This occurs mostly through choosing "Close '
        'Session" in the gear menu.',
        _U,
        False,
        "You closed the session.",
        "None: the user ended the session on purpose.",
        resume_refused="Could not resume: the session was closed ({refusal}), in another tab or "
        "on another device, while this one was away. It is over; start a new session if you need "
        "one.",
    ),
    Code(
        4001,
        "SERVER_START_ERROR",
        _E,
        _S,
        _78,
        "An unknown critical error occurred on the server.",
        _SV,
        False,
        "The session could not be started because of a server error. Please start it again.",
        "Read the server event log for the exception logged with this session at start-up.",
        resume_refused="Could not resume: the session failed to start because of a server error "
        "({refusal}) and has ended; your network is not the cause. Please start a new session.",
    ),
    Code(
        4002,
        "CONFIG_MISMATCH",
        _E,
        _S,
        _78,
        "Connection rejected due to Unmatched Server and Terminal session configuration "
        "detected. Either the wrong data was sent from the Terminal, or the data was corrupted.",
        _C,
        False,
        "This terminal's session details do not match the server, or its link was revoked or "
        "has expired. Open the session link again, or ask for a new one.",
        "Check that terminal and server versions match and that the launch link was not "
        "altered; the event log names the mismatched field (a token expired or revoked: "
        "tokens.revoked names who revoked it).",
        resume_refused="Could not resume: the server did not accept this session's details "
        "({refusal}): its link may have been revoked or have expired, or this server does not "
        "have the session. Open the session link again, or ask for a new one.",
    ),
    Code(
        4003,
        "SEND_BUFFER_OVERFLOW",
        _E,
        _S,
        _78,
        "Server Send Buffer Overflow.",
        _N,
        True,
        "Your connection could not keep up with the session. Reconnecting may help.",
        "The terminal stopped reading: check its network bandwidth or a stalled client; "
        "raise send_buffer_limit only if the link is known to be slow.",
    ),
    Code(
        4004,
        "SERVER_CONTROL_ERROR",
        _E,
        _S,
        _78,
        "An unknown critical error occurred on the server.",
        _SV,
        False,
        "The session stopped because of a server error. Please start a new session.",
        "Read the server event log for the exception in the session control loop.",
        resume_refused="Could not resume: a server error ended the session while you were away "
        "({refusal}); the server may have restarted. Your network is not the cause. Please start "
        "a new session.",
    ),
    Code(
        4005,
        "SERVER_AUX_ERROR",
        _E,
        _S,
        _78,
        "Similar to 4004. An unknown critical error occurred on the server.",
        _SV,
        False,
        "The session stopped because of a server error. Please start a new session.",
        "Read the server event log for the exception in the auxiliary task it names.",
    ),
    Code(
        4006,
        "ALREADY_IN_SESSION",
        _I,
        _S,
        _78,
        "The end user is already in another session. This could be due to two tabs open on "
        "the same machine, or two machines sharing the same token owner (Identified email "
        "address).",
        _P,
        False,
        "Another tab or device of yours holds the live connection (or has just taken it over): "
        "only one may be connected at a time.",
        'Close the other tab or device, or set duplicate_policy = "takeover" to let the '
        "newest connection win.",
        resume_refused="Could not resume here: your session was opened in another tab or on "
        "another device ({refusal}) and goes on there. Use that one, or close it and resume here.",
    ),
    Code(
        4008,
        "MAX_SESSION_DURATION",
        _I,
        _S,
        _78,
        'Max session timeout reached. This setting is set in the "Session Settings" section '
        'of an account or in the "Session Settings" section of a launchpad\'s settings '
        "(Override the account settings).",
        _P,
        False,
        "The session reached its maximum length and has ended. Save your work next time "
        "when the warning appears.",
        "Raise max_session_duration for the account or launchpad if sessions need longer.",
        "Your session will end in {left}: it reaches its maximum length then. Save your work now.",
        resume_refused="Could not resume: the session reached its maximum length while you were "
        "away ({refusal}) and has ended. Please start a new session.",
    ),
    Code(
        4009,
        "IDLE_TIMEOUT",
        _I,
        _S,
        _78,
        "IDLE Connection timeout. This occurs when a disconnected session has not been "
        'reconnected within the allotted time specified in "Settings Settings" for an '
        "account or launchpad.",
        _P,
        False,
        "The session ended because it stayed disconnected too long. Please start a new session.",
        "Raise idle_timeout for the account or launchpad if users need longer to come back.",
        resume_refused="Could not resume: the session was ended for staying disconnected too long "
        "({refusal}): the outage outlasted the time the server waits for a terminal to come back "
        "(idle_timeout). It is over: please start a new session.",
    ),
    Code(
        4011,
        "VIDEO_STREAM_ERROR",
        _E,
        _S,
        _78,
        "Error occurred in the video stream of an active session. Please attempt to reconnect "
        "and contact Frame support if you continue to have problems.",
        _SV,
        True,
        "The session's video stopped working. Please reconnect; contact support if it "
        "happens again.",
        "Check the display and encoder on the host: the event log holds the capture or "
        "encode errors that preceded this code.",
    ),
    Code(
        4015,
        "GUEST_SHUTDOWN",
        _I,
        _S,
        _78,
        "The end user or a script shut down the VM (Windows and Linux).",
        _U,
        False,
        "The remote machine was shut down from inside the session.",
        "None if intended; otherwise find the script or user that ran the shutdown.",
        resume_refused="Could not resume: the remote machine was shut down from inside the "
        "session while you were away ({refusal}). The session is over.",
    ),
    Code(
        4018,
        "GUEST_LOGOFF",
        _I,
        _S,
        _78,
        "The end user or a script logged off from the VM (Windows and Linux).",
        _U,
        False,
        "You were logged off, or the application you were using has closed.",
        "None if intended; if the app exited on its own, check the app's own logs.",
        resume_refused="Could not resume: you were logged off, or the session's application "
        "closed, while you were away ({refusal}). The session is over.",
    ),
    Code(
        4019,
        "CLOSED_REMOTELY",
        _I,
        _S,
        _78,
        "The VM from which the session is running has been externally shutdown, or the "
        "session was closed remotely. This can occur from an Admin API, manual session close "
        "in the account dashboard, or through an expected Frame automation.",
        _P,
        False,
        "The session was closed by an administrator or by maintenance, or because its link "
        "was not opened in time.",
        "None if intended; the event log names who closed it (admin API, CLI or shutdown), or "
        "that nobody opened its link within open_timeout (link_ttl unless set).",
        resume_refused="Could not resume: the session was closed by an administrator or by "
        "maintenance while you were away ({refusal}). The session is over.",
    ),
    Code(
        4022,
        "PROFILE_MOUNT_FAILED",
        _E,
        _S,
        _78,
        "On a domain-joined instance, the end user's profile failed to mount.",
        _C,
        False,
        "Your user profile could not be loaded, so the session could not start.",
        "Check the launchpad's profile_mount_command and the storage it mounts; the event "
        "log holds its exit status or timeout.",
    ),
    Code(
        4023,
        "RECEIVE_TIMEOUTS",
        _E,
        _S,
        _78,
        "The server closed the connection due to too many registered receive timeouts.",
        _N,
        True,
        "The server stopped hearing from your device. Reconnecting...",
        "Look for packet loss or a black-holing firewall between terminal and server.",
    ),
    Code(
        4024,
        "RECEIVE_ERROR",
        _E,
        _S,
        _78,
        "The server registered an error in the receive thread.",
        _N,
        True,
        "The server received data it could not understand from your device.",
        "Check for a proxy that alters WebSocket traffic, or a terminal version mismatch.",
    ),
    Code(
        4025,
        "SEND_ERROR",
        _E,
        _S,
        _78,
        "The server registered an error in the send thread.",
        _N,
        True,
        "The server could not send data to your device. Reconnecting may help.",
        "Check the network path from server to terminal; the event log holds the send error.",
    ),
    Code(
        4026,
        "FRP8_ERROR",
        _E,
        _S,
        _8,
        "An unknown error occured in the FRP8 connection.",
        _SV,
        True,
        "The real-time connection failed because of a server error. Reconnecting may help.",
        "Read the server event log for the WebRTC exception; fall back to FRP7 if it repeats.",
    ),
    Code(
        4027,
        "DISPLAY_NOT_READY",
        _E,
        _S,
        _78,
        "The virtual display is not in the correct state during session start (Virtual "
        "display failed, or is not ready)",
        _SV,
        False,
        "The remote display did not start. Please try again in a moment.",
        "Check the host's display server (Xvfb) and display_ready_timeout.",
    ),
    Code(
        4028,
        "SECONDARY_DISPLAY_TIMEOUT",
        _E,
        _S,
        _78,
        "The session connection to the secondary monitor/display closed when not responding "
        "to a change request.",
        _N,
        True,
        "A secondary monitor stopped responding and was disconnected.",
        "Check the secondary monitor's client; raise display_change_timeout on slow links.",
    ),
    Code(
        4029,
        "CONNECTION_LOST",
        _E,
        _S,
        _78,
        "The session connection closed unexpectedly.",
        _N,
        True,
        "The connection closed unexpectedly. Reconnecting...",
        "Look for network drops, proxies or load balancers that cut idle connections.",
    ),
    Code(
        4101,
        "CONNECT_TIMEOUT",
        _E,
        _T,
        _78,
        "Terminal failed to connect to the server within the window of the allotted "
        "connection time (Connection Timeout).",
        _N,
        True,
        "Could not reach the session server in time. Check your network and try again.",
        "Check that the server is reachable from the user's network (firewall, DNS, proxy).",
    ),
    Code(
        4102,
        "CONNECTION_SEVERED",
        _E,
        _T,
        _78,
        "The connection between terminal and server appears to have been severed by the "
        "network connection.",
        _N,
        True,
        "Your connection to the session was lost. Reconnecting...",
        "Look for network drops between terminal and server at the time of the event.",
    ),
    Code(
        4103,
        "RECONNECTING",
        _I,
        _T,
        _78,
        "Terminal is attempting to reconnect after a disconnect",
        _N,
        True,
        "Reconnecting to your session...",
        "None unless it repeats: many reconnects point to an unstable network.",
    ),
    Code(
        4106,
        "RECONNECT_FAILED",
        _E,
        _T,
        _78,
        "Terminal failed to reconnect to a server after a disconnect",
        _N,
        False,
        "Could not reconnect to your session. It may still be waiting for you on the server "
        "(until its idle_timeout): check your network, then resume it (Resume, or open the "
        "session link again).",
        "Check the network path; if the server refused the resume, its log gives the reason; "
        "if nothing listened (attrs.all_refused), the server process is down.",
        refused="Could not resume: the server refused it because the session has ended "
        "({refusal}). Please start a new session.",
        unreachable="Could not reconnect: the session server did not accept the connection (it "
        "may be down or restarting). Try again in a minute (Resume, or open the session link "
        "again): if the server is back, it tells whether your session is still there.",
    ),
    Code(
        4107,
        "SIGNALING_PEER_TIMEOUT",
        _E,
        _T,
        _8,
        "Signaling Peer Timeout. The signaling server did not get the server peer ID within "
        "the allotted time.",
        _SV,
        True,
        "The session server did not answer the connection request in time.",
        "Check that the server's FRP8 peer is running and registered with signaling.",
    ),
    Code(
        4108,
        "ICE_DISCONNECTED",
        _E,
        _T,
        _8,
        "The WebRTC ICE connection has been disconnected.",
        _N,
        True,
        "The real-time connection was interrupted. Reconnecting...",
        "Look for UDP loss or a NAT binding timeout between terminal and server.",
    ),
    Code(
        5006,
        "ICE_FAILED",
        _E,
        _V,
        _8,
        "The WebRTC ICE connection failed due to network issues or a misconfiguration.",
        _N,
        True,
        "A direct connection could not be made. Your network may block the traffic needed.",
        "Allow UDP to the server or configure a TURN relay (TCP/TLS 443) for restricted networks.",
    ),
    Code(
        5007,
        "NEGOTIATION_TIMEOUT",
        _E,
        _V,
        _8,
        "The WebRTC negotiation process timed out.",
        _N,
        True,
        "Setting up the connection took too long. Please try again.",
        "Check signaling latency and negotiation_timeout.",
    ),
    Code(
        5008,
        "PEER_CONNECTION_FAILED",
        _E,
        _V,
        _8,
        "The WebRTC peer connection failed to connect.",
        _N,
        True,
        "The secure connection could not be completed. Please try again.",
        "Check for middleboxes that block DTLS/SCTP over UDP; try a TURN relay.",
    ),
    Code(
        5009,
        "STUN_UNREACHABLE",
        _E,
        _V,
        _8,
        "The STUN server could not be reached within the allotted time.",
        _C,
        True,
        "A network helper server could not be reached; the connection may still work.",
        "Check the STUN URL and that UDP to it is allowed (the probe.stun event has the detail).",
    ),
    Code(
        5010,
        "TURN_UNREACHABLE",
        _E,
        _V,
        _8,
        "The TURN server could not be reached within the allotted time.",
        _C,
        True,
        "The relay server could not be reached; restricted networks may fail to connect.",
        "Check the TURN URL, its credentials and that the port is open "
        "(the probe.turn event has the detail).",
    ),
    Code(
        5019,
        "STUN_TURN_UNREACHABLE",
        _E,
        _V,
        _8,
        "FRP8 could not connect to either the STUN or TURN server.",
        _C,
        True,
        "Neither network helper server could be reached. Your network may block them.",
        "Open UDP/TCP to the STUN and TURN servers or use FRP7 (WebSocket) for this network.",
    ),
)

BY_NUMBER: dict[int, Code] = {code.number: code for code in TABLE}
BY_NAME: dict[str, Code] = {code.name: code for code in TABLE}

# Every code's number as a typed constant, made from TABLE: `CodeNumber.IDLE_TIMEOUT` is 4009
# and compares, hashes, formats and serialises as that int. The numbers live only in TABLE; the
# type checker, which cannot read a generated class, gets the names below (tests/test_codes.py
# keeps them equal to TABLE's, in order).
if TYPE_CHECKING:

    class CodeNumber(IntEnum):
        USER_CLOSED = ...
        SERVER_START_ERROR = ...
        CONFIG_MISMATCH = ...
        SEND_BUFFER_OVERFLOW = ...
        SERVER_CONTROL_ERROR = ...
        SERVER_AUX_ERROR = ...
        ALREADY_IN_SESSION = ...
        MAX_SESSION_DURATION = ...
        IDLE_TIMEOUT = ...
        VIDEO_STREAM_ERROR = ...
        GUEST_SHUTDOWN = ...
        GUEST_LOGOFF = ...
        CLOSED_REMOTELY = ...
        PROFILE_MOUNT_FAILED = ...
        RECEIVE_TIMEOUTS = ...
        RECEIVE_ERROR = ...
        SEND_ERROR = ...
        FRP8_ERROR = ...
        DISPLAY_NOT_READY = ...
        SECONDARY_DISPLAY_TIMEOUT = ...
        CONNECTION_LOST = ...
        CONNECT_TIMEOUT = ...
        CONNECTION_SEVERED = ...
        RECONNECTING = ...
        RECONNECT_FAILED = ...
        SIGNALING_PEER_TIMEOUT = ...
        ICE_DISCONNECTED = ...
        ICE_FAILED = ...
        NEGOTIATION_TIMEOUT = ...
        PEER_CONNECTION_FAILED = ...
        STUN_UNREACHABLE = ...
        TURN_UNREACHABLE = ...
        STUN_TURN_UNREACHABLE = ...

else:
    CodeNumber = IntEnum(
        "CodeNumber", [(c.name, c.number) for c in TABLE], module=__name__, qualname="CodeNumber"
    )

WEBSOCKET_CODES: dict[int, str] = {
    1000: "Normal Closure",
    1001: "Going Away",
    1002: "Protocol Error",
    1003: "Unsupported Data",
    1004: "Reserved",
    1005: "No Status Received",
    1006: "Abnormal Closure",
    1007: "Invalid Frame Payload Data",
    1008: "Policy Violation",
    1009: "Message Too Big",
    1010: "Mandatory Extension",
    1011: "Internal Error",
    1012: "Service Restart",
    1013: "Try Again Later",
    1014: "Bad Gateway",
    1015: "TLS Handshake",
}


def code_range(number: int) -> str:
    """Name the range a number falls in, so unknown codes still say where they came from."""
    if 1000 <= number <= 2999:
        return "WebSocket standard"
    if 3000 <= number <= 3999:
        return "WebSocket registered (IANA)"
    if 4000 <= number <= 4099:
        return "server"
    if 4100 <= number <= 4199:
        return "terminal"
    if 4200 <= number <= 4999:
        return "WebSocket private (unassigned in openfrp)"
    if 5000 <= number <= 5999:
        return "variable"
    return "outside every known range"


def lookup(number: int) -> Code | None:
    return BY_NUMBER.get(number)


ENDED_SUFFIX = " (session ended)"


def ended_reason(number: int) -> str:
    """The close reason of a refusal because the session is over: the code's name, marked so
    a terminal stops at once even after a code that normally allows a reconnect (4003)."""
    row = BY_NUMBER.get(number)
    return (row.name if row is not None else str(number)) + ENDED_SUFFIX


def get(number: int) -> Code:
    """The row for a code that openfrp itself produces; a KeyError here is a programming bug."""
    return BY_NUMBER[number]


def describe(number: int, refusal: int | None = None, unreachable: bool = False) -> str:
    """One line for any number: the code's name and message (`Code.message_for`), or why it
    is unknown."""
    code = BY_NUMBER.get(number)
    if code is not None:
        return f"{code.number} {code.name}: {code.message_for(refusal, unreachable)}"
    where = code_range(number)
    if not where.endswith("range"):
        where += " range"
    ws_name = WEBSOCKET_CODES.get(number)
    named = f": WebSocket standard close code '{ws_name}'" if ws_name is not None else ""
    return f"{number} is not an openfrp code (unknown; {where}){named}"


def markdown(rows: tuple[Code, ...] | list[Code] = TABLE) -> str:
    """The table as Markdown: docs/codes.md is this text, and a test keeps it so."""
    lines = [
        "# openfrp codes",
        "",
        "Generated by `openfrp codes --markdown` from `src/openfrp/codes.py`; do not edit.",
        "",
        "| code | name | type | component | FRP | fault | reconnect | message | operator action |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in rows:
        cells = [*c.cells(), c.action]
        cells[1] = f"`{c.name}`"
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
