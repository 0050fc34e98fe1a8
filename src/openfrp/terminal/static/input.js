// Keyboard and mouse to the session, as `input` messages (see openfrp/protocol/input.py):
//   key {keysym, down}, pointer {x, y, buttons: bit0 left, bit1 middle, bit2 right},
//   wheel {dx, dy} in steps, release {}.
// A key is sent as the keysym of what the person's own layout produced (KeyboardEvent.key):
// AltGr results and dead-key compositions arrive as the character itself, and the server binds
// a keycode for characters its keymap lacks. Named keys come from a table, modifiers from
// `code`. The key-up sends what its key-down sent, whatever the modifiers did in between.
// A shortcut whose character is past Latin-1 (a Cyrillic, Greek, Hebrew or Czech layout) is
// the character at the key's place on a US layout, as the person's own system takes it:
// Ctrl+С is Ctrl+C, so Ctrl+C interrupts and Ctrl+V pastes. AltGr (and Ctrl+Alt, which
// Windows reports for it) keeps its character. Windows presses a Control of its own with
// AltGr (ControlLeft, then AltRight at the same moment), which would make the character a
// control one in the session: a ControlLeft press waits ALTGR_MS, or until the next input,
// and is dropped if AltGr follows at once. A shortcut's capital letter without Shift is
// Caps Lock's doing, so it goes as the small letter: Ctrl+C, not Ctrl+Shift+C, with Caps
// Lock on. Letters typed go as the person's side cased them; the server keeps the display's
// own Caps Lock (which it also receives) from inverting them again.
// Text that comes with no key of its own (an input method's composition: Chinese, Japanese,
// Korean; an on-screen keyboard, dictation, the emoji picker) is typed in the session as
// each character's key pressed and let go: the keyboard's focus is a hidden text field, the
// "sink", whose compositions and inserted text are read and emptied; keys the page sends
// itself never reach it as text (their default action is prevented).
// Positions are remote screen pixels (the video maps the drawn picture back); in pointer lock,
// relative moves are added up into an absolute position. A button pressed on the picture keeps
// the pointer (pointer capture) until it is let go, so a drag's moves and release over the bar,
// a pop-up or past the window's edge reach the session, at the picture's nearest edge; a drag
// the browser ends without a release (capture lost, pointer cancelled) lets go there too. The
// wheel scrolls one step (an X button 4-7 click) a notch, as a local X desktop does.
// Leaving the page (blur, hidden tab) lets go of every held key and button. Key events in the
// bar and menu belong to the page, but for the key-up of a key the session holds (Ctrl held
// while the gear is clicked): it is let go there too.
// A paste key (Ctrl+V, Ctrl+Shift+V, Shift+Insert) keeps its default action when the clipboard
// may go to the session: the browser then hands the page the person's clipboard in a `paste`
// event, which needs no permission, and the clipboard holds the input (hold()) until that text
// is sent, so the app pastes what the person copied, not what the session had.
// The session's cursor shape arrives as a `cursor` message and becomes the canvas' cursor.
// Input before the page's first connection (a person typing as the page opens, or during a
// reload) waits, HOLD_LIMIT messages at most, and goes once connected: the server holds it in
// turn until the app's window is up. Input while a lost connection is being resumed is
// dropped: the person sees the screen paused and would not expect it typed later.
"use strict";

