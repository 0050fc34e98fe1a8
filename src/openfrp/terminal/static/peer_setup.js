// One FRP8 connection attempt's setup, as openfrp.protocol.peer_setup times it on the Python
// side: signaling -> gathering -> negotiating -> connecting -> open, each phase under its own
// timer from the session settings (4107, 5006 for gathering, 5007, then 5006 for ICE or 5008
// for DTLS/SCTP after ICE), all inside the terminal's setup budget (setupBudgetMs).
// I/O-free like connection.js: the page feeds it states and times in milliseconds.
"use strict";

const ICE_UP = ["connected", "completed"];
const PHASE_TIMEOUT = {
  signaling: "signaling_peer_timeout",
  gathering: "ice_failed_after",
  negotiating: "negotiation_timeout",
  connecting: "ice_failed_after",
};

const FALLBACK_RESERVE_MS = 2000;

// connect_timeout less a reserve in which the hello, or the fallback to FRP7, fits.
function setupBudgetMs(settings) {
  const window = Math.round(settings.connect_timeout * 1000);
  return window - Math.min(FALLBACK_RESERVE_MS, Math.floor(window / 4));
}

class PeerSetup {
  constructor(settings, now, phase = "signaling", budgetMs = null) {
    this.s = settings;
    this.phase = "signaling";
    this.beganAt = now;
    this.endsBy = budgetMs === null ? null : now + budgetMs;
    this.iceUpAt = null;
    this.iceStates = [];
    this.candidates = {};
    this.deadline = null;
    this.enter(phase, now);
  }

  nextDeadline() { return this.deadline; }

  peerFound(now) { if (this.phase === "signaling") this.enter("gathering", now); }

  // The offer, with its candidates (count per type: host, srflx, relay), goes out.
  gathered(candidates, now) {
    if (this.phase !== "gathering") return;
    this.candidates = { ...candidates };
    this.enter("negotiating", now);
  }

  answered(now) { if (this.phase === "negotiating") this.enter("connecting", now); }

  iceState(state, now) {
    this.iceStates.push(state);
    if (this.phase !== "connecting") return null;
    if (ICE_UP.includes(state) && this.iceUpAt === null) this.iceUpAt = now;
    if (state === "failed") return this.fail(5006, "ice.failed", now, "ICE reported failed");
    return null;
  }

  connectionState(state, now) {
    if (this.phase !== "connecting" || state !== "failed") return null;
    if (this.iceUpAt === null) {
      return this.fail(5006, "ice.failed", now, "peer connection failed before ICE");
    }
    return this.fail(5008, "peer.failed", now, "peer connection failed after ICE");
  }

  channelOpen(now) {
    this.phase = "open";
    this.deadline = null;
    return now - this.beganAt;
  }

  tick(now) {
    if (this.deadline === null || now < this.deadline) return null;
    const budget = this.endsBy !== null && now >= this.endsBy
      ? { setup_budget_s: (this.endsBy - this.beganAt) / 1000 } : {};
    if (this.phase === "signaling") {
      return this.fail(4107, "signaling.timeout", now, "no server peer id from signaling",
                       { signaling_peer_timeout_s: this.s.signaling_peer_timeout, ...budget });
    }
    if (this.phase === "gathering") {
      return this.fail(5006, "ice.failed", now, "gathering ICE candidates did not finish",
                       { ice_failed_after_s: this.s.ice_failed_after, ...budget });
    }
    if (this.phase === "negotiating") {
      return this.fail(5007, "negotiation.timeout", now, "no answer to the offer",
                       { negotiation_timeout_s: this.s.negotiation_timeout, ...budget });
    }
    if (this.iceUpAt === null) {
      return this.fail(5006, "ice.failed", now, "no candidate pair worked",
                       { ice_failed_after_s: this.s.ice_failed_after, ...budget });
    }
    return this.fail(5008, "peer.failed", now, "ICE connected but the secure channel did not open",
                     { ice_failed_after_s: this.s.ice_failed_after, ...budget });
  }

  enter(phase, now) {
    this.phase = phase;
    this.deadline = now + Math.round(this.s[PHASE_TIMEOUT[phase]] * 1000);
    if (this.endsBy !== null) this.deadline = Math.min(this.deadline, this.endsBy);
  }

  fail(code, event, now, reason, extra = {}) {
    const phase = this.phase;
    this.phase = "failed";
    this.deadline = null;
    const attrs = { phase, reason, elapsed_ms: now - this.beganAt,
                    ice_states: this.iceStates.slice(-6), candidates: this.candidates, ...extra };
    return { code, event, attrs };
  }
}

// What the ICE servers did during gathering, as openfrp.netcheck.verdict words it: each
// result {kind: "stun" | "turn", server, ok, detail} becomes a probe.* event; a failed STUN is
// 5009, a failed TURN 5010, both with no server answering at all 5019 (a relay allocated over
// TCP while UDP is dropped is a way through). The browser cannot send its own probes, so its
// results come from gathering: a candidate from a server, or an icecandidateerror naming it.
function iceVerdict(results) {
  const logs = [];
  const failed = new Set();
  const passed = new Set();
  for (const r of results) {
    const attrs = { server: r.server };
    if (!r.ok) {
      attrs.error = r.detail;
      failed.add(r.kind);
    } else {
      passed.add(r.kind);
    }
    logs.push({ type: "log", event: `probe.${r.kind}`, code: r.ok ? null : PROBE_CODES[r.kind],
                severity: r.ok ? "info" : "error", attrs });
  }
  if (failed.size === 2 && passed.size === 0) {
    logs.push({ type: "log", event: "probe.failed", code: 5019, severity: "error", attrs: {} });
    return { code: 5019, logs };
  }
  // A kind none of whose servers answered names the check, TURN first (the relay is what a
  // restricted network needs).
  const rank = (kind) => (passed.has(kind) ? 2 : 0) + (kind === "turn" ? 0 : 1);
  const ranked = [...failed].sort((a, b) => rank(a) - rank(b));
  return { code: ranked.length ? PROBE_CODES[ranked[0]] : null, logs };
}

const PROBE_CODES = { stun: 5009, turn: 5010 };

// As openfrp.netcheck.verdict.NO_RELAY: a STUN server unanswered, no TURN server to fall back on.
const NO_RELAY = "where UDP does not pass, FRP8 has no relay to go through: set server.turn_url "
  + "(turn:HOST:PORT?transport=tcp or turns:HOST:443) or use FRP7 (WebSocket)";

// The lines shown under the verdict code's own message, as openfrp.netcheck.verdict
// failure_lines words them: each failed server and why, then the next step (codes: the table).
function iceLines(results, code, codes) {
  const lines = results.filter((r) => !r.ok)
    .map((r) => `${r.kind.toUpperCase()} ${r.server} failed: ${r.detail}`);
  const stunFailed = results.some((r) => r.kind === "stun" && !r.ok);
  const noRelay = stunFailed && !results.some((r) => r.kind === "turn");
  return [...lines, `next step: ${noRelay ? NO_RELAY : codes[code].action}`];
}

if (typeof module !== "undefined") {
  module.exports = { PeerSetup, iceLines, iceVerdict, setupBudgetMs };
}
