// The FRP8 display: the server's WebRTC video track, drawn by a <video> laid over the canvas
// with the smallest jitter buffer (a remote desktop wants the newest picture, not a smooth
// one). Pointer events go through it to the canvas, which maps them to the remote screen.
// window.OpenfrpTrack.state counts the frames drawn (requestVideoFrameCallback), their size
// and the codec WebRTC chose, for the stats and for tests.
//
// When the server sends the text beside the track as palette tiles on the control channel
// (media/track_tiles.py), the <video> goes under the canvas, at the picture's rectangle, and
// the canvas holds the palette tiles over it, clear where the video has the picture (video.js).
"use strict";

(() => {
  const state = { frames: 0, width: 0, height: 0, codec: null };
  let element = null;

  function videoElement() {
    if (element !== null) return element;
    element = document.createElement("video");
    element.id = "track";
    element.autoplay = true;
    element.muted = true;
    element.playsInline = true;
    element.style.cssText = "position: fixed; left: 0; top: 0; width: 100vw; height: 100vh;"
      + " object-fit: contain; background: #000; pointer-events: none;";
    document.getElementById("screen").after(element);
    const drawn = (now, meta) => {
      state.frames += 1;
      state.width = meta.width;
      state.height = meta.height;
      const stream = window.openfrpVideo;
      if (stream !== undefined && meta.rtpTimestamp !== undefined) {
        stream.trackFrame(meta.width, meta.height, meta.rtpTimestamp);
      }
      element.requestVideoFrameCallback(drawn);
    };
    element.requestVideoFrameCallback(drawn);
    return element;
  }

  async function chosenCodec(pc) {
    const report = await pc.getStats();
    for (const stats of report.values()) {
      if (stats.type === "inbound-rtp" && stats.kind === "video" && stats.codecId) {
        const codec = report.get(stats.codecId);
        if (codec) return codec.mimeType.split("/")[1].toLowerCase();
      }
    }
    return null;
  }

  // A video track arrived on `receiver` of `pc`: show it, with no playout delay.
  function show(track, receiver, pc) {
    receiver.playoutDelayHint = 0;  // Chromium's older name for it, in seconds
    if ("jitterBufferTarget" in receiver) receiver.jitterBufferTarget = 0;
    const video = videoElement();
    video.srcObject = new MediaStream([track]);
    video.play().catch(() => { /* autoplay of a muted video is allowed; a retry comes with the next track */ });
    const named = () => chosenCodec(pc).then((codec) => {
      state.codec = codec;
      if (codec === null && pc.connectionState !== "closed") setTimeout(named, 500);
    });
    track.onunmute = named;
    return state;
  }

  // The <video> goes under the canvas, which lays the palette tiles over it; the video fills
  // the rectangle `place` gives. False when there is no track (FRP7).
  function under() {
    if (element === null) return false;
    element.style.zIndex = "-1";
    element.style.objectFit = "fill";
    return true;
  }

  // The picture's rectangle in CSS pixels, where the video shows it.
  function place(x, y, width, height) {
    if (element === null) return;
    Object.assign(element.style, { left: `${x}px`, top: `${y}px`, width: `${width}px`,
                                   height: `${height}px` });
  }

  window.OpenfrpTrack = { show, state, under, place };
})();
