"""aiortc glue both peers share: the ICE configuration a session carries, the video codec.

The ICE servers are always passed explicitly: aiortc falls back to a public STUN server when
the list is empty, and a session must never send traffic anywhere its operator did not name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiortc import RTCConfiguration


def configuration(block: dict[str, Any]) -> RTCConfiguration:
    """The RTCConfiguration for a session's `frp8` block (ice_servers, ice_policy)."""
    from aiortc import RTCConfiguration, RTCIceServer
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

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
