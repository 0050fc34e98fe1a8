// The browser terminal's connection state machine: the same rules as the Python terminal's
// openfrp.protocol.terminal_connection, kept I/O-free (no sockets, no timers, no clock reads)
// so the page can drive it and a test can feed it times in milliseconds.
//
// idle -> connecting -> established -> (lost -> waiting -> connecting)* -> done(code), and
// done(4106) -> connecting when the person asks to resume a session the server did not end.
// Inputs return a list of actions: {type: "connect" | "transmit" | "hangup" | "show" |
// "receive" | "finished" | "ship" | "log", ...}.
"use strict";

class Deadlines {
  constructor() { this.at = new Map(); }
  set(name, when) { this.at.set(name, when); }
  cancel(name) { this.at.delete(name); }
  clear() { this.at.clear(); }
  next() { return this.at.size ? Math.min(...this.at.values()) : null; }
  popDue(now) {
    const due = [...this.at.entries()].filter(([, t]) => t <= now)
      .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [name] of due) this.at.delete(name);
    return due.map(([name]) => name);
  }
}

const SERVER_MESSAGES = {
  welcome: { session_id: "string", connection_id: "string", resume: "boolean", state: "string",
             last_seq: "number" },
  started: {}, ping: { id: "number" }, pong: { id: "number" },
  msg: { seq: "number", body: "object" },
  warning: { code: "number", seconds_left: "number" },
  display_change: { change_id: "number" },
  screen: { width: "number", height: "number", monitor: "number?" },
  cursor: { width: "number", height: "number", xhot: "number", yhot: "number", png: "string" },
  close: { code: "number", reason: "string?" },
  clipboard: { text: "string" },
  clipboard_refused: { direction: "string", bytes: "number", reason: "string" },
  file_offer: { id: "string", name: "string", size: "number" },
  file_chunk: { id: "string", offset: "number", data: "string" },
  file_end: { id: "string" },
  file_ack: { id: "string", offset: "number" },
  file_status: { id: "string", state: "string", name: "string?", reason: "string?" },
};

const MAX_MESSAGE_BYTES = 256 * 1024;
// The close reason's mark of a refusal because the session is over (openfrp.codes.ENDED_SUFFIX).
const ENDED_SUFFIX = " (session ended)";
const ALREADY_IN_SESSION = 4006;

// A size as a person reads it, as openfrp.sizes.size_text words it: 64 KiB, 99.9 MiB (a
// tenth cut short, never rounded up to a limit), 1.5 GiB; under 1 KiB in bytes.
const SIZE_UNITS = ["KiB", "MiB", "GiB", "TiB"];
function sizeText(count) {
  if (count < 1024) return count === 1 ? "1 byte" : `${count} bytes`;
  let power = 1;
  while (power < SIZE_UNITS.length && count >= 1024 ** (power + 1)) power += 1;
  const scale = 1024 ** power;
  const [whole, rest] = [Math.floor(count / scale), count % scale];
  const unit = SIZE_UNITS[power - 1];
  return rest ? `${whole}.${Math.floor((rest * 10) / scale)} ${unit}` : `${whole} ${unit}`;
}

// The same checks, in the same order and words, as openfrp.protocol.messages.decode.
function decodeFromServer(text) {
  if (text.length > MAX_MESSAGE_BYTES) {
    throw new Error(`message of ${sizeText(text.length)} exceeds ${sizeText(MAX_MESSAGE_BYTES)}`);
  }
  let message;
  try { message = JSON.parse(text); } catch (err) { throw new Error("not JSON"); }
  if (message === null || typeof message !== "object" || Array.isArray(message)) {
    throw new Error("message is not a JSON object");
  }
  if (typeof message.type !== "string") throw new Error("message has no string 'type'");
  const fields = SERVER_MESSAGES[message.type];
  if (fields === undefined) {
    throw new Error(`unknown message type '${message.type.slice(0, 40)}'`);
  }
  for (const [name, kind] of Object.entries(fields)) {
    const optional = kind.endsWith("?");
    const want = optional ? kind.slice(0, -1) : kind;
    if (!(name in message)) {
      if (optional) continue;
      throw new Error(`${message.type}: missing field '${name}'`);
    }
    const value = message[name];
    const ok = want === "number" ? Number.isInteger(value)
      : want === "object" ? value !== null && typeof value === "object" && !Array.isArray(value)
        : typeof value === want;
    if (!ok) throw new Error(`${message.type}: field '${name}' has the wrong type`);
  }
  const extra = Object.keys(message).filter((k) => k !== "type" && !(k in fields)).sort();
  if (extra.length) {
    throw new Error(`${message.type}: unexpected field(s) ${extra.join(", ").slice(0, 80)}`);
  }
  return message;
}

