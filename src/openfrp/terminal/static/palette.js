// The palette tiles of the mixed stream (media/palette.py, media/mixed.py): lossless
// rectangles of a few colours, whose data is a zlib stream of its own or the next part of a
// stream the frames share, and the row cache (media/rows.py) that lets a frame name rows it
// drew before instead of sending them again. video.js draws them on its picture canvas.
"use strict";

async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// Palette payload (media/palette.py): "!BBH" bits per index (with the BANDS, ROWS and RESET
// flags), colours - 1, rectangles; RGB colours; "!HHHH" rectangles; with ROWS "!I" runs and
// "!I" the inflated size; then the deflated runs ("!IH" each) and the indices of each run of
// rows sent as indices, in bands of 8 / bits rows, a byte per column (the first row in the
// most significant bits).
const ROWS = 0x80, RESET = 0x40, BANDS = 0x20, LITERAL = 0xFFFFFFFF;
const PART_TIMEOUT_MS = 3000;  // a stream part that inflates no further is broken
const ROW_PIXELS = 48000000;

function paletteHeaderSize(payload) {
  if (payload.length < 4) throw new Error("palette frame shorter than its header");
  const head = new DataView(payload.buffer, payload.byteOffset, 4);
  const runs = head.getUint8(0) & ROWS ? 8 : 0;  // the run count, the inflated size
  const size = 4 + (head.getUint8(1) + 1) * 3 + head.getUint16(2) * 8 + runs;
  if (payload.length < size) throw new Error("palette frame cut short");
  return size;
}

// The rectangles [[x, y, w, h], ...] a palette frame draws.
function paletteRects(payload) {
  paletteHeaderSize(payload);
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const start = 4 + (view.getUint8(1) + 1) * 3;
  const rects = [];
  for (let at = start; at < start + view.getUint16(2) * 8; at += 8) {
    rects.push([view.getUint16(at), view.getUint16(at + 2), view.getUint16(at + 4),
                view.getUint16(at + 6)]);
  }
  return rects;
}

// A palette frame's data: a zlib stream of its own, or with ROWS the next part of the
// stream the frames share (RESET starts it over).
function paletteData(payload, stream) {
  const at = paletteHeaderSize(payload);
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const flags = view.getUint8(0);
  if (!(flags & ROWS)) return inflate(payload.subarray(at));
  return stream.inflate(payload.subarray(at), view.getUint32(at - 4), (flags & RESET) !== 0);
}

// The deflate stream palette frames with ROWS share (media/palette.py): each frame's data is
// its next sync-flushed part, inflated in arrival order. A new stream (RESET) cancels the old
// one, so a part that never completes (after a lost frame) cannot hold the frames behind it.
class PaletteStream {
  constructor() {
    this.reader = null;
    this.queue = Promise.resolve();
  }

  inflate(bytes, size, reset) {
    if (reset || this.reader === null) this.restart();
    const { writer, reader } = this;
    const part = this.queue.then(() => readPart(writer, reader, bytes, size));
    this.queue = part.catch(() => {});
    return part;
  }

  restart() {
    if (this.reader !== null) this.reader.cancel().catch(() => {});
    const stream = new DecompressionStream("deflate");
    this.writer = stream.writable.getWriter();
    this.reader = stream.readable.getReader();
    this.queue = Promise.resolve();
  }
}

async function readPart(writer, reader, bytes, size) {
  writer.write(bytes).catch(() => {});  // a broken stream fails the read below
  const parts = [];
  let have = 0;
  while (have < size) {
    let timer;
    const stalled = new Promise((_, fail) => {
      timer = setTimeout(() => fail(new Error("palette stream stalled")), PART_TIMEOUT_MS);
    });
    const { value, done } = await Promise.race([reader.read(), stalled]).finally(
      () => clearTimeout(timer));
    if (done) throw new Error("palette stream ended");
    parts.push(value);
    have += value.length;
  }
  if (have !== size) throw new Error(`palette frame inflates to ${have} bytes, not ${size}`);
  const data = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    data.set(part, at);
    at += part.length;
  }
  return data;
}

// The terminal's side of the row cache (media/rows.py): rows (indices, and the colours they
// index) in the order they were drawn, the oldest forgotten past ROW_PIXELS, unusable after
// a lost frame until a RESET.
class RowStore {
  constructor() { this.reset(); }

  reset() {
    this.nextId = 0;
    this.rows = new Map();
    this.order = [];
    this.head = 0;
    this.pixels = 0;
    this.synced = true;
  }

  lose() {
    this.reset();
    this.synced = false;
  }

