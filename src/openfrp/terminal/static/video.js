// The browser terminal's picture: binary wire frames (src/openfrp/media/wire.py: a 10-byte
// header "!IHHBB" = frame number, width, height, codec, flags, then the codec's payload)
// decoded with WebCodecs (H.264, VP8), createImageBitmap (JPEG) or DecompressionStream (raw
// RGB; the mixed stream's palette tiles, palette.js, beside H.264 that brings only the
// tiles it names), kept in a picture canvas the size of the session's screen and drawn on a
// canvas that fills the window in device pixels: at 1:1 when the screen matches the window,
// scaled to fit otherwise.
//
// Every frame is acknowledged (frame_ack) once decoded (the pacer draws it within a frame) or
// given up, so the server's count of frames in flight never stalls. A delta frame that cannot
// follow the one before it (a new connection, a gap in the numbers, a decoder error, a decoder
// that fell behind) is dropped until the next keyframe, which is asked for, so the person
// never sees a smeared picture.
"use strict";

const WIRE_HEADER = 10;
const CODECS = { 1: "rgb-zlib", 2: "h264", 3: "vp8", 4: "jpeg", 5: "palette", 6: "track" };
const INTRA = new Set(["rgb-zlib", "jpeg"]);  // every frame stands alone
const FLAG_KEY = 1;
const FLAG_TILES = 4;  // H.264 that brings only the rectangles its payload starts with
const FLAG_MORE = 8;  // the picture's next frame follows: the picture is counted at its last
const TILE = 64;  // media/changes.py
const DECODE_QUEUE_LIMIT = 8;  // frames waiting in a decoder before it counts as behind
const KEYFRAME_RETRY_MS = 1000;
const RESIZE_DEBOUNCE_MS = 250;
const RATIO_CHECK_MS = 1000;  // how often the pixel ratio is looked at (see the constructor)
const SNAP_PX = 16;  // a screen this much smaller than the window is drawn at a whole scale
const BT601 = { primaries: "smpte170m", transfer: "smpte170m", matrix: "smpte170m",
                fullRange: false };

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
  if (typeof DecompressionStream === "function") {
    if (decoders.includes("h264")) decoders.push("palette");
    decoders.push("rgb-zlib");
  }
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
  // hooks: send(message), log(event, attrs, severity), stats (drawn/dropped/received),
  // limits: the launchpad's {width, height} at most (max_width, max_height).
  constructor(canvas, decoders, hooks) {
    this.canvas = canvas;
    this.decoders = decoders;
    this.hooks = hooks;
    // starts: each connection's first frame {number, codec, key} (null until it comes);
    // screen: the window in device pixels (the canvas); asked: the screen asked for it.
    this.view = { codec: null, drawn: 0, dropped: 0, decoders, remote: null, screen: null,
                  asked: null, picture: null, starts: [], palette: 0 };
    this.decoder = null;  // WebCodecs decoder of this.codec, or null
    this.inDecoder = [];  // frame numbers given to the decoder, not yet drawn
    this.idleWaiter = null;  // palette tiles waiting for decoder frames that draw where they do
    this.regions = new Map();  // frame number -> the rectangles to take from it (FLAG_TILES)
    this.generation = 0;  // a new connection: frames still decoding are not acknowledged
    this.codec = null;
    this.configured = null;  // the codec string the decoder was configured with
    this.lastNumber = null;
    this.awaitingKey = true;
    this.askedAt = -KEYFRAME_RETRY_MS;
    this.pending = 0;  // JPEG / raw RGB / palette frames being decoded
    this.drawing = new Map();  // of those, palette frames: number -> the rectangles they draw
    this.deferred = 0;  // H.264 frames waiting for them: the frames after wait too, in order
    this.chain = Promise.resolve();
    this.rows = new RowStore();  // rows palette frames drew lately (media/rows.py)
    this.paletteStream = new PaletteStream();  // their deflate stream, inflated on arrival
    this.picture = document.createElement("canvas");  // the session's screen, 1:1
    this.track = null;  // FRP8 with palette tiles: the TrackTiles the video track shows
    this.pacer = new Pacer();  // the pictures drawn on the canvas, one per animation frame
    this.trackDue = null;  // the track's newest frame presented, waiting for its tiles
    this.trackShown = null;  // the track's newest frame presented {width, height, rtp}
    this.placed = "";  // where the <video> was put last, in CSS pixels
    this.last = null;  // the picture's size {width, height} once drawn, null before
    this.sentScreen = null;
    this.resizeTimer = null;
    this.connected = false;
    this.layout();
    const resized = () => {
      clearTimeout(this.resizeTimer);
      this.resizeTimer = setTimeout(() => this.windowResized(), RESIZE_DEBOUNCE_MS);
    };
    window.addEventListener("resize", resized);
    // A window moved to a screen of another pixel ratio (or the system's scale changed) keeps
    // its CSS size: no `resize`, and a media query's change did not come every time either.
    setInterval(() => {
      if ((window.devicePixelRatio || 1) !== this.view.screen.scale) resized();
    }, RATIO_CHECK_MS);
  }

  // The window in device pixels: what the session's screen should be.
  windowScreen() {
    const scale = window.devicePixelRatio || 1;
    return { width: Math.round(window.innerWidth * scale),
             height: Math.round(window.innerHeight * scale), scale };
  }

  // The session's screen for this window, within the limits and in the window's shape:
  // - its device pixels when they fit: drawn 1:1, the sharpest;
  // - else, at a whole device pixel ratio (2, 3), its CSS pixels when they fit, with scale 1
  //   (the apps' usual dpi): each session pixel is exactly ratio x ratio device pixels, so
  //   text stays crisp, where device pixels scaled by one factor to fit (1440x900 at 2:
  //   1728x1080, drawn 1.67x) are resampled and soft;
  // - else its device pixels scaled by one factor to fit (the server's fit_size does the
  //   same for any terminal), the dpi scaled with them so text keeps its size.
  // Asking for device pixels alone, cut to the limits on each side by the server, a
  // 1440x900 window at 2 got 1920x1080, drawn 1.5x with black bars.
  askedScreen() {
    const screen = this.windowScreen();
    const most = this.hooks.limits;
    if (!most || (screen.width <= most.width && screen.height <= most.height)) return screen;
    const css = { width: window.innerWidth, height: window.innerHeight, scale: 1 };
    if (Number.isInteger(screen.scale) && css.width <= most.width && css.height <= most.height) {
      return css;
    }
    const factor = Math.min(most.width / screen.width, most.height / screen.height);
    return { width: Math.floor(screen.width * factor),
             height: Math.floor(screen.height * factor), scale: screen.scale * factor };
  }

  helloFields() {
    this.sentScreen = this.view.asked = this.askedScreen();
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
    this.drawing.clear();
    this.deferred = 0;
    this.inDecoder = [];
    this.closeDecoder();
    this.loseRows();
    this.track = null;
    this.trackShown = null;
    this.pacer.clear();
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
                codec: CODECS[head.getUint8(8)], key: (head.getUint8(9) & FLAG_KEY) !== 0,
                tiles: (head.getUint8(9) & FLAG_TILES) !== 0,
                more: (head.getUint8(9) & FLAG_MORE) !== 0 };
    if (h.codec === undefined) return;
    this.hooks.stats.received(buffer.byteLength);
    if (h.codec === "track") {  // no numbered frame: its number is an RTP timestamp
      this.trackRegions(h, new Uint8Array(buffer, WIRE_HEADER));
      return;
    }
    const starts = this.view.starts;
    if (starts.length && starts.at(-1) === null) {
      starts[starts.length - 1] = { number: h.number, codec: h.codec, key: h.key };
    }
    const payload = new Uint8Array(buffer, WIRE_HEADER);
    const follows = this.lastNumber === null || h.number === (this.lastNumber + 1) % 2 ** 32;
    this.lastNumber = h.number;
    if (h.codec === "palette") {
      this.composite();  // over FRP8 the track names the codec
      if (this.view.codec === null && this.track === null) this.named("palette");
    } else if (h.codec !== this.codec) this.switchCodec(h.codec);
    if (!INTRA.has(h.codec) && !h.key) {
      const behind = this.decoder !== null && this.decoder.decodeQueueSize >= DECODE_QUEUE_LIMIT;
      const reason = behind ? "behind" : !follows ? "gap" : this.awaitingKey ? "start" : null;
      if (reason !== null) {
        this.skip(h.number, reason);
        return;
      }
    }
    if (INTRA.has(h.codec)) this.drawImage(h, payload);
    else if (h.codec === "palette") this.drawPalette(h, payload);
    else if (this.pending > 0 && this.behindDrawing(h, payload)) this.decodeAfter(h, payload);
    else this.decode(h, payload);
  }

  switchCodec(codec) {
    this.closeDecoder();
    this.codec = codec;
    this.named(codec);
  }

  named(codec) {
    this.view.codec = codec;
    this.hooks.log("stream.decoder", { codec, decoders: this.decoders,
                                       webcodecs: !INTRA.has(codec) && codec !== "palette" });
  }

  // Frames still inside a closed decoder are given up (and acknowledged).
  closeDecoder() {
    if (this.decoder !== null && this.decoder.state !== "closed") this.decoder.close();
    this.decoder = null;
    this.configured = null;
    this.regions.clear();
    for (const number of this.inDecoder.splice(0)) this.dropped(number);
    this.wakeClear();
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
    this.loseRows();
  }

  // A frame went missing: the row cache waits for the encoder to start it over, after the
  // palette frames before this one are drawn.
  loseRows() {
    this.chain = this.chain.then(() => this.rows.lose());
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
      if (h.tiles) {
        const split = splitRegions(payload);
        payload = split.unit;
        this.regions.set(h.number, split.regions);
      }
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
        const regions = this.regions.get(frame.timestamp) || null;
        this.regions.delete(frame.timestamp);
        this.present(() => {
          this.show(frame, frame.displayWidth, frame.displayHeight, () => frame.close(), regions);
        }, true, () => frame.close());
        this.ack(frame.timestamp);
        this.wakeClear();
      },
      error: (err) => {
        if (decoder === this.decoder) this.decoderFailed(`${err.name}: ${err.message}`);
      },
    });
    return decoder;
  }

  // Resolves once no frame given to the decoder before still has to draw where `rects` do
  // (null: anywhere), each drawn or given up. Not flush(): after a flush WebCodecs wants a
  // keyframe. Text beside a video need not wait for the video's frame to decode.
  decoderClear(rects) {
    const clear = () => !this.inDecoder.some((number) => {
      const regions = this.regions.get(number);  // none: the frame draws the whole picture
      return rects === null || regions === undefined || intersects(regions, rects);
    });
    if (clear()) return Promise.resolve();
    return new Promise((resolve) => { this.idleWaiter = { clear, resolve }; });
  }

  wakeClear() {
    const waiter = this.idleWaiter;
    if (waiter !== null && waiter.clear()) {
      this.idleWaiter = null;
      waiter.resolve();
    }
  }

  // Whether an H.264 frame draws where frames before it are still being drawn: a picture or
  // palette tiles under its tiles. Its own frame's palette tiles are elsewhere.
  behindDrawing(h, payload) {
    if (!h.tiles || this.deferred > 0 || this.pending > this.drawing.size) return true;
    let regions;
    try {
      regions = splitRegions(payload).regions;
    } catch {
      return true;  // decode() reports it
    }
    return [...this.drawing.values()].some((rects) => rects === null || intersects(rects, regions));
  }

  // An H.264 frame behind palette tiles still being drawn waits for them.
  decodeAfter(h, payload) {
    const generation = this.generation;
    this.deferred += 1;
    this.chain = this.chain.then(() => {
      if (generation !== this.generation) return;
      this.deferred -= 1;
      this.decode(h, payload);
    });
  }

  // Palette tiles go over the picture in arrival order: after the H.264 frames before them
  // that draw where they do. Palette frames are drawn one at a time (this.chain).
  drawPalette(h, payload) {
    if (this.pending >= DECODE_QUEUE_LIMIT) {
      this.skip(h.number, "behind");
      return;
    }
    this.pending += 1;
    this.awaitingKey = false;
    const generation = this.generation;
    let data;
    let rects = null;
    try {
      rects = paletteRects(payload);
      data = paletteData(payload, this.paletteStream);
    } catch (err) {
      data = Promise.reject(err);
    }
    this.drawing.set(h.number, rects);
    data.catch(() => {});  // reported in order, below
    this.chain = this.chain.then(async () => {
      await this.decoderClear(rects);
      const indices = await data;
      if (generation !== this.generation) return;
      this.pending -= 1;
      this.drawing.delete(h.number);
      this.present(() => {
        drawPaletteTiles(this.picture, h, payload, indices, this.rows);
        if (this.track !== null) this.track.palette(rects, h);
        this.view.palette += 1;
        this.shown(h.width, h.height, h.more);
      }, !h.more);
      this.ack(h.number);
    }).catch((err) => {
      if (generation !== this.generation) return;
      this.pending -= 1;
      this.drawing.delete(h.number);
      this.hooks.log("stream.decoder_error", { codec: h.codec, error: String(err) }, "warning");
      this.dropped(h.number);
      this.askKeyframe(`decoder error: ${err}`.slice(0, 120));
      this.rows.lose();
    });
  }

  // FRP8: the <video> shows the track under the canvas (track.js), which holds the palette
  // tiles of the channel (media/track_tiles.py) over it and is clear where the video shows.
  composite() {
    if (this.track === null && window.OpenfrpTrack !== undefined && window.OpenfrpTrack.under()) {
      this.track = new TrackTiles();
      this.canvas.style.background = "transparent";
      this.canvas.dataset.overlay = "1";  // bench/rig.py reads the video where it is clear
      this.placed = "";
      this.paint();
    }
  }

  // The rectangles the track frame with RTP timestamp `h.number` brings on, applied in
  // order with the palette tiles before and after them.
  trackRegions(h, payload) {
    this.composite();
    let regions;
    try {
      regions = splitRegions(payload).regions;
    } catch (err) {
      this.hooks.log("stream.decoder_error", { codec: "track", error: String(err) }, "warning");
      return;
    }
    const generation = this.generation;
    this.chain = this.chain.then(() => {
      if (generation !== this.generation) return;
      this.track.video(h.number, regions, h);
      // Named after their frame was shown (the first frames' come so): the video shows them
      // already, so they turn to video now, not at the next frame, which a still screen
      // sends only as a repeat.
      this.showDue(this.trackShown);
    });
  }

  // A frame of the track presented (requestVideoFrameCallback): the tiles it brings on are
  // cleared on the canvas, so the video shows there. Only the newest waits for palette tiles
  // being drawn.
  trackFrame(width, height, rtp) {
    if (this.track === null) return;
    const waiting = this.trackDue !== null;
    this.trackDue = { width, height, rtp };
    this.trackShown = this.trackDue;
    if (waiting) return;
    this.chain = this.chain.then(() => {
      const due = this.trackDue;
      this.trackDue = null;
      this.showDue(due);
    });
  }

  // Clear the tiles that track frame `frame` {width, height, rtp}, presented, brings on.
  showDue(frame) {
    const track = this.track;
    if (frame === null || track === null || frame.width !== track.width
        || frame.height !== track.height) return;  // a frame of the size before a resize
    const regions = track.due(frame.rtp);
    if (regions.length) this.uncover(frame.width, frame.height, regions);
  }

  uncover(width, height, regions) {
    const picture = this.picture;
    if (picture.width !== width || picture.height !== height) {
      picture.width = width;  // all clear: the video shows until palette tiles come
      picture.height = height;
    }
    const ctx = picture.getContext("2d");
    for (const [x, y, w, hgt] of regions) ctx.clearRect(x, y, w, hgt);
    this.shown(width, height);
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
      this.present(() => this.show(source, h.width, h.height, () => source.close()), true,
                   () => source.close());
      this.ack(h.number);
    }, (err) => {
      if (generation !== this.generation) return;
      this.pending -= 1;
      this.hooks.log("stream.decoder_error", { codec: h.codec, error: String(err) }, "warning");
      this.dropped(h.number);
    });
  }

  // Draw on the picture through the pacer, in arrival order. Not over FRP8's track, whose
  // <video> presents on its own (the tiles it uncovers must not wait behind paced ones), nor
  // in a hidden page, which gets no animation frames.
  present(draw, final, discard = () => {}) {
    if (this.track !== null || document.hidden) {
      this.pacer.flush();
      draw();
    } else {
      this.pacer.add(draw, final, discard);
    }
  }

  // The whole picture, or only `regions` of it [[x, y, w, h], ...] over what is there.
  show(source, width, height, close, regions = null) {
    const picture = this.picture;
    if (picture.width !== width || picture.height !== height) {
      picture.width = width;
      picture.height = height;
    }
    const ctx = picture.getContext("2d");
    if (regions === null) {
      ctx.drawImage(source, 0, 0, width, height);
    } else if (regions.length) {  // one draw through a clip: a video frame converted once
      ctx.save();
      ctx.beginPath();
      for (const [x, y, w, hgt] of regions) ctx.rect(x, y, w, hgt);
      ctx.clip();
      ctx.drawImage(source, 0, 0, width, height);
      ctx.restore();
    }
    close();
    this.shown(width, height);
  }

  // Painted at once (text beside a video shows before the video's part is decoded), counted
  // as a picture drawn at its last frame; `dataset.part` tells a watcher of the canvas which.
  shown(width, height, part = false) {
    this.last = { width, height };
    this.view.remote = { width, height };
    this.canvas.dataset.part = part ? "1" : "";
    this.paint();
    if (part) return;
    this.view.drawn += 1;
    this.hooks.stats.drawn();
  }

  // Where the picture goes, in canvas (device) pixels: centred, at a whole scale (1:1, or
  // 2:1 for a screen in CSS pixels at 2 device pixels each) when that fits the window or
  // nearly (even sizes leave a pixel or two), else scaled down (or up) to fit.
  placement(width, height) {
    const cw = this.canvas.width;
    const ch = this.canvas.height;
    let scale = Math.min(cw / width, ch / height);
    const whole = Math.max(1, Math.floor(scale));
    const [w0, h0] = [width * whole, height * whole];
    if (w0 <= cw && h0 <= ch && cw - w0 <= SNAP_PX && ch - h0 <= SNAP_PX) scale = whole;
    const w = Math.round(width * scale);
    const hgt = Math.round(height * scale);
    return { x: Math.floor((cw - w) / 2), y: Math.floor((ch - hgt) / 2), width: w, height: hgt,
             scale };
  }

  paint() {
    const ctx = this.canvas.getContext("2d");
    if (this.track === null) {
      ctx.fillStyle = "#000";
      ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    } else {
      ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);  // the page is black around
    }
    if (this.last === null) return;
    const at = this.placement(this.last.width, this.last.height);
    if (this.track !== null) this.placeTrack(at);
    // crisp at a whole scale (1:1, 2:1: each pixel a block), smooth at any other
    ctx.imageSmoothingEnabled = !Number.isInteger(at.scale);
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(this.picture, 0, 0, this.last.width, this.last.height,
                  at.x, at.y, at.width, at.height);
    this.view.picture = at;
  }

  // The <video> where the canvas has the picture, in CSS pixels.
  placeTrack(at) {
    const scale = this.view.screen.scale;
    const place = [at.x / scale, at.y / scale, at.width / scale, at.height / scale];
    if (place.join() === this.placed) return;
    this.placed = place.join();
    window.OpenfrpTrack.place(...place);
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
    const screen = this.view.asked = this.askedScreen();
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

// One picture per rendered frame: a picture that comes before the one drawn last was on the
// screen waits until it was, so no picture is drawn over unseen (two in one frame: one lost,
// the motion jerks). A picture drawn before a frame's animation callbacks shows in that frame;
// a task queued from them runs after it is rendered, and draws what waits. While one waits and
// the next comes, the waiting one is drawn at once: a picture never lags by more than a frame.
class Pacer {
  constructor() {
    this.queue = [];  // {draw, final, discard}: parts of pictures, in arrival order
    this.unseen = false;  // a picture was drawn that no rendered frame has shown yet
    this.ticking = false;
  }

  add(draw, final, discard) {
    if (!this.unseen && this.queue.length === 0) {
      this.run({ draw, final });
      return;
    }
    this.queue.push({ draw, final, discard });
    if (this.queue.filter((item) => item.final).length > 1) this.next();
  }

  // The waiting parts up to and including the next picture's last.
  next() {
    while (this.queue.length) {
      const item = this.queue.shift();
      this.run(item);
      if (item.final) return;
    }
  }

  run(item) {
    item.draw();
    if (!item.final) return;
    this.unseen = true;
    if (!this.ticking) {
      this.ticking = true;
      requestAnimationFrame(() => setTimeout(() => this.rendered()));
    }
  }

  rendered() {
    this.ticking = false;
    this.unseen = false;
    this.next();
  }

  flush() {
    while (this.queue.length) this.queue.shift().draw();
  }

  // A new connection: what waits belongs to the one before and is never drawn.
  clear() {
    for (const item of this.queue.splice(0)) item.discard();
  }
}

// FRP8: the tiles the video track shows, each from the track frame (RTP timestamp) that
// brought it on; a palette tile drawn since gives the tile back to the channel.
class TrackTiles {
  constructor() {
    this.since = new Map();  // row * 65536 + column -> RTP timestamp, not yet shown
    this.shown = new Set();  // tiles the video shows now, clear already on the canvas
    this.width = 0;  // the picture's, as the channel's frames last said
    this.height = 0;
  }

  static each(rects, visit) {
    for (const [x, y, w, h] of rects) {
      for (let row = Math.floor(y / TILE); row * TILE < y + h; row++) {
        for (let col = Math.floor(x / TILE); col * TILE < x + w; col++) visit(row * 65536 + col);
      }
    }
  }

  sized(h) {
    if (h.width === this.width && h.height === this.height) return;
    this.width = h.width;
    this.height = h.height;
    this.since.clear();
    this.shown.clear();
  }

  video(rtp, rects, h) {
    this.sized(h);
    TrackTiles.each(rects, (tile) => {
      if (!this.since.has(tile) && !this.shown.has(tile)) this.since.set(tile, rtp);
    });
  }

  palette(rects, h) {
    this.sized(h);
    TrackTiles.each(rects, (tile) => {
      this.since.delete(tile);
      this.shown.delete(tile);
    });
  }

  // The tiles a track frame of timestamp `rtp` brings on, as [x, y, w, h] rectangles.
  due(rtp) {
    const found = [];
    for (const [tile, since] of this.since) {
      if (((rtp - since) | 0) >= 0) {
        found.push([(tile % 65536) * TILE, Math.floor(tile / 65536) * TILE, TILE, TILE]);
        this.since.delete(tile);
        this.shown.add(tile);
      }
    }
    return found;
  }
}

// An H.264 tiles payload: "!H" count, "!HHHH" rectangles, then the access unit.
function splitRegions(payload) {
  if (payload.length < 2) throw new Error("H.264 tiles frame shorter than its header");
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const count = view.getUint16(0);
  const end = 2 + count * 8;
  if (payload.length < end) throw new Error("H.264 tiles frame cut short");
  const regions = [];
  for (let i = 2; i < end; i += 8) {
    regions.push([view.getUint16(i), view.getUint16(i + 2), view.getUint16(i + 4),
                  view.getUint16(i + 6)]);
  }
  return { regions, unit: payload.subarray(end) };
}

function intersects(some, others) {
  return some.some(([x, y, w, h]) => others.some(([ox, oy, ow, oh]) =>
    x < ox + ow && ox < x + w && y < oy + oh && oy < y + h));
}

async function rgbPicture(payload, width, height) {
  const rgb = await inflate(payload);
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
