"""The coordinators' admin for studies, cases and ground truth.

Fields that must not change once a study is open (design, arms) turn read-only then; so does the
whole protocol (finding types and their significance and thresholds, scale, rule, model, washout,
endpoint, margin, FROC acceptance rule), which changes only by a signed amendment ("Amend
protocol…"). The save path refuses a protocol change of an opened study whatever was posted. Image
files and their hashes are always read-only because they are written by the import. The AI model is
pinned by choosing a registered model while the study is a draft: its name, version and sha256 are
copied from the registry, never typed. The seed is drawn by the server and never shown here while
the study runs (only its SHA-256 commitment).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.forms import BaseModelFormSet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from studyplatform.audit.admin import (
    AuditedModelAdmin,
    FrozenTruthInlineMixin,
    StudySigningAdminMixin,
)
from studyplatform.audit.selectors import allocation_revealed
from studyplatform.prereads.models import AIModel
from studyplatform.prereads.services import pin_model
from studyplatform.reading.services import ReadingError, open_study, randomize_study
from studyplatform.studies.admin_scope import (
    StudyScopedAdmin,
    may_change_site,
    member_studies,
    visible_sites,
)
from studyplatform.studies.concealment import CONCEALED, seed_commitment
from studyplatform.studies.guards import FrozenStudyError, lock_study_for_write
from studyplatform.studies.lesions import lesion_problems, normalize_lesions
from studyplatform.studies.models import (
    Arm,
    Case,
    FindingType,
    FrocRule,
    Image,
    ImportRefusal,
    MemberRole,
    Site,
    SiteToken,
    Study,
    StudyMembership,
    Truth,
)
from studyplatform.studies.services.protocol import protocol_content
from studyplatform.studies.services.training import TrainingCasesError, set_training_cases

_FROZEN_WHEN_OPEN = ("design", "washout_days", "split_plot_groups", "readers_per_case")
_PROTOCOL_FIELDS = (
    "design",
    "washout_days",
    "split_plot_groups",
    "readers_per_case",
    "rating_scale",
    "contradiction_rule",
    "primary_endpoint",
    "ni_margin",
    "froc_rule",
    "froc_distance_px",
    "training_shows_ai",
    "ai_model_name",
    "ai_model_version",
    "ai_model_sha256",
)


def _protocol_frozen(obj: Study | None) -> bool:
    return obj is not None and (obj.protocol_frozen or obj.allocation_frozen)


class ArmInline(admin.TabularInline[Arm, Study]):
    model = Arm
    extra = 0

    def has_change_permission(self, request: HttpRequest, obj: Study | None = None) -> bool:
        return not _protocol_frozen(obj) and super().has_change_permission(request, obj)

    has_add_permission = has_change_permission
    has_delete_permission = has_change_permission


class FindingTypeInline(admin.TabularInline[FindingType, Study]):
    """Finding types are protocol: editable in a draft, amended (signed) once the study opened."""

    model = FindingType
    extra = 0
    readonly_fields = ["introduced_in"]

    def has_change_permission(self, request: HttpRequest, obj: Study | None = None) -> bool:
        return not _protocol_frozen(obj) and super().has_change_permission(request, obj)

    has_add_permission = has_change_permission
    has_delete_permission = has_change_permission


class MembershipInline(admin.TabularInline[StudyMembership, Study]):
    model = StudyMembership
    extra = 0
    autocomplete_fields = ["user"]


_PINNED_FIELDS = ("ai_model_name", "ai_model_version", "ai_model_sha256")


class StudyAdminForm(forms.ModelForm[Study]):
    """The admin builds the model fields (its ``readonly_fields`` hold the pinned model's name,
    version and sha256, copied from the registry); this adds the choice of registered model."""

    pinned_model = forms.ModelChoiceField(
        queryset=AIModel.objects.all(),
        required=False,
        label="AI model",
        help_text="The registered model version readers see and the analysis uses (pinned with "
        "its sha256; fixed once the study opens).",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        study = self.instance
        if "pinned_model" in self.fields and study.has_pinned_model:
            self.fields["pinned_model"].initial = AIModel.objects.filter(
                name=study.ai_model_name,
                version=study.ai_model_version,
                sha256=study.ai_model_sha256,
            ).first()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("froc_rule") == FrocRule.DISTANCE and not cleaned.get("froc_distance_px"):
            self.add_error("froc_distance_px", "The distance rule needs an acceptance distance.")
        return cleaned


@admin.register(Study)
class StudyAdmin(StudyScopedAdmin[Study], StudySigningAdminMixin, AuditedModelAdmin[Study]):
    study_path = "pk"
    list_display = ["slug", "title", "design", "state", "case_count", "created_at"]
    list_filter = ["state", "design"]
    search_fields = ["slug", "title"]
    form = StudyAdminForm
    readonly_fields = [
        "state",
        "created_at",
        "opened_at",
        "locked_at",
        "allocation_seed",
        "protocol",
        *_PINNED_FIELDS,
    ]
    # The server draws the seed (``generate_seed``); nobody types it, nobody reads it until lock.
    exclude = ["seed"]
    inlines = [ArmInline, FindingTypeInline, MembershipInline]
    actions = ["randomize", "open_for_reading"]

    def save_model(self, request: HttpRequest, obj: Study, form: Any, change: bool) -> None:
        if change:
            # The admin's change view runs in one transaction: hold the study's row from here
            # to the inlines' save, and remember the protocol to compare in save_related.
            stored = lock_study_for_write(obj)
            request._protocol_before = protocol_content(stored)  # type: ignore[attr-defined]
            # The admin writes the form's fields only: state, protocol version and the signed
            # times come from the locked row, never from the object the form was built on.
            for field in Study._meta.concrete_fields:
                if field.name not in form.base_fields and not field.primary_key:
                    setattr(obj, field.attname, getattr(stored, field.attname))
        super().save_model(request, obj, form, change)
        if form is not None and "pinned_model" in form.cleaned_data:
            chosen = form.cleaned_data["pinned_model"]
            current = (obj.ai_model_name, obj.ai_model_version, obj.ai_model_sha256)
            wanted = (chosen.name, chosen.version, chosen.sha256) if chosen else ("", "", "")
            if wanted != current:
                actor = request.user if request.user.is_authenticated else None
                pin_model(study=obj, model=chosen, actor=actor)
        user_id = request.user.pk
        if not change and user_id is not None and not getattr(request.user, "is_superuser", False):
            # Staff see only their studies in the admin: who creates a study coordinates it.
            StudyMembership.objects.get_or_create(
                study=obj, user_id=user_id, defaults={"role": MemberRole.COORDINATOR}
            )

    @admin.action(
        description="Randomize (store the allocation from the seed)", permissions=["change"]
    )
    def randomize(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        for study in queryset:
            try:
                actor = request.user if request.user.is_authenticated else None
                record = randomize_study(study=study, actor=actor)
            except (ReadingError, FrozenStudyError) as error:
                self.message_user(request, f"{study.slug}: {error}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"{study.slug}: {record.rows} assignments ({record.design}, seed "
                    f"concealed), fingerprint {record.fingerprint or '-'}",
                    messages.SUCCESS,
                )

    @admin.action(
        description="Open for reading (freeze the protocol as version 1)", permissions=["change"]
    )
    def open_for_reading(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        actor = request.user if request.user.is_authenticated else None
        for study in queryset:
            try:
                opened = open_study(study=study, actor=actor)
            except (ReadingError, FrozenStudyError) as error:
                self.message_user(request, f"{study.slug}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{opened.slug}: open for reading", messages.SUCCESS)

    def save_formset(
        self, request: HttpRequest, form: Any, formset: BaseModelFormSet[Any, Any], change: bool
    ) -> None:
        if change:
            lock_study_for_write(form.instance)
        super().save_formset(request, form, formset, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        before = getattr(request, "_protocol_before", None)
        if change and before is not None and protocol_content(form.instance) != before:
            # Whatever was posted: an opened study's protocol changes only by amendment. The
            # refusal rolls the whole admin save back.
            lock_study_for_write(form.instance, protocol=True)

    @admin.display(description="protocol")
    def protocol(self, obj: Study) -> str:
        if not obj.protocol_frozen:
            return "Draft: not frozen yet (it freezes as version 1 when the study opens)."
        text = format_html(
            "Version {} in force, frozen since the study opened: read-only here.",
            obj.protocol_version,
        )
        if obj.is_locked:
            return text
        return format_html(
            '{} <a href="{}">Amend protocol…</a>',
            text,
            reverse("admin:studies_study_amend_protocol", args=[obj.pk]),
        )

    @admin.display(description="AI model")
    def pinned_model(self, obj: Study) -> str:
        if not obj.has_pinned_model:
            return "-"
        return f"{obj.ai_model_name} {obj.ai_model_version} (sha256 {obj.ai_model_sha256})"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Study]:
        return super().get_queryset(request).annotate(_case_count=Count("cases"))

    @admin.display(description="seed")
    def allocation_seed(self, obj: Study) -> str:
        if obj.pk is not None and allocation_revealed(obj):
            return str(obj.seed)
        return f"{CONCEALED} (SHA-256 {seed_commitment(obj.seed)})"

    @admin.display(description="cases", ordering="_case_count")
    def case_count(self, obj: Study) -> int:
        return int(getattr(obj, "_case_count", 0))

    def get_readonly_fields(self, request: HttpRequest, obj: Study | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.allocation_frozen:
            fields += [*_FROZEN_WHEN_OPEN, "pinned_model"]
        if _protocol_frozen(obj):
            fields += [f for f in _PROTOCOL_FIELDS if f not in fields]
        if obj is not None and obj.is_locked:
            fields += ["slug", "title", "description"]
        return fields


@admin.register(Site)
class SiteAdmin(AuditedModelAdmin[Site]):
    """Sites are shared between studies: staff see those their studies use (and new, unused
    ones) and change or delete one only when every study using it is theirs; the page of a site
    that another study also uses is read-only, and a POST to it is refused (403)."""

    list_display = ["code", "name", "study"]
    search_fields = ["code", "name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Site]:
        return super().get_queryset(request).filter(pk__in=visible_sites(request.user).values("pk"))

    def formfield_for_foreignkey(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> forms.ModelChoiceField[Any] | None:
        # Staff give a new site to one of their studies (else nobody but a superuser could edit
        # it) and cannot hand a site to another study.
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if (
            field is not None
            and db_field.name == "study"
            and not getattr(request.user, "is_superuser", False)
        ):
            field.queryset = member_studies(request.user)
            field.required = True
        return field

    def has_change_permission(self, request: HttpRequest, obj: Site | None = None) -> bool:
        if obj is not None and not may_change_site(request.user, obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Site | None = None) -> bool:
        if obj is not None and not may_change_site(request.user, obj):
            return False
        return super().has_delete_permission(request, obj)


class ImageInline(admin.TabularInline[Image, Case]):
    model = Image
    extra = 0
    fields = ("position", "original", "display", "rows", "columns", "bits_stored", "sha256")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Case | None = None) -> bool:
        return False


class TruthAdminForm(forms.ModelForm[Truth]):
    """Truth names a finding type of its case's own study, whatever was posted; a lesion list in
    ``location`` is checked as ``import_truth`` checks it (:mod:`studyplatform.studies.lesions`).
    """

    class Meta:
        model = Truth
        fields = ["case", "finding_type", "present", "source", "location"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        case = data.get("case") or (
            Case.objects.filter(pk=self.instance.case_id).first() if self.instance.case_id else None
        )
        finding_type = data.get("finding_type")
        if case is not None and finding_type is not None and finding_type.study_id != case.study_id:
            self.add_error(
                "finding_type",
                f"finding type {finding_type.code} belongs to another study than case "
                f"{case.case_id}: choose one of study {case.study.slug}'s finding types",
            )
        location = data.get("location")
        if case is not None and isinstance(location, list) and location:
            images = case.images.values_list("position", "rows", "columns")
            sizes = {position: (rows, cols) for position, rows, cols in images}
            problems = lesion_problems(location, present=bool(data.get("present")), sizes=sizes)
            if problems:
                self.add_error("location", "; ".join(problems))
            else:
                data["location"] = normalize_lesions(location)
        return data


def _limit_finding_types(form: type[forms.ModelForm[Any]], case: Case | None) -> None:
    """Offer only the finding types of ``case``'s study (a form class made for one request)."""
    field = form.base_fields.get("finding_type")
    if case is not None and isinstance(field, forms.ModelChoiceField):
        field.queryset = FindingType.objects.filter(study_id=case.study_id)