  remember(indices, colours) {
    if (!this.synced) return;
    this.rows.set(this.nextId, [indices, colours]);
    this.order.push(this.nextId);
    this.nextId += 1;
    this.pixels += indices.length;
    while (this.pixels > ROW_PIXELS) {
      const old = this.order[this.head++];
      this.pixels -= this.rows.get(old)[0].length;
      this.rows.delete(old);
    }
    if (this.head > 65536) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
  }

  // Draw row `id` into `out` at `o`: its first `width` pixels, extended with its last colour
  // if it is shorter.
  draw(id, width, out, o) {
    const found = this.synced ? this.rows.get(id) : undefined;
    if (found === undefined) {
      throw new Error(`palette frame refers to row ${id}, which this terminal lacks`);
    }
    const [indices, colours] = found;
    const last = indices.length - 1;
    for (let col = 0; col < width; col++) out[o + col] = colours[indices[Math.min(col, last)]];
  }
}

function drawPaletteTiles(picture, h, payload, data, rows) {
  if (picture.width !== h.width || picture.height !== h.height) {
    if (!h.key) throw new Error("palette tiles with no picture of their size to draw on");
    picture.width = h.width;
    picture.height = h.height;
  }
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const flags = view.getUint8(0);
  const bits = flags & ~(ROWS | RESET | BANDS);
  const count = view.getUint8(1) + 1;
  const rects = view.getUint16(2);
  if (!(flags & BANDS)) {
    throw new Error("palette frame in a layout without bands (a server of another version)");
  }
  if (![1, 2, 4, 8].includes(bits)) throw new Error(`palette frame with ${bits} bits per index`);
  const colours = new Uint32Array(256);  // RGBA as the canvas stores it (little-endian)
  for (let i = 0; i < count; i++) {
    const at = 4 + i * 3;
    colours[i] = (255 << 24 | payload[at + 2] << 16 | payload[at + 1] << 8 | payload[at]) >>> 0;
  }
  const cached = (flags & ROWS) !== 0;
  let runs = [];
  if (cached) {
    if (flags & RESET) rows.reset();
    if (!rows.synced) throw new Error("palette frame goes on from a frame this terminal lost");
    const total = view.getUint32(4 + count * 3 + rects * 8);
    if (data.length < total * 6) throw new Error("palette frame's row runs cut short");
    const at = new DataView(data.buffer, data.byteOffset, data.length);
    for (let i = 0; i < total; i++) runs.push([at.getUint32(i * 6), at.getUint16(i * 6 + 4)]);
  }
  let next = 0;
  const ctx = picture.getContext("2d");
  const perByte = 8 / bits;
  const mask = (1 << bits) - 1;
  let offset = cached ? runs.length * 6 : 0;
  for (let r = 0; r < rects; r++) {
    const at = 4 + count * 3 + r * 8;
    const x = view.getUint16(at), y = view.getUint16(at + 2);
    const w = view.getUint16(at + 4), hgt = view.getUint16(at + 6);
    if (x + w > h.width || y + hgt > h.height || w === 0 || hgt === 0) {
      throw new Error(`palette rectangle ${w}x${hgt}+${x}+${y} outside the picture`);
    }
    const image = new ImageData(w, hgt);
    const out = new Uint32Array(image.data.buffer);
    for (let done = 0; done < hgt;) {
      if (cached && next >= runs.length) {
        throw new Error("palette row runs end before the rectangles");
      }
      const [start, n] = cached ? runs[next++] : [LITERAL, hgt];
      if (n === 0 || done + n > hgt) throw new Error("palette row runs do not fit the rectangles");
      if (start === LITERAL) {
        const bands = Math.ceil(n / perByte);
        if (offset + bands * w > data.length) throw new Error("palette frame cut short");
        for (let k = 0; k < n; k++) {
          const o = (done + k) * w;
          const band = offset + Math.floor(k / perByte) * w;
          const shift = 8 - bits * (k % perByte + 1);
          const indices = new Uint8Array(w);
          for (let col = 0; col < w; col++) {
            const index = (data[band + col] >> shift) & mask;
            if (index >= count) throw new Error("palette index beyond the colours");
            indices[col] = index;
            out[o + col] = colours[index];
          }
          if (cached) rows.remember(indices, colours);
        }
        offset += bands * w;
      } else {
        for (let k = 0; k < n; k++) rows.draw(start + k, w, out, (done + k) * w);
      }
      done += n;
    }
    ctx.putImageData(image, x, y);
  }
  if (next < runs.length) throw new Error("palette row runs beyond the rectangles");
}
