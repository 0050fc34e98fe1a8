// Clipboard text between this page and the session, as the launchpad's policy allows
// (config.terminal.clipboard: both, to_session, from_session or off).
//
// To the session: the text of a paste (Ctrl+V, Ctrl+Shift+V, Shift+Insert or the browser's
// menu) and, each time the page gets the focus, the local clipboard read with the async
// Clipboard API (where the browser allows it), so the session's apps paste what the person
// copied elsewhere. A paste key goes to the session after its text: input is held until the
// key's `paste` event brings it (every browser fires one, with no permission asked),
// PASTE_WAIT_MS at most. The gear menu's Clipboard item sends it on demand. From the
// session: a `clipboard` message is written to the local clipboard at once when the page has
// the focus, else when it gets it back.
// Text is never sent back the way it came, and never logged (only its size). It goes with
// X's line ends (LF): an X app pastes a CR as Enter, so Windows' CRLF ran every pasted line and
// then an empty command; and the session's own copy, which Windows' clipboard gives back with
// CRLF on the next focus, is known by its text whatever its line ends.
// Text too large to cross is refused here, in the words the server uses
// (openfrp.desk.clipboard_limits): over the session's clipboard_limit, or too large for one
// control message, which the server cannot tell from junk and answers by dropping the
// connection (4024).
"use strict";

class OpenfrpClipboard {
  static PASTE_WAIT_MS = 300;

  // hooks: {send(message), log(event, attrs), popup(text, level), ready() -> connected?};
  // input: the OpenfrpInput whose keys a paste holds; limit: the session's clipboard_limit.
  constructor(policy, hooks, input, limit) {
    this.policy = policy || "both";
    this.hooks = hooks;
    this.limit = limit;
    this.unsent = null;  // the text refused here last: a focus does not say so again
    this.toSession = this.policy === "both" || this.policy === "to_session";
    this.fromSession = this.policy === "both" || this.policy === "from_session";
    this.last = null;  // the text both sides have now: not sent again
    this.pending = null;  // text from the session waiting for the focus
    this.view = { sent: 0, received: 0, written: 0, refused: 0, policy: this.policy,
                  blocked: false };
    this.release = null;  // lets held input go once the paste's text is sent
    if (this.toSession) {
      input.pastes = true;
      document.addEventListener("paste", (e) => this.pasted(e), true);
      window.addEventListener("keydown", (e) => {
        if (!OpenfrpInput.isPaste(e) || !OpenfrpInput.forSession(e) || !this.hooks.ready()) return;
        this.letGo();
        this.release = input.hold(OpenfrpClipboard.PASTE_WAIT_MS);
      }, true);
    }
    window.addEventListener("focus", () => this.focused());
    if (this.policy !== "off" && window.openfrpMenu) {
      window.openfrpMenu.register("clipboard", () => this.syncNow());
    }
  }

  // `text` with the X clipboard's line ends: CRLF and a lone CR become LF.
  static xText(text) {
    return text.replace(/\r\n?/g, "\n");
  }

  pasted(event) {
    if (!OpenfrpInput.forSession(event)) return;  // pasted into a field of the page
    event.preventDefault();
    const text = event.clipboardData ? event.clipboardData.getData("text/plain") : "";
    if (text) this.offer(text, "paste");
    this.letGo();
  }

  letGo() {
    if (this.release !== null) this.release();
    this.release = null;
  }

  async focused() {
    if (this.pending !== null) await this.write(this.pending);
    if (this.toSession) await this.readLocal("focus");
  }

  async syncNow() {
    const refusals = this.view.refused;
    if (this.toSession && await this.readLocal("menu")) {
      this.hooks.popup("Your clipboard was sent to the session.", "note");
    } else if (this.view.refused > refusals) {
      return;  // too large to send: the warning said so
    } else if (this.view.blocked) {
      this.hooks.popup("This browser did not let the page read your clipboard: paste into the "
                       + "session with Ctrl+V, or allow this site to read the clipboard.", "note");
    } else if (this.last !== null) {
      this.hooks.popup(`The session's clipboard holds ${this.last.length} characters.`, "note");
    } else {
      this.hooks.popup("Nothing to copy yet.", "note");
    }
  }

  // A read that outlives a copy in the session is stale: it would send the older text back.
  async readLocal(why) {
    if (!navigator.clipboard || !navigator.clipboard.readText || !this.hooks.ready()) return false;
    const copies = this.view.received;
    let text;
    try {
      text = await navigator.clipboard.readText();
      this.view.blocked = false;
    } catch (err) {
      this.view.blocked = err.name === "NotAllowedError";  // the person or the browser said no
      return false;
    }
    return copies === this.view.received && this.offer(text, why);
  }

  offer(text, why) {
    if (!this.toSession || !text || !this.hooks.ready()) return false;
    text = OpenfrpClipboard.xText(text);
    if (this.last !== null && text === OpenfrpClipboard.xText(this.last)) return false;
    const bytes = new TextEncoder().encode(text).length;
    const message = { type: "clipboard", text };
    const reason = this.tooLarge(bytes, message);
    if (reason !== null) {
      if (why !== "focus" || text !== this.unsent) {
        this.refused({ direction: "to_session", bytes, reason });
      }
      this.unsent = text;
      return false;
    }
    this.last = text;
    this.hooks.send(message);
    this.view.sent += 1;
    this.hooks.log("clipboard.sent", { bytes, via: why });
    return true;
  }

  // Why a text of `bytes` (UTF-8) cannot go as `message`, else null. The message is counted
  // in UTF-16 units, never fewer than the characters the server counts.
  tooLarge(bytes, message) {
    if (bytes > this.limit) return `over the size limit of ${sizeText(this.limit)}`;
    if (JSON.stringify(message).length > MAX_MESSAGE_BYTES) {
      return `over the message limit of ${sizeText(MAX_MESSAGE_BYTES)}`;
    }
    return null;
  }

  // A server message; only `clipboard` and `clipboard_refused` are ours.
  control(message) {
    if (message.type === "clipboard_refused") {
      this.refused(message);
      return;
    }
    if (message.type !== "clipboard" || typeof message.text !== "string") return;
    this.view.received += 1;
    this.last = message.text;
    this.hooks.log("clipboard.received", { bytes: new TextEncoder().encode(message.text).length });
    if (document.hasFocus()) this.write(message.text);
    else this.pending = message.text;
  }

  // Text that did not cross: said, or the person pastes the older text and wonders why.
  refused({ direction, bytes, reason }) {
    const what = direction === "to_session"
      ? "Your clipboard was not sent to the session"
      : "Text copied in the session did not reach this computer's clipboard";
    this.view.refused += 1;
    this.hooks.popup(`${what}: ${reason}.`, "warning");
    this.hooks.log("clipboard.refused", { direction, bytes, reason }, "warning");
  }

  async write(text) {
    this.pending = null;
    if (!navigator.clipboard || !navigator.clipboard.writeText) return;
    try {
      await navigator.clipboard.writeText(text);
      this.view.written += 1;
    } catch (err) {
      this.pending = text;  // not allowed now (no focus, no permission): at the next focus
    }
  }
}
