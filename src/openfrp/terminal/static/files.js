// Files between this page and the session, as the launchpad's policy allows
// (config.terminal.file_transfer: both, to_session, from_session or off).
//
// Upload: drop files on the page, or choose them with the gear menu's Upload item; they go
// one after another into the session's home folder. Each chunk is sent only when the server
// acknowledged the one before, so the picture never waits behind a file. Download: a file
// offered from inside the session (`openfrp guest download FILE`) is received the same way
// and shown as a link to save it. A pop-up counts each transfer's progress. An upload that a
// lost connection cut starts again from its start once the session is back (a chunk sent
// while the connection was down is lost; the server drops the part it kept when the next
// upload begins), and the files waiting after it go on; a download it cut is said to be lost
// (the server offered it to the connection that is gone). A name is shown isolated from the
// sentence around it, so a right-to-left mark in it turns nothing else around.
"use strict";

class OpenfrpFiles {
  static CHUNK = 48 * 1024;

  // hooks: {send(message), log(event, attrs), popup(text, level) -> element, ready()}
  constructor(policy, hooks) {
    this.policy = policy || "both";
    this.hooks = hooks;
    this.queue = [];  // files waiting to upload
    this.upload = null;  // {id, file, sent, box}
    this.downloads = new Map();  // id -> {name, size, parts, received}
    this.view = { uploaded: [], refused: [], downloaded: [], policy: this.policy, sending: null,
                  restarted: 0, lost: [] };
    if (this.policy === "both" || this.policy === "to_session") {
      this.picker = document.createElement("input");
      this.picker.type = "file";
      this.picker.multiple = true;
      this.picker.hidden = true;
      this.picker.id = "upload-picker";
      this.picker.addEventListener("change", () => {
        this.add(this.picker.files);
        this.picker.value = "";
      });
      document.body.appendChild(this.picker);
      document.addEventListener("dragover", (e) => e.preventDefault());
      document.addEventListener("drop", (e) => {
        e.preventDefault();
        if (e.dataTransfer) this.add(e.dataTransfer.files);
      });
      if (window.openfrpMenu) window.openfrpMenu.register("upload", () => this.picker.click());
    }
  }

  add(files) {
    for (const file of files) this.queue.push(file);
    this.next();
  }

  next() {
    if (this.upload !== null || !this.queue.length || !this.hooks.ready()) return;
    const file = this.queue.shift();
    const id = `u-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    const box = this.hooks.popup(`Uploading ${OpenfrpFiles.shown(file.name)}`, "info");
    this.upload = { id, file, sent: 0, box };
    this.view.sending = { name: file.name, sent: 0, size: file.size };
    this.hooks.send({ type: "file_begin", id, name: file.name, size: file.size });
  }

  // The session is connected (again): an upload in flight starts again, the queue goes on,
  // a download in flight is lost.
  connected() {
    const up = this.upload;
    if (up !== null) {
      up.box.remove();
      this.upload = null;
      this.queue.unshift(up.file);
      this.view.restarted += 1;
    }
    for (const down of this.downloads.values()) {
      down.box.remove();
      this.view.lost.push(down.name);
      this.hooks.popup(`${OpenfrpFiles.shown(down.name)} did not arrive: the connection was lost `
                       + "while it came. Offer it again from the session.", "warning");
    }
    this.downloads.clear();
    this.next();
  }

  // A name inside a sentence, isolated (U+2068 ... U+2069) from the text around it.
  static shown(name) { return `\u2068${name}\u2069`; }

  static progress(box, verb, name, done, size) {
    const share = size > 0 ? Math.floor((100 * done) / size) : 100;
    box.firstChild.textContent = `${verb} ${OpenfrpFiles.shown(name)}: ${share} %`;
  }

  static base64(bytes) {
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x2000) {
      text += String.fromCharCode(...bytes.subarray(i, i + 0x2000));
    }
    return btoa(text);
  }

  static bytes(base64) {
    const text = atob(base64);
    const out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i += 1) out[i] = text.charCodeAt(i);
    return out;
  }

  // A server message; only the file_* ones are ours.
  control(message) {
    if (typeof message.type !== "string" || !message.type.startsWith("file_")) return;
    const up = this.upload;
    if (up !== null && message.id === up.id) this.uploadStep(up, message);
    else this.downloadStep(message);
  }

  async uploadStep(up, message) {
    if (message.type === "file_ack" && message.offset === up.sent) {
      if (up.sent >= up.file.size) {
        this.hooks.send({ type: "file_end", id: up.id });
        return;
      }
      const piece = new Uint8Array(
        await up.file.slice(up.sent, up.sent + OpenfrpFiles.CHUNK).arrayBuffer());
      if (this.upload !== up) return;  // restarted while the chunk was read
      const offset = up.sent;
      up.sent += piece.length;
      this.view.sending.sent = offset;
      OpenfrpFiles.progress(up.box, "Uploading", up.file.name, offset, up.file.size);
      this.hooks.send({ type: "file_chunk", id: up.id, offset, data: OpenfrpFiles.base64(piece) });
    } else if (message.type === "file_status") {
      this.upload = null;
      up.box.remove();
      if (message.state === "saved") {
        this.view.uploaded.push(message.name);
        const [from, to] = [up.file.name, message.name].map(OpenfrpFiles.shown);
        this.hooks.popup(`Uploaded ${from} to the session as ${to}.`, "note");
        this.hooks.log("file.transfer", { direction: "to_session", bytes: up.file.size });
      } else {
        const reason = message.reason || message.state;
        this.view.refused.push(reason);
        this.hooks.popup(`Upload of ${OpenfrpFiles.shown(up.file.name)} refused: ${reason}.`,
                         "warning");
      }
      this.next();
    }
  }

  downloadStep(message) {
    const id = message.id;
    if (message.type === "file_offer") {
      const box = this.hooks.popup(`Receiving ${OpenfrpFiles.shown(message.name)}`, "info");
      this.downloads.set(id,
                         { name: message.name, size: message.size, parts: [], received: 0, box });
      this.hooks.send({ type: "file_ack", id, offset: 0 });
      return;
    }
    const down = this.downloads.get(id);
    if (down === undefined) return;
    if (message.type === "file_chunk" && message.offset === down.received) {
      const part = OpenfrpFiles.bytes(message.data);
      down.parts.push(part);
      down.received += part.length;
      OpenfrpFiles.progress(down.box, "Receiving", down.name, down.received, down.size);
      this.hooks.send({ type: "file_ack", id, offset: down.received });
    } else if (message.type === "file_end") {
      this.downloads.delete(id);
      down.box.remove();
      const url = URL.createObjectURL(new Blob(down.parts));
      const box = this.hooks.popup(
        `${OpenfrpFiles.shown(down.name)} (${sizeText(down.size)}) from the session: `, "info");
      const link = document.createElement("a");
      link.href = url;
      link.download = down.name;
      link.textContent = "Save";
      link.className = "download";
      link.onclick = (e) => e.stopPropagation();  // saving does not dismiss the pop-up
      box.appendChild(link);
      this.view.downloaded.push(down.name);
      this.hooks.send({ type: "file_status", id, state: "saved" });
      this.hooks.log("file.transfer", { direction: "from_session", bytes: down.size });
    }
  }
}
