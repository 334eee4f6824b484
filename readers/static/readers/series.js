// A case's series as the viewer shows them: a CT/MR series of several slices is one stack,
// any other series shows each image on a tab of its own (as radiographs always were); the
// presets by modality; the stack's scroll bar. Used by viewer.js.
(function () {
  "use strict";

  // Presets in stored units (HU), by modality; radiographs keep Default/Full/Narrow only.
  const CT_PRESETS = [
    { key: "4", name: "lung", label: "Lung", width: 1500, center: -600 },
    { key: "5", name: "mediastinum", label: "Mediastinum", width: 350, center: 50 },
    { key: "6", name: "bone", label: "Bone", width: 2000, center: 500 },
    { key: "7", name: "brain", label: "Brain", width: 80, center: 40 },
    { key: "8", name: "abdomen", label: "Abdomen", width: 400, center: 50 },
  ];

  // How wide and how high a pixel is drawn: [column spacing, row spacing] from the series'
  // PixelSpacing ([row, column] mm), so an image of rectangular pixels keeps its physical shape;
  // square ([1, 1]) for a series without a usable spacing.
  function pixelAspect(s) {
    const spacing = s.pixelSpacing;
    const usable = Array.isArray(spacing) && spacing.length === 2 && spacing.every(function (v) {
      return typeof v === "number" && isFinite(v) && v > 0;
    });
    return usable ? [spacing[1], spacing[0]] : [1, 1];
  }

  function views(data) {
    const imageInfo = {};
    data.images.forEach(function (im) { imageInfo[im.position] = im; });
    const series = data.series && data.series.length ? data.series : [{
      position: 1, modality: "", windowCenter: null, windowWidth: null,
      slices: data.images.map(function (im, i) { return { image: im.position, slice: i + 1, z: null, offset: 0, url: im.pixelsUrl }; }),
    }];

    // A view is what a tab shows: a CT/MR series of several slices is one stack; any other
    // series shows each of its images on a tab of its own, as radiographs always were.
    function makeView(s, slices, stacked) {
      const aspect = pixelAspect(s);
      const list = slices.map(function (sl) {
        const im = imageInfo[sl.image] || {};
        return {
          image: sl.image, slice: sl.slice, z: sl.z, offset: sl.offset || 0, url: sl.url || im.pixelsUrl,
          bitsStored: im.bitsStored || 16, windowCenter: im.windowCenter, windowWidth: im.windowWidth,
          rows: im.rows, columns: im.columns, aspect: aspect, pixels: null, loading: null,
        };
      });
      const first = list[0];
      const auto = s.modality === "MR" && s.windowWidth;
      const view = {
        series: s.position, modality: s.modality, stacked: stacked, slices: list, index: 0,
        viewed: new Uint8Array(list.length), seriesInfo: s,
        defaultCenter: auto ? s.windowCenter : first.windowCenter - first.offset,
        defaultWidth: auto ? s.windowWidth : first.windowWidth,
      };
      view.wc = view.defaultCenter;
      view.ww = view.defaultWidth;
      return view;
    }
    const views = [];
    series.forEach(function (s) {
      const stacked = s.slices.length > 1 && (s.modality === "CT" || s.modality === "MR");
      if (stacked) views.push(makeView(s, s.slices, true));
      else s.slices.forEach(function (sl) { views.push(makeView(s, [sl], false)); });
    });
    return views;
  }

  // The scroll bar: the whole stack top to bottom, viewed slices marked, the current one lit.
  function drawBar(bar, view, resize) {
    bar.hidden = !view.stacked;
    if (!view.stacked) return;
    resize(bar);
    const c = bar.getContext("2d");
    const n = view.slices.length;
    const h = bar.height / n;
    c.fillStyle = "#14181d";
    c.fillRect(0, 0, bar.width, bar.height);
    let viewed = 0;
    for (let i = 0; i < n; i++) {
      if (view.viewed[i]) viewed++;
      c.fillStyle = view.viewed[i] ? "#3b6e9e" : view.slices[i].pixels ? "#2a313b" : "#1b2026";
      c.fillRect(bar.width * 0.3, i * h, bar.width * 0.4, Math.max(1, h - (h > 3 ? 1 : 0)));
    }
    c.fillStyle = "#ffd400";
    c.fillRect(0, view.index * h, bar.width, Math.max(2, h));
    bar.dataset.slice = String(view.index + 1);
    bar.dataset.slices = String(n);
    bar.dataset.viewed = String(viewed);
    bar.title = "Slice " + (view.index + 1) + " of " + n + " (" + viewed + " viewed)";
  }

  window.readingSeries = { views: views, drawBar: drawBar, CT_PRESETS: CT_PRESETS };
})();
