"""aiortc glue both peers share: the ICE configuration a session carries, the video codec,
the data channel's retransmission timer, a received frame's RTP timestamp.

The ICE servers are always passed explicitly: aiortc falls back to a public STUN server when
the list is empty, and a session must never send traffic anywhere its operator did not name.
Their URLs are parsed here alone (parse_server), for the settings, netcheck and both peers:
aiortc's own reading took turn://HOST:PORT as the host "//HOST" and dropped it unsaid.

aiortc's SCTP keeps RFC 4960's retransmission timer: 3 s before the first round trip is
known, never under 1 s after. A datagram lost on the data channel held everything behind it
(the palette tiles of FRP8, input, acknowledgements) for a second or more: under 5 % loss
the page stalled 2.3 s. Chromium's own SCTP (dcsctp) retransmits after 0.22 to 0.8 s, which
both peers take here (SCTP_RTO, seconds). The first timeout stays 1 s: the association's
set-up is given up after 8 of them.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiortc import RTCConfiguration, RTCRtpReceiver


SCTP_RTO = {"SCTP_RTO_INITIAL": 1.0, "SCTP_RTO_MIN": 0.22, "SCTP_RTO_MAX": 0.8}


@dataclass(frozen=True)
class Server:
    """A STUN or TURN server (RFC 7064/7065): stun:HOST[:PORT], turn:HOST[:PORT]
    [?transport=udp|tcp] or turns:HOST[:PORT] (TLS over TCP). One parser for the settings,
    netcheck and the peers' ICE configuration, so none of them takes what another refuses."""

    kind: str
    host: str
    port: int
    transport: str = "udp"
    secure: bool = False  # turns: the TURN server is reached over TLS

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.secure:
            return f"{self.kind}s:{host}:{self.port}"
        suffix = "?transport=tcp" if self.transport == "tcp" else ""
        return f"{self.kind}:{host}:{self.port}{suffix}"


# The schemes each kind takes, in any case. STUN over TLS (stuns:) is not taken: aiortc skips it.
SCHEMES = {"stun": ("stun",), "turn": ("turn", "turns")}
# A URI scheme (RFC 3986) before its colon, unless all that follows is a port: HOST:PORT.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(?!\d+$)")
# HOST[:PORT]: a host name or an IPv4 address, or an IPv6 one in brackets
_HOST_PORT = re.compile(
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._-]+))(?::(?P<port>\d+))?"
)


def parse_server(kind: str, text: str, *, bare: bool = True) -> Server:
    """Parse a `kind` ("stun" or "turn") server address strictly, so a slip (turn://, http:,
    turn: for STUN) is refused where it is written rather than reaching a resolver as a name.
    `bare` also takes HOST:PORT (netcheck's options). ValueError names the right form."""
    form = f"{kind}:HOST[:PORT]"
    if kind == "turn":
        form += "[?transport=udp|tcp] or turns:HOST[:PORT]"
    rest, _, query = text.partition("?")
    found = _SCHEME.match(rest)
    if found is None and not bare:
        raise ValueError(f"{text!r}: write {form}")
    scheme, rest = (found.group(1).lower(), rest[found.end() :]) if found else (kind, rest)
    if rest.startswith("//") and scheme in SCHEMES[kind]:
        raise ValueError(f"{text!r}: write {scheme}:HOST:PORT (no //)")
    if scheme == "stuns":
        raise ValueError(f"{text!r}: STUN over TLS is not used (aiortc skips it); write {form}")
    if scheme not in SCHEMES[kind]:
        raise ValueError(f"{text!r}: {scheme}: is not a {kind} scheme; write {form}")
    secure = scheme == "turns"
    transport = "tcp" if secure else "udp"
    if query:
        if query not in ("transport=udp", "transport=tcp") or kind != "turn":
            raise ValueError(f"{text!r}: only turn: addresses take ?transport=udp|tcp")
        transport = query.split("=", 1)[1]
        if secure and transport == "udp":
            raise ValueError(f"{text!r}: turns: runs over TLS on TCP; write {form}")
    address = _host_port(rest, 5349 if secure else 3478)
    if address is None or not 0 < address[1] < 65536:
        raise ValueError(f"{text!r}: write {form}")
    return Server(kind, *address, transport, secure)


def _host_port(text: str, default: int) -> tuple[str, int] | None:
    """HOST[:PORT], HOST a name, an IPv4 address or a bracketed IPv6 one; None if not."""
    found = _HOST_PORT.fullmatch(text)
    if found is None or (found["v6"] is not None and not _ipv6(found["v6"])):
        return None
    return found["v6"] or found["name"], int(found["port"]) if found["port"] else default


def _ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def configuration(block: dict[str, Any]) -> RTCConfiguration:
    """The RTCConfiguration for a session's `frp8` block (ice_servers, ice_policy); the
    SCTP timer is set for every peer connection of the process from here on."""
    from aiortc import RTCConfiguration, RTCIceServer, rtcsctptransport
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

    for name, seconds in SCTP_RTO.items():
        setattr(rtcsctptransport, name, seconds)

    servers = [
        RTCIceServer(
            urls=urls,
            username=server.get("username"),
            credential=server.get("credential"),
        )
        for server in block.get("ice_servers", [])
        if (urls := aiortc_urls(server.get("urls", [])))
    ]
    policy = RTCIceTransportPolicy(block.get("ice_policy", "all"))
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)


def aiortc_urls(urls: list[str] | str) -> list[str]:
    """The URLs as aiortc reads them, parsed as the settings and netcheck parse them (scheme
    in lower case, port given): aiortc would raise on one it cannot read and resolve
    turn://HOST as the name "//HOST". One that does not parse, or that aiortc cannot take (an
    IPv6 literal), is left out here: the terminal's probes report it (5009, 5010)."""
    kept = []
    for url in [urls] if isinstance(urls, str) else map(str, urls):
        try:
            kind = "turn" if url.lower().startswith("turn") else "stun"
            server = parse_server(kind, url, bare=False)
        except ValueError:
            continue
        if ":" not in server.host:
            kept.append(str(server))
    return kept


def video_codec(sdp: str) -> str | None:
    """The codec an answer chose for the video track ("vp8", "h264"), or None without one."""
    from aiortc.sdp import SessionDescription

    for media in SessionDescription.parse(sdp).media:
        if media.kind == "video" and media.rtp.codecs and media.direction != "inactive":
            return str(media.rtp.codecs[0].mimeType.split("/")[1].lower())
    return None


def rtp_timestamp(receiver: RTCRtpReceiver, pts: int | None) -> int | None:
    """The RTP timestamp of a frame `receiver` decoded, which FRP8's CODEC_TRACK frames name.
    aiortc gives a decoded frame its timestamp less that of the first frame received (pts)
    and keeps that origin in the receiver's timestamp mapper. None when it is not known."""
    mapper = getattr(receiver, "_RTCRtpReceiver__timestamp_mapper", None)
    origin = getattr(mapper, "_origin", None)
    if not isinstance(origin, int) or pts is None:
        return None
    return (origin + pts) & 0xFFFFFFFF
