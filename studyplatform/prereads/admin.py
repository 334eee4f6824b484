"""Admin for AI models and pre-reads. A model's file hash is recorded once and never edited."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from studyplatform.audit.admin import AuditedModelAdmin
from studyplatform.prereads.models import AIModel, PreRead, PreReadFinding


@admin.register(AIModel)
class AIModelAdmin(AuditedModelAdmin[AIModel]):
    list_display = ["name", "version", "format", "threshold", "registered_at"]
    list_filter = ["format"]
    search_fields = ["name", "version", "sha256"]
    readonly_fields = ["sha256", "registered_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: AIModel | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields += ["name", "version", "format", "path", "finding_codes"]
        return fields


class PreReadFindingInline(admin.TabularInline[PreReadFinding, PreRead]):
    model = PreReadFinding
    extra = 0
    readonly_fields = ["finding_type", "probability"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: PreRead | None = None) -> bool:
        return False


@admin.register(PreRead)
class PreReadAdmin(AuditedModelAdmin[PreRead]):
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
        "attempts",
        "error",
    ]
    inlines = [PreReadFindingInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # pre-reads are created by the pre-read service, never by hand