// A code's message, as openfrp.codes.Code.message_for words it: after the server refused
// with code `refusal` (4106 on a resume it turned away), the refusing code's own account of
// it; `unreachable`: every attempt found nothing listening (the server is down).
function messageFor(row, refusal = null, codes = {}, unreachable = false) {
  if (refusal !== null && row.refused) {
    const by = codes[refusal];
    const text = (by && by.resume_refused) || row.refused;
    return text.replace("{refusal}", `${refusal} ${by ? by.name : "unknown"}`);
  }
  if (unreachable && row.unreachable) return row.unreachable;
  return row.message;
}

// A code's pop-up text, as openfrp.protocol.terminal_connection.show words it.
function popupText(row, refusal = null, codes = {}, unreachable = false) {
  return `[${row.number} ${row.name}] ${messageFor(row, refusal, codes, unreachable)}`;
}

class Connection {
  // ticket: {session_id, token, config, config_digest, client}; settings in seconds, as in
  // the session configuration's "terminal" table; codes: number -> {name, kind, message,
  // reconnect}.
  constructor(ticket, settings, codes, version) {
    this.ticket = ticket;
    this.s = settings;
    this.codes = codes;
    this.version = version;
    this.state = "idle";
    this.deadlines = new Deadlines();
    this.connectionId = null;
    this.previousConnectionId = null;
    this.lastSeq = 0;
    this.attempt = 0;
    this.lostAt = null;
    this.attemptStartedAt = 0;
    this.finalCode = null;
    this.refusal = null;  // the server's code that turned a resume away
    this.unreachable = false;  // gave up with every attempt refused by the TCP connect
    this.round = 1;  // rounds of reconnect attempts: the person may ask for another
    this.onlyRefused = true;  // every attempt of this round found nothing listening
    this.lastError = null;
    this.pingId = 0;
    this.useTransport((ticket.config || {}).frp === 8 ? 8 : 7);
  }

  // FRP8 watches its path with a data-channel heartbeat quick enough for 4108 within
  // ice_disconnected_after; FRP7 relies on the server's heartbeats and keepalive_timeout.
  useTransport(frp) {
    this.frp = frp;
    if (frp === 8) {
      this.keepaliveMs = this.ms(this.s.ice_disconnected_after);
      this.heartbeatMs = Math.min(this.ms(this.s.heartbeat_interval),
                                  Math.floor(this.keepaliveMs / 3));
      this.lostCode = 4108;
      this.lostEvent = "ice.disconnected";
    } else {
      this.keepaliveMs = this.ms(this.s.keepalive_timeout);
      this.heartbeatMs = this.ms(this.s.heartbeat_interval);
      this.lostCode = 4102;
      this.lostEvent = "connection.lost";
    }
  }

  ms(seconds) { return Math.round(seconds * 1000); }
  nextDeadline() { return this.deadlines.next(); }

  // Gave up (4106) without the server saying the session ended: it may still wait for this
  // terminal (until idle_timeout), so the person is offered another round.
  get mayResume() {
    return this.finalCode === 4106 && (this.refusal === null
                                       || this.refusal === ALREADY_IN_SESSION);
  }

  show(code) {
    const row = this.codes[code];
    return { type: "show", code, level: row.kind === "Info" ? "info" : "error",
             text: popupText(row, this.refusal, this.codes, this.unreachable) };
  }

  // The advance notice of a code (4008): when it will happen, not that it has.
  showWarning(code, secondsLeft) {
    const row = this.codes[code];
    const left = secondsLeft >= 120 ? `${Math.floor((secondsLeft + 30) / 60)} min`
      : `${secondsLeft} s`;
    const text = row.warning ? row.warning.replace("{left}", left) : row.message;
    return { type: "show", code, level: "warning", text: `[${row.number} ${row.name}] ${text}` };
  }

