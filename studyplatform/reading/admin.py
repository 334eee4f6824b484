"""Admin for readers, sessions and the allocation. Submitted reads are shown, never edited."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest

from studyplatform.audit.admin import AuditedModelAdmin
from studyplatform.audit.models import Action, AuditEvent
from studyplatform.audit.selectors import allocation_revealed
from studyplatform.reading.models import (
    AllocationRecord,
    Assignment,
    Enrolment,
    Read,
    Reader,
    ReadFinding,
    ReadingSession,
    ReadTelemetry,
)
from studyplatform.reading.services import ReadingError, waive_washout
from studyplatform.studies.admin_scope import StudyScopedAdmin
from studyplatform.studies.concealment import CONCEALED, seed_commitment
from studyplatform.studies.models import StudyState


@admin.register(Reader)
class ReaderAdmin(StudyScopedAdmin[Reader], AuditedModelAdmin[Reader]):
    study_path = "enrolments__study"
    list_display = ["code", "user", "role", "specialty", "years_experience"]
    search_fields = ["code", "user__username", "user__last_name"]
    autocomplete_fields = ["user"]


@admin.register(Enrolment)
class EnrolmentAdmin(StudyScopedAdmin[Enrolment], AuditedModelAdmin[Enrolment]):
    study_path = "study"
    list_display = ["study", "reader", "group", "enrolled_at", "training_waived_at"]
    list_filter = ["study", "group"]
    search_fields = ["reader__code"]
    # A training waiver is made on the coordinator's training page (reason required, audited).
    readonly_fields = ["training_waived_at", "training_waiver_reason", "training_waived_by"]


class WaiverActionForm(ActionForm):
    reason = forms.CharField(
        required=False, label="Reason (for a waiver)", widget=forms.TextInput(attrs={"size": 40})
    )


@admin.register(ReadingSession)
class ReadingSessionAdmin(StudyScopedAdmin[ReadingSession], AuditedModelAdmin[ReadingSession]):
    study_path = "study"
    list_display = [
        "study",
        "reader",
        "number",
        "training",
        "available_from",
        "started_at",
        "completed_at",
        "washout_waived",
        "washout_waiver_reason",
    ]
    list_filter = ["study", "training", "number", "washout_waived"]
    search_fields = ["reader__code"]
    # A waiver is made only by the action below (reason required, audited), never by editing.
    readonly_fields = [
        "training",
        "started_at",
        "completed_at",
        "washout_waived",
        "washout_waiver_reason",
        "washout_waived_by",
        "washout_waived_at",
    ]
    action_form = WaiverActionForm
    actions = ["waive"]

    @admin.action(
        description="Waive the washout before the selected sessions (give the reason)",
        permissions=["change"],
    )
    def waive(self, request: HttpRequest, queryset: QuerySet[ReadingSession]) -> None:
        reason = str(request.POST.get("reason", ""))
        user = request.user
        assert isinstance(user, User)  # the admin serves only logged-in staff
        for session in queryset.select_related("study", "reader"):
            try:
                waive_washout(session=session, user=user, reason=reason)
            except (ReadingError, PermissionDenied) as error:
                self.message_user(request, f"{session}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{session}: washout waived", messages.SUCCESS)


@admin.register(AllocationRecord)
class AllocationRecordAdmin(StudyScopedAdmin[AllocationRecord]):
    """Each study's stored allocation: design, seed and fingerprint, written by randomization.

    The seed is shown only once the study is locked or unblinded; until then, its commitment.
    """

    study_path = "study"

    list_display = [
        "study",
        "design",
        "seed_shown",
        "rows",
        "fingerprint",
        "created_at",
        "created_by",
    ]
    list_select_related = ["study", "created_by"]
    exclude = ["seed"]
    readonly_fields = [
        "study",
        "design",
        "seed_shown",
        "arms",
        "fingerprint",
        "rows",
        "created_at",
        "created_by",
    ]

    @admin.display(description="seed")
    def seed_shown(self, obj: AllocationRecord) -> str:
        if allocation_revealed(obj.study):
            return str(obj.seed)
        return f"{CONCEALED} (SHA-256 {seed_commitment(obj.seed)})"

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
    """The allocation as the randomizer stored it: never editable, and concealed.

    An assignment's arm is shown once its reader has opened it, or once the study is locked or
    unblinded; before that, neither the list (no arm column value, filter or ordering) nor the
    object's page tells it.
    """

    study_path = "session__study"

    list_display = ["reader", "session", "position", "step", "case", "arm_shown", "opened_at"]
    list_filter = ["session__study", "session__number", "reader"]
    search_fields = ["case__case_id", "reader__code"]
    list_select_related = ["reader", "session__study", "case", "arm"]
    exclude = ["arm"]
    readonly_fields = ["arm_shown"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Assignment]:
        unblinded = AuditEvent.objects.filter(
            study_id=OuterRef("session__study_id"), action=Action.UNBLIND
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                _revealed=Q(session__study__state=StudyState.LOCKED)
                | Q(opened_at__isnull=False)
                | Exists(unblinded)
            )
        )

    @admin.display(description="arm")
    def arm_shown(self, obj: Assignment) -> str:
        return obj.arm.name if getattr(obj, "_revealed", False) else CONCEALED

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


class ReadTelemetryInline(admin.StackedInline[ReadTelemetry, Read]):
    """How the read was read (written once with it): shown, never edited."""

    model = ReadTelemetry
    extra = 0
    can_delete = False
    readonly_fields = [
        "slices_viewed", "slices_total", "series_time_s", "ai_panel_shown", "ai_overlay_on",
        "ai_overlay_s", "ai_first_view_s", "series", "notes",
    ]  # fmt: skip

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
    inlines = [ReadFindingInline, ReadTelemetryInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Read | None = None) -> bool:
        return False
