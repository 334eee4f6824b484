"""Admin for AI models and pre-reads. A model's file hash is recorded once and never edited.

A model pinned by a locked study can be neither changed nor deleted here: the locked study names
it (by sha256) as the model its readers saw and its analysis used, for good.

Adding a model in the admin goes through the same checks as ``register_model``: the file must
load in its format and match its spec on a dummy input; the hash and finding codes are recorded
from the file and the spec, never typed in. Loading a model runs code, so the admin loads only
what an operator put in place: a file under MODELS_ROOT and an allow-listed factory
(``registry.check_web_source``). The registration is audited.

A model's intended use is edited here (audited, :mod:`studyplatform.prereads.intended_use`) until
a study that pins the model opens; then it is frozen and a change is refused with the reason.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest

from studyplatform.prereads.intended_use import (
    FIELDS,
    IntendedUse,
    IntendedUseFrozenError,
    frozen_by,
    set_intended_use,
)
from studyplatform.prereads.models import AIModel, PreRead, PreReadFinding
from studyplatform.studies.admin_scope import StudyScopedAdmin
from studyplatform.studies.models import Study, StudyState


def _pinned_by_a_locked_study(model: AIModel) -> bool:
    return Study.objects.filter(
        state=StudyState.LOCKED,
        ai_model_name=model.name,
        ai_model_version=model.version,
        ai_model_sha256=model.sha256,
    ).exists()


class AIModelForm(forms.ModelForm[AIModel]):
    class Meta:
        model = AIModel
        fields = ["name", "version", "format", "path", "factory", "spec", *FIELDS]
        help_texts = {
            "path": "A file or bundle directory under the models folder (MODELS_ROOT), absolute "
            "or relative to it.",
            "factory": "For the factory format: one of the allow-listed factories "
            "(MODEL_FACTORIES).",
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or self.cleaned_data
        if self.instance.pk is not None:
            changed = [f for f in FIELDS if f in self.changed_data]
            frozen = frozen_by(self.instance) if changed else []
            if frozen:
                raise forms.ValidationError(
                    f"The intended use is frozen: the open or locked study {', '.join(frozen)} "
                    "pins this model. Register a new version of the model to change it."
                )
            return data
        if self.errors:
            return data
        from studyplatform.prereads.registry import RegistrationError, inspect_model  # torch

        try:
            where, digest, parsed = inspect_model(
                name=data["name"],
                version=data["version"],
                path=data["path"],
                fmt=data["format"],
                spec=data["spec"],
                factory=data.get("factory", ""),
                web=True,
            )
        except RegistrationError as error:
            raise forms.ValidationError(str(error)) from None
        self.instance.path = str(where)
        self.instance.sha256 = digest
        self.instance.finding_codes = list(parsed.finding_codes)
        self.instance.threshold = parsed.threshold(parsed.finding_codes[0])
        data["path"] = str(where)
        data["spec"] = parsed.as_json()
        return data


@admin.register(AIModel)
class AIModelAdmin(admin.ModelAdmin[AIModel]):
    form = AIModelForm
    list_display = ["name", "version", "format", "threshold", "registered_at"]
    list_filter = ["format"]
    search_fields = ["name", "version", "sha256"]
    readonly_fields = ["sha256", "finding_codes", "threshold", "registered_at"]

    def save_model(self, request: HttpRequest, obj: AIModel, form: Any, change: bool) -> None:
        from studyplatform.prereads.registry import record_registration  # torch

        if change:  # only the intended use is editable on a registered model
            value = IntendedUse(**{f: form.cleaned_data[f] for f in FIELDS})
            try:  # set_intended_use locks and re-reads the stored row itself
                set_intended_use(model=obj, value=value, actor=request.user, reason="admin")
            except IntendedUseFrozenError as error:  # a study opened since the form was checked
                self.message_user(request, str(error), level="error")
            return
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            record_registration(model=obj, actor=request.user, reason="admin")

    def get_readonly_fields(self, request: HttpRequest, obj: AIModel | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields += ["name", "version", "format", "path", "factory", "spec"]
        return fields

    def has_change_permission(self, request: HttpRequest, obj: AIModel | None = None) -> bool:
        if obj is not None and _pinned_by_a_locked_study(obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: AIModel | None = None) -> bool:
        if obj is not None and _pinned_by_a_locked_study(obj):
            return False
        return super().has_delete_permission(request, obj)


class PreReadFindingInline(admin.TabularInline[PreReadFinding, PreRead]):
    model = PreReadFinding
    extra = 0
    readonly_fields = ["finding_type", "probability"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: PreRead | None = None) -> bool:
        return False


@admin.register(PreRead)
class PreReadAdmin(StudyScopedAdmin[PreRead]):
    study_path = "case__study"
    list_display = ["case", "model", "status", "duration_ms", "attempts", "finished_at"]
    list_filter = ["status", "model", "case__study", "case__site"]
    search_fields = ["case__case_id", "error"]
    list_select_related = ["case__study", "model"]
    readonly_fields = [
        "case",
        "model",
        "status",
        "heatmap",
        "queued_at",
        "started_at",
        "finished_at",
        "duration_ms",
        "timings",
        "attempts",
        "error",
    ]
    inlines = [PreReadFindingInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # pre-reads are created by the pre-read service, never by hand
