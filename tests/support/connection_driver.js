// Runs the browser terminal's Connection (connection.js) for the differential test: one JSON
// scenario per input line, one JSON line of action lists out.
"use strict";
const path = require("path");
const readline = require("readline");
const { Connection, sizeText } = require(path.resolve(process.argv[2]));
const { PeerSetup, iceLines, iceVerdict, setupBudgetMs } = require(path.join(path.dirname(path.resolve(process.argv[2])),
                                        "peer_setup.js"));

// A PeerSetup scenario: each step's return value (null, a failure, or the setup time).
function runSetup(s) {
  const setup = new PeerSetup(s.settings, s.start, s.phase, s.budget ?? null);
  const out = s.steps.map(([name, now, ...args]) => {
    if (name === "peer_found") return setup.peerFound(now) ?? null;
    if (name === "gathered") return setup.gathered(args[0], now) ?? null;
    if (name === "answered") return setup.answered(now) ?? null;
    if (name === "ice_state") return setup.iceState(args[0], now);
    if (name === "connection_state") return setup.connectionState(args[0], now);
    if (name === "channel_open") return setup.channelOpen(now);
    if (name === "tick") return setup.tick(now);
    throw new Error(`unknown step ${name}`);
  });
  return { results: out, next: setup.nextDeadline(), phase: setup.phase };
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const s = JSON.parse(line);
  if (s.verdict) {
    process.stdout.write(JSON.stringify(iceVerdict(s.verdict)) + "\n");
    return;
  }
  if (s.ice_lines) {
    const { results, code, codes } = s.ice_lines;
    process.stdout.write(JSON.stringify({ lines: iceLines(results, code, codes) }) + "\n");
    return;
  }
  if (s.sizes) {
    process.stdout.write(JSON.stringify({ sizes: s.sizes.map(sizeText) }) + "\n");
    return;
  }
  if (s.budget_of) {
    process.stdout.write(JSON.stringify({ budget: setupBudgetMs(s.budget_of) }) + "\n");
    return;
  }
  if (s.setup) {
    process.stdout.write(JSON.stringify(runSetup(s)) + "\n");
    return;
  }
  const machine = new Connection(s.ticket, s.settings, s.codes, s.version);
  const out = s.steps.map(([name, now, ...args]) => {
    if (name === "start") return machine.start(now);
    if (name === "opened") return machine.transportOpened(now);
    if (name === "failed") return machine.transportFailed(args[0], now, args[1] ?? false);
    if (name === "receive") return machine.receive(args[0], now);
    if (name === "closed") return machine.transportClosed(args[0], args[1], now);
    if (name === "close_session") return machine.closeSession(now);
    if (name === "setup_failed") return machine.setupFailed(args[0], args[1], args[2], now);
    if (name === "disconnect") return machine.disconnect(now);
    if (name === "resume") return machine.resume(now);
    if (name === "tick") return machine.tick(now);
    throw new Error(`unknown step ${name}`);
  });
  process.stdout.write(JSON.stringify({ actions: out, next: machine.nextDeadline(),
                                        state: machine.state,
                                        may_resume: machine.mayResume }) + "\n");
});
