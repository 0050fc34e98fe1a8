// The browser terminal's picture: binary wire frames (src/openfrp/media/wire.py: a 10-byte
// header "!IHHBB" = frame number, width, height, codec, flags, then the codec's payload)
// decoded with WebCodecs (H.264, VP8), createImageBitmap (JPEG) or DecompressionStream (raw
// RGB), drawn on a canvas that fills the window in device pixels: at 1:1 when the session's
// screen matches the window, scaled to fit otherwise.
//
// Every frame is acknowledged (frame_ack) once drawn or given up, so the server's count of
// frames in flight never stalls. A delta frame that cannot follow the one before it (a new
// connection, a gap in the numbers, a decoder error, a decoder that fell behind) is dropped
// until the next keyframe, which is asked for, so the person never sees a smeared picture.
"use strict";

const WIRE_HEADER = 10;
const CODECS = { 1: "rgb-zlib", 2: "h264", 3: "vp8", 4: "jpeg" };
const INTRA = new Set(["rgb-zlib", "jpeg"]);  // every frame stands alone
const FLAG_KEY = 1;
const DECODE_QUEUE_LIMIT = 8;  // frames waiting in a decoder before it counts as behind
const KEYFRAME_RETRY_MS = 1000;
const RESIZE_DEBOUNCE_MS = 250;
const SNAP_PX = 16;
const BT601 = { primaries: "smpte170m", transfer: "smpte170m", matrix: "smpte170m",
                fullRange: false };  // a screen this much smaller than the window is drawn 1:1, not stretched

// What this browser can draw, best first. WebCodecs exists only in a secure context
// (https, or http on localhost); without it the page still draws JPEG and raw RGB.
async function probeDecoders() {
  const decoders = [];
  if (typeof VideoDecoder !== "undefined") {
    for (const [name, codec] of [["h264", "avc1.42E01F"], ["vp8", "vp8"]]) {
      try {
        const answer = await VideoDecoder.isConfigSupported({ codec, optimizeForLatency: true });
        if (answer.supported) decoders.push(name);
      } catch (err) { /* not this one */ }
    }
  }
  if (typeof createImageBitmap === "function") decoders.push("jpeg");
  if (typeof DecompressionStream === "function") decoders.push("rgb-zlib");
  return decoders;
}

// "avc1.PPCCLL" from the first SPS of an Annex B access unit (profile, constraints, level).
function avcCodec(data) {
  for (let i = 0; i + 7 < data.length; i++) {
    if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1 && (data[i + 3] & 0x1f) === 7) {
      const hex = (b) => b.toString(16).padStart(2, "0");
      return `avc1.${hex(data[i + 4])}${hex(data[i + 5])}${hex(data[i + 6])}`;
    }
  }
  return "avc1.42E01F";
}

class VideoStream {
  // hooks: send(message), log(event, attrs, severity), stats (drawn/dropped/received).
  constructor(canvas, decoders, hooks) {
    this.canvas = canvas;
    this.decoders = decoders;
    this.hooks = hooks;
    // starts: each connection's first frame {number, codec, key} (null until it comes).
    this.view = { codec: null, drawn: 0, dropped: 0, decoders, remote: null, screen: null,
                  picture: null, starts: [] };
    this.decoder = null;  // WebCodecs decoder of this.codec, or null
    this.inDecoder = [];  // frame numbers given to the decoder, not yet drawn
    this.generation = 0;  // a new connection: frames still decoding are not acknowledged
    this.codec = null;
    this.configured = null;  // the codec string the decoder was configured with
    this.lastNumber = null;
    this.awaitingKey = true;
    this.askedAt = -KEYFRAME_RETRY_MS;
    this.pending = 0;  // JPEG / raw RGB frames being decoded
    this.chain = Promise.resolve();
    this.last = null;  // the picture on screen: {source, close}, redrawn after a layout change
    this.sentScreen = null;
    this.resizeTimer = null;
    this.connected = false;
    this.layout();
    window.addEventListener("resize", () => {
      clearTimeout(this.resizeTimer);
      this.resizeTimer = setTimeout(() => this.windowResized(), RESIZE_DEBOUNCE_MS);
    });
  }

  // The window in device pixels: what the session's screen should be.
  windowScreen() {
    const scale = window.devicePixelRatio || 1;
    return { width: Math.round(window.innerWidth * scale),
             height: Math.round(window.innerHeight * scale), scale };
  }

  helloFields() {
    this.sentScreen = this.windowScreen();
    return { screen: this.sentScreen, decoders: this.decoders };
  }

