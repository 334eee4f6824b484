// The analysis report page: draws the report's figures (their data is in JSON script elements
// next to each plot), or, while the analysis runs, polls its status and reloads when it ends.
"use strict";
(function () {
  function drawFigures() {
    document.querySelectorAll("#report div.plot").forEach(function (el) {
      var data = document.getElementById(el.id + "-data");
      if (!data || typeof Plotly === "undefined") { return; }
      var fig = JSON.parse(data.textContent);
      Plotly.newPlot(el, fig.data, fig.layout || {}, {responsive: true, displaylogo: false});
    });
  }

  function pollProgress(box) {
    fetch(box.dataset.statusUrl, {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (s) {
        document.getElementById("bar").value = s.progress;
        document.getElementById("stage").textContent = s.stage || s.status;
        if (s.status === "done" || s.status === "failed") {
          window.location.reload();
        } else {
          setTimeout(function () { pollProgress(box); }, 2000);
        }
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawFigures();
    var box = document.getElementById("analysis-progress");
    if (box) { setTimeout(function () { pollProgress(box); }, 2000); }
  });
})();
