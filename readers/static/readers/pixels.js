// Exact stored values of an image's 16-bit PNG derivative, for the viewer's window/level.
// The browser's own decoders (<img>, createImageBitmap) round 16-bit samples to 8 bits, so the
// PNG is decoded here; where the browser lacks DecompressionStream, the server sends the values
// as little-endian uint16 instead.
(function () {
  "use strict";

  const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

  // Decode a grayscale, non-interlaced 8- or 16-bit PNG to its sample values. The browser's own
  // decoder would round 16-bit samples to 8 bits; here the zlib stream is inflated with
  // DecompressionStream and the scanline filters (PNG spec, section 9) are undone by hand.
  async function decodePng(buffer) {
    const bytes = new Uint8Array(buffer);
    const view8 = new DataView(buffer);
    const signature = [137, 80, 78, 71, 13, 10, 26, 10];
    if (signature.some(function (b, i) { return bytes[i] !== b; })) throw new Error("not a PNG");
    let pos = 8;
    let width = 0, height = 0, depth = 0, colorType = -1, interlace = 0;
    const chunks = [];
    while (pos + 8 <= bytes.length) {
      const length = view8.getUint32(pos);
      const type = String.fromCharCode(bytes[pos + 4], bytes[pos + 5], bytes[pos + 6], bytes[pos + 7]);
      if (type === "IHDR") {
        width = view8.getUint32(pos + 8);
        height = view8.getUint32(pos + 12);
        depth = bytes[pos + 16];
        colorType = bytes[pos + 17];
        interlace = bytes[pos + 20];
      } else if (type === "IDAT") {
        chunks.push(bytes.subarray(pos + 8, pos + 8 + length));
      } else if (type === "IEND") {
        break;
      }
      pos += 12 + length;
    }
    if (colorType !== 0 || interlace !== 0 || (depth !== 8 && depth !== 16)) throw new Error("unsupported PNG");
    const stream = new Blob(chunks).stream().pipeThrough(new DecompressionStream("deflate"));
    const raw = new Uint8Array(await new Response(stream).arrayBuffer());
    const bpp = depth / 8;
    const stride = width * bpp;
    if (raw.length < height * (stride + 1)) throw new Error("truncated PNG");
    const out = new Uint8Array(height * stride);
    for (let y = 0; y < height; y++) {
      const filter = raw[y * (stride + 1)];
      const src = y * (stride + 1) + 1;
      const dst = y * stride;
      for (let x = 0; x < stride; x++) {
        const a = x >= bpp ? out[dst + x - bpp] : 0;
        const b = y > 0 ? out[dst - stride + x] : 0;
        const c = x >= bpp && y > 0 ? out[dst - stride + x - bpp] : 0;
        let v = raw[src + x];
        if (filter === 1) v += a;
        else if (filter === 2) v += b;
        else if (filter === 3) v += (a + b) >> 1;
        else if (filter === 4) {
          const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
          v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
        } else if (filter !== 0) throw new Error("bad PNG filter");
        out[dst + x] = v & 255;
      }
    }
    const pixels = new Uint16Array(width * height);
    if (depth === 16) for (let i = 0; i < pixels.length; i++) pixels[i] = (out[2 * i] << 8) | out[2 * i + 1];
    else pixels.set(out);
    return { pixels: pixels, rows: height, columns: width };
  }

  // Fallback: the server decodes and sends little-endian uint16 values.
  async function fetchRaw(url, label) {
    const response = await fetch(url + "?format=raw", { credentials: "same-origin" });
    if (!response.ok) throw new Error(label + " could not be loaded (" + response.status + ")");
    const buffer = await response.arrayBuffer();
    const rows = parseInt(response.headers.get("X-Image-Rows"), 10);
    const columns = parseInt(response.headers.get("X-Image-Columns"), 10);
    let pixels = new Uint16Array(buffer);
    if (!littleEndian) {
      const view16 = new DataView(buffer);
      pixels = new Uint16Array(rows * columns);
      for (let i = 0; i < pixels.length; i++) pixels[i] = view16.getUint16(2 * i, true);
    }
    return { pixels: pixels, rows: rows, columns: columns };
  }

  // One slice's values: {pixels: Uint16Array, rows, columns, decodedBy}.
  async function loadPixels(url, label) {
    let decoded = null;
    let decodedBy = "browser";
    if (typeof DecompressionStream === "function") {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) throw new Error(label + " could not be loaded (" + response.status + ")");
      try {
        decoded = await decodePng(await response.arrayBuffer());
      } catch (error) {
        decoded = null;
      }
    }
    if (!decoded) {
      decoded = await fetchRaw(url, label);
      decodedBy = "server";
    }
    if (decoded.pixels.length !== decoded.rows * decoded.columns) throw new Error(label + ": size mismatch");
    decoded.decodedBy = decodedBy;
    return decoded;
  }

  const lutCache = new Map();

  // Window/level: the DICOM linear function (PS3.3 C.11.2.1.2) as a table over all 16-bit
  // values; a few recent tables are kept (a stack's slices may differ in offset).
  function windowTable(center, width, invert) {
    const key = center + "/" + width + "/" + invert;
    let table = lutCache.get(key);
    if (table) return table;
    table = new Uint8ClampedArray(65536);
    const c = center;
    const w = Math.max(1, width);
    for (let v = 0; v < 65536; v++) {
      let y;
      if (w <= 1) y = v > c - 0.5 ? 255 : 0;
      else if (v <= c - 0.5 - (w - 1) / 2) y = 0;
      else if (v > c - 0.5 + (w - 1) / 2) y = 255;
      else y = ((v - (c - 0.5)) / (w - 1) + 0.5) * 255;
      table[v] = invert ? 255 - y : y;
    }
    if (lutCache.size > 32) lutCache.delete(lutCache.keys().next().value);
    lutCache.set(key, table);
    return table;
  }

  window.readingPixels = { load: loadPixels, decodePng: decodePng, windowTable: windowTable };
})();
