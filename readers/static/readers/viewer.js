// The image viewer: exact window/level on 16-bit stored values, zoom, pan, several images, and
// CT/MR series as slice stacks. No dependencies. Each slice's 16-bit PNG derivative is decoded
// to its exact values (pixels.js); window/level is the DICOM linear function (PS3.3
// C.11.2.1.2) through a 65536-entry table. A stack's window is kept in stored units (HU for
// CT): a slice's derivative value is its stored value plus the slice's offset.
// Each call of readingViewport(options) makes one viewport; layout.js makes one in #viewer
// (the page as it always was) or several for a hanging protocol. Options: canvas, bar, status
// (its elements), view (the view shown first), secondary (leaves the shared toolbar to the
// first), isActive (keys and toolbar act on the active viewport only), onFocus, onMove
// (zoom/pan changed), onSlice (slice changed) and onTab (a tab was chosen) for linking.
// A pixel is drawn at its physical aspect (series.js: column spacing wide, row spacing high);
// geometry() is the one mapping between image and canvas, and everything drawn or clicked on
// the image (marks, tools, the overlay) goes through it, so stored coordinates stay in pixels.
window.readingViewport = function (options) {
  "use strict";

  options = options || {};
  const data = JSON.parse(document.getElementById("reading-data").textContent);
  const canvas = options.canvas || document.getElementById("viewer");
  const ctx = canvas.getContext("2d");
  const statusLine = options.status || document.getElementById("viewer-status");
  const bar = options.bar !== undefined ? options.bar : document.getElementById("slice-bar");
  const tabs = document.getElementById("image-tabs");
  const presetGroup = document.getElementById("stack-presets");
  const cineButton = document.querySelector('.toolbar [data-action="cine"]');
  const pixelsOf = window.readingPixels;

  const PREFETCH_AHEAD = 12;
  const LOADS_AT_ONCE = 4;
  const CINE_FPS = 20;

  const views = window.readingSeries.views(data);
  const firstImage = data.images.length ? data.images[0].position : null;
  const CT_PRESETS = window.readingSeries.CT_PRESETS;

  const state = { view: 0, zoom: 1, panX: 0, panY: 0, invert: false };
  const overlay = { source: null, visible: true, opacity: 0.45, slices: {} };

  // The overlay of the slice on screen: its own (set per slice, keyed by image position),
  // else the case's one overlay on its first image.
  function sliceOverlay(sl) {
    if (overlay.slices[sl.image]) return overlay.slices[sl.image];
    return sl.image === firstImage ? overlay.source : null;
  }
  const render = { canvas: document.createElement("canvas"), imageData: null, key: "", slice: null };
  let marks = [];
  const clickHandlers = [];
  const drawers = [];
  let tool = null;  // a drawing tool (measure.js) takes the left drag instead of window/level
  const showHandlers = [];
  const overlayHandlers = [];
  let frameRequested = false;
  let cineTimer = null;
  let wheelRest = 0;
  let direction = 1;

  function isActive() { return !options.isActive || options.isActive(); }
  function current() { return views[state.view]; }
  function currentSlice() { const v = current(); return v.slices[v.index]; }
  function maxValue(sl) { return Math.pow(2, sl.bitsStored || 16) - 1; }

  // --- Loading and prefetching -------------------------------------------------------------
  let active = 0;
  const queue = [];

  function load(sl) {
    if (sl.pixels) return Promise.resolve(sl);
    if (!sl.loading) {
      sl.loading = pixelsOf.load(sl.url, "image " + sl.image).then(function (decoded) {
        sl.pixels = decoded.pixels;
        sl.rows = decoded.rows;
        sl.columns = decoded.columns;
        sl.decodedBy = decoded.decodedBy;
        if (sl === currentSlice()) redraw();
        drawBar();
        return sl;
      }, function (error) { sl.loading = null; throw error; });
    }
    return sl.loading;
  }

  function pump() {
    while (active < LOADS_AT_ONCE && queue.length) {
      const sl = queue.shift();
      if (sl.pixels || sl.loading) continue;
      active++;
      load(sl).catch(function () { /* shown when the slice itself is shown */ }).then(function () {
        active--;
        pump();
      });
    }
  }

  // Nearest first, the scrolling direction before the other: the next slices are decoded
  // before the reader gets there; then the rest of the stack, so scrolling back never waits.
  function prefetch(view) {
    queue.length = 0;
    const n = view.slices.length;
    const order = [];
    for (let d = 1; d <= PREFETCH_AHEAD; d++) order.push(view.index + direction * d);
    for (let d = 1; d < n; d++) {
      if (d > PREFETCH_AHEAD) order.push(view.index + direction * d);
      order.push(view.index - direction * d);
    }
    order.forEach(function (i) { if (i >= 0 && i < n) queue.push(view.slices[i]); });
    // The slice on screen before its neighbours (pump skips it once it is loading or loaded):
    // from a warm cache the neighbours would otherwise be decoded before it is drawn.
    queue.unshift(view.slices[view.index]);
    pump();
  }

  // --- Rendering --------------------------------------------------------------------------
  const lut = pixelsOf.windowTable;

  function renderSlice(view, sl) {
    const key = sl.url + "|" + view.wc + "|" + view.ww + "|" + state.invert;
    if (render.key === key) return;
    if (!render.imageData || render.imageData.width !== sl.columns || render.imageData.height !== sl.rows) {
      render.canvas.width = sl.columns;
      render.canvas.height = sl.rows;
      render.imageData = render.canvas.getContext("2d").createImageData(sl.columns, sl.rows);
    }
    const table = lut(view.wc + sl.offset, view.ww, state.invert);
    const px = sl.pixels;
    const out = new Uint32Array(render.imageData.data.buffer);
    // One 32-bit write per pixel: gray in R, G and B, opaque (little-endian ABGR).
    for (let i = 0; i < px.length; i++) out[i] = 0xff000000 | (table[px[i]] * 0x010101);
    render.canvas.getContext("2d").putImageData(render.imageData, 0, 0);
    render.key = key;
    render.slice = sl;
  }

  // Where the slice is drawn: image point (x, y) is at canvas (x0 + x * sx, y0 + y * sy). At
  // zoom 1 the image, at its pixels' aspect, fits the canvas; zoom scales both axes alike and
  // pan (CSS pixels) moves it, so zoom and pan mean the same in every viewport (Link).
  function geometry(sl) {
    const aspect = sl.aspect || [1, 1];
    const fit = Math.min(canvas.width / (sl.columns * aspect[0]), canvas.height / (sl.rows * aspect[1]));
    const sx = fit * state.zoom * aspect[0];
    const sy = fit * state.zoom * aspect[1];
    const dpr = window.devicePixelRatio || 1;
    const width = sl.columns * sx;
    const height = sl.rows * sy;
    const x0 = (canvas.width - width) / 2 + state.panX * dpr;
    const y0 = (canvas.height - height) / 2 + state.panY * dpr;
    return { sx: sx, sy: sy, x0: x0, y0: y0, width: width, height: height, dpr: dpr };
  }

  function resize(element) {
    const dpr = window.devicePixelRatio || 1;
    const box = element.getBoundingClientRect();
    const width = Math.max(1, Math.round(box.width * dpr));
    const height = Math.max(1, Math.round(box.height * dpr));
    if (element.width !== width || element.height !== height) {
      element.width = width;
      element.height = height;
    }
  }

  function draw(timestamp) {
    frameRequested = false;
    resize(canvas);
    const view = current();
    const wanted = currentSlice();
    // Until the wanted slice is decoded, the last one drawn stays on screen: no black flash.
    const sl = wanted && wanted.pixels ? wanted : render.slice;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!sl || !sl.pixels) return;
    if (sl === wanted) renderSlice(view, sl);
    const g = geometry(sl);
    ctx.imageSmoothingEnabled = Math.min(g.sx, g.sy) < 2;
    ctx.drawImage(render.canvas, g.x0, g.y0, g.width, g.height);
    const shown = sliceOverlay(sl);
    if (shown && overlay.visible) {
      ctx.globalAlpha = overlay.opacity;
      ctx.imageSmoothingEnabled = true;
      // Over the image's own rectangle, whatever the map's size: it lies on the same pixels.
      ctx.drawImage(shown, g.x0, g.y0, g.width, g.height);
      ctx.globalAlpha = 1;
    }
    for (const mark of marks) {
      if (mark.image !== sl.image) continue;
      const x = g.x0 + (mark.x + 0.5) * g.sx;
      const y = g.y0 + (mark.y + 0.5) * g.sy;
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
    drawers.forEach(function (drawer) { drawer(ctx, g, sl, view); });
    if (sl !== wanted) {
      statusLine.textContent = "Loading slice " + wanted.slice + "…";
      return;
    }
    const ds = canvas.dataset;
    ds.windowCenter = String(Math.round(view.wc));
    ds.windowWidth = String(Math.round(view.ww));
    ds.zoom = state.zoom.toFixed(3);
    ds.panX = String(Math.round(state.panX));
    ds.panY = String(Math.round(state.panY));
    ds.image = String(sl.image);
    ds.series = String(view.series);
    ds.slice = String(sl.slice);
    ds.overlay = overlayShown() ? "on" : "off";
    ds.drawnAt = String(timestamp || performance.now());
    ds.ready = "true";
    const where = view.stacked
      ? "Series " + view.series + " · slice " + sl.slice + "/" + view.slices.length + (sl.z !== null && sl.z !== undefined ? " · " + sl.z.toFixed(1) + " mm" : "")
      : "Image " + sl.image + "/" + data.images.length;
    const units = view.modality === "CT" ? " HU" : "";
    statusLine.textContent = where + " · " + sl.columns + "×" + sl.rows + " · " + sl.bitsStored + " bit · W " +
      Math.round(view.ww) + " C " + Math.round(view.wc) + units + " · zoom " + Math.round(state.zoom * 100) + "%" +
      (state.invert ? " · inverted" : "") + (cineTimer ? " · cine" : "");
  }

  function overlayShown() {
    return Boolean((overlay.source || Object.keys(overlay.slices).length) && overlay.visible);
  }

  // Overlay changes are told to listeners (telemetry) as whether it is now on screen.
  function overlayChanged() {
    const shown = overlayShown();
    overlayHandlers.forEach(function (handler) { handler(shown); });
    redraw();
  }

  function redraw() {
    if (!frameRequested) {
      frameRequested = true;
      window.requestAnimationFrame(draw);
    }
  }

  // Zoom or pan changed here (not set from a linked viewport): tell the layout.
  function moved() {
    redraw();
    if (options.onMove) options.onMove(state.zoom, state.panX, state.panY);
  }

  function drawBar() {
    if (bar) window.readingSeries.drawBar(bar, current(), resize);
  }

  // --- Navigation -------------------------------------------------------------------------
  function go(index) {
    const view = current();
    const target = Math.min(Math.max(index, 0), view.slices.length - 1);
    if (target !== view.index) direction = target > view.index ? 1 : -1;
    view.index = target;
    view.viewed[target] = 1;
    showHandlers.forEach(function (handler) { handler(view.series, view.slices[target].slice); });
    // prefetch() queues the wanted slice first, then its neighbours: loads stay a few at a time
    // however fast the wheel turns, nearest the wanted slice first.
    prefetch(view);
    const wanted = view.slices[target];
    if (wanted.loading) wanted.loading.catch(function (error) { statusLine.textContent = error.message; });
    drawBar();
    redraw();
    if (options.onSlice) options.onSlice(view, wanted);
  }

  function step(delta) {
    const view = current();
    if (view.stacked) go(view.index + delta);
    else showView(state.view + Math.sign(delta));
  }

  // The shared toolbar shows the active viewport's view: its tab, presets and cine button.
  function syncToolbar() {
    if (!isActive()) return;
    if (tabs) tabs.querySelectorAll(".tab").forEach(function (tab) {
      tab.classList.toggle("active", Number(tab.dataset.view) === state.view);
    });
    if (presetGroup) {
      const modality = current().modality;
      presetGroup.hidden = !(modality === "CT" || modality === "MR");
      presetGroup.querySelectorAll("[data-modality]").forEach(function (b) { b.hidden = b.dataset.modality !== modality; });
    }
    if (cineButton) {
      cineButton.hidden = !current().stacked;
      cineButton.classList.toggle("active", cineTimer !== null);
    }
  }

  function showView(index) {
    if (index < 0 || index >= views.length) return;
    state.view = index;
    syncToolbar();
    if (!current().stacked) stopCine();
    go(current().index);
  }

  function toggleCine() {
    if (cineTimer) { stopCine(); return; }
    if (!current().stacked) return;
    cineTimer = window.setInterval(function () {
      const view = current();
      const next = view.index + 1 < view.slices.length ? view.index + 1 : 0;
      // A slice not decoded yet is waited for (a tick later), never shown stale.
      if (view.slices[next].pixels) go(next);
    }, 1000 / CINE_FPS);
    if (cineButton) cineButton.classList.add("active");
    canvas.dataset.cine = "on";
    redraw();
  }

  function stopCine() {
    if (cineTimer) window.clearInterval(cineTimer);
    cineTimer = null;
    if (cineButton) cineButton.classList.remove("active");
    canvas.dataset.cine = "off";
  }

  // --- Window/level, zoom ------------------------------------------------------------------
  function setWindow(center, width) {
    const view = current();
    const sl = currentSlice();
    const top = maxValue(sl);
    // Kept where the derivative has values: 0..top once the slice's offset is added.
    view.wc = Math.min(Math.max(center, -sl.offset), top - sl.offset);
    view.ww = Math.min(Math.max(width, 1), 2 * (top + 1));
    redraw();
  }

  function preset(name) {
    const view = current();
    const sl = currentSlice();
    const top = maxValue(sl);
    const named = CT_PRESETS.find(function (p) { return p.name === name; });
    if (name === "default") setWindow(view.defaultCenter, view.defaultWidth);
    else if (name === "full") setWindow((top + 1) / 2 - sl.offset, top + 1);
    else if (name === "narrow") setWindow(view.defaultCenter, Math.max(1, view.defaultWidth / 3));
    else if (name === "auto" && view.seriesInfo.windowWidth) setWindow(view.seriesInfo.windowCenter, view.seriesInfo.windowWidth);
    else if (named && view.modality === "CT") setWindow(named.center, named.width);
    else return;
    canvas.dataset.preset = name;
  }

  function zoomBy(factor, cx, cy) {
    const before = state.zoom;
    state.zoom = Math.min(Math.max(state.zoom * factor, 0.25), 16);
    if (cx !== undefined) {
      // Keep the point under the cursor where it is.
      const box = canvas.getBoundingClientRect();
      const dx = cx - box.width / 2 - state.panX;
      const dy = cy - box.height / 2 - state.panY;
      const ratio = state.zoom / before;
      state.panX -= dx * (ratio - 1);
      state.panY -= dy * (ratio - 1);
    }
    moved();
  }

  function reset() {
    state.zoom = 1;
    state.panX = 0;
    state.panY = 0;
    state.invert = false;
    views.forEach(function (v) { v.wc = v.defaultCenter; v.ww = v.defaultWidth; });
    moved();
  }

  // Where the pointer is on the slice on screen, in continuous image coordinates (pixel i
  // spans [i, i + 1)), with the slice's series and the series' pixel spacing.
  function imagePoint(clientX, clientY) {
    const sl = currentSlice();
    const view = current();
    const box = canvas.getBoundingClientRect();
    const g = geometry(sl);
    const x = ((clientX - box.left) * g.dpr - g.x0) / g.sx;
    const y = ((clientY - box.top) * g.dpr - g.y0) / g.sy;
    return { image: sl.image, series: view.series, slice: sl.slice, x: x, y: y, rows: sl.rows, columns: sl.columns,
      pixelSpacing: (view.seriesInfo && view.seriesInfo.pixelSpacing) || null };
  }

  function toImage(clientX, clientY) {
    const view = current();
    const p = imagePoint(clientX, clientY);
    const point = { image: p.image, x: Math.floor(p.x), y: Math.floor(p.y), inside: p.x >= 0 && p.y >= 0 && p.x < p.columns && p.y < p.rows };
    if (view.stacked) { point.series = p.series; point.slice = p.slice; }
    return point;
  }

  // --- Input ------------------------------------------------------------------------------
  // Pointer: left-drag window/level, right- or Shift-drag pan, click (no movement) for marks.
  let drag = null;
  canvas.addEventListener("contextmenu", function (event) { event.preventDefault(); });
  canvas.addEventListener("pointerdown", function (event) {
    if (options.onFocus) options.onFocus();
    const sl = currentSlice();
    if (!sl || !sl.pixels) return;
    canvas.setPointerCapture(event.pointerId);
    const view = current();
    drag = {
      x: event.clientX, y: event.clientY, moved: false,
      pan: event.button === 2 || event.button === 1 || event.shiftKey,
      wc: view.wc, ww: view.ww, panX: state.panX, panY: state.panY,
    };
    drag.tool = tool && !drag.pan && event.button === 0 ? tool : null;
    if (drag.tool) { drag.tool.down(imagePoint(event.clientX, event.clientY)); redraw(); }
  });
  canvas.addEventListener("pointermove", function (event) {
    if (!drag) return;
    if (drag.tool) { drag.tool.move(imagePoint(event.clientX, event.clientY)); redraw(); return; }
    const dx = event.clientX - drag.x;
    const dy = event.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    if (!drag.moved) return;
    if (drag.pan) {
      state.panX = drag.panX + dx;
      state.panY = drag.panY + dy;
      moved();
    } else {
      // Sensitivity scales with the stored range so 8-bit and 16-bit images feel alike.
      const stepSize = (maxValue(currentSlice()) + 1) / 1024;
      setWindow(drag.wc + dy * stepSize, drag.ww + dx * stepSize * 2);
    }
  });
  canvas.addEventListener("pointerup", function (event) {
    if (drag && drag.tool) {
      drag.tool.up(imagePoint(event.clientX, event.clientY));
      drag = null;
      redraw();
      return;
    }
    if (drag && !drag.moved && !drag.pan && event.button === 0) {
      const point = toImage(event.clientX, event.clientY);
      if (point.inside) clickHandlers.forEach(function (handler) { handler(point); });
    }
    drag = null;
  });
  // The wheel scrolls a stack (a notch, or a trackpad's worth of small deltas, per slice) and
  // zooms a radiograph; Ctrl+wheel zooms either.
  canvas.addEventListener("wheel", function (event) {
    event.preventDefault();
    if (options.onFocus) options.onFocus();
    const box = canvas.getBoundingClientRect();
    if (!current().stacked || event.ctrlKey) {
      zoomBy(event.deltaY < 0 ? 1.15 : 1 / 1.15, event.clientX - box.left, event.clientY - box.top);
      return;
    }
    const delta = event.deltaMode === 0 ? event.deltaY : event.deltaY * 40;
    wheelRest += delta;
    if (Math.abs(wheelRest) < 40) return;
    const steps = Math.sign(wheelRest) * Math.max(1, Math.floor(Math.abs(wheelRest) / 100));
    wheelRest = 0;
    go(current().index + steps);
  }, { passive: false });

  if (bar) {
    let barDrag = false;
    function barTo(event) {
      const box = bar.getBoundingClientRect();
      const n = current().slices.length;
      go(Math.floor(((event.clientY - box.top) / box.height) * n));
    }
    bar.addEventListener("pointerdown", function (event) { barDrag = true; bar.setPointerCapture(event.pointerId); barTo(event); });
    bar.addEventListener("pointermove", function (event) { if (barDrag) barTo(event); });
    bar.addEventListener("pointerup", function () { barDrag = false; });
  }

  function buildToolbar() {
    if (tabs && views.length > 1 && !options.secondary) {
      views.forEach(function (view, i) {
        const tab = document.createElement("button");
        tab.type = "button";
        tab.className = "tab";
        tab.dataset.view = String(i);
        tab.dataset.image = String(i);
        tab.textContent = view.stacked ? "Series " + view.series + " (" + view.slices.length + ")" : "Image " + view.slices[0].image;
        tab.title = view.stacked ? "Series " + view.series + ": " + view.slices.length + " slices" : "Image " + view.slices[0].image + " (Page Up/Down)";
        tab.addEventListener("click", function () { if (options.onTab) options.onTab(i); else showView(i); });
        tabs.appendChild(tab);
      });
      tabs.hidden = false;
    }
    if (presetGroup && !options.secondary) {
      CT_PRESETS.forEach(function (p) {
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.preset = p.name;
        button.dataset.modality = "CT";
        button.textContent = p.label;
        button.title = p.label + ": W " + p.width + " L " + p.center + " HU (" + p.key + ")";
        presetGroup.appendChild(button);
      });
      const auto = document.createElement("button");
      auto.type = "button";
      auto.dataset.preset = "auto";
      auto.dataset.modality = "MR";
      auto.textContent = "Auto";
      auto.title = "The series' own window: 1st-99th percentile of its middle slices (4)";
      presetGroup.appendChild(auto);
    }
    document.querySelectorAll(".toolbar [data-preset]").forEach(function (button) {
      button.addEventListener("click", function () { if (isActive()) preset(button.dataset.preset); });
    });
  }
  buildToolbar();

  function invert() { state.invert = !state.invert; redraw(); }
  document.querySelectorAll(".toolbar [data-action]").forEach(function (button) {
    button.addEventListener("click", function () {
      if (!isActive()) return;
      const action = button.dataset.action;
      if (action === "zoom-in") zoomBy(1.25);
      else if (action === "zoom-out") zoomBy(1 / 1.25);
      else if (action === "reset") reset();
      else if (action === "invert") invert();
      else if (action === "cine") toggleCine();
    });
  });

  function stacked() { return current().stacked; }
  const keys = {
    "1": function () { preset("default"); },
    "2": function () { preset("full"); },
    "3": function () { preset("narrow"); },
    "+": function () { zoomBy(1.25); },
    "=": function () { zoomBy(1.25); },
    "-": function () { zoomBy(1 / 1.25); },
    "0": reset,
    "r": reset,
    "i": invert,
    "c": toggleCine,
    "PageDown": function () { step(stacked() ? 10 : 1); },
    "PageUp": function () { step(stacked() ? -10 : -1); },
    "Home": function () { if (stacked()) go(0); },
    "End": function () { if (stacked()) go(current().slices.length - 1); },
    "ArrowLeft": function () { state.panX -= 20; moved(); },
    "ArrowRight": function () { state.panX += 20; moved(); },
    "ArrowUp": function () { if (stacked()) go(current().index - 1); else { state.panY -= 20; moved(); } },
    "ArrowDown": function () { if (stacked()) go(current().index + 1); else { state.panY += 20; moved(); } },
  };
  CT_PRESETS.forEach(function (p) {
    keys[p.key] = function () { preset(current().modality === "MR" && p.key === "4" ? "auto" : p.name); };
  });
  const extraKeys = {};
  document.addEventListener("keydown", function (event) {
    if (!isActive()) return;
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
  window.addEventListener("resize", function () { drawBar(); redraw(); });

  // The small interface the report form, overlays and tools use (through layout.js).
  const api = {
    onClick: function (handler) { clickHandlers.push(handler); },
    setMarks: function (list) { marks = list; redraw(); },
    setOverlay: function (source) { overlay.source = source; overlayChanged(); },
    setSliceOverlay: function (image, source) { overlay.slices[image] = source; overlayChanged(); },
    setOverlayVisible: function (visible) { overlay.visible = visible; overlayChanged(); },
    overlayShown: overlayShown,
    onOverlay: function (handler) { overlayHandlers.push(handler); },
    onShow: function (handler) { showHandlers.push(handler); },
    // The series on screen in this viewport now (a list, as the layout's for several).
    seriesOnScreen: function () { return [current().series]; },
    // Per view, the slice numbers shown so far (the scroll bar's marks).
    viewedSlices: function () {
      return views.map(function (view) {
        const slices = [];
        view.viewed.forEach(function (seen, i) { if (seen) slices.push(view.slices[i].slice); });
        return { series: view.series, slices: slices };
      });
    },
    setOverlayOpacity: function (opacity) { overlay.opacity = opacity; redraw(); },
    overlayVisible: function () { return overlay.visible; },
    onKey: function (key, handler) { extraKeys[key] = handler; },
    setWindow: setWindow,
    showSlice: function (number) { go(number - 1); },
    pixelAt: function (x, y) {
      const sl = currentSlice();
      return sl.pixels ? sl.pixels[y * sl.columns + x] : null;
    },
    storedAt: function (x, y) {
      const sl = currentSlice();
      return sl.pixels ? sl.pixels[y * sl.columns + x] - sl.offset : null;
    },
    // Where image pixel (x, y)'s centre is drawn, in the canvas's own pixels.
    canvasPoint: function (x, y) {
      const g = geometry(currentSlice());
      return { x: Math.floor(g.x0 + (x + 0.5) * g.sx), y: Math.floor(g.y0 + (y + 0.5) * g.sy) };
    },
    state: function () {
      const view = current();
      const sl = currentSlice();
      const viewed = [];
      view.viewed.forEach(function (seen, i) { if (seen) viewed.push(i + 1); });
      return {
        image: sl.image, series: view.series, slice: sl.slice, slices: view.slices.length, stacked: view.stacked,
        loaded: view.slices.filter(function (x) { return x.pixels !== null; }).length,
        viewed: viewed, decodedBy: sl.decodedBy, windowCenter: view.wc, windowWidth: view.ww,
        zoom: state.zoom, panX: state.panX, panY: state.panY, invert: state.invert, cine: cineTimer !== null,
      };
    },
    // For tools and for the layout's linking (which sets these without being told back).
    setTool: function (handler) { tool = handler; canvas.dataset.tool = handler ? handler.name : ""; },
    addDrawer: function (drawer) { drawers.push(drawer); redraw(); },
    redraw: redraw,
    canvas: canvas,
    focus: syncToolbar,
    showView: showView,
    setZoomPan: function (zoom, panX, panY) { state.zoom = zoom; state.panX = panX; state.panY = panY; redraw(); },
    // The current series' normal and slice positions, to follow another viewport's slice.
    orientation: function () { return current().stacked ? (current().seriesInfo.normal || null) : null; },
    goToZ: function (z) {
      const view = current();
      if (!view.stacked || z === null || z === undefined) return;
      let best = -1;
      view.slices.forEach(function (sl, i) {
        if (sl.z === null || sl.z === undefined) return;
        if (best < 0 || Math.abs(sl.z - z) < Math.abs(view.slices[best].z - z)) best = i;
      });
      if (best >= 0 && best !== view.index) go(best);
    },
  };

  showView(options.view || 0);
  return api;
};