  log(event, extra = {}) {
    return { type: "log", event, code: null, severity: "info", attrs: {}, ...extra };
  }

  // -- inputs ---------------------------------------------------------------------------

  start(now) {
    this.deadlines.set("connect_window", now + this.ms(this.s.connect_timeout));
    return this.connect(now);
  }

  transportOpened(now) {
    if (this.state !== "connecting") return [];
    const hello = {
      type: "hello", version: this.version, session_id: this.ticket.session_id,
      token: this.ticket.token, config: this.ticket.config,
      config_digest: this.ticket.config_digest, client: this.ticket.client,
      resume: this.lostAt !== null, last_seq: this.lastSeq,
    };
    if (this.connectionId !== null) hello.previous_connection_id = this.connectionId;
    if (this.ticket.monitor) hello.monitor = this.ticket.monitor;
    return [{ type: "transmit", message: hello }];
  }

  // refused: nothing listened there (TCP refused), so the server, not the path, is down.
  transportFailed(error, now, refused = false) {
    if (this.state !== "connecting") return [];
    return this.attemptFailed(now, { error }, refused);
  }

  receive(data, now) {
    if (!["connecting", "established", "closing"].includes(this.state)) return [];
    this.deadlines.set("keepalive", now + this.keepaliveMs);
    if (typeof data !== "string") return [];
    let message;
    try {
      message = decodeFromServer(data);
    } catch (err) {
      return [this.log("message.invalid", { severity: "warning", attrs: { error: err.message } })];
    }
    return this.onMessage(message, now);
  }

  transportClosed(code, reason, now) {
    if (["done", "waiting", "idle"].includes(this.state)) return [];
    for (const name of ["keepalive", "heartbeat", "attempt"]) this.deadlines.cancel(name);
    const attrs = { close_code: code, close_reason: reason };
    const closed = (final) => this.log("connection.closed",
      { code: final, connection_id: this.connectionId, attrs });
    if (this.state === "closing") {
      const final = code !== null && code !== 1000 ? code : null;
      return [closed(final), ...this.finish(final, attrs, code)];
    }
    const row = code !== null ? this.codes[code] : undefined;
    // A refusal because the session is over ends the terminal at once, whatever the code.
    if (row !== undefined && (!row.reconnect || (reason || "").endsWith(ENDED_SUFFIX))) {
      if (this.lostAt !== null) {
        this.refusal = code;
        return [closed(code), this.show(code),
                ...this.giveUp(now, { refused_code: code, refused_reason: reason })];
      }
      return [closed(code), ...this.finish(code, attrs, code)];
    }
    if (this.state === "connecting") return this.attemptFailed(now, attrs);
    if (row !== undefined) {
      return [closed(code), this.show(code), ...this.lost(now, attrs, false)];
    }
    return this.lost(now, attrs);
  }

  // An FRP8 attempt failed before its channel opened (4107, 5006-5008, or a server code sent
  // on signaling): with frp8_fallback "frp7" the session goes on over FRP7 at once, for good;
  // otherwise the first connection ends with that code and a reconnect counts it as one
  // failed attempt.
  setupFailed(code, event, attrs, now) {
    if (this.state !== "connecting") return [];
    const row = this.codes[code];
    const actions = [
      { type: "hangup", code: code >= 4000 && code <= 4999 ? code : 1000,
        reason: row ? row.name : "" },
      this.log(event, { code, severity: "error", attrs }),
    ];
    if (this.frp === 8 && this.s.frp8_fallback === "frp7" && row !== undefined) {
      this.useTransport(7);
      const fallback = this.log("transport.fallback",
                                { code, attrs: { from_frp: 8, to_frp: 7 } });
      return [...actions, fallback, this.show(code), ...this.connect(now)];
    }
    if (this.lostAt === null) return [...actions, ...this.finish(code, attrs, code)];
    return [...actions, ...this.attemptFailed(now, { setup_code: code, ...attrs })];
  }

  closeSession(now) { return this.leave({ type: "close" }, now); }
  disconnect(now) { return this.leave({ type: "disconnect" }, now); }

