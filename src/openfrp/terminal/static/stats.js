// The stream as the person experiences it: frames drawn per second, Mbit/s received, the
// round-trip time of the control channel's ping/pong, frames dropped. Shown in an overlay on
// demand (refreshed each second) and written as a `stats` terminal event every 10 s and at the
// end, with the attributes the Python terminal uses (fps, mbit_s, frames, frames_dropped,
// codec, width, height) plus rtt_ms.
"use strict";

const STATS_EVERY_MS = 10000;  // window.openfrpStatsEveryMs, set before the page runs, overrides
const OVERLAY_EVERY_MS = 1000;
const PINGS_KEPT = 16;
const TRACK_POLL_MS = 500;

class StreamStats {
  // overlay: the element to fill; describe() -> {codec, width, height}; log(event, attrs).
  constructor(overlay, describe, log) {
    this.overlay = overlay;
    this.describe = describe;
    this.log = log;
    this.total = { frames: 0, bytes: 0, dropped: 0 };
    this.period = this.mark();  // since the last stats event
    this.second = this.mark();  // since the last overlay refresh
    this.rttMs = null;
    this.pings = new Map();  // ping id -> when it was sent
    this.reporting = null;
    this.refreshing = null;
  }

  mark() { return { at: performance.now(), ...this.total }; }

  // FRP8: the display's video track (track.js) counts as the stream: its frames drawn from
  // `state`, its bytes and losses from the peer connection's statistics, twice a second.
  watchTrack(state, pc) {
    const seen = { frames: state.frames, bytes: 0, dropped: 0, named: false };
    const poll = async () => {
      if (pc.connectionState === "closed") return;
      this.total.frames += state.frames - seen.frames;
      seen.frames = state.frames;
      if (state.codec !== null && !seen.named) {
        seen.named = true;
        this.log("stream.decoder", { codec: state.codec, track: true });
      }
      for (const r of (await pc.getStats()).values()) {
        if (r.type !== "inbound-rtp" || r.kind !== "video") continue;
        this.total.bytes += r.bytesReceived - seen.bytes;
        this.total.dropped += (r.framesDropped || 0) - seen.dropped;
        seen.bytes = r.bytesReceived;
        seen.dropped = r.framesDropped || 0;
      }
      setTimeout(poll, TRACK_POLL_MS);
    };
    poll();
  }

  received(bytes) { this.total.bytes += bytes; }
  drawn() { this.total.frames += 1; }
  dropped() { this.total.dropped += 1; }

  // Every control message the page sends and receives passes here, for the ping's RTT.
  sent(message) {
    if (message.type !== "ping") return;
    this.pings.set(message.id, performance.now());
    if (this.pings.size > PINGS_KEPT) this.pings.delete(this.pings.keys().next().value);
  }

  control(message) {
    if (message.type !== "pong" || !this.pings.has(message.id)) return;
    this.rttMs = Math.round(performance.now() - this.pings.get(message.id));
    this.pings.delete(message.id);
  }

  // The figures since `from`.
  since(from) {
    const seconds = Math.max(performance.now() - from.at, 1) / 1000;
    const frames = this.total.frames - from.frames;
    const picture = this.describe();
    return {
      fps: Math.round(frames / seconds * 100) / 100,
      mbit_s: Math.round((this.total.bytes - from.bytes) * 8 / seconds / 1e3) / 1e3,
      frames, frames_dropped: this.total.dropped - from.dropped, rtt_ms: this.rttMs,
      codec: picture.codec, width: picture.width, height: picture.height,
    };
  }

  start() {
    if (this.reporting !== null) return;
    this.period = this.mark();
    this.reporting = setInterval(() => this.report(false),
                                 window.openfrpStatsEveryMs || STATS_EVERY_MS);
  }

  // The period's figures as an event; `last` for the session's (or page's) end.
  report(last) {
    const attrs = this.since(this.period);
    this.period = this.mark();
    this.log("stats", last ? { ...attrs, final: true } : attrs);
    if (last) {
      clearInterval(this.reporting);
      this.reporting = null;
    }
  }

  get shown() { return !this.overlay.hidden; }

  toggle(on = !this.shown) {
    this.overlay.hidden = !on;
    clearInterval(this.refreshing);
    this.refreshing = null;
    if (!on) return on;
    this.second = this.mark();
    this.paint(this.since(this.second));
    this.refreshing = setInterval(() => {
      const figures = this.since(this.second);
      this.second = this.mark();
      this.paint(figures);
    }, OVERLAY_EVERY_MS);
    return on;
  }

  paint(s) {
    const rtt = s.rtt_ms === null ? "–" : `${s.rtt_ms} ms`;
    const size = s.width ? `${s.width}x${s.height}` : "–";
    this.overlay.textContent = [
      `${s.fps.toFixed(1)} fps`, `${s.mbit_s.toFixed(2)} Mbit/s`, `RTT ${rtt}`,
      `${s.codec || "no video"} ${size}`, `dropped ${this.total.dropped}`,
    ].join("\n");
    this.overlay.dataset.fps = String(s.fps);
  }
}

window.StreamStats = StreamStats;