  // A new connection (first or resumed): its stream starts over at a keyframe.
  started() {
    this.connected = true;
    this.generation += 1;
    this.lastNumber = null;
    this.awaitingKey = true;
    this.askedAt = -KEYFRAME_RETRY_MS;
    this.pending = 0;
    this.inDecoder = [];
    this.closeDecoder();
    this.view.starts = [...this.view.starts.slice(-9), null];
  }

  stopped() { this.connected = false; }

  control(message) {
    if (message.type === "screen") {
      this.view.remote = { width: message.width, height: message.height };
    }
  }

  frame(buffer) {
    if (buffer.byteLength < WIRE_HEADER) return;
    const head = new DataView(buffer);
    const h = { number: head.getUint32(0), width: head.getUint16(4), height: head.getUint16(6),
                codec: CODECS[head.getUint8(8)], key: (head.getUint8(9) & FLAG_KEY) !== 0 };
    if (h.codec === undefined) return;
    this.hooks.stats.received(buffer.byteLength);
    const starts = this.view.starts;
    if (starts.length && starts.at(-1) === null) {
      starts[starts.length - 1] = { number: h.number, codec: h.codec, key: h.key };
    }
    const payload = new Uint8Array(buffer, WIRE_HEADER);
    const follows = this.lastNumber === null || h.number === (this.lastNumber + 1) % 2 ** 32;
    this.lastNumber = h.number;
    if (h.codec !== this.codec) this.switchCodec(h.codec);
    if (!INTRA.has(h.codec) && !h.key) {
      const behind = this.decoder !== null && this.decoder.decodeQueueSize >= DECODE_QUEUE_LIMIT;
      const reason = behind ? "behind" : !follows ? "gap" : this.awaitingKey ? "start" : null;
      if (reason !== null) {
        this.skip(h.number, reason);
        return;
      }
    }
    if (INTRA.has(h.codec)) this.drawImage(h, payload);
    else this.decode(h, payload);
  }

  switchCodec(codec) {
    this.closeDecoder();
    this.codec = codec;
    this.view.codec = codec;
    this.hooks.log("stream.decoder", { codec, decoders: this.decoders,
                                       webcodecs: !INTRA.has(codec) });
  }

  // Frames still inside a closed decoder are given up (and acknowledged).
  closeDecoder() {
    if (this.decoder !== null && this.decoder.state !== "closed") this.decoder.close();
    this.decoder = null;
    this.configured = null;
    for (const number of this.inDecoder.splice(0)) this.dropped(number);
  }

  dropped(number) {
    this.view.dropped += 1;
    this.hooks.stats.dropped();
    this.ack(number);
  }

  // Drop a frame that cannot be shown; ask for a keyframe (again after a while).
  skip(number, reason) {
    this.dropped(number);
    this.askKeyframe(reason);
  }

  askKeyframe(reason) {
    const now = performance.now();
    if (!this.awaitingKey || now - this.askedAt >= KEYFRAME_RETRY_MS) {
      this.askedAt = now;
      this.hooks.send({ type: "keyframe", reason });
    }
    this.awaitingKey = true;
  }

  ack(number) { this.hooks.send({ type: "frame_ack", frame: number }); }

  decoderFailed(error) {
    this.hooks.log("stream.decoder_error", { codec: this.codec, error }, "warning");
    this.closeDecoder();
    this.askKeyframe(`decoder error: ${error}`.slice(0, 120));
  }

  decode(h, payload) {
    try {
      if (h.key) {
        const codec = h.codec === "h264" ? avcCodec(payload) : "vp8";
        if (this.decoder === null) this.decoder = this.newDecoder();
        if (this.configured !== codec) {
          // VP8 is BT.601 by its specification (RFC 6386) but says so nowhere in the stream.
          const colorSpace = codec === "vp8" ? BT601 : undefined;
          this.decoder.configure({ codec, optimizeForLatency: true, colorSpace });
          this.configured = codec;
        }
      } else if (this.decoder === null) {
        this.skip(h.number, "start");
        return;
      }
      // The timestamp carries the frame number to the output callback, which acknowledges it.
      this.decoder.decode(new EncodedVideoChunk({ type: h.key ? "key" : "delta",
                                                  timestamp: h.number, data: payload }));
      this.inDecoder.push(h.number);
      this.awaitingKey = false;
    } catch (err) {
      this.dropped(h.number);
      this.decoderFailed(`${err.name}: ${err.message}`);
    }
  }

  newDecoder() {
    const decoder = new VideoDecoder({
      output: (frame) => {
        if (decoder !== this.decoder) { frame.close(); return; }
        // Frames the decoder passed over (none with H.264 baseline or VP8) count as dropped.
        while (this.inDecoder.length && this.inDecoder[0] !== frame.timestamp) {
          this.dropped(this.inDecoder.shift());
        }
        this.inDecoder.shift();
        this.show(frame, frame.displayWidth, frame.displayHeight, () => frame.close());
        this.ack(frame.timestamp);
      },
      error: (err) => {
        if (decoder === this.decoder) this.decoderFailed(`${err.name}: ${err.message}`);
      },
    });
    return decoder;
  }

