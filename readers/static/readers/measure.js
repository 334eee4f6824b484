// The length tool: L (or the toolbar's Length button) turns it on; a left drag on the image draws
// a line, labelled with its length in millimetres from the series' PixelSpacing ([row, column]
// spacing: y distances in row spacing, x distances in column spacing), or in pixels when the
// series has no spacing. The lines travel with the report (draft and submission) as
// `measurements`; the server recomputes each length and refuses one that does not match.
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("reading-data").textContent);
  const viewer = window.readingViewer;
  const report = window.readingReport;
  const button = document.querySelector('.toolbar [data-action="measure"]');
  const summary = document.getElementById("measurements");
  const COLOR = "#4ef0c0";

  const saved = data.draft && Array.isArray(data.draft.measurements) ? data.draft.measurements : [];
  let lines = saved.filter(function (m) { return m && typeof m.image === "number"; });
  let drawing = null;
  let on = false;

  function round(value) { return Math.round(value * 100) / 100; }
  function clamp(value, top) { return Math.min(Math.max(value, 0), top); }

  // [length in px, length in mm or null]: as the server computes it (measurements.py).
  function lengths(line) {
    const dx = line.x2 - line.x1;
    const dy = line.y2 - line.y1;
    const px = Math.hypot(dx, dy);
    const spacing = line.spacing;
    if (!spacing || spacing.length !== 2) return [px, null];
    return [px, Math.hypot(dx * spacing[1], dy * spacing[0])];
  }

  function label(line) {
    const both = lengths(line);
    return both[1] === null ? both[0].toFixed(1) + " px" : both[1].toFixed(1) + " mm";
  }

  const clear = document.getElementById("clear-measurements");

  function publish(quiet) {
    const sent = lines.map(function (line) {
      return {
        image: line.image, series: line.series, slice: line.slice,
        x1: line.x1, y1: line.y1, x2: line.x2, y2: line.y2, length_mm: lengths(line)[1],
      };
    });
    if (report) report.set("measurements", sent, quiet);
    if (summary) {
      summary.textContent = lines.length
        ? "Measurements: " + lines.map(label).join(", ")
        : "";
      summary.dataset.count = String(lines.length);
    }
    if (clear) clear.hidden = !lines.length;
  }

  function point(p, line) {
    return { x: round(clamp(p.x, p.columns)), y: round(clamp(p.y, p.rows)), ok: !line || p.image === line.image };
  }

  const tool = {
    name: "length",
    down: function (p) {
      const start = point(p);
      drawing = {
        image: p.image, series: p.series, slice: p.slice, spacing: p.pixelSpacing,
        x1: start.x, y1: start.y, x2: start.x, y2: start.y,
      };
    },
    move: function (p) {
      if (!drawing) return;
      const end = point(p, drawing);
      if (!end.ok) return;
      drawing.x2 = end.x;
      drawing.y2 = end.y;
    },
    up: function (p) {
      if (!drawing) return;
      tool.move(p);
      const line = drawing;
      drawing = null;
      if (lengths(line)[0] >= 1) {
        lines.push(line);
        publish(false);
      }
      viewer.redraw();
    },
  };

  function drawLine(ctx, g, line, dashed) {
    const x1 = g.x0 + line.x1 * g.sx, y1 = g.y0 + line.y1 * g.sy;
    const x2 = g.x0 + line.x2 * g.sx, y2 = g.y0 + line.y2 * g.sy;
    ctx.save();
    ctx.strokeStyle = COLOR;
    ctx.fillStyle = COLOR;
    ctx.lineWidth = 1.5 * g.dpr;
    if (dashed) ctx.setLineDash([4 * g.dpr, 3 * g.dpr]);
    ctx.beginPath();
    ctx.moveTo(x1, y1);
    ctx.lineTo(x2, y2);
    ctx.stroke();
    [[x1, y1], [x2, y2]].forEach(function (end) {
      ctx.fillRect(end[0] - 2 * g.dpr, end[1] - 2 * g.dpr, 4 * g.dpr, 4 * g.dpr);
    });
    ctx.font = 12 * g.dpr + "px system-ui, sans-serif";
    ctx.fillText(label(line), Math.max(x1, x2) + 6 * g.dpr, (y1 + y2) / 2);
    ctx.restore();
  }

  viewer.addDrawer(function (ctx, g, sl) {
    lines.forEach(function (line) { if (line.image === sl.image) drawLine(ctx, g, line, false); });
    if (drawing && drawing.image === sl.image) drawLine(ctx, g, drawing, true);
  });

  function toggle() {
    on = !on;
    viewer.setTool(on ? tool : null);
    if (button) button.classList.toggle("active", on);
  }
  if (button) button.addEventListener("click", toggle);
  viewer.onKey("l", toggle);
  if (clear) clear.addEventListener("click", function () {
    lines = [];
    publish(false);
    viewer.redraw();
  });

  // Restored from the draft: the spacing shown comes from the series, not from the draft.
  const spacingOf = {};
  (data.series || []).forEach(function (s) { spacingOf[s.position] = s.pixelSpacing || null; });
  lines.forEach(function (line) { line.spacing = spacingOf[line.series] || null; });
  publish(true);
  viewer.redraw();

  window.readingMeasure = {
    lines: function () { return lines.map(function (line) { return Object.assign({ lengths: lengths(line) }, line); }); },
  };
})();
