// The next case's images, fetched into the browser's cache while the reader reads this one, so
// that opening the next case draws its first image without waiting for the network.
//
// The page names the images (data.prefetch: pixel URLs keyed by case and image, the same URLs
// the next case's page will ask for, served "immutable"); nothing else of the next case is
// fetched (not its page, nothing shown only to one arm), and fetching pixels opens nothing. It starts
// once the current series is loaded (or after START_AFTER_MS at the latest), fetches at most
// TWO_AT_ONCE images at a time and keeps none of them: each response is read to its end, so
// that the browser stores it, then dropped; it stops after BUDGET_BYTES.
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("reading-data").textContent);
  const urls = Array.isArray(data.prefetch) ? data.prefetch : [];
  const AT_ONCE = 2;
  const START_AFTER_MS = 15000;
  const BUDGET_BYTES = 256 * 1024 * 1024;
  const root = document.documentElement;
  const state = { total: urls.length, fetched: 0, failed: 0, bytes: 0, done: urls.length === 0 };
  root.dataset.prefetch = state.done ? "done" : "waiting";

  function currentLoaded() {
    const viewer = window.readingViewer;
    if (!viewer) return true;
    const s = viewer.state();
    return s.loaded >= s.slices;
  }

  async function fetchOne(url) {
    try {
      const response = await fetch(url, { credentials: "same-origin", priority: "low" });
      const body = await response.arrayBuffer();
      if (response.ok) {
        state.fetched++;
        state.bytes += body.byteLength;
      } else {
        state.failed++;
      }
    } catch (error) {
      state.failed++;
    }
  }

  async function worker(queue) {
    while (queue.length && state.bytes < BUDGET_BYTES) await fetchOne(queue.shift());
  }

  async function run() {
    root.dataset.prefetch = "running";
    const queue = urls.slice();
    // The first image of the next case alone first: it is what the next page draws first.
    await fetchOne(queue.shift());
    const workers = [];
    for (let i = 0; i < AT_ONCE; i++) workers.push(worker(queue));
    await Promise.all(workers);
    // Asked again (from the cache, no transfer): a cache that evicts the least recently used
    // entries keeps what the next page draws first.
    if (urls.length > 1) await fetch(urls[0], { credentials: "same-origin" }).then(function (r) { return r.arrayBuffer(); }, function () {});
    state.done = true;
    root.dataset.prefetch = "done";
  }

  function start() {
    if (!urls.length) return;
    const began = performance.now();
    (function wait() {
      if (currentLoaded() || performance.now() - began > START_AFTER_MS) run();
      else setTimeout(wait, 200);
    })();
  }

  if (document.readyState === "complete") start();
  else window.addEventListener("load", start);

  window.readingPrefetch = { state: function () { return Object.assign({}, state); } };
})();
