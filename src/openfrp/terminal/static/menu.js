// The gear menu: Disconnect, Fullscreen, Add monitor, Upload, Clipboard, Stats, Save log,
// Close session. Keyboard-reachable: Enter, Space or ArrowDown on the gear opens it; arrows,
// Home and End move between items; Escape closes it and gives the keyboard back to what had it
// before (the session, or the gear when the keyboard opened it); Tab leaves. A click on the
// gear takes no focus, and a choice gives the keyboard back to the session, so the keys typed
// next reach the desktop: left on the gear, a space and an Enter would open the menu and
// choose its first item (Disconnect). An item with data-confirm (Close session, which ends the apps and their unsaved
// work) asks once more: its first choice shows that text instead, CONFIRM_MS at most, and only
// a second choice acts. It comes last, away from where the menu opens.
//
// Parts of the page that act on an item register for it:
//   window.openfrpMenu.register("upload", () => { ... });  // returns a function to unregister
// Items with a data-hook="NAME" attribute (add-monitor, upload, clipboard, stats, fullscreen,
// close-session) call the handler registered for NAME; with none, the person is told the item
// is not available in this session. Every choice is also dispatched as a window event
// "openfrp:menu" {detail: {item}}. Disconnect and Save log are wired by terminal.js on the
// elements themselves.
// Key events inside #bar belong to the page (the menu), not to the remote session.
"use strict";

class GearMenu {
  static CONFIRM_MS = 5000;

  constructor(gear, menu) {
    this.gear = gear;
    this.menu = menu;
    this.handlers = new Map();
    this.before = null;  // what had the keyboard when the menu opened
    this.popup = (text) => console.info(text);
    this.log = () => {};
    gear.addEventListener("mousedown", (e) => e.preventDefault());
    gear.addEventListener("click", () => (this.isOpen() ? this.close(true) : this.open(0)));
    gear.addEventListener("keydown", (e) => {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        this.open(e.key === "ArrowDown" ? 0 : -1);
      }
    });
    menu.addEventListener("keydown", (e) => this.key(e));
    menu.addEventListener("click", (e) => {
      const item = e.target.closest("[role=menuitem]");
      if (item !== null) this.choose(item);
    });
    menu.addEventListener("focusout", (e) => {
      if (this.isOpen() && !menu.contains(e.relatedTarget) && e.relatedTarget !== gear) {
        this.close(false);
      }
    });
    document.addEventListener("pointerdown", (e) => {
      if (this.isOpen() && !menu.contains(e.target) && !gear.contains(e.target)) {
        this.close(false);
      }
    });
    this.register("fullscreen", () => this.fullscreen());
    document.addEventListener("fullscreenchange", () => {
      document.getElementById("fullscreen").textContent =
        document.fullscreenElement ? "Exit fullscreen" : "Fullscreen";
    });
  }

  // popup(text, level) shows a pop-up; log(event, attrs, severity) writes a terminal event.
  attach(popup, log) {
    this.popup = popup;
    this.log = log;
  }

  register(name, handler) {
    this.handlers.set(name, handler);
    return () => { if (this.handlers.get(name) === handler) this.handlers.delete(name); };
  }

  items() { return [...this.menu.querySelectorAll("[role=menuitem]")]; }
  isOpen() { return !this.menu.hidden; }

  open(index) {
    this.before = document.activeElement;
    this.menu.hidden = false;
    this.gear.setAttribute("aria-expanded", "true");
    const items = this.items();
    items.at(index).focus();
  }

  close(refocus) {
    for (const item of this.items()) this.disarm(item);
    this.menu.hidden = true;
    this.gear.setAttribute("aria-expanded", "false");
    if (refocus) (this.before ?? this.gear).focus({ preventScroll: true });
  }

  // The keyboard back to the session: its hidden text field (input.js), when it has one.
  toSession() {
    const keys = document.getElementById("keys");
    if (keys !== null) keys.focus({ preventScroll: true });
  }

  key(e) {
    const items = this.items();
    const at = items.indexOf(document.activeElement);
    const moves = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: items.length - 1 };
    if (e.key in moves) {
      e.preventDefault();
      items[(moves[e.key] + items.length) % items.length].focus();
    } else if (e.key === "Escape") {
      e.preventDefault();
      this.close(true);
    } else if (e.key === "Tab") {
      this.close(false);
    }
  }

  // An item that asks once more: its first choice arms it (and keeps the menu open).
  arm(item) {
    if (item.dataset.confirm === undefined || item.dataset.armed !== undefined) return false;
    item.dataset.armed = item.textContent;
    item.textContent = item.dataset.confirm;
    item.classList.add("armed");
    const timer = setTimeout(() => this.disarm(item), GearMenu.CONFIRM_MS);
    item.dataset.timer = String(timer);
    return true;
  }

  disarm(item) {
    if (item.dataset.armed === undefined) return;
    clearTimeout(Number(item.dataset.timer));
    item.textContent = item.dataset.armed;
    item.classList.remove("armed");
    delete item.dataset.armed;
  }

  choose(item) {
    if (this.arm(item)) return;
    const name = item.dataset.hook || item.id;
    this.close(false);
    if (item.dataset.hook !== undefined) this.toSession();
    window.dispatchEvent(new CustomEvent("openfrp:menu", { detail: { item: name } }));
    if (item.dataset.hook === undefined) return;  // wired on the element itself
    const handler = this.handlers.get(name);
    if (handler === undefined) {
      this.popup(`${item.textContent.trim()} is not available in this session.`, "note");
      this.log("menu.unavailable", { item: name }, "info");
      return;
    }
    Promise.resolve().then(handler).catch((err) => {
      this.popup(`${item.textContent.trim()} failed: ${err.message}`, "error");
      this.log("menu.failed", { item: name, error: `${err.name}: ${err.message}` }, "warning");
    });
  }

  // Fullscreen, with the keyboard locked where the browser allows it, so Escape, Ctrl+W or
  // Alt+Tab reach the session instead of the browser.
  async fullscreen() {
    if (document.fullscreenElement) {
      if (navigator.keyboard && navigator.keyboard.unlock) navigator.keyboard.unlock();
      await document.exitFullscreen();
      this.log("fullscreen", { on: false }, "info");
      return;
    }
    await document.documentElement.requestFullscreen({ navigationUI: "hide" });
    let locked = false;
    if (navigator.keyboard && navigator.keyboard.lock) {
      try {
        await navigator.keyboard.lock();
        locked = true;
      } catch (err) { /* the browser keeps its own shortcuts */ }
    }
    this.log("fullscreen", { on: true, keyboard_lock: locked }, "info");
  }
}

window.openfrpMenu = new GearMenu(document.getElementById("gear"),
                                  document.getElementById("menu"));
