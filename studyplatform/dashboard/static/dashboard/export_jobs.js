// The dashboard's list of export jobs: while one is queued or running, poll the jobs' state,
// move their progress bars, and reload the page when one ends (to show its link or error).
"use strict";
(function () {
  var ACTIVE = ["queued", "running"];

  function rowsActive(box) {
    return box.querySelectorAll('tr.export-job[data-status="queued"], tr.export-job[data-status="running"]');
  }

  function poll(box) {
    fetch(box.dataset.statusUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (state) {
        if (!state) { return; }  // refused or gone: stop; a reload shows why
        var ended = false;
        state.jobs.forEach(function (job) {
          var row = box.querySelector('tr.export-job[data-job="' + job.id + '"]');
          if (!row) { return; }
          if (ACTIVE.indexOf(row.dataset.status) >= 0 && ACTIVE.indexOf(job.status) < 0) {
            ended = true;
          }
          var bar = row.querySelector("progress");
          if (bar) { bar.value = job.progress; }
          var label = row.querySelector(".job-progress");
          if (label) { label.textContent = job.progress + "%"; }
          var status = row.querySelector(".job-status");
          if (status && ACTIVE.indexOf(job.status) >= 0) { status.textContent = job.status; }
          row.dataset.status = ACTIVE.indexOf(job.status) >= 0 ? job.status : row.dataset.status;
        });
        if (ended) {
          window.location.reload();
        } else if (rowsActive(box).length) {
          setTimeout(function () { poll(box); }, 2000);
        }
      })
      .catch(function () { setTimeout(function () { poll(box); }, 5000); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("export-jobs");
    if (box && rowsActive(box).length) { setTimeout(function () { poll(box); }, 2000); }
  });
})();
