// The browser terminal's I/O: fetches the ticket named by the page's link
// (/s/SESSION#token=T), drives the Connection state machine (connection.js) over FRP7 (a
// WebSocket to the same origin) or FRP8 (signaling, then a WebRTC data channel, each setup
// phase timed by PeerSetup from peer_setup.js), draws the stream (video.js) and measures it
// (stats.js), shows every code as a pop-up and ships its event log to the server whenever it
// is connected. Unshipped events survive a reload in localStorage, so nothing the terminal saw
// is lost.
"use strict";

(() => {
  const SHIP_BATCH = 200;
  // What a resume makes stale: the lost path's codes, and a 4106 (with the refusal before it)
  // that Resume went past.
  const LOST_POPUPS = [4102, 4103, 4108, 4106, 4006].map((c) => `.popup[data-code="${c}"]`)
    .join(", ");
  const page = {
    status: document.getElementById("status"),
    session: document.getElementById("session"),
    popups: document.getElementById("popups"),
    messages: document.getElementById("messages"),
    screen: document.getElementById("screen"),
    saveLog: document.getElementById("save-log"),
    bar: document.getElementById("bar"),
  };
  const COMPACT_AFTER_MS = window.openfrpCompactAfterMs ?? 4000;
  // What tests and curious people can read: window.openfrp.
  const view = { state: "starting", frames: 0, shown: [], received: [], finalCode: undefined,
                 events: [] };
  window.openfrp = view;

  // The tab's title says it too, for a session in a tab the person is not looking at. A
  // while after connecting, the bar shrinks to its gear (the rest shows on hover), so it hides
  // little of the desktop's top right corner, where windows keep their buttons; any other
  // status shows it whole again.
  let compacting = null;
  // ?monitor=N: this window shows secondary monitor N (1-3) of a session already open; the
  // person counts monitors from the session's own window, so it is their monitor N + 1.
  const monitor = Number(new URLSearchParams(location.search).get("monitor")) || 0;
  const what = monitor ? `monitor ${monitor + 1} · openfrp session` : "openfrp session";
  function setStatus(text) {
    view.state = text;
    page.status.textContent = text;
    document.title = `${text} · ${what}`;
    clearTimeout(compacting);
    page.bar.classList.remove("compact");
    if (text.startsWith("connected")) {
      compacting = setTimeout(() => page.bar.classList.add("compact"), COMPACT_AFTER_MS);
    }
  }

  // A pop-up of level "note" tells of something done (a file uploaded, the clipboard sent):
  // shown as an info, it goes by itself after NOTE_MS, instead of covering the desktop's
  // corner until clicked.
  const NOTE_MS = window.openfrpNoteMs ?? 10000;
  function popup(text, level, extra) {
    // The same message again (each reconnect attempt's 4103) takes the place of the one shown,
    // counted, instead of stacking copies over the screen.
    const same = [...page.popups.children].find((b) => b.dataset.text === text);
    const times = same ? Number(same.dataset.times) + 1 : 1;
    if (same) same.remove();
    const box = document.createElement("div");
    box.className = level === "note" ? "popup info note" : `popup ${level}`;
    box.textContent = text;
    box.dataset.text = text;
    box.dataset.times = String(times);
    if (times > 1) {
      const count = document.createElement("span");
      count.className = "times";
      count.textContent = ` (×${times})`;
      box.appendChild(count);
    }
    for (const line of [].concat(extra || [])) {  // a next step, or several lines under
      const next = document.createElement("span");
      next.className = "next";
      next.textContent = line;
      box.appendChild(next);
    }
    box.title = "Click to dismiss";
    box.onclick = () => box.remove();
    page.popups.appendChild(box);
    if (level === "note") setTimeout(() => box.remove(), NOTE_MS);
    while (page.popups.children.length > 6) page.popups.firstChild.remove();
    return box;
  }

  // Not connected, the screen is the last picture and takes no input: it is dimmed to say so.
  function paused(yes) {
    page.screen.classList.toggle("paused", yes);
    view.paused = yes;
  }

  function isoNow() {
    return new Date().toISOString().replace("Z", "000Z");  // microseconds, like the server
  }

  // The ticket's token, kept for this tab: it lasts as long as the session, the link's only
  // link_ttl, so reloading the page, Resume and "Open it here" still join after the link's
  // token expired (a new tab needs the link, or a new one).
  const keptToken = (sessionId) => `openfrp-ticket-${sessionId}`;

  async function fetchTicket(sessionId, token) {
    const answer = await fetch(`../api/sessions/${encodeURIComponent(sessionId)}/ticket`,
                               { headers: { Authorization: `Bearer ${token}` } });
    return { answer, ticket: await answer.json() };
  }

  async function main() {
    const sessionId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
    // The token rides in the fragment (never sent to a server, so never in its logs); older
    // links had it in the query.
    const token = new URLSearchParams(location.hash.slice(1)).get("token") ||
                  new URLSearchParams(location.search).get("token") || "";
    const client = new URLSearchParams(location.search).get("client") || "browser";
    page.session.textContent = monitor ? `${sessionId} · monitor ${monitor + 1}` : sessionId;
    // Keys typed while the page fetches its ticket and connects go to the session once it is
    // connected (type-ahead): the input listens from the start; run() gives it its link.
    const link = { send: () => {}, ready: () => false, toRemote: () => null };
    const input = new OpenfrpInput(page.screen, link);
    let table, answer, ticket;
    const decoding = OpenfrpVideo.probeDecoders();
    try {
      table = await (await fetch("../api/codes")).json();
      ({ answer, ticket } = await fetchTicket(sessionId, token));
      const kept = sessionStorage.getItem(keptToken(sessionId));
      if (answer.status === 401 && kept !== null && kept !== token) {
        ({ answer, ticket } = await fetchTicket(sessionId, kept));
      }
      if (!answer.ok) {
        input.stop();
        const final = ticket.final_code;
        const row = table.codes.find((c) => c.number === final);
        setStatus(row ? "session over" : "cannot join");
        view.finalCode = final ?? null;
        // The API's own words name a header; the person opened a link cut before its token.
        const error = token === "" && answer.status === 401
          ? "This link has no token (the part after #token=)." : `${ticket.error}`;
        popup(row ? popupText(row) : error, "error", ticket.next);
        return;
      }
    } catch (err) {
      input.stop();
      setStatus("cannot join");
      view.finalCode = 4101;
      popup(`The session server cannot be reached (${err.message}). Check the link and your ` +
            "network, then reload this page.", "error");
      return;
    }
    sessionStorage.setItem(keptToken(sessionId), ticket.token);
    const codes = Object.fromEntries(table.codes.map((c) => [c.number, c]));
    run(ticket, codes, table.protocol_version, client, await decoding, input, link);
  }

  function run(ticket, codes, version, client, decoders, input, link) {
    const config = ticket.config;
    const machine = new Connection(
      { session_id: ticket.session_id, token: ticket.token, config,
        config_digest: ticket.config_digest, client, monitor },
      config.terminal, codes, version);
    if (monitor) machine.useTransport(7);  // its region comes as frames of its own
    // A fallback to FRP7 holds for the rest of the session, a reload of this tab included:
    // FRP8 would fail the same way, after its whole setup time again.
    const fellBackKey = `openfrp-frp7-${ticket.session_id}`;
    if (sessionStorage.getItem(fellBackKey) !== null) machine.useTransport(7);
    let fellBack = null;  // the code FRP8 failed with, until the session is back over FRP7
    const stash = `openfrp-unshipped-${ticket.session_id}`;
    let unshipped = JSON.parse(localStorage.getItem(stash) || "[]");
    let ws = null;
    let gen = 0;
    let timer = null;
    let done = false;

    const remember = () => localStorage.setItem(stash, JSON.stringify(unshipped));
    // Events of the stream and the menu, shipped at once while connected.
    const log = (event, attrs, severity = "info") => {
      writeEvent({ event, attrs, severity });
      if (machine.state === "established") ship();
    };
    const stats = new StreamStats(document.getElementById("stats"), () => (view.track
      ? { codec: view.track.codec, width: view.track.width, height: view.track.height }
      : { codec: video.view.codec, ...video.view.remote }), log);
    const limits = { width: config.terminal.max_width, height: config.terminal.max_height };
    const video = new OpenfrpVideo.VideoStream(page.screen, decoders,
                                               { send: (m) => send(m), log, stats, limits });
    Object.defineProperty(view, "frames", { get: () => video.view.drawn, enumerable: true });
    view.video = video.view;
    window.openfrpVideo = video;  // toRemote(clientX, clientY) for pointer input
    Object.assign(link, { send: (m) => send(m), ready: () => machine.state === "established",
                          toRemote: (x, y) => video.toRemote(x, y) });
    view.input = input.view;
    window.openfrpMenu.attach(popup, log);
    window.openfrpMenu.register("stats", () => stats.toggle());
    if (!monitor) window.openfrpMenu.register("add-monitor", () => addMonitor());
    const connected = () => machine.state === "established";
    const desk = { send: (m) => send(m), log, popup, ready: connected };
    const clipboard = new OpenfrpClipboard(config.terminal.clipboard, desk, input,
                                           config.terminal.clipboard_limit);
    const files = new OpenfrpFiles(config.terminal.file_transfer, desk);
    view.clipboard = clipboard.view;
    view.files = files.view;

    // "Add monitor": the first free monitor (1-3) in a window of its own, which joins the
    // session beside this one; closing that window removes the monitor.
    const monitors = new Map();  // monitor number -> the window showing it
    function addMonitor() {
      const free = [1, 2, 3].find((n) => !monitors.has(n) || monitors.get(n).closed);
      if (free === undefined) {
        popup("This session already shows 4 monitors, the most it can.", "note");
        return;
      }
      const token = encodeURIComponent(ticket.token);
      const url = `${location.pathname}?monitor=${free}#token=${token}`;
      const size = `width=${window.innerWidth},height=${window.innerHeight}`;
      const opened = window.open(url, `openfrp-${ticket.session_id}-${free}`, `popup,${size}`);
      if (opened === null) throw new Error("the browser blocked the window; allow pop-ups here");
      monitors.set(free, opened);
      log("monitor.opened", { monitor: free });
    }

    function writeEvent(action) {
      const event = {
        ts: isoNow(), source: "terminal", host: config.host ?? null,
        session_id: ticket.session_id,
        connection_id: action.connection_id ?? machine.connectionId,
        previous_connection_id: action.previous_connection_id ?? null,
        user: config.user ?? null, account: config.account ?? null,
        launchpad: config.launchpad ?? null, frp: config.frp === 8 ? 8 : 7, event: action.event,
        code: action.code ?? null, severity: action.severity ?? "info", message: null,
        attrs: action.attrs ?? {},
      };
      view.events.push(event);
      unshipped.push(event);
      remember();
    }

    // ws: the open transport, FRP7 or FRP8 alike: {send(text), close(code), isOpen()}.
    function send(message) {
      if (ws !== null && ws.isOpen()) ws.send(JSON.stringify(message));
    }

    function ship() {
      while (unshipped.length) {
        send({ type: "events", items: unshipped.slice(0, SHIP_BATCH) });
        unshipped = unshipped.slice(SHIP_BATCH);
      }
      remember();
    }

    function drop(code) {
      const old = ws;
      ws = null;
      gen += 1;
      if (old !== null) old.close(code >= 3000 && code <= 4999 ? code : 1000);
    }

    function received(data) {
      if (typeof data !== "string") video.frame(data);
      else peek(data);
      feed((now) => machine.receive(typeof data === "string" ? data : null, now));
    }

    // The stream's own control messages (screen, pong), beside the connection machine.
    function peek(text) {
      let message;
      try { message = JSON.parse(text); } catch (err) { return; }
      if (message === null || typeof message !== "object") return;
      video.control(message);
      stats.control(message);
      input.control(message);
      clipboard.control(message);
      files.control(message);
    }

    function open(attempt, frp) {
      drop(1000);
      if (frp === 8) openFrp8(gen, attempt);
      else openFrp7(gen);
    }

    function openFrp7(mine) {
      const url = new URL("../frp7", location.href);  // beside the page, under any prefix
      url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
      const socket = new WebSocket(url.href);
      socket.binaryType = "arraybuffer";
      ws = {  // from now on a hangup closes it, opening or open
        send: (text) => socket.send(text),
        close: (code) => { if (socket.readyState <= WebSocket.OPEN) socket.close(code); },
        isOpen: () => socket.readyState === WebSocket.OPEN,
      };
      let opened = false;
      socket.onopen = () => {
        if (mine !== gen) return;
        opened = true;
        feed((now) => machine.transportOpened(now));
      };
      socket.onmessage = (msg) => {
        if (mine === gen) received(msg.data);
      };
      socket.onclose = (msg) => {
        if (mine !== gen) return;
        ws = null;
        if (!opened) {
          // The browser hides why (refused, reset, an HTTP error): a failure before the
          // upgrade while online means the server's address answered and did not accept it.
          const refused = navigator.onLine !== false;
          feed((now) => machine.transportFailed(`connection failed (${msg.code})`, now, refused));
          return;
        }
        const code = msg.code === 1005 || msg.code === 1006 ? null : msg.code;
        feed((now) => machine.transportClosed(code, msg.reason || "", now));
      };
    }

    // One FRP8 attempt: join the session's host at signaling, offer a data channel (all ICE
    // candidates in the offer), apply the answer; PeerSetup's timers end a phase that stalls.
    // What the STUN/TURN servers did while gathering is reported like the Python terminal's
    // probes (5009, 5010, 5019), on the first attempt and the first one after a loss.
    function openFrp8(mine, attempt) {
      const block = config.frp8 || {};
      const setup = new PeerSetup(config.terminal, Math.round(performance.now()), "signaling",
                                  setupBudgetMs(config.terminal));
      const gathered = new Map();  // server URL -> what gathering saw of it
      let judged = attempt > 1;
      let pc = null;
      let channel = null;
      let signaling = null;
      let setupTimer = null;
      let over = false;
      const now = () => Math.round(performance.now());
      const current = () => mine === gen && !over;
      function teardown() {
        over = true;
        clearTimeout(setupTimer);
        try { if (signaling) signaling.close(); } catch (err) { /* already closed */ }
        try { if (pc) pc.close(); } catch (err) { /* already closed */ }
      }
      ws = {
        send: (text) => channel.send(text),
        close: teardown,
        isOpen: () => channel !== null && channel.readyState === "open",
      };
      // The offer's candidates by type (host, srflx, relay), as the Python terminal counts them.
      function candidateTypes() {
        const types = { host: 0, srflx: 0, relay: 0 };
        const sdp = pc && pc.localDescription ? pc.localDescription.sdp : "";
        for (const line of sdp.split(/\r?\n/)) {
          const typ = / typ (\w+)/.exec(line);
          if (line.startsWith("a=candidate:") && typ) types[typ[1]] = (types[typ[1]] || 0) + 1;
        }
        return types;
      }
      // What the STUN/TURN servers did, once. Chromium names the server of a candidate or an
      // error when it can; a server it names neither way is judged by the candidates: no relay
      // candidate at all by the end of gathering (or by the phase's deadline) means the TURN
      // servers did not answer, no server-reflexive one the same for STUN, which is what
      // blocked UDP looks like. Relay-only gathering asks STUN servers nothing.
      function judge() {
        if (judged) return;
        judged = true;
        const types = candidateTypes();
        for (const server of block.ice_servers || []) {
          for (const url of [].concat(server.urls)) {
            const kind = url.startsWith("turn") ? "turn" : "stun";
            if (kind === "stun" && block.ice_policy === "relay") continue;
            if (gathered.has(url)) continue;
            const answered = types[kind === "turn" ? "relay" : "srflx"] > 0;
            gathered.set(url, { kind, server: url, ok: answered,
                                detail: answered ? "" : "no answer while gathering candidates" });
          }
        }
        if (!gathered.size) return;
        const results = [...gathered.values()];
        const verdict = iceVerdict(results);
        // The code's pop-up names the failed servers and why, and the next step, under it.
        const shown = verdict.code === null ? []
          : [{ ...machine.show(verdict.code), lines: iceLines(results, verdict.code, codes) }];
        apply([...verdict.logs, ...shown]);
      }
      function failSetup(failed) {
        if (!current()) return;
        if (setup.phase === "failed" && failed.attrs.phase === "gathering") judge();
        teardown();
        feed((t) => machine.setupFailed(failed.code, failed.event, failed.attrs, t));
      }
      function lost(reason) {
        if (!current()) return;
        teardown();
        feed((t) => machine.transportClosed(null, reason, t));
      }
      function arm() {
        clearTimeout(setupTimer);
        const next = setup.nextDeadline();
        if (next === null) return;
        setupTimer = setTimeout(() => {
          const failed = setup.tick(now());
          if (failed) failSetup(failed);
          else arm();
        }, Math.max(0, next - performance.now()));
      }
      async function offer() {
        pc = new RTCPeerConnection({
          iceServers: (block.ice_servers || []).map((s) => ({
            urls: s.urls, username: s.username, credential: s.credential })),
          iceTransportPolicy: block.ice_policy === "relay" ? "relay" : "all",
        });
        channel = pc.createDataChannel("control");
        // The display comes as a video track (track.js), not as frames on the channel.
        const video = pc.addTransceiver("video", { direction: "recvonly" });
        pc.ontrack = (e) => {
          if (!current()) return;
          view.track = OpenfrpTrack.show(e.track, video.receiver, pc);
          stats.watchTrack(view.track, pc);
        };
        channel.binaryType = "arraybuffer";
        channel.onopen = () => {
          if (!current()) return;
          setup.channelOpen(now());
          clearTimeout(setupTimer);
          feed((t) => machine.transportOpened(t));
        };
        channel.onmessage = (msg) => { if (current()) received(msg.data); };
        channel.onclose = () => { if (setup.phase === "open") lost("data channel closed"); };
        pc.oniceconnectionstatechange = () => {
          const failed = setup.iceState(pc.iceConnectionState, now());
          if (failed) failSetup(failed);
        };
        pc.onconnectionstatechange = () => {
          if (setup.phase === "open") {
            if (["failed", "closed"].includes(pc.connectionState)) {
              lost(`peer connection ${pc.connectionState}`);
            }
            return;
          }
          const failed = setup.connectionState(pc.connectionState, now());
          if (failed) failSetup(failed);
        };
        const mark = (url, ok, detail) => {
          if (!url || (gathered.get(url) || {}).ok) return;
          const kind = url.startsWith("turn") ? "turn" : "stun";
          gathered.set(url, { kind, server: url, ok, detail });
        };
        pc.onicecandidate = (e) => {
          const url = e.url || (e.candidate && e.candidate.url);
          if (e.candidate && url) mark(url, true, "");
        };
        pc.onicecandidateerror = (e) => mark(e.url, false,
          e.errorCode === 401 ? "credentials rejected (401): check the TURN user and password"
            : `${e.errorCode} ${e.errorText || ""}`.trim());
        await pc.setLocalDescription(await pc.createOffer());
        await new Promise((done) => {
          if (pc.iceGatheringState === "complete") done();
          pc.onicegatheringstatechange = () => {
            if (pc.iceGatheringState === "complete") done();
          };
        });
        if (!current()) return;
        judge();
        setup.gathered(candidateTypes(), now());
        arm();
        signaling.send(JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }));
      }
      arm();
      signaling = new WebSocket(block.signaling_url);
      signaling.onopen = () => signaling.send(JSON.stringify({
        type: "join", session_id: ticket.session_id, token: ticket.token, host: config.host }));
      signaling.onclose = () => {
        if (current() && setup.phase === "signaling" && pc === null) {
          teardown();
          feed((t) => machine.transportFailed("signaling connection failed", t));
        }
      };
      signaling.onmessage = async (msg) => {
        if (!current()) return;
        let message;
        try { message = JSON.parse(msg.data); } catch (err) { return; }
        try {
          if (message.type === "peer" && pc === null) {
            setup.peerFound(now());
            arm();
            await offer();
          } else if (message.type === "answer" && pc !== null) {
            await pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
            setup.answered(now());
            arm();
          } else if (message.type === "close") {
            const row = codes[message.code];
            const frp8Only = row !== undefined && row.frp_versions.length === 1
              && row.frp_versions[0] === 8;
            if (setup.phase === "open" || !frp8Only) {  // a session's own code, as FRP7 gets it
              teardown();
              feed((t) => machine.transportClosed(message.code, message.reason || "", t));
            } else {
              failSetup({ code: message.code, event: "connection.closed", attrs: {
                close_code: message.code, close_reason: message.reason || "", via: "signaling" } });
            }
          } else if (message.type === "error") {
            teardown();
            feed((t) => machine.transportFailed(`signaling refused: ${message.error}`, t));
          }
        } catch (err) {  // this side's WebRTC stack failed: the peer connection did
          failSetup({ code: 5008, event: "peer.failed",
                      attrs: { phase: setup.phase, error: `${err.name}: ${err.message}` } });
        }
      };
    }

    let overFrp8 = false;  // the transport of the connection being opened
    function apply(actions) {
      for (const action of actions) {
        if (action.type === "connect") {
          const most = config.terminal.reconnect_attempts;
          setStatus(action.attempt === 0 ? "connecting"
            : `reconnecting (attempt ${action.attempt}${most ? ` of ${most}` : ""})`);
          paused(true);
          video.stopped();
          overFrp8 = action.frp === 8;
          open(action.attempt, action.frp);
        } else if (action.type === "transmit") {
          const hello = action.message.type === "hello";  // with the window and the decoders
          const fields = hello ? video.helloFields() : null;
          // FRP8: this page draws palette tiles beside the video track (video.js TrackTiles).
          if (overFrp8 && fields !== null) fields.decoders = [...fields.decoders, "track-tiles"];
          send(hello ? { ...action.message, ...fields } : action.message);
          stats.sent(action.message);
        } else if (action.type === "hangup") {
          drop(action.code);
        } else if (action.type === "show") {
          view.shown.push({ code: action.code, text: action.text });
          const counting = action.level === "warning" && warned?.code === action.code;
          if (counting) clearWarnings();  // a notice repeated on a resume replaces the last
          const box = popup(action.text, action.level, action.lines);
          box.dataset.code = action.code;
          if (counting) countDown(box, warned.code, warned.secondsLeft);
          const text = [action.text, ...(action.lines || [])].join("\n  ");  // as the CLI prints
          writeEvent({ event: "message.shown", code: action.code, severity: action.level,
                       attrs: { text } });
        } else if (action.type === "receive") {
          view.received.push({ seq: action.seq, body: action.body });
          const item = document.createElement("li");
          item.textContent = `${action.seq} ${JSON.stringify(action.body)}`;
          page.messages.appendChild(item);
        } else if (action.type === "log") {
          writeEvent(action);
          if (action.event === "session.warning") {
            warned = { code: action.code, secondsLeft: action.attrs.seconds_left };
          }
          if (action.event === "transport.fallback") {
            sessionStorage.setItem(fellBackKey, String(action.code));
            fellBack = action.code;
          }
          if (action.event === "connection.established") {
            setStatus(action.attrs.resume ? "connected (resumed)" : "connected");
            // Back on: the pop-ups about the lost path no longer apply and would hide the screen.
            for (const box of page.popups.querySelectorAll(LOST_POPUPS)) box.remove();
            // Back over FRP7: FRP8's setup errors give way to one note of what happened.
            if (fellBack !== null) {
              for (const box of page.popups.querySelectorAll(".popup[data-code]")) box.remove();
              const row = codes[fellBack];
              popup(`FRP8 could not connect (${fellBack} ${row ? row.name : ""}): the session `
                    + "goes on over FRP7 (WebSocket).", "note");
              fellBack = null;
            }
            paused(false);
            input.connected();
            files.connected();
            video.started();
            stats.start();
          }
        } else if (action.type === "ship") {
          ship();
        } else if (action.type === "finished") {
          finished(action.code);
        }
      }
    }

    // A warning (4008 ahead) counts down in its pop-up, from the seconds the server gave; it
    // goes when the session ends, where it would say the end is still ahead.
    let warned = null;
    let countdown = null;
    function countDown(box, code, secondsLeft) {
      const end = Date.now() + secondsLeft * 1000;
      countdown = setInterval(() => {
        const left = Math.round((end - Date.now()) / 1000);
        if (!box.isConnected || left <= 0) {
          clearInterval(countdown);
          return;
        }
        box.firstChild.textContent = machine.showWarning(code, left).text;
      }, 1000);
    }
    function clearWarnings() {
      clearInterval(countdown);
      for (const box of page.popups.querySelectorAll(".popup.warning[data-code]")) box.remove();
    }

    function finished(code) {
      clearWarnings();
      if (stats.reporting !== null) stats.report(true);
      video.stopped();
      paused(true);
      done = true;
      view.finalCode = code;
      drop(1000);
      clearTimeout(timer);
      const row = code !== null ? codes[code] : undefined;
      // "session over" only when the server ended the session: 4006 ends this page's part
      // only, and a 4106 the server did not confirm leaves the session waiting for a resume.
      const elsewhere = code === 4006;
      const waiting = machine.mayResume;
      const label = elsewhere ? "open elsewhere" : waiting ? "could not reconnect"
        : machine.refusal === 4002 ? "could not resume" : "session over";
      setStatus(!row ? "disconnected" : `${label}: ${code} ${row.name}`);
      const box = popup(code === null ? "You left the session. It keeps running: open this "
                                        + "link again to resume it."
            : elsewhere ? elsewhereText() : waiting ? waitingText()
            : label === "could not resume" ? "Open the session link again, or ask whoever sent "
                                             + "it for a new one."
            : "This session is over. Close this tab, or open a new session link.", "info");
      if (code !== null && !elsewhere && !waiting) return;
      const again = document.createElement("button");
      again.id = "resume";
      again.className = "again";
      again.textContent = elsewhere ? "Open it here" : "Resume";
      // Opening the link again is reloading this page; after a 4106, Resume is another round
      // of resume attempts on the same connection chain, as after the loss.
      again.onclick = waiting ? () => { box.remove(); resumeAgain(); } : () => location.reload();
      box.appendChild(again);
    }

    function resumeAgain() {
      done = false;
      delete view.finalCode;
      feed((now) => machine.resume(now));
    }

    // What to do after 4006: refused (the live connection is elsewhere), or displaced.
    function elsewhereText() {
      if (machine.connectionId !== null) {
        return "Your session goes on in another tab or on another device, which took it over: "
          + "use that one, or take it back here.";
      }
      const t = config.terminal;
      const exact = t.receive_timeout !== undefined && t.max_receive_timeouts !== undefined;
      const held = exact ? t.receive_timeout * t.max_receive_timeouts : 30;  // 10 s x 3, the defaults
      const named = "max_receive_timeouts times receive_timeout";
      const after = exact ? `after ${held} s (${named})` : `after ${named} (${held} s by default)`;
      return "Another tab or device of yours holds this session's live connection. Close it "
        + "there, then open this link again here; if it is off or lost its network, the server "
        + `lets its connection go ${after} without hearing from it: then try again here.`;
    }

    // After a 4106 the server did not confirm as the end: the session may still wait.
    function waitingText() {
      if (machine.refusal !== null) return "Close the other tab or device, then Resume here.";
      if (machine.unreachable) return "Once the session server is back, Resume.";
      const idle = config.terminal.idle_timeout;
      const until = idle ? `idle_timeout, ${idle >= 120 ? `${idle / 60} min` : `${idle} s`}`
        : "its idle_timeout";
      return `Your session may still be waiting for you on the server (${until}): check your `
        + "network, then Resume.";
    }

    function feed(step) {
      if (done) return;
      apply(step(Math.round(performance.now())));
      if (done) return;
      clearTimeout(timer);
      const next = machine.nextDeadline();
      if (next !== null) {
        timer = setTimeout(() => feed((now) => machine.tick(now)),
                           Math.max(0, next - performance.now()));
      }
    }

    // Leaving: the stream's last figures go out before the connection does.
    const leaving = () => { if (stats.reporting !== null) stats.report(true); };
    window.openfrpMenu.register("close-session", () => {
      leaving();
      feed((now) => machine.closeSession(now));
    });
    document.getElementById("disconnect").onclick = () => {
      leaving();
      feed((now) => machine.disconnect(now));
    };
    // A closed tab leaves as Disconnect does, so the session waits to be resumed at once.
    // Over FRP7 the browser's own close (1001) says as much; over FRP8 nothing would, and the
    // server would keep the closed tab's connection until its receive timeouts (4023), turning
    // the person away from their own session meanwhile (4006).
    window.addEventListener("pagehide", () => {
      leaving();
      feed((now) => machine.disconnect(now));
    });
    page.saveLog.onclick = () => {
      const text = view.events.map((e) => JSON.stringify(e)).join("\n") + "\n";
      page.saveLog.href = URL.createObjectURL(new Blob([text], { type: "application/x-ndjson" }));
    };
    feed((now) => machine.start(now));
  }

  main();
})();
