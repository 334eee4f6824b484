"""The export request: which format, and for the per-finding formats which finding type."""

from __future__ import annotations

from typing import Any

from django import forms

from studyplatform.dashboard.exports import FORMATS, PER_FINDING
from studyplatform.studies.models import Study


class ExportForm(forms.Form):
    """``format`` (one of FORMATS) and ``finding`` (a finding type code of the study, only for
    the per-finding formats); validated before anything is built or recorded."""

    format = forms.ChoiceField(choices=[(fmt, fmt) for fmt in FORMATS])
    finding = forms.CharField(required=False, max_length=40)

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
        return data

    def error_text(self) -> str:
        """The errors as one line per field, for a plain-text 400 response."""
        return "\n".join(
            f"{field}: {' '.join(str(m) for m in messages)}"
            for field, messages in self.errors.items()
        )