  // The person asks again after a 4106 the server did not confirm as the session's end: a
  // new bounded round of resume attempts on the same connection chain.
  resume(now) {
    if (this.state !== "done" || !this.mayResume) return [];
    this.finalCode = null;
    this.refusal = null;
    this.unreachable = false;
    this.round += 1;
    this.newRound(now);
    return this.retry(now);
  }

  tick(now) {
    const actions = [];
    for (const name of this.deadlines.popDue(now)) {
      if (this.state === "done") break;
      actions.push(...this.fire(name, now));
    }
    return actions;
  }

  // -- internals ------------------------------------------------------------------------

  fire(name, now) {
    if (name === "connect_window") {
      const attrs = { connect_timeout_s: this.s.connect_timeout };
      return [{ type: "hangup", code: 4101, reason: "CONNECT_TIMEOUT" },
              this.log("connect.failed", { code: 4101, attrs }),
              ...this.finish(4101, attrs, 4101)];
    }
    if (name === "attempt") {
      return [{ type: "hangup", code: 4101, reason: "CONNECT_TIMEOUT" },
              ...this.attemptFailed(now, { error: "no welcome in connect_timeout" })];
    }
    if (name === "retry") return this.retry(now);
    if (name === "keepalive" && this.state === "established") {
      const attrs = { keepalive_timeout_s: this.keepaliveMs / 1000 };
      return [{ type: "hangup", code: this.lostCode, reason: this.codes[this.lostCode].name },
              ...this.lost(now, attrs)];
    }
    if (name === "heartbeat" && this.state === "established") {
      this.pingId += 1;
      this.deadlines.set("heartbeat", now + this.heartbeatMs);
      return [{ type: "transmit", message: { type: "ping", id: this.pingId } }];
    }
    if (name === "closing") {
      return [{ type: "hangup", code: 1000, reason: "CLOSING" },
              ...this.finish(null, { reason: "server did not confirm" }, null)];
    }
    return [];
  }

  connect(now) {
    this.state = "connecting";
    this.attemptStartedAt = now;
    if (this.lostAt !== null) {
      this.deadlines.set("attempt", now + this.ms(this.s.connect_timeout));
    }
    return [this.log("connect.attempt", { attrs: { attempt: this.attempt } }),
            { type: "connect", attempt: this.attempt, frp: this.frp }];
  }

  onMessage(message, now) {
    const kind = message.type;
    if (kind === "welcome") return this.welcomed(message, now);
    if (kind === "close") return this.transportClosed(message.code, message.reason || "", now);
    if (this.state === "connecting") {
      return [this.log("message.invalid",
        { severity: "warning", attrs: { error: `${kind} before welcome` } })];
    }
    if (kind === "ping") return [{ type: "transmit", message: { type: "pong", id: message.id } }];
    if (kind === "msg") {
      if (message.seq <= this.lastSeq) {
        return [{ type: "transmit", message: { type: "ack", seq: this.lastSeq } }];
      }
      this.lastSeq = message.seq;
      return [{ type: "receive", seq: message.seq, body: message.body },
              { type: "transmit", message: { type: "ack", seq: message.seq } }];
    }
    if (kind === "display_change") {
      return [{ type: "transmit", message: { type: "display_ack", change_id: message.change_id } }];
    }
    if (kind === "warning" && this.codes[message.code] !== undefined) {
      return [this.log("session.warning", { code: message.code, severity: "warning",
                                            attrs: { seconds_left: message.seconds_left } }),
              this.showWarning(message.code, message.seconds_left)];
    }
    return [];
  }

  welcomed(message, now) {
    if (this.state !== "connecting") return [];
    this.deadlines.cancel("connect_window");
    this.deadlines.cancel("attempt");
    this.previousConnectionId = this.connectionId;
    this.connectionId = message.connection_id;
    this.state = "established";
    this.deadlines.set("heartbeat", now + this.heartbeatMs);
    const ids = { connection_id: this.connectionId,
                  previous_connection_id: this.previousConnectionId };
    const actions = [this.log("connection.established", { ...ids, attrs: {
      client: this.ticket.client, resume: message.resume,
      time_to_connect_ms: now - this.attemptStartedAt } })];
    if (this.lostAt !== null) {
      actions.push(this.log("reconnect.succeeded", { ...ids, attrs: {
        attempts: this.attempt, recovery_ms: now - this.lostAt, resumed: message.resume } }));
      this.lostAt = null;
      this.attempt = 0;
      this.round = 1;  // a later loss starts its own rounds
    }
    return [...actions, { type: "ship" }];
  }