class TruthInline(FrozenTruthInlineMixin[Truth, Case], admin.TabularInline[Truth, Case]):
    model = Truth
    form = TruthAdminForm
    extra = 0
    readonly_fields = ["recorded_at"]

    def get_formset(self, request: HttpRequest, obj: Case | None = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        _limit_finding_types(formset.form, obj)
        return formset


@admin.register(Case)
class CaseAdmin(StudyScopedAdmin[Case], AuditedModelAdmin[Case]):
    study_path = "study"
    list_display = [
        "case_id",
        "study",
        "site",
        "modality",
        "manufacturer",
        "training",
        "arrived_at",
    ]
    list_filter = ["study", "training", "site", "modality", "manufacturer"]
    search_fields = ["case_id", "manufacturer", "manufacturer_model"]
    list_select_related = ["study", "site"]
    # Training is set by the actions below (the rules of ``set_training_cases``), never edited.
    readonly_fields = ["arrived_at", "training"]
    inlines = [ImageInline, TruthInline]
    actions = ["mark_training", "unmark_training"]

    def _set_training(self, request: HttpRequest, queryset: QuerySet[Case], on: bool) -> None:
        actor = request.user if request.user.is_authenticated else None
        for study in Study.objects.filter(cases__in=queryset).distinct():
            chosen = set(queryset.filter(study=study).values_list("case_id", flat=True))
            current = set(study.cases.filter(training=True).values_list("case_id", flat=True))
            wanted = current | chosen if on else current - chosen
            try:
                marked, unmarked = set_training_cases(study=study, case_ids=wanted, actor=actor)
            except (TrainingCasesError, FrozenStudyError) as error:
                self.message_user(request, f"{study.slug}: {error}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"{study.slug}: {len(marked)} marked, {len(unmarked)} unmarked as training",
                    messages.SUCCESS,
                )

    @admin.action(description="Make training cases (never analysed)", permissions=["change"])
    def mark_training(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        self._set_training(request, queryset, True)

    @admin.action(description="Make analysed cases (not training)", permissions=["change"])
    def unmark_training(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        self._set_training(request, queryset, False)


@admin.register(Truth)
class TruthAdmin(StudyScopedAdmin[Truth], AuditedModelAdmin[Truth]):
    study_path = "case__study"
    list_display = ["case", "finding_type", "present", "source", "recorded_at"]
    list_filter = ["case__study", "finding_type__code", "present", "source"]
    search_fields = ["case__case_id"]
    list_select_related = ["case__study", "finding_type"]
    readonly_fields = ["recorded_at"]
    form = TruthAdminForm

    def get_form(
        self, request: HttpRequest, obj: Truth | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        # The add form offers the finding types of the staff member's studies (the scoped
        # admin's choice); a truth's own page, those of its case's study.
        form = super().get_form(request, obj, change, **kwargs)
        _limit_finding_types(form, obj.case if obj is not None else None)
        return form


@admin.register(SiteToken)
class SiteTokenAdmin(StudyScopedAdmin[SiteToken]):
    """Tokens are issued with ``manage.py issue_site_token`` (shown once); here they are revoked."""

    study_path = "study"

    list_display = ["name", "site", "study", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["study", "site"]
    readonly_fields = ["study", "site", "name", "created_at", "last_used_at", "revoked_at"]
    exclude = ["token_sha256"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[SiteToken]) -> None:
        queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


@admin.register(ImportRefusal)
class ImportRefusalAdmin(StudyScopedAdmin[ImportRefusal]):
    """Inputs the imports refused, as they recorded them: append-only, so read-only here."""

    study_path = "study"

    # "number" is how the submission checklist names a refusal (it leaves out the item).
    list_display = ["number", "refused_at", "study", "source", "item", "reason", "via", "actor"]
    list_filter = ["study", "source"]
    search_fields = ["item", "reason"]
    list_select_related = ["study", "actor"]

    @admin.display(description="number", ordering="pk")
    def number(self, refusal: ImportRefusal) -> str:
        return f"#{refusal.pk}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# Registered with the admin site on import.
from studyplatform.studies import admin_hanging  # noqa: E402, F401
