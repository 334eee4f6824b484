// The image viewer: exact window/level on 16-bit stored values, zoom, pan, several images.
// No dependencies. Each image's 16-bit PNG derivative is decoded here to its exact stored
// values (an <img> would round them to 8 bits), or, where the browser lacks
// DecompressionStream, the server sends them as little-endian uint16. Window/level is then
// applied with the DICOM linear function (PS3.3 C.11.2.1.2) through a 65536-entry table.
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("reading-data").textContent);
  const canvas = document.getElementById("viewer");
  const ctx = canvas.getContext("2d");
  const statusLine = document.getElementById("viewer-status");
  const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

  const images = data.images.map(function (im) {
    return Object.assign({}, im, { wc: im.windowCenter, ww: im.windowWidth, pixels: null });
  });
  const view = { index: 0, zoom: 1, panX: 0, panY: 0, invert: false };
  const overlay = { source: null, visible: true, opacity: 0.45 };
  let marks = [];
  const clickHandlers = [];
  let frameRequested = false;

  function maxValue(im) {
    return Math.pow(2, im.bitsStored || 16) - 1;
  }

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
  async function fetchRaw(im) {
    const response = await fetch(im.pixelsUrl + "?format=raw", { credentials: "same-origin" });
    if (!response.ok) throw new Error("image " + im.position + " could not be loaded (" + response.status + ")");
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

  async function load(index) {
    const im = images[index];
    if (im.pixels) return im;
    let decoded = null;
    if (typeof DecompressionStream === "function") {
      const response = await fetch(im.pixelsUrl, { credentials: "same-origin" });
      if (!response.ok) throw new Error("image " + im.position + " could not be loaded (" + response.status + ")");
      try {
        decoded = await decodePng(await response.arrayBuffer());
        im.decodedBy = "browser";
      } catch (error) {
        decoded = null;
      }
    }
    if (!decoded) {
      decoded = await fetchRaw(im);
      im.decodedBy = "server";
    }
    if (decoded.pixels.length !== decoded.rows * decoded.columns) throw new Error("image " + im.position + ": size mismatch");
    im.rows = decoded.rows;
    im.columns = decoded.columns;
    im.pixels = decoded.pixels;
    im.offscreen = document.createElement("canvas");
    im.offscreen.width = im.columns;
    im.offscreen.height = im.rows;
    im.imageData = im.offscreen.getContext("2d").createImageData(im.columns, im.rows);
    im.dirty = true;
    return im;
  }

  // Window/level: the exact DICOM linear function on the full-precision values.
  function applyWindow(im) {
    const lut = new Uint8ClampedArray(65536);
    const c = im.wc;
    const w = Math.max(1, im.ww);
    for (let v = 0; v < 65536; v++) {
      let y;
      if (w <= 1) y = v > c - 0.5 ? 255 : 0;
      else if (v <= c - 0.5 - (w - 1) / 2) y = 0;
      else if (v > c - 0.5 + (w - 1) / 2) y = 255;
      else y = ((v - (c - 0.5)) / (w - 1) + 0.5) * 255;
      lut[v] = view.invert ? 255 - y : y;
    }
    const px = im.pixels;
    const out = im.imageData.data;
    for (let i = 0, j = 0; i < px.length; i++, j += 4) {
      const g = lut[px[i]];
      out[j] = g;
      out[j + 1] = g;
      out[j + 2] = g;
      out[j + 3] = 255;
    }
    im.offscreen.getContext("2d").putImageData(im.imageData, 0, 0);
    im.dirty = false;
  }

  function geometry(im) {
    const fit = Math.min(canvas.width / im.columns, canvas.height / im.rows);
    const scale = fit * view.zoom;
    const dpr = window.devicePixelRatio || 1;
    const x0 = (canvas.width - im.columns * scale) / 2 + view.panX * dpr;
    const y0 = (canvas.height - im.rows * scale) / 2 + view.panY * dpr;
    return { scale: scale, x0: x0, y0: y0, dpr: dpr };
  }

  function resize() {
    const dpr = window.devicePixelRatio || 1;
    const box = canvas.getBoundingClientRect();
    const width = Math.max(1, Math.round(box.width * dpr));
    const height = Math.max(1, Math.round(box.height * dpr));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
  }

  function draw() {
    frameRequested = false;
    resize();
    const im = images[view.index];
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!im || !im.pixels) return;
    if (im.dirty) applyWindow(im);
    const g = geometry(im);
    ctx.imageSmoothingEnabled = g.scale < 2;
    ctx.drawImage(im.offscreen, g.x0, g.y0, im.columns * g.scale, im.rows * g.scale);
    if (overlay.source && overlay.visible && view.index === 0) {
      ctx.globalAlpha = overlay.opacity;
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(overlay.source, g.x0, g.y0, im.columns * g.scale, im.rows * g.scale);
      ctx.globalAlpha = 1;
    }
    for (const mark of marks) {
      if (mark.image !== im.position) continue;
      const x = g.x0 + (mark.x + 0.5) * g.scale;
      const y = g.y0 + (mark.y + 0.5) * g.scale;
      ctx.strokeStyle = mark.color || "#ffd400";
      ctx.lineWidth = 2 * g.dpr;
      ctx.beginPath();
      ctx.arc(x, y, 9 * g.dpr, 0, 2 * Math.PI);
      ctx.stroke();
      if (mark.label) {
        ctx.fillStyle = ctx.strokeStyle;
        ctx.font = 12 * g.dpr + "px system-ui, sans-serif";
        ctx.fillText(mark.label, x + 11 * g.dpr, y - 8 * g.dpr);
      }
    }
    canvas.dataset.windowCenter = String(Math.round(im.wc));
    canvas.dataset.windowWidth = String(Math.round(im.ww));
    canvas.dataset.zoom = view.zoom.toFixed(3);
    canvas.dataset.panX = String(Math.round(view.panX));
    canvas.dataset.panY = String(Math.round(view.panY));
    canvas.dataset.image = String(im.position);
    canvas.dataset.overlay = overlay.source && overlay.visible ? "on" : "off";
    canvas.dataset.ready = "true";
    statusLine.textContent =
      "Image " + im.position + "/" + images.length + " · " + im.columns + "×" + im.rows +
      " · " + im.bitsStored + " bit · W " + Math.round(im.ww) + " C " + Math.round(im.wc) +
      " · zoom " + Math.round(view.zoom * 100) + "%" + (view.invert ? " · inverted" : "");
  }

  function redraw() {
    if (!frameRequested) {
      frameRequested = true;
      window.requestAnimationFrame(draw);
    }
  }

  function setWindow(center, width) {
    const im = images[view.index];
    const top = maxValue(im);
    im.wc = Math.min(Math.max(center, 0), top);
    im.ww = Math.min(Math.max(width, 1), 2 * (top + 1));
    im.dirty = true;
    redraw();
  }

  function preset(name) {
    const im = images[view.index];
    const top = maxValue(im);
    if (name === "default") setWindow(im.windowCenter, im.windowWidth);
    else if (name === "full") setWindow((top + 1) / 2, top + 1);
    else if (name === "narrow") setWindow(im.windowCenter, Math.max(1, im.windowWidth / 3));
  }

  function zoomBy(factor, cx, cy) {
    const before = view.zoom;
    view.zoom = Math.min(Math.max(view.zoom * factor, 0.25), 16);
    if (cx !== undefined) {
      // Keep the point under the cursor where it is.
      const box = canvas.getBoundingClientRect();
      const dx = cx - box.width / 2 - view.panX;
      const dy = cy - box.height / 2 - view.panY;
      const ratio = view.zoom / before;
      view.panX -= dx * (ratio - 1);
      view.panY -= dy * (ratio - 1);
    }
    redraw();
  }

  function reset() {
    view.zoom = 1;
    view.panX = 0;
    view.panY = 0;
    view.invert = false;
    images.forEach(function (im) {
      im.wc = im.windowCenter;
      im.ww = im.windowWidth;
      im.dirty = true;
    });
    redraw();
  }

  async function show(index) {
    if (index < 0 || index >= images.length) return;
    view.index = index;
    document.querySelectorAll("#image-tabs .tab").forEach(function (tab) {
      tab.classList.toggle("active", Number(tab.dataset.image) === index);
    });
    try {
      await load(index);
    } catch (error) {
      statusLine.textContent = error.message;
      return;
    }
    redraw();
  }

  function toImage(clientX, clientY) {
    const im = images[view.index];
    const box = canvas.getBoundingClientRect();
    const g = geometry(im);
    const x = ((clientX - box.left) * g.dpr - g.x0) / g.scale;
    const y = ((clientY - box.top) * g.dpr - g.y0) / g.scale;
    return { image: im.position, x: Math.floor(x), y: Math.floor(y), inside: x >= 0 && y >= 0 && x < im.columns && y < im.rows };
  }

  // Pointer: left-drag window/level, right- or Shift-drag pan, click (no movement) for marks.
  let drag = null;
  canvas.addEventListener("contextmenu", function (event) { event.preventDefault(); });
  canvas.addEventListener("pointerdown", function (event) {
    const im = images[view.index];
    if (!im || !im.pixels) return;
    canvas.setPointerCapture(event.pointerId);
    drag = {
      x: event.clientX, y: event.clientY, moved: false,
      pan: event.button === 2 || event.button === 1 || event.shiftKey,
      wc: im.wc, ww: im.ww, panX: view.panX, panY: view.panY,
    };
  });
  canvas.addEventListener("pointermove", function (event) {
    if (!drag) return;
    const dx = event.clientX - drag.x;
    const dy = event.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    if (!drag.moved) return;
    if (drag.pan) {
      view.panX = drag.panX + dx;
      view.panY = drag.panY + dy;
      redraw();
    } else {
      // Sensitivity scales with the stored range so 8-bit and 16-bit images feel alike.
      const step = (maxValue(images[view.index]) + 1) / 1024;
      setWindow(drag.wc + dy * step, drag.ww + dx * step * 2);
    }
  });
  canvas.addEventListener("pointerup", function (event) {
    if (drag && !drag.moved && !drag.pan && event.button === 0) {
      const point = toImage(event.clientX, event.clientY);
      if (point.inside) clickHandlers.forEach(function (handler) { handler(point); });
    }
    drag = null;
  });
  canvas.addEventListener("wheel", function (event) {
    event.preventDefault();
    const box = canvas.getBoundingClientRect();
    zoomBy(event.deltaY < 0 ? 1.15 : 1 / 1.15, event.clientX - box.left, event.clientY - box.top);
  }, { passive: false });

  document.querySelectorAll(".toolbar [data-preset]").forEach(function (button) {
    button.addEventListener("click", function () { preset(button.dataset.preset); });
  });
  document.querySelectorAll(".toolbar [data-action]").forEach(function (button) {
    button.addEventListener("click", function () {
      const action = button.dataset.action;
      if (action === "zoom-in") zoomBy(1.25);
      else if (action === "zoom-out") zoomBy(1 / 1.25);
      else if (action === "reset") reset();
      else if (action === "invert") { view.invert = !view.invert; images.forEach(function (im) { im.dirty = true; }); redraw(); }
    });
  });
  document.querySelectorAll("#image-tabs .tab").forEach(function (tab) {
    tab.addEventListener("click", function () { show(Number(tab.dataset.image)); });
  });

  const keys = {
    "1": function () { preset("default"); },
    "2": function () { preset("full"); },
    "3": function () { preset("narrow"); },
    "+": function () { zoomBy(1.25); },
    "=": function () { zoomBy(1.25); },
    "-": function () { zoomBy(1 / 1.25); },
    "0": reset,
    "r": reset,
    "i": function () { view.invert = !view.invert; images.forEach(function (im) { im.dirty = true; }); redraw(); },
    "PageDown": function () { show(view.index + 1); },
    "PageUp": function () { show(view.index - 1); },
    "ArrowLeft": function () { view.panX -= 20; redraw(); },
    "ArrowRight": function () { view.panX += 20; redraw(); },
    "ArrowUp": function () { view.panY -= 20; redraw(); },
    "ArrowDown": function () { view.panY += 20; redraw(); },
  };
  const extraKeys = {};
  document.addEventListener("keydown", function (event) {
    const target = event.target;
    if (target && /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const handler = extraKeys[key] || keys[key];
    if (handler) {
      event.preventDefault();
      handler();
    }
  });
  window.addEventListener("resize", redraw);

  // The small interface the report form and overlays use.
  window.readingViewer = {
    onClick: function (handler) { clickHandlers.push(handler); },
    setMarks: function (list) { marks = list; redraw(); },
    setOverlay: function (source) { overlay.source = source; redraw(); },
    setOverlayVisible: function (visible) { overlay.visible = visible; redraw(); },
    setOverlayOpacity: function (opacity) { overlay.opacity = opacity; redraw(); },
    overlayVisible: function () { return overlay.visible; },
    onKey: function (key, handler) { extraKeys[key] = handler; },
    setWindow: setWindow,
    pixelAt: function (x, y) {
      const im = images[view.index];
      return im.pixels ? im.pixels[y * im.columns + x] : null;
    },
    state: function () {
      const im = images[view.index];
      return { image: im.position, decodedBy: im.decodedBy, windowCenter: im.wc, windowWidth: im.ww, zoom: view.zoom, panX: view.panX, panY: view.panY, invert: view.invert };
    },
  };

  show(0);
})();
