"""The protocol amendment form: what may be amended, the reason and the signer's password."""

from __future__ import annotations

from typing import Any

from django import forms

from studyplatform.studies.models import (
    ContradictionRule,
    FindingType,
    FrocRule,
    PrimaryEndpoint,
    Study,
)


class AmendProtocolForm(forms.Form):
    """Prefilled with the protocol in force; :meth:`changes` holds only what the user changed."""

    washout_days = forms.IntegerField(min_value=0, max_value=3650, label="Washout (days)")
    primary_endpoint = forms.ChoiceField(choices=PrimaryEndpoint.choices)
    ni_margin = forms.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        label="Non-inferiority margin",
        help_text="Empty: superiority.",
    )
    contradiction_rule = forms.ChoiceField(choices=ContradictionRule.choices)
    froc_rule = forms.ChoiceField(choices=FrocRule.choices, label="FROC acceptance rule")
    froc_distance_px = forms.FloatField(
        required=False,
        min_value=0.0,
        label="FROC acceptance distance (pixels)",
        help_text="For the distance rule.",
    )
    training_shows_ai = forms.BooleanField(
        required=False,
        label="Training: show the AI's answer after each training read",
        help_text="Beside the truth, once the read is submitted; never in analysed reads.",
    )
    new_code = forms.SlugField(
        required=False, max_length=40, label="New finding type: code", help_text="Optional."
    )
    new_name = forms.CharField(required=False, max_length=100, label="New finding type: name")
    new_significant = forms.BooleanField(
        required=False, initial=True, label="New finding type: clinically significant"
    )
    new_threshold = forms.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        label="New finding type: AI threshold",
        help_text="Empty: the pinned model's.",
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="Reason")
    password = forms.CharField(label="Your password", strip=False, widget=forms.PasswordInput)

    def __init__(
        self, data: Any, *, study: Study, finding_types: list[FindingType], **kwargs: Any
    ) -> None:
        super().__init__(data, **kwargs)
        self.study = study
        self.finding_types = finding_types
        self.fields["washout_days"].initial = study.washout_days
        self.fields["primary_endpoint"].initial = study.primary_endpoint
        self.fields["ni_margin"].initial = study.ni_margin
        self.fields["contradiction_rule"].initial = study.contradiction_rule
        self.fields["froc_rule"].initial = study.froc_rule
        self.fields["froc_distance_px"].initial = study.froc_distance_px
        self.fields["training_shows_ai"].initial = study.training_shows_ai
        for ft in finding_types:
            self.fields[f"significant_{ft.code}"] = forms.BooleanField(
                required=False,
                initial=ft.clinically_significant,
                label=f"{ft.name} ({ft.code}): clinically significant",
            )
            self.fields[f"threshold_{ft.code}"] = forms.FloatField(
                required=False,
                min_value=0.0,
                max_value=1.0,
                initial=ft.ai_threshold,
                label=f"{ft.name} ({ft.code}): AI threshold",
            )

    def finding_type_fields(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        return [
            (self[f"significant_{ft.code}"], self[f"threshold_{ft.code}"])
            for ft in self.finding_types
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if bool(cleaned.get("new_code")) != bool((cleaned.get("new_name") or "").strip()):
            raise forms.ValidationError("A new finding type needs both a code and a name.")
        return cleaned

    def changes(self) -> dict[str, Any]:
        """The amendment's changes: the fields whose value differs from the protocol in force."""
        data, study = self.cleaned_data, self.study
        changes: dict[str, Any] = {}
        finding_types: dict[str, dict[str, Any]] = {}
        for ft in self.finding_types:
            change: dict[str, Any] = {}
            if data[f"significant_{ft.code}"] != ft.clinically_significant:
                change["clinically_significant"] = data[f"significant_{ft.code}"]
            if data[f"threshold_{ft.code}"] != ft.ai_threshold:
                change["ai_threshold"] = data[f"threshold_{ft.code}"]
            if change:
                finding_types[ft.code] = change
        if finding_types:
            changes["finding_types"] = finding_types
        if data.get("new_code"):
            changes["add_finding_types"] = [
                {
                    "code": data["new_code"],
                    "name": data["new_name"].strip(),
                    "clinically_significant": data["new_significant"],
                    "ai_threshold": data["new_threshold"],
                }
            ]
        for name in (
            "washout_days",
            "primary_endpoint",
            "ni_margin",
            "contradiction_rule",
            "froc_rule",
            "froc_distance_px",
            "training_shows_ai",
        ):
            if data[name] != getattr(study, name):
                changes[name] = data[name]
        return changes