class OpenfrpInput {
  static NAMED = {
    Backspace: 0xff08, Tab: 0xff09, Enter: 0xff0d, Escape: 0xff1b, Delete: 0xffff,
    Home: 0xff50, ArrowLeft: 0xff51, ArrowUp: 0xff52, ArrowRight: 0xff53, ArrowDown: 0xff54,
    PageUp: 0xff55, PageDown: 0xff56, End: 0xff57, Insert: 0xff63, ContextMenu: 0xff67,
    Pause: 0xff13, ScrollLock: 0xff14, PrintScreen: 0xff61, CapsLock: 0xffe5, NumLock: 0xff7f,
    AltGraph: 0xfe03, Clear: 0xff0b,
    ...Object.fromEntries(Array.from({ length: 24 }, (_, i) => [`F${i + 1}`, 0xffbe + i])),
  };
  static MODIFIERS = {
    ShiftLeft: 0xffe1, ShiftRight: 0xffe2, ControlLeft: 0xffe3, ControlRight: 0xffe4,
    AltLeft: 0xffe9, AltRight: 0xffea, MetaLeft: 0xffeb, MetaRight: 0xffec,
    OSLeft: 0xffeb, OSRight: 0xffec,
  };
  static US = {
    ...Object.fromEntries([..."abcdefghijklmnopqrstuvwxyz"].map((c) => [`Key${c.toUpperCase()}`, c])),
    ...Object.fromEntries([..."0123456789"].map((c) => [`Digit${c}`, c])),
    Minus: "-", Equal: "=", BracketLeft: "[", BracketRight: "]", Backslash: "\\",
    Semicolon: ";", Quote: "'", Comma: ",", Period: ".", Slash: "/", Backquote: "`",
  };
  // Wheel deltas in pixels: a notch is 100 (Chrome on Windows) to 120 px, ~53 on Linux, 3
  // lines (Firefox); a step is sent from WHEEL_PIXELS on, one a notch (more only for a delta
  // of several notches, which a busy page gets coalesced). What is left over is dropped when
  // the direction turns or after WHEEL_IDLE_MS, so it neither takes a notch's step nor adds one.
  static WHEEL_PIXELS = 50;
  static NOTCH_PIXELS = 120;
  static LINE_PIXELS = 50;
  static WHEEL_IDLE_MS = 200;
  // On a Mac, Command is the shortcut key (Cmd+C, Cmd+V, Cmd+Z): it goes as Control, the
  // shortcut key of the session's desktop, so the person's hands need not learn another.
  static MAC = /Mac|iPhone|iPad|iPod/.test(navigator.platform || "");
  static HOLD_LIMIT = 256;  // input messages kept while held; more send what is kept
  static ALTGR_MS = 50;  // an AltGr this soon after a ControlLeft press: Windows' own pair

