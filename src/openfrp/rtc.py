"""aiortc glue both peers share: the ICE configuration a session carries, the video codec,
the data channel's retransmission timer, a received frame's RTP timestamp.

The ICE servers are always passed explicitly: aiortc falls back to a public STUN server when
the list is empty, and a session must never send traffic anywhere its operator did not name.

aiortc's SCTP keeps RFC 4960's retransmission timer: 3 s before the first round trip is
known, never under 1 s after. A datagram lost on the data channel held everything behind it
(the palette tiles of FRP8, input, acknowledgements) for a second or more: under 5 % loss
the page stalled 2.3 s. Chromium's own SCTP (dcsctp) retransmits after 0.22 to 0.8 s, which
both peers take here (SCTP_RTO, seconds). The first timeout stays 1 s: the association's
set-up is given up after 8 of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiortc import RTCConfiguration, RTCRtpReceiver


SCTP_RTO = {"SCTP_RTO_INITIAL": 1.0, "SCTP_RTO_MIN": 0.22, "SCTP_RTO_MAX": 0.8}


def configuration(block: dict[str, Any]) -> RTCConfiguration:
    """The RTCConfiguration for a session's `frp8` block (ice_servers, ice_policy); the
    SCTP timer is set for every peer connection of the process from here on."""
    from aiortc import RTCConfiguration, RTCIceServer, rtcsctptransport
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

    for name, seconds in SCTP_RTO.items():
        setattr(rtcsctptransport, name, seconds)

    servers = [
        RTCIceServer(
            urls=server["urls"],
            username=server.get("username"),
            credential=server.get("credential"),
        )
        for server in block.get("ice_servers", [])
    ]
    policy = RTCIceTransportPolicy(block.get("ice_policy", "all"))
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)


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
