"""Hanging protocols in the admin: a protocol with its rules inline, scoped to the staff
member's studies and read-only once the study is locked (saves audited, as every admin save)."""

from __future__ import annotations

from django.contrib import admin

from studyplatform.audit.admin import AuditedModelAdmin, FrozenStudyInlineMixin
from studyplatform.studies.admin_scope import StudyScopedAdmin
from studyplatform.studies.models import HangingProtocol, HangingRule


class HangingRuleInline(
    FrozenStudyInlineMixin[HangingRule, HangingProtocol],
    admin.TabularInline[HangingRule, HangingProtocol],
):
    model = HangingRule
    extra = 2
    fields = [
        "viewport",
        "modality",
        "description",
        "description_match",
        "view_position",
        "body_part",
        "nth",
        "required",
    ]


@admin.register(HangingProtocol)
class HangingProtocolAdmin(StudyScopedAdmin[HangingProtocol], AuditedModelAdmin[HangingProtocol]):
    study_path = "study"
    list_display = ["name", "study", "priority", "case_modality", "rows", "columns"]
    list_filter = ["study"]
    list_select_related = ["study"]
    search_fields = ["name"]
    inlines = [HangingRuleInline]
