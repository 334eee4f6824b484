"""Admin for readers, sessions and the allocation. Submitted reads are shown, never edited."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from studyplatform.audit.admin import AuditedModelAdmin
from studyplatform.reading.models import (
    AllocationRecord,
    Assignment,
    Enrolment,
    Read,
    Reader,
    ReadFinding,
    ReadingSession,
)
from studyplatform.studies.admin_scope import StudyScopedAdmin


@admin.register(Reader)
class ReaderAdmin(StudyScopedAdmin[Reader], AuditedModelAdmin[Reader]):
    study_path = "enrolments__study"
    list_display = ["code", "user", "specialty", "years_experience"]
    search_fields = ["code", "user__username", "user__last_name"]
    autocomplete_fields = ["user"]


@admin.register(Enrolment)
class EnrolmentAdmin(StudyScopedAdmin[Enrolment], AuditedModelAdmin[Enrolment]):
    study_path = "study"
    list_display = ["study", "reader", "group", "enrolled_at"]
    list_filter = ["study", "group"]
    search_fields = ["reader__code"]


@admin.register(ReadingSession)
class ReadingSessionAdmin(StudyScopedAdmin[ReadingSession], AuditedModelAdmin[ReadingSession]):
    study_path = "study"
    list_display = ["study", "reader", "number", "available_from", "started_at", "completed_at"]
    list_filter = ["study", "number"]
    search_fields = ["reader__code"]
    readonly_fields = ["started_at", "completed_at"]


@admin.register(AllocationRecord)
class AllocationRecordAdmin(StudyScopedAdmin[AllocationRecord]):
    """Each study's stored allocation: design, seed and fingerprint, written by randomization."""

    study_path = "study"

    list_display = ["study", "design", "seed", "rows", "fingerprint", "created_at", "created_by"]
    list_select_related = ["study", "created_by"]
    readonly_fields = [
        "study",
        "design",
        "seed",
        "arms",
        "fingerprint",
        "rows",
        "created_at",
        "created_by",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: AllocationRecord | None = None
    ) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: AllocationRecord | None = None
    ) -> bool:
        return False


@admin.register(Assignment)
class AssignmentAdmin(StudyScopedAdmin[Assignment], AuditedModelAdmin[Assignment]):
    """The allocation, as the randomizer stored it: visible to coordinators, never editable."""

    study_path = "session__study"

    list_display = ["reader", "session", "position", "step", "case", "arm", "opened_at"]
    list_filter = ["session__study", "arm__name", "session__number", "reader"]
    search_fields = ["case__case_id", "reader__code"]
    list_select_related = ["reader", "session__study", "case", "arm"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Assignment | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Assignment | None = None) -> bool:
        return False


class ReadFindingInline(admin.TabularInline[ReadFinding, Read]):
    model = ReadFinding
    extra = 0
    can_delete = False
    readonly_fields = ["finding_type", "present", "confidence", "marks"]

    def has_add_permission(self, request: HttpRequest, obj: Read | None = None) -> bool:
        return False


@admin.register(Read)
class ReadAdmin(StudyScopedAdmin[Read], AuditedModelAdmin[Read]):
    study_path = "assignment__session__study"
    list_display = ["assignment", "submitted_at", "supersedes"]
    list_filter = ["assignment__session__study", "assignment__arm__name"]
    search_fields = ["assignment__case__case_id", "assignment__reader__code"]
    readonly_fields = [
        "assignment",
        "supersedes",
        "correction_reason",
        "free_text",
        "started_at",
        "submitted_at",
        "idempotency_key",
        "submitted_by",
    ]
    inlines = [ReadFindingInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Read | None = None) -> bool:
        return False