  lost(now, attrs, logLost = true) {
    const actions = [];
    if (logLost) {
      actions.push(this.log(this.lostEvent,
        { code: this.lostCode, connection_id: this.connectionId, attrs }),
      this.show(this.lostCode));
    }
    this.newRound(now);
    if (this.s.reconnect_attempts === 0) {
      return [...actions, ...this.giveUp(now, { reason: "reconnect disabled" })];
    }
    return [...actions, ...this.scheduleRetry(now)];
  }

  newRound(now) {
    this.lostAt = now;
    this.attempt = 0;
    this.onlyRefused = true;
    this.lastError = null;
  }

  scheduleRetry(now) {
    const delay = Math.min(this.ms(this.s.reconnect_backoff_initial) * 2 ** this.attempt,
                           this.ms(this.s.reconnect_backoff_max));
    if (now + delay - this.lostAt > this.ms(this.s.reconnect_window)) {
      return this.giveUp(now, { reason: "reconnect_window exhausted", attempts: this.attempt });
    }
    this.state = "waiting";
    this.deadlines.set("retry", now + delay);
    return [];
  }

  retry(now) {
    if (this.lostAt === null) return this.connect(now);
    this.attempt += 1;
    const attrs = { attempt: this.attempt, since_lost_ms: now - this.lostAt };
    if (this.round > 1) attrs.round = this.round;
    return [this.log("reconnect.attempt", { code: 4103, connection_id: this.connectionId,
                                            attrs }),
            this.show(4103), ...this.connect(now)];
  }

  attemptFailed(now, attrs, refused = false) {
    this.deadlines.cancel("attempt");
    this.onlyRefused = this.onlyRefused && refused;
    if (attrs.error !== undefined && attrs.error !== null) this.lastError = String(attrs.error);
    if (this.lostAt === null) {
      this.state = "waiting";
      this.deadlines.set("retry", now + this.ms(this.s.reconnect_backoff_initial));
      return [this.log("connect.retry", { severity: "warning", attrs })];
    }
    if (this.attempt >= this.s.reconnect_attempts) {
      return this.giveUp(now, { reason: "reconnect_attempts exhausted",
                                attempts: this.attempt, ...attrs });
    }
    return this.scheduleRetry(now);
  }

  // 4106. Without a refusal it says whether every attempt was refused by the TCP connect
  // (all_refused: nothing listens, the server is down, not the network).
  giveUp(now, attrs) {
    const since = this.lostAt !== null ? now - this.lostAt : 0;
    if (this.refusal === null) {
      this.unreachable = this.attempt > 0 && this.onlyRefused;
      attrs = { ...attrs, all_refused: this.unreachable, last_error: this.lastError };
    }
    return [this.log("reconnect.gave_up", { code: 4106, connection_id: this.connectionId,
                                            attrs: { ...attrs, since_lost_ms: since } }),
            ...this.finish(4106, attrs, 4106)];
  }

  leave(message, now) {
    // Finished, or a close or disconnect is on its way: that one stands (a tab closed right
    // after Close session must not turn it into a disconnect).
    if (this.state === "done" || this.state === "closing") return [];
    if (this.state !== "established") {
      return [{ type: "hangup", code: 1000, reason: "LEFT" }, ...this.finish(null, {}, null)];
    }
    this.state = "closing";
    this.deadlines.set("closing", now + 5000);
    return [{ type: "transmit", message }];
  }

  finish(code, attrs, shown) {
    this.state = "done";
    this.finalCode = code;
    this.deadlines.clear();
    const actions = [];
    if (shown !== null && this.codes[shown] !== undefined) actions.push(this.show(shown));
    return [...actions, { type: "finished", code }];
  }
}

if (typeof module !== "undefined") module.exports = { Connection, Deadlines, decodeFromServer, messageFor, popupText, sizeText, ENDED_SUFFIX };
