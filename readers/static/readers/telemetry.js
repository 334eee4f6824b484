// Reading-behaviour telemetry: per series the slices shown and the seconds on screen, the
// seconds any of the case's images was on screen, and, in the assisted arm, whether the AI's
// output (its panel, its overlay) was seen, for how long, and when first. Time counts only while
// the tab is visible. With a hanging protocol every viewport is on screen: each series shown in
// any of them is credited (once, however many viewports show it), so the series' times may sum
// to more than the time on screen; the overlay counts once however many viewports draw it. The
// report form sends snapshot() with every draft (a reload resumes from the draft's copy) and
// with the submission; the server validates and caps it
// (studyplatform/reading/services/telemetry.py). Needs viewer.js. Sent
// with every reading page, so it names nothing of the AI: the assisted page's own script hands
// it the panel to watch (watchPanel), and on the unassisted page there is none.
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("reading-data").textContent);
  const viewer = window.readingViewer;
  let panel = null;
  const pageStart = performance.now();
  const openedSeconds = Number(data.openedSeconds) || 0;

  const seriesTime = {};   // series -> seconds on screen
  let onScreenSeconds = 0; // seconds any series was on screen (the case's images, once)
  const viewedBefore = {}; // series -> slice numbers viewed before a reload (from the draft)
  let overlaySeconds = 0;
  let panelShown = false;
  let firstView = null;
  let changed = false;

  const saved = data.draft && data.draft.telemetry;
  if (saved && Array.isArray(saved.series)) {
    saved.series.forEach(function (s) {
      if (!Number.isInteger(s.series)) return;
      seriesTime[s.series] = Number(s.time_s) > 0 ? Number(s.time_s) : 0;
      viewedBefore[s.series] = Array.isArray(s.slices_viewed) ? s.slices_viewed.filter(Number.isInteger) : [];
    });
    // A draft of a page that credited one series at a time has no total: its series' sum is it.
    onScreenSeconds = Number(saved.on_screen_s) > 0 ? Number(saved.on_screen_s)
      : Object.keys(seriesTime).reduce(function (sum, s) { return sum + seriesTime[s]; }, 0);
    const ai = saved.ai || {};
    overlaySeconds = Number(ai.overlay_s) > 0 ? Number(ai.overlay_s) : 0;
    panelShown = ai.panel_shown === true;
    firstView = typeof ai.first_view_s === "number" ? ai.first_view_s : null;
  }

  // --- Visible time ---------------------------------------------------------------------
  // One clock: at every change (series shown, overlay toggled, tab hidden or shown) the time
  // since the last change is credited to what was on screen during it: to every series on
  // screen (in any viewport, each once) and once to the time on screen and to the overlay.
  let last = performance.now();
  let shownSeries = viewer.seriesOnScreen();
  let overlayOn = viewer.overlayShown();
  let panelVisible = false;

  function visible() { return document.visibilityState === "visible"; }
  // Whether the tab was visible since the last change: when it comes back, the time it was
  // hidden is not credited (the event fires with the tab already visible).
  let tabVisible = visible();

  function tick() {
    const now = performance.now();
    const seconds = (now - last) / 1000;
    last = now;
    if (!tabVisible || seconds <= 0) return;
    shownSeries.forEach(function (s) { seriesTime[s] = (seriesTime[s] || 0) + seconds; });
    if (shownSeries.length) onScreenSeconds += seconds;
    if (overlayOn) overlaySeconds += seconds;
    changed = true;
  }

  function sawAI() {
    if (firstView === null && visible()) {
      firstView = openedSeconds + (performance.now() - pageStart) / 1000;
      changed = true;
    }
  }

  viewer.onShow(function () {
    tick();
    shownSeries = viewer.seriesOnScreen();
  });
  viewer.onOverlay(function (shown) {
    tick();
    overlayOn = shown;
    if (shown) sawAI();
  });
  document.addEventListener("visibilitychange", function () {
    tick();
    tabVisible = visible();
    if (visible() && (overlayOn || panelVisible)) sawAI();
    // Leaving the tab saves what was measured so far (keepalive: the page may be closing).
    if (!visible()) saveIfChanged(true);
  });

  // Saves the draft, which carries the telemetry, when something was measured since the last.
  function saveIfChanged(keepalive) {
    if (changed && window.readingReport) {
      changed = false;
      window.readingReport.saveDraft(keepalive);
    }
  }

  // The AI's panel (assisted page only): seen once any of it is on screen with the tab visible.
  function watchPanel(element) {
    if (!element || panel) return;
    panel = element;
    if (!("IntersectionObserver" in window)) {
      panelShown = true;
      sawAI();
      return;
    }
    new IntersectionObserver(function (entries) {
      panelVisible = entries.some(function (e) { return e.isIntersecting; });
      if (panelVisible && visible()) {
        panelShown = true;
        sawAI();
      }
    }).observe(element);
  }

  function round(x) { return Math.round(x * 1000) / 1000; }

  // What the page sends: viewed slices are the viewer's own (the scroll bar's), merged with
  // those of the page before a reload.
  function snapshot() {
    tick();
    const viewed = {};
    Object.keys(viewedBefore).forEach(function (s) { viewed[s] = new Set(viewedBefore[s]); });
    viewer.viewedSlices().forEach(function (v) {
      const set = viewed[v.series] || (viewed[v.series] = new Set());
      v.slices.forEach(function (n) { set.add(n); });
    });
    const keys = new Set(Object.keys(viewed).concat(Object.keys(seriesTime)));
    const series = Array.from(keys).map(Number).sort(function (a, b) { return a - b; }).map(function (s) {
      return {
        series: s,
        slices_viewed: Array.from(viewed[s] || []).sort(function (a, b) { return a - b; }),
        time_s: round(seriesTime[s] || 0),
      };
    });
    const ai = panel ? { panel_shown: panelShown, overlay_s: round(overlaySeconds), first_view_s: firstView === null ? null : round(firstView) } : {};
    return { series: series, on_screen_s: round(onScreenSeconds), ai: ai };
  }

  // A beacon while the reader works: the draft is saved with the telemetry every 20 s of
  // activity, so a crash loses little of it.
  window.setInterval(function () {
    tick();
    saveIfChanged(false);
  }, 20000);

  window.readingTelemetry = { snapshot: snapshot, watchPanel: watchPanel };
})();