  // JPEG and raw RGB: decoded off the main thread's critical path, drawn in arrival order.
  drawImage(h, payload) {
    if (this.pending >= DECODE_QUEUE_LIMIT) {
      this.view.dropped += 1;
      this.hooks.stats.dropped();
      this.ack(h.number);
      return;
    }
    this.pending += 1;
    const generation = this.generation;
    const picture = h.codec === "jpeg"
      ? createImageBitmap(new Blob([payload], { type: "image/jpeg" }))
      : rgbPicture(payload, h.width, h.height);
    this.chain = this.chain.then(() => picture).then((source) => {
      if (generation !== this.generation) { source.close(); return; }
      this.pending -= 1;
      this.show(source, h.width, h.height, () => source.close());
      this.ack(h.number);
    }, (err) => {
      if (generation !== this.generation) return;
      this.pending -= 1;
      this.hooks.log("stream.decoder_error", { codec: h.codec, error: String(err) }, "warning");
      this.dropped(h.number);
    });
  }

  show(source, width, height, close) {
    if (this.last !== null) this.last.close();
    this.last = { source, width, height, close };
    this.view.remote = { width, height };
    this.paint();
    this.view.drawn += 1;
    this.hooks.stats.drawn();
  }

  // Where the picture goes, in canvas (device) pixels: centred, 1:1 when it fits the window
  // or nearly, else scaled down (or up) to fit.
  placement(width, height) {
    const cw = this.canvas.width;
    const ch = this.canvas.height;
    let scale = Math.min(cw / width, ch / height);
    if (width <= cw && height <= ch && cw - width <= SNAP_PX && ch - height <= SNAP_PX) scale = 1;
    const w = Math.round(width * scale);
    const hgt = Math.round(height * scale);
    return { x: Math.floor((cw - w) / 2), y: Math.floor((ch - hgt) / 2), width: w, height: hgt,
             scale };
  }

  paint() {
    const ctx = this.canvas.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    if (this.last === null) return;
    const at = this.placement(this.last.width, this.last.height);
    ctx.imageSmoothingEnabled = at.scale !== 1;  // crisp at 1:1, smooth when scaled
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(this.last.source, at.x, at.y, at.width, at.height);
    this.view.picture = at;
  }

  // The canvas covers the window, one canvas pixel per device pixel.
  layout() {
    const screen = this.windowScreen();
    this.view.screen = screen;
    if (this.canvas.width !== screen.width || this.canvas.height !== screen.height) {
      this.canvas.width = screen.width;
      this.canvas.height = screen.height;
    }
    this.canvas.style.width = `${screen.width / screen.scale}px`;
    this.canvas.style.height = `${screen.height / screen.scale}px`;
    this.paint();
  }

  windowResized() {
    this.layout();
    const screen = this.view.screen;
    const sent = this.sentScreen;
    if (!this.connected || (sent !== null && sent.width === screen.width
        && sent.height === screen.height && sent.scale === screen.scale)) return;
    this.sentScreen = screen;
    this.hooks.send({ type: "resize", ...screen });
  }

  // A point in the page (clientX/Y) as a pixel of the session's screen, or null outside the
  // picture: what pointer input sends.
  toRemote(clientX, clientY) {
    const at = this.view.picture;
    const last = this.last;
    if (at === null || last === null) return null;
    const box = this.canvas.getBoundingClientRect();
    const scale = this.view.screen.scale;
    const x = ((clientX - box.left) * scale - at.x) / at.width * last.width;
    const y = ((clientY - box.top) * scale - at.y) / at.height * last.height;
    if (x < 0 || y < 0 || x >= last.width || y >= last.height) return null;
    return { x: Math.floor(x), y: Math.floor(y) };
  }
}

async function rgbPicture(payload, width, height) {
  const stream = new Blob([payload]).stream().pipeThrough(new DecompressionStream("deflate"));
  const rgb = new Uint8Array(await new Response(stream).arrayBuffer());
  if (rgb.length !== width * height * 3) {
    throw new Error(`${rgb.length} bytes for a ${width}x${height} picture`);
  }
  const pixels = new ImageData(width, height);
  for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
    pixels.data[j] = rgb[i];
    pixels.data[j + 1] = rgb[i + 1];
    pixels.data[j + 2] = rgb[i + 2];
    pixels.data[j + 3] = 255;
  }
  return createImageBitmap(pixels);
}

window.OpenfrpVideo = { probeDecoders, VideoStream, avcCodec };
