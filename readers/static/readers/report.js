// The report form: per finding present/absent, a rating on the protocol's scale (the probability
// 0-100 that the finding is present; unset until the reader sets it, never a default) and marks;
// free text. A call that contradicts its rating (present below 50, absent above 50) is refused
// here as on the server, or submitted after the reader confirms it (the study's rule). Saves a draft as the reader works (debounced POST; also when the tab is hidden), restores it
// on reload, and submits once: the idempotency key of this page load travels in the draft and
// the submission, so a repeated submit returns the stored read instead of a second one.
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("reading-data").textContent);
  const csrf = document.getElementById("csrf").value;
  const viewer = window.readingViewer;
  const form = document.getElementById("report");
  const draftStatus = document.getElementById("draft-status");
  const errorLine = document.getElementById("report-error");
  const submitButton = document.getElementById("submit");
  const colors = ["#ffd400", "#ff5db1", "#4ef0c0", "#ff8a3d", "#9d8cff"];

  const state = { idempotency_key: data.idempotencyKey, findings: {}, free_text: "" };
  data.findings.forEach(function (f) {
    state.findings[f.code] = { present: null, confidence: null, marks: [] };
  });
  const start = data.draft && data.draft.findings ? data.draft : data.earlierStep;
  if (start) {
    Object.keys(state.findings).forEach(function (code) {
      const saved = (start.findings || {})[code];
      if (saved) Object.assign(state.findings[code], {
        present: typeof saved.present === "boolean" ? saved.present : null,
        confidence: validRating(saved.confidence),
        marks: Array.isArray(saved.marks) ? saved.marks : [],
      });
    });
    state.free_text = typeof start.free_text === "string" ? start.free_text : "";
  }
  function validRating(value) {
    return Number.isInteger(value) && value >= 0 && value <= 100 ? value : null;
  }

  let markingCode = null;
  let saveTimer = null;
  let submitted = false;

  function fieldset(code) {
    return form.querySelector('fieldset.finding[data-code="' + code + '"]');
  }

  function render() {
    data.findings.forEach(function (f, i) {
      const s = state.findings[f.code];
      const box = fieldset(f.code);
      box.querySelectorAll('input[type="radio"]').forEach(function (radio) {
        radio.checked = s.present !== null && (radio.value === "present") === s.present;
      });
      const slider = box.querySelector('input[type="range"]');
      const number = box.querySelector('input[type="number"]');
      slider.classList.toggle("unset", s.confidence === null);
      slider.value = s.confidence === null ? "50" : String(s.confidence);
      number.value = s.confidence === null ? "" : String(s.confidence);
      box.querySelector(".marks").textContent = s.marks.length ? s.marks.length + " mark" + (s.marks.length > 1 ? "s" : "") : "";
      box.querySelector("button.mark").classList.toggle("active", markingCode === f.code);
      box.style.setProperty("--mark-color", colors[i % colors.length]);
    });
    form.elements.free_text.value = state.free_text;
    showMarks();
  }

  function showMarks() {
    const all = [];
    data.findings.forEach(function (f, i) {
      state.findings[f.code].marks.forEach(function (m) {
        all.push({ image: m.image, x: m.x, y: m.y, color: colors[i % colors.length], label: f.name });
      });
    });
    viewer.setMarks(all);
  }

  function post(url, body, keepalive) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      keepalive: !!keepalive,
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(body),
    });
  }

  // The viewing telemetry (telemetry.js) travels with every draft and with the submission.
  function withTelemetry(body) {
    const telemetry = window.readingTelemetry;
    return telemetry ? Object.assign({}, body, { telemetry: telemetry.snapshot() }) : body;
  }

  function saveNow(keepalive) {
    if (submitted) return Promise.resolve();
    window.clearTimeout(saveTimer);
    saveTimer = null;
    draftStatus.textContent = "Saving draft…";
    return post(data.draftUrl, withTelemetry(state), keepalive).then(function (response) {
      draftStatus.textContent = response.ok
        ? "Draft saved " + new Date().toLocaleTimeString()
        : "Draft not saved (" + response.status + ")";
      form.dataset.draftSaved = response.ok ? "true" : "false";
    }).catch(function () {
      draftStatus.textContent = "Draft not saved: offline? Your answers stay in this page.";
    });
  }

  function changed() {
    form.dataset.draftSaved = "false";
    draftStatus.textContent = "Unsaved changes";
    window.clearTimeout(saveTimer);
    saveTimer = window.setTimeout(saveNow, 600);
  }

  form.addEventListener("change", function (event) {
    const target = event.target;
    const box = target.closest("fieldset.finding");
    if (box && target.type === "radio") {
      state.findings[box.dataset.code].present = target.value === "present";
      changed();
    }
  });
  function setRating(box, value) {
    const rating = validRating(value);
    state.findings[box.dataset.code].confidence = rating;
    const slider = box.querySelector('input[type="range"]');
    slider.classList.toggle("unset", rating === null);
    if (rating !== null) slider.value = String(rating);
    changed();
  }

  form.addEventListener("input", function (event) {
    const target = event.target;
    const box = target.closest("fieldset.finding");
    if (box && target.type === "range") {
      setRating(box, parseInt(target.value, 10));
      box.querySelector('input[type="number"]').value = target.value;
    } else if (box && target.type === "number") {
      // Empty or out of range leaves the rating unset (and the submit asks for it).
      setRating(box, target.value.trim() === "" ? null : Number(target.value));
    } else if (target.name === "free_text") {
      state.free_text = target.value;
      changed();
    }
  });
  // A click on the slider sets the rating even where it lands on the hidden thumb's value.
  form.querySelectorAll('input[type="range"]').forEach(function (slider) {
    slider.addEventListener("pointerup", function () {
      const box = slider.closest("fieldset.finding");
      if (state.findings[box.dataset.code].confidence === null) {
        setRating(box, parseInt(slider.value, 10));
        box.querySelector('input[type="number"]').value = slider.value;
      }
    });
  });
  form.querySelectorAll("button.mark").forEach(function (button) {
    button.addEventListener("click", function () {
      markingCode = markingCode === button.dataset.code ? null : button.dataset.code;
      render();
    });
  });
  form.querySelectorAll("button.clear-marks").forEach(function (button) {
    button.addEventListener("click", function () {
      state.findings[button.dataset.code].marks = [];
      render();
      changed();
    });
  });
  viewer.onClick(function (point) {
    if (!markingCode) return;
    const s = state.findings[markingCode];
    const mark = { image: point.image, x: point.x, y: point.y };
    // A slice of a CT/MR stack also records its series and slice number.
    if (point.series !== undefined) { mark.series = point.series; mark.slice = point.slice; }
    s.marks.push(mark);
    if (s.present === null) s.present = true;
    render();
    changed();
  });
  viewer.onKey("m", function () {
    const codes = Object.keys(state.findings);
    const next = markingCode === null ? 0 : codes.indexOf(markingCode) + 1;
    markingCode = next < codes.length ? codes[next] : null;
    render();
  });

  function names(list) {
    return list.map(function (f) { return f.name; }).join(", ");
  }

  // The protocol's rule, as the server applies it: present below 50 or absent above 50.
  function contradictions() {
    return data.findings.filter(function (f) {
      const s = state.findings[f.code];
      return s.present === null || s.confidence === null ? false
        : (s.present ? s.confidence < 50 : s.confidence > 50);
    }).map(function (f) {
      const s = state.findings[f.code];
      return { name: f.name, present: s.present, confidence: s.confidence };
    });
  }

  function describe(list) {
    return list.map(function (c) {
      return c.name + ": " + (c.present ? "present" : "absent") + " with probability " +
        c.confidence + " contradicts the call";
    }).join("; ");
  }

  function confirmed(list) {
    return window.confirm(
      "These calls contradict their ratings:\n\n" + describe(list).split("; ").join("\n") +
      "\n\nSubmit them as they are? (Cancel to change the call or the rating.)"
    );
  }

  function submit() {
    errorLine.textContent = "";
    const noCall = data.findings.filter(function (f) { return state.findings[f.code].present === null; });
    if (noCall.length) {
      errorLine.textContent = "Choose present or absent for: " + names(noCall);
      return;
    }
    const noRating = data.findings.filter(function (f) { return state.findings[f.code].confidence === null; });
    if (noRating.length) {
      errorLine.textContent = "Set the rating (" + data.ratingScale.toLowerCase() + ") for: " +
        names(noRating) + "; a rating has no default.";
      return;
    }
    const found = contradictions();
    let confirm = false;
    if (found.length) {
      if (data.contradictionRule !== "confirm") {
        errorLine.textContent = describe(found) + "; change the call or the rating.";
        return;
      }
      if (!confirmed(found)) return;
      confirm = true;
    }
    send(confirm);
  }

  function send(confirm) {
    submitButton.disabled = true;
    window.clearTimeout(saveTimer);
    const body = withTelemetry(Object.assign({}, state, { confirm_contradictions: confirm }));
    post(data.submitUrl, body).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    }).then(function (result) {
      if (!result.ok) {
        submitButton.disabled = false;
        if (result.body.confirm && !confirm && confirmed(result.body.contradictions)) {
          send(true);
          return;
        }
        errorLine.textContent = result.body.error || "The read was not submitted.";
        return;
      }
      submitted = true;
      window.location.assign(result.body.next);
    }).catch(function () {
      // The same key goes with a retry, so a read that did arrive is not stored twice.
      errorLine.textContent = "Network error: the read may not be submitted. Try again.";
      submitButton.disabled = false;
    });
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    submit();
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      submit();
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden" && saveTimer !== null) saveNow(true);
  });
  window.addEventListener("pagehide", function () {
    if (saveTimer !== null) saveNow(true);
  });

  // Other modules' parts of the report (measure.js: the length measurements), saved and
  // submitted with it; ``quiet`` restores a part without marking the draft changed.
  // saveDraft: telemetry.js saves what it measured (keepalive when the page may be closing).
  window.readingReport = {
    set: function (key, value, quiet) {
      state[key] = value;
      if (!quiet) changed();
    },
    saveDraft: function (keepalive) { return saveNow(keepalive); },
  };

  render();
  if (!data.draft || !data.draft.idempotency_key) {
    // Record this page's key at once, so a reload keeps it.
    saveNow();
  } else {
    draftStatus.textContent = "Draft restored";
    form.dataset.draftSaved = "true";
  }
})();
