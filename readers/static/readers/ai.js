// The assisted arm only: the Grad-CAM heatmap overlay (on/off with H, opacity slider).
// This file and the data it reads are sent only with the reading page of an assisted
// assignment; the unassisted page neither loads it nor holds any of its data.
(function () {
  "use strict";

  const ai = JSON.parse(document.getElementById("ai-data").textContent);
  const viewer = window.readingViewer;
  const toggle = document.getElementById("overlay-toggle");
  const opacity = document.getElementById("overlay-opacity");
  const slices = ai.sliceHeatmaps || [];
  // Reading telemetry: when the reader first sees the AI's output, and whether they did.
  if (window.readingTelemetry) window.readingTelemetry.watchPanel(document.getElementById("ai-panel"));
  if ((!ai.heatmapUrl && !slices.length) || !toggle) return;

  // A gray heatmap (0 = cold) is coloured with a jet-like ramp whose alpha follows the value;
  // a colour heatmap with its own alpha is drawn as it is.
  function colourize(bitmap) {
    const canvas = document.createElement("canvas");
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    const context = canvas.getContext("2d");
    context.drawImage(bitmap, 0, 0);
    const image = context.getImageData(0, 0, canvas.width, canvas.height);
    const px = image.data;
    let gray = true;
    for (let i = 0; i < px.length; i += 4 * 97) {
      if (px[i] !== px[i + 1] || px[i + 1] !== px[i + 2] || px[i + 3] !== 255) { gray = false; break; }
    }
    if (!gray) return canvas;
    for (let i = 0; i < px.length; i += 4) {
      const v = px[i] / 255;
      px[i] = 255 * Math.min(Math.max(1.5 - Math.abs(4 * v - 3), 0), 1);
      px[i + 1] = 255 * Math.min(Math.max(1.5 - Math.abs(4 * v - 2), 0), 1);
      px[i + 2] = 255 * Math.min(Math.max(1.5 - Math.abs(4 * v - 1), 0), 1);
      px[i + 3] = 255 * Math.min(1, v * 1.6);
    }
    context.putImageData(image, 0, 0);
    return canvas;
  }

  function apply() {
    viewer.setOverlayVisible(toggle.checked);
    viewer.setOverlayOpacity(Number(opacity.value) / 100);
  }
  toggle.addEventListener("change", apply);
  opacity.addEventListener("input", apply);
  viewer.onKey("h", function () {
    toggle.checked = !toggle.checked;
    apply();
  });

  function loadMap(url) {
    return fetch(url, { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("heatmap " + response.status);
        return response.blob();
      })
      .then(createImageBitmap)
      .then(colourize);
  }

  if (slices.length) {
    // A CT/MR pre-read: one map per slice, drawn on its own slice.
    Promise.all(slices.map(function (item) {
      return loadMap(item.url).then(function (map) { viewer.setSliceOverlay(item.image, map); });
    }))
      .then(function () { apply(); toggle.dataset.loaded = "true"; })
      .catch(function () {
        toggle.disabled = true;
        toggle.parentElement.title = "The heatmaps could not be loaded";
      });
    return;
  }

  fetch(ai.heatmapUrl, { credentials: "same-origin" })
    .then(function (response) {
      if (!response.ok) throw new Error("heatmap " + response.status);
      return response.blob();
    })
    .then(createImageBitmap)
    .then(function (bitmap) {
      apply();
      viewer.setOverlay(colourize(bitmap));
      toggle.dataset.loaded = "true";
    })
    .catch(function () {
      toggle.disabled = true;
      toggle.parentElement.title = "The heatmap could not be loaded";
    });
})();
