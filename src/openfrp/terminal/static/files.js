// Files between this page and the session, as the launchpad's policy allows
// (config.terminal.file_transfer: both, to_session, from_session or off).
//
// Upload: drop files on the page, or choose them with the gear menu's Upload item; they go
// one after another into the session's home folder. Each chunk is sent only when the server
// acknowledged the one before, so the picture never waits behind a file. Download: a file
// offered from inside the session (`openfrp guest download FILE`) is received the same way
// and shown as a link to save it.
"use strict";

class OpenfrpFiles {
  static CHUNK = 48 * 1024;

  // hooks: {send(message), log(event, attrs), popup(text, level) -> element, ready()}
  constructor(policy, hooks) {
    this.policy = policy || "both";
    this.hooks = hooks;
    this.queue = [];  // files waiting to upload
    this.upload = null;  // {id, file, sent}
    this.downloads = new Map();  // id -> {name, size, parts, received}
    this.view = { uploaded: [], refused: [], downloaded: [], policy: this.policy };
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
    this.upload = { id, file, sent: 0 };
    this.hooks.send({ type: "file_begin", id, name: file.name, size: file.size });
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
      const offset = up.sent;
      up.sent += piece.length;
      this.hooks.send({ type: "file_chunk", id: up.id, offset, data: OpenfrpFiles.base64(piece) });
    } else if (message.type === "file_status") {
      this.upload = null;
      if (message.state === "saved") {
        this.view.uploaded.push(message.name);
        this.hooks.popup(`Uploaded ${up.file.name} to the session as ${message.name}.`, "note");
        this.hooks.log("file.transfer", { direction: "to_session", bytes: up.file.size });
      } else {
        const reason = message.reason || message.state;
        this.view.refused.push(reason);
        this.hooks.popup(`Upload of ${up.file.name} refused: ${reason}.`, "warning");
      }
      this.next();
    }
  }

  downloadStep(message) {
    const id = message.id;
    if (message.type === "file_offer") {
      this.downloads.set(id, { name: message.name, size: message.size, parts: [], received: 0 });
      this.hooks.send({ type: "file_ack", id, offset: 0 });
      return;
    }
    const down = this.downloads.get(id);
    if (down === undefined) return;
    if (message.type === "file_chunk" && message.offset === down.received) {
      const part = OpenfrpFiles.bytes(message.data);
      down.parts.push(part);
      down.received += part.length;
      this.hooks.send({ type: "file_ack", id, offset: down.received });
    } else if (message.type === "file_end") {
      this.downloads.delete(id);
      const url = URL.createObjectURL(new Blob(down.parts));
      const box = this.hooks.popup(`${down.name} (${down.size} bytes) from the session: `, "info");
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