  // link: {send(message), ready() -> bool, toRemote(clientX, clientY) -> {x, y} | null}
  constructor(canvas, link) {
    this.canvas = canvas;
    this.link = link;
    this.held = new Map();  // KeyboardEvent.code -> keysym sent on its key-down
    this.buttons = 0;
    this.at = null;  // the last remote position sent
    this.wheel = { x: 0, y: 0, at: -Infinity };  // pixels not scrolled yet, last event's time
    this.view = { sent: 0, keys: 0, texts: 0, pointer: 0, released: 0, locked: false, held: 0 };
    this.pastes = false;  // paste keys keep their default action (set by the clipboard)
    this.holds = 0;  // hold() calls not yet let go
    this.waiting = [];  // input messages sent while held, in order
    this.early = [];  // input messages while not connected (the first time, or a reconnect)
    this.stopped = false;  // the page has no session: keys are the browser's again
    this.pendingControl = null;  // ControlLeft pressed, not sent yet: {keysym, at, timer}
    this.sink = OpenfrpInput.makeSink();
    canvas.after(this.sink);
    this.sink.focus({ preventScroll: true });
    this.sink.addEventListener("compositionend", (e) => this.text(e.data));
    this.sink.addEventListener("input", (e) => {
      if (e.isComposing) return;  // its compositionend brings the text
      if (e.inputType === "insertText") this.text(e.data);
      this.sink.value = "";
    });
    document.addEventListener("keydown", (e) => this.key(e, true));
    document.addEventListener("keyup", (e) => this.key(e, false));
    for (const kind of ["pointermove", "pointerdown", "pointerup"]) {
      canvas.addEventListener(kind, (e) => this.pointer(e));
    }
    for (const kind of ["lostpointercapture", "pointercancel"]) {
      canvas.addEventListener(kind, () => this.letGo());
    }
    canvas.addEventListener("wheel", (e) => this.scroll(e), { passive: false });
    canvas.addEventListener("contextmenu", (e) => e.preventDefault());
    window.addEventListener("blur", () => this.releaseAll("blur"));
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) this.releaseAll("hidden");
    });
    document.addEventListener("pointerlockchange", () => {
      this.view.locked = document.pointerLockElement === canvas;
    });
  }

  // A text field the person never sees, where the keyboard's focus stays during a session: it
  // receives what an input method composes, which a canvas cannot. Near the screen's top left
  // corner, so a composition's candidate window opens over the screen.
  static makeSink() {
    const sink = document.createElement("textarea");
    sink.id = "keys";
    sink.setAttribute("aria-label", "Keyboard input to the session");
    for (const name of ["autocomplete", "autocorrect", "autocapitalize"]) {
      sink.setAttribute(name, "off");
    }
    sink.spellcheck = false;
    Object.assign(sink.style, {
      position: "fixed", left: "8px", top: "8px", width: "1px", height: "1px", opacity: "0",
      border: "0", padding: "0", resize: "none", overflow: "hidden", pointerEvents: "none",
    });
    return sink;
  }

  static keysym(e) {
    if (e.key === "AltGraph") return 0xfe03;
    if (OpenfrpInput.MAC && /^(Meta|OS)(Left|Right)$/.test(e.code)) {
      return e.code.endsWith("Right") ? 0xffe4 : 0xffe3;  // Control_R, Control_L
    }
    if (e.code in OpenfrpInput.MODIFIERS) return OpenfrpInput.MODIFIERS[e.code];
    if (e.key in OpenfrpInput.NAMED) return OpenfrpInput.NAMED[e.key];
    const chars = [...e.key];
    if (chars.length !== 1) return null;  // "Dead", "Unidentified", "Process"
    let cp = e.key.codePointAt(0);
    if (cp > 0xff && OpenfrpInput.shortcut(e) && e.code in OpenfrpInput.US) {
      const latin = OpenfrpInput.US[e.code];
      cp = (e.shiftKey ? latin.toUpperCase() : latin).codePointAt(0);
    } else if (OpenfrpInput.shortcut(e) && !e.shiftKey && e.key !== e.key.toLowerCase()) {
      cp = e.key.toLowerCase().codePointAt(0);  // a capital without Shift: Caps Lock's
    }
    if (cp < 0x20 || cp === 0x7f) return null;
    return cp <= 0x7e || (cp >= 0xa0 && cp <= 0xff) ? cp : 0x1000000 + cp;
  }

  // Ctrl, Alt or Meta held for a shortcut; not AltGr, which Windows reports as Ctrl+Alt.
  static shortcut(e) {
    if (e.getModifierState !== undefined && e.getModifierState("AltGraph")) return false;
    return (e.ctrlKey || e.altKey || e.metaKey) && !(e.ctrlKey && e.altKey);
  }

  // V as the layout gives it, or at V's place where the layout's letters are not Latin (as
  // keysym() takes shortcuts).
  static isPaste(e) {
    const v = e.key === "v" || e.key === "V" ||
              (e.code === "KeyV" && e.key.codePointAt(0) > 0xff);
    return ((e.ctrlKey || e.metaKey) && !e.altKey && v) || (e.shiftKey && e.key === "Insert");
  }

  // Whether a key or clipboard event is the session's: not one in the bar, menu or a field.
  static forSession(e) {
    const target = e.target instanceof Element && e.target.id !== "keys" ? e.target : null;
    return target === null || target.closest("#bar, input, textarea, select") === null;
  }

  send(kind, data) {
    this.sendControl();  // a waiting Control goes before anything after it
    if (!this.link.ready()) return this.keep({ type: "input", kind, data });
    if (this.holds > 0) {
      if (this.waiting.length >= OpenfrpInput.HOLD_LIMIT) this.flush();
      this.waiting.push({ type: "input", kind, data });
      this.view.held += 1;
    } else {
      this.link.send({ type: "input", kind, data });
    }
    this.view.sent += 1;
    return true;
  }

  // Not connected (before the first connection, or while reconnecting): keep the message for
  // the next one; a reconnect used to drop what was typed meanwhile. A pointer move replaces
  // the one before it of the same buttons. A full list keeps the key-ups of the keys it holds
  // pressed, so no key stays held in the session.
  keep(message) {
    if (this.stopped) return false;
    this.early ??= [];
    const last = this.early[this.early.length - 1];
    if (message.kind === "pointer" && last?.kind === "pointer"
        && last.data.buttons === message.data.buttons) {
      this.early[this.early.length - 1] = message;
      return true;
    }
    const up = message.kind === "key" && !message.data.down;
    if (this.early.length >= OpenfrpInput.HOLD_LIMIT && !up) return false;
    this.early.push(message);
    return true;
  }

  // A connection is up: what was typed while there was none goes now, in order.
  connected() {
    const early = this.early ?? [];
    this.early = null;
    for (const message of early) {
      this.link.send(message);
      this.view.sent += 1;
    }
  }

  // No session on this page (its ticket was refused): keys and clicks are the browser's.
  stop() {
    this.stopped = true;
    this.early = null;
  }

  // Input waits, in order, until the returned function is called or `ms` pass.
  hold(ms) {
    this.holds += 1;
    let done = false;
    const release = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      this.holds -= 1;
      if (this.holds === 0) this.flush();
    };
    const timer = setTimeout(release, ms);
    return release;
  }

  flush() {
    for (const message of this.waiting.splice(0)) {
      if (this.link.ready()) this.link.send(message);
    }
  }

  key(e, down) {
    if (this.stopped || e.isComposing) return;
    if (down ? !OpenfrpInput.forSession(e) : !this.held.has(e.code)) return;
    const keysym = down ? OpenfrpInput.keysym(e) : this.held.get(e.code);
    if (keysym === null || keysym === undefined) return;  // a dead key: wait for its result
    // The browser does not act on it (Tab, Ctrl+S, F5, Backspace...), but for a paste key,
    // whose `paste` event brings the person's clipboard.
    if (!(down && this.pastes && OpenfrpInput.isPaste(e))) e.preventDefault();
    if (down && this.pendingControl !== null && OpenfrpInput.isAltGr(e) &&
        e.timeStamp - this.pendingControl.at < OpenfrpInput.ALTGR_MS) {
      this.dropControl();
    }
    if (down && e.code === "ControlLeft" && !this.held.has(e.code)) {
      this.held.set(e.code, keysym);
      const timer = setTimeout(() => this.sendControl(), OpenfrpInput.ALTGR_MS);
      this.pendingControl = { keysym, at: e.timeStamp, timer };
      return;
    }
    if (down) this.held.set(e.code, keysym);
    else this.held.delete(e.code);
    if (this.send("key", { keysym, down })) this.view.keys += 1;
  }

  static isAltGr(e) {
    return e.code === "AltRight" && e.key === "AltGraph";
  }

  // The ControlLeft press that waited for a possible AltGr, now sent.
  sendControl() {
    if (this.pendingControl === null) return;
    const { keysym, timer } = this.pendingControl;
    clearTimeout(timer);
    this.pendingControl = null;
    if (this.send("key", { keysym, down: true })) this.view.keys += 1;
  }

  // Windows' own Control of its AltGr: never sent, and neither is its key-up.
  dropControl() {
    if (this.pendingControl === null) return;
    clearTimeout(this.pendingControl.timer);
    this.pendingControl = null;
    this.held.delete("ControlLeft");
  }

  // Text that came without keys: each character pressed and let go.
  text(data) {
    this.sink.value = "";
    for (const char of data || "") {
      const keysym = OpenfrpInput.keysym({ key: char, code: "" });
      if (keysym === null) continue;
      if (this.send("key", { keysym, down: true }) && this.send("key", { keysym, down: false })) {
        this.view.texts += 1;
      }
    }
  }

  // DOM buttons: 1 left, 2 right, 4 middle; the message: bit0 left, bit1 middle, bit2 right.
  static mask(buttons) {
    return (buttons & 1) | (buttons & 4 ? 2 : 0) | (buttons & 2 ? 4 : 0);
  }

  position(e) {
    if (this.locked() && this.at !== null) {
      const box = this.canvas.getBoundingClientRect();
      const sx = this.canvas.width / Math.max(1, box.width);
      const sy = this.canvas.height / Math.max(1, box.height);
      return {
        x: Math.min(this.canvas.width - 1, Math.max(0, Math.round(this.at.x + e.movementX * sx))),
        y: Math.min(this.canvas.height - 1, Math.max(0, Math.round(this.at.y + e.movementY * sy))),
      };
    }
    const at = this.link.toRemote(e.clientX, e.clientY);
    return at === null && this.buttons !== 0 ? this.nearest(e.clientX, e.clientY) : at;
  }

  locked() {
    return document.pointerLockElement === this.canvas;
  }

  // The picture's pixel nearest to a page point off it, for a drag: the picture is centred on
  // the canvas, so each axis is searched between the canvas' centre and the point (toRemote
  // knows the picture's place and scale; the page does not).
  nearest(x, y) {
    const box = this.canvas.getBoundingClientRect();
    const [cx, cy] = [box.left + box.width / 2, box.top + box.height / 2];
    const edge = (from, to, on) => {
      if (on(to)) return to;
      while (Math.abs(to - from) > 1 / 64) {
        const mid = (from + to) / 2;
        if (on(mid)) from = mid; else to = mid;
      }
      return from;
    };
    const ex = edge(cx, x, (v) => this.link.toRemote(v, cy) !== null);
    const ey = edge(cy, y, (v) => this.link.toRemote(cx, v) !== null);
    return this.link.toRemote(ex, ey);
  }

  pointer(e) {
    const buttons = OpenfrpInput.mask(e.buttons);
    if (e.type === "pointerdown") {
      e.preventDefault();
      this.sink.focus({ preventScroll: true });
      if (!this.locked()) this.canvas.setPointerCapture(e.pointerId);
    }
    const at = this.position(e) ?? (buttons !== this.buttons ? this.at : null);
    if (at === null) return;  // outside the picture, nothing pressed or let go
    const same = this.at !== null && at.x === this.at.x && at.y === this.at.y;
    if (same && buttons === this.buttons) return;
    this.at = at;
    this.buttons = buttons;
    if (this.send("pointer", { x: at.x, y: at.y, buttons })) this.view.pointer += 1;
  }

  // The buttons held, let go where the pointer was last: the browser ended the drag.
  letGo() {
    if (this.buttons === 0 || this.at === null) return;
    this.buttons = 0;
    if (this.send("pointer", { x: this.at.x, y: this.at.y, buttons: 0 })) this.view.pointer += 1;
  }

  scroll(e) {
    e.preventDefault();
    const px = [1, OpenfrpInput.LINE_PIXELS, OpenfrpInput.NOTCH_PIXELS][e.deltaMode] ?? 1;
    const idle = e.timeStamp - this.wheel.at > OpenfrpInput.WHEEL_IDLE_MS;
    this.wheel.at = e.timeStamp;
    const dx = this.steps("x", e.deltaX * px, idle);
    const dy = this.steps("y", e.deltaY * px, idle);
    if (dx === 0 && dy === 0) return;
    const at = this.link.toRemote(e.clientX, e.clientY);
    if (at !== null && (this.at === null || at.x !== this.at.x || at.y !== this.at.y)) {
      this.at = at;
      this.send("pointer", { x: at.x, y: at.y, buttons: this.buttons });
    }
    this.send("wheel", { dx, dy });
  }

  // The steps `delta` pixels on one axis make, with what that axis has left over.
  steps(axis, delta, idle) {
    let sum = this.wheel[axis];
    if (idle || sum * delta < 0) sum = 0;
    sum += delta;
    if (Math.abs(sum) < OpenfrpInput.WHEEL_PIXELS) {
      this.wheel[axis] = sum;
      return 0;
    }
    this.wheel[axis] = 0;
    const notches = Math.max(1, Math.round(Math.abs(sum) / OpenfrpInput.NOTCH_PIXELS));
    return Math.sign(sum) * Math.min(64, notches);
  }

  // The session's cursor shape (a `cursor` message), drawn by the browser at the local pointer.
  control(message) {
    if (message.type !== "cursor") return;
    const { png, xhot, yhot, width, height } = message;
    this.canvas.style.cursor = `url(data:image/png;base64,${png}) ${xhot} ${yhot}, default`;
    this.view.cursor = { width, height, xhot, yhot };
  }

  // Let go of everything this page holds (the server does the same on a drop or resume).
  releaseAll(reason) {
    this.dropControl();
    this.held.clear();
    this.buttons = 0;
    if (this.send("release", {})) this.view.released += 1;
    this.view.lastRelease = reason;
  }

  lockPointer() {
    return this.canvas.requestPointerLock();
  }
}

window.OpenfrpInput = OpenfrpInput;
