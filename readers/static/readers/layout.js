// The reading page's viewports. Without a hanging protocol: one viewport in #viewer, as the page
// always was. With one (data.layout: rows x columns, per viewport the series, and the image of a
// series shown image by image), a grid of viewports, each with its own series, slice, window,
// zoom and pan; the one last clicked or scrolled is active (keys, toolbar and tabs act on it).
// "Link" (K) links zoom and pan, and the slice by position along the normal between stacks of
// the same orientation. window.readingViewer stays the one interface the other modules use.
// Every viewport of the grid is on screen: the telemetry credits time to the series of all of
// them (seriesOnScreen), not only the active one's, and the overlay, shown and hidden in all of
// them together, is on screen while any viewport has it (onOverlay, overlayShown).
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("reading-data").textContent);
  const layout = data.layout;
  if (!layout || !layout.viewports || !layout.viewports.length) {
    window.readingViewer = window.readingViewport({});
    return;
  }

  const stage = document.querySelector(".stage");
  const statusLine = document.getElementById("viewer-status");
  const firstCanvas = document.getElementById("viewer");
  const firstBar = document.getElementById("slice-bar");
  const viewports = [];  // {number, api, cell}
  let active = 0;
  let linked = false;
  let following = false;  // a linked change being passed on: not passed back
  const showHandlers = [];  // telemetry.js: a viewport showed a slice (of any series)

  function viewIndex(spec) {
    const views = window.readingSeries.views(data);
    const found = views.findIndex(function (view) {
      return view.series === spec.series && (spec.image === null || view.slices[0].image === spec.image);
    });
    return found < 0 ? 0 : found;
  }

  function sameOrientation(a, b) {
    if (!a || !b) return false;
    return Math.abs(a[0] * b[0] + a[1] * b[1] + a[2] * b[2]) > 0.99;
  }

  function describe() {
    statusLine.textContent = "Hanging protocol " + layout.protocol + " · " + layout.rows + "×" + layout.columns +
      " · viewport " + viewports[active].number + " active" + (linked ? " · linked" : "");
    stage.dataset.active = String(viewports[active].number);
    stage.dataset.linked = linked ? "on" : "off";
  }

  function activate(index) {
    if (index === active) return;
    active = index;
    viewports.forEach(function (vp, i) { vp.cell.classList.toggle("active", i === index); });
    viewports[index].api.focus();
    describe();
  }

  function passOn(from, change) {
    if (!linked || following) return;
    following = true;
    try {
      viewports.forEach(function (vp, i) { if (i !== from) change(vp.api); });
    } finally {
      following = false;
    }
  }

  function setLinked(on) {
    linked = on;
    if (linkButton) linkButton.classList.toggle("active", on);
    if (on) {
      const s = viewports[active].api.state();
      passOn(active, function (api) { api.setZoomPan(s.zoom, s.panX, s.panY); });
    }
    describe();
  }

  // The grid: viewport k in row-major order; #viewer and #slice-bar become the first cell's.
  stage.classList.add("hanging");
  stage.style.gridTemplateColumns = "repeat(" + layout.columns + ", minmax(0, 1fr))";
  stage.style.gridTemplateRows = "repeat(" + layout.rows + ", minmax(0, 1fr))";
  const specs = {};
  layout.viewports.forEach(function (v) { specs[v.number] = v; });
  stage.textContent = "";
  for (let number = 1; number <= layout.rows * layout.columns; number++) {
    const cell = document.createElement("div");
    cell.className = "viewport-cell";
    cell.dataset.viewport = String(number);
    const head = document.createElement("div");
    head.className = "cell-head";
    const body = document.createElement("div");
    body.className = "cell-body";
    const status = document.createElement("div");
    status.className = "cell-status";
    cell.append(head, body, status);
    stage.appendChild(cell);
    const spec = specs[number];
    if (!spec || spec.series === null) {
      head.textContent = "Viewport " + number + ": no series for it in this case";
      continue;
    }
    const series = data.series.find(function (s) { return s.position === spec.series; }) || {};
    head.textContent = "Series " + spec.series + (series.description ? " · " + series.description : "") +
      (series.viewPosition ? " · " + series.viewPosition : "") + (spec.image !== null ? " · image " + spec.image : "");
    const canvas = viewports.length ? document.createElement("canvas") : firstCanvas;
    const bar = viewports.length ? document.createElement("canvas") : firstBar;
    if (viewports.length) {
      canvas.id = "viewer-" + number;
      bar.id = "slice-bar-" + number;
      bar.hidden = true;
    }
    canvas.classList.add("viewport-canvas");
    bar.classList.add("viewport-bar");
    body.append(canvas, bar);
    const index = viewports.length;
    const entry = { number: number, cell: cell, api: null };
    viewports.push(entry);
    entry.api = window.readingViewport({
      canvas: canvas, bar: bar, status: status, view: viewIndex(spec), secondary: index > 0,
      isActive: function () { return active === index; },
      onFocus: function () { activate(index); },
      onTab: function (i) { viewports[active].api.showView(i); },
      onMove: function (zoom, panX, panY) {
        passOn(index, function (api) { api.setZoomPan(zoom, panX, panY); });
      },
      onSlice: function (view, slice) {
        if (!entry.api) return;  // still being made
        const normal = entry.api.orientation();
        passOn(index, function (api) {
          if (sameOrientation(normal, api.orientation())) api.goToZ(slice.z);
        });
      },
    });
  }
  viewports.forEach(function (vp) {
    vp.api.onShow(function (series, slice) {
      showHandlers.forEach(function (handler) { handler(series, slice); });
    });
  });

  // The series on screen in any viewport, each once (two viewports may show the same one).
  function seriesOnScreen() {
    const shown = [];
    viewports.forEach(function (vp) {
      vp.api.seriesOnScreen().forEach(function (s) { if (shown.indexOf(s) < 0) shown.push(s); });
    });
    return shown;
  }
  function overlayShown() {
    return viewports.some(function (vp) { return vp.api.overlayShown(); });
  }
  viewports[0].cell.classList.add("active");
  viewports[0].api.focus();

  const toolbar = document.querySelector(".toolbar");
  const linkButton = document.createElement("button");
  linkButton.type = "button";
  linkButton.dataset.action = "link";
  linkButton.textContent = "Link";
  linkButton.title = "Link zoom, pan and the slice position of the viewports (K)";
  linkButton.addEventListener("click", function () { setLinked(!linked); });
  const group = document.createElement("span");
  group.className = "group";
  group.appendChild(linkButton);
  toolbar.appendChild(group);

  function each(name) {
    return function () {
      const args = arguments;
      viewports.forEach(function (vp) { vp.api[name].apply(null, args); });
    };
  }
  function ofActive(name) {
    return function () { return viewports[active].api[name].apply(null, arguments); };
  }

  window.readingViewer = {
    onClick: each("onClick"),
    setMarks: each("setMarks"),
    setOverlay: each("setOverlay"),
    setSliceOverlay: each("setSliceOverlay"),
    setOverlayVisible: each("setOverlayVisible"),
    setOverlayOpacity: each("setOverlayOpacity"),
    overlayVisible: function () { return viewports[0].api.overlayVisible(); },
    // Every viewport shows and hides the overlay together; it is on screen while any viewport
    // has it, and a listener hears that one answer, however many viewports draw it.
    overlayShown: overlayShown,
    onOverlay: function (handler) {
      viewports.forEach(function (vp) { vp.api.onOverlay(function () { handler(overlayShown()); }); });
    },
    onShow: function (handler) { showHandlers.push(handler); },
    seriesOnScreen: seriesOnScreen,
    viewedSlices: function () {
      return [].concat.apply([], viewports.map(function (vp) { return vp.api.viewedSlices(); }));
    },
    onKey: each("onKey"),
    setTool: each("setTool"),
    addDrawer: each("addDrawer"),
    redraw: each("redraw"),
    setWindow: ofActive("setWindow"),
    showSlice: ofActive("showSlice"),
    pixelAt: ofActive("pixelAt"),
    storedAt: ofActive("storedAt"),
    canvasPoint: ofActive("canvasPoint"),
    state: ofActive("state"),
    // The layout itself, for the page's tests and tools.
    viewports: function () { return viewports.map(function (vp) { return vp.api; }); },
    active: function () { return viewports[active].number; },
    activate: function (number) {
      const i = viewports.findIndex(function (vp) { return vp.number === number; });
      if (i >= 0) activate(i);
    },
    setLinked: setLinked,
    linked: function () { return linked; },
  };
  window.readingViewer.onKey("k", function () { setLinked(!linked); });
  describe();
})();
