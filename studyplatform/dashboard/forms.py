"""The export request: which format, and for the per-finding formats which finding type."""

from __future__ import annotations

from typing import Any, cast

from django import forms

from studyplatform.dashboard.exports import FORMATS, PER_FINDING
from studyplatform.studies.models import Study


class ExportForm(forms.Form):
    """``format`` (one of FORMATS), ``finding`` (a finding type code of the study, only for
    the per-finding formats), and for the audit trail ``object`` (one object's events, as
    ``--object``) and ``file`` (``csv`` or ``html``); validated before anything is built or
    recorded."""

    format = forms.ChoiceField(choices=[(fmt, fmt) for fmt in FORMATS])
    finding = forms.CharField(required=False, max_length=40)
    object = forms.CharField(required=False, max_length=120)
    file = forms.ChoiceField(required=False, choices=[("csv", "csv"), ("html", "html")])

    def __init__(self, *args: Any, study: Study, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.study = study

    def clean_finding(self) -> str | None:
        finding: str = self.cleaned_data.get("finding") or ""
        if not finding:
            return None
        codes = list(self.study.finding_types.order_by("code").values_list("code", flat=True))
        if finding not in codes:
            choices = ", ".join(codes)
            raise forms.ValidationError(
                f"study {self.study.slug} has no finding type {finding!r}; choose one of {choices}"
            )
        return finding

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        fmt, finding = data.get("format"), data.get("finding")
        if fmt and finding and fmt not in PER_FINDING:
            self.add_error(
                "finding",
                f"format {fmt} takes no finding type (only {', '.join(PER_FINDING)} do)",
            )
        if fmt and fmt != "audit":
            for name in ("object", "file"):
                if data.get(name):
                    self.add_error(name, f"format {fmt} takes no {name} (only audit does)")
        return data

    def error_text(self) -> str:
        """The errors as one line per field, for a plain-text 400 response."""
        return "\n".join(
            f"{field}: {' '.join(str(m) for m in messages)}"
            for field, messages in self.errors.items()
        )


PILOT_SOURCES = (
    ("builtin", "Built-in pilot: Van Dyke (2 treatments, 5 readers, 114 cases)"),
    ("upload", "Upload a pilot CSV (reader,treatment,case,truth,rating)"),
    ("study", "This study's interim data (complete-case readers)"),
)
MAX_PILOT_BYTES = 5 * 1024 * 1024


class PlanningForm(forms.Form):
    """The power planning request: a pilot (built in, uploaded or the study's data) and the
    plan (effect, alpha, factors, reader groups, the grid's ranges); validated before any
    computation, errors shown on the page."""

    source = forms.ChoiceField(choices=PILOT_SOURCES, initial="builtin")
    pilot = forms.FileField(required=False, help_text="CSV, at most 5 MB")
    finding = forms.ChoiceField(required=False, help_text="finding type (interim data)")
    metric = forms.ChoiceField(
        choices=[(m, m) for m in ("empirical_auc", "sensitivity", "specificity")],
        initial="empirical_auc",
        help_text="figure of merit of a built-in or uploaded pilot",
    )
    effect = forms.FloatField(initial=0.05, help_text="difference of reader-averaged FOMs")
    alpha = forms.FloatField(initial=0.05, min_value=1e-4, max_value=0.5)
    factors = forms.ChoiceField(choices=[(f, f) for f in ("RRRC", "FRRC", "RRFC")], initial="RRRC")
    reader_groups = forms.IntegerField(initial=1, min_value=1, max_value=10)
    max_readers = forms.IntegerField(initial=20, min_value=2, max_value=60)
    max_cases = forms.IntegerField(initial=400, min_value=20, max_value=2000)

    def __init__(self, *args: Any, study: Study, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.study = study
        codes = list(study.finding_types.order_by("code").values_list("code", flat=True))
        cast(forms.ChoiceField, self.fields["finding"]).choices = [(c, c) for c in codes]

    def clean_effect(self) -> float:
        effect: float = self.cleaned_data["effect"]
        if effect == 0 or abs(effect) >= 1:
            raise forms.ValidationError("the effect must be a non-zero difference below 1")
        return effect

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("source") == "upload":
            upload = data.get("pilot")
            if upload is None:
                self.add_error("pilot", "choose a pilot CSV to upload")
            elif upload.size > MAX_PILOT_BYTES:
                self.add_error("pilot", f"the file has {upload.size} bytes, at most 5 MB")
            else:
                try:
                    data["pilot_text"] = upload.read().decode("utf-8-sig")
                except UnicodeDecodeError:
                    self.add_error("pilot", "the file is not UTF-8 text (a CSV is expected)")
        if data.get("source") == "study" and not data.get("finding"):
            self.add_error("finding", f"study {self.study.slug} has no finding type")
        return data
