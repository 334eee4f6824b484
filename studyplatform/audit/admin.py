"""The audit trail in the admin (read-only), and the admin's own auditing.

``AuditedModelAdmin`` is the base class of the trial's admins: every save and delete made in the
admin (inlines included) is recorded with its before/after fields, and objects of a locked study
(or finalized ground truth) are read-only. ``StudySigningAdminMixin`` adds the "Lock study",
"Finalize ground truth" and "Amend protocol" pages to the study admin.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from django.contrib import admin
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Model, QuerySet
from django.forms import BaseModelFormSet
from django.http import HttpRequest
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from studyplatform.audit import views
from studyplatform.audit.models import AuditEvent, Signature
from studyplatform.audit.selectors import allocation_revealed, signature_for
from studyplatform.audit.services import changed_fields, record, snapshot, study_of
from studyplatform.studies.admin_scope import StudyScopedAdmin
from studyplatform.studies.concealment import conceal_seed_and_arms
from studyplatform.studies.guards import lock_site_for_write, lock_study_for_write
from studyplatform.studies.models import Case, Site, Study, StudyState, Truth

_M = TypeVar("_M", bound=Model)
_P = TypeVar("_P", bound=Model)


def _frozen(obj: Model | None) -> bool:
    """True when the object belongs to a locked study, or is finalized ground truth.

    Only decides what the admin *shows* (read-only widgets, no delete button); what it *saves*
    is decided by the guard in :func:`_guard`, inside the admin's transaction.
    """
    if obj is None:
        return False
    if isinstance(obj, Site):
        return Case.objects.filter(site_id=obj.pk, study__state=StudyState.LOCKED).exists()
    study = study_of(obj)
    if study is None:
        return False
    state, finalized = Study.objects.filter(pk=study.pk).values_list(
        "state", "truth_finalized_at"
    ).first() or (None, None)
    return state == StudyState.LOCKED or (isinstance(obj, Truth) and finalized is not None)


def _guard(obj: Model, *, deleting: bool = False) -> None:
    """Refuse (FrozenStudyError, answered 403) a change that the object's study forbids.

    Called by every save and delete of the admin, inside its transaction, so a crafted POST that
    ignores the read-only widgets is refused as well. Truth, and a case deleted with its truth,
    are refused once the truth is final; a shared site, while one of its studies is locked.
    """
    if isinstance(obj, Site):
        lock_site_for_write(obj)
        return
    study = study_of(obj)
    if study is None or study.pk is None:
        return
    touches_truth = isinstance(obj, Truth) or (isinstance(obj, Case) and deleting)
    lock_study_for_write(study, truth=touches_truth)


def _record_change(
    request: HttpRequest, obj: Model, verb: str, before: dict[str, Any] | None
) -> None:
    after = snapshot(obj) if verb != "delete" else None
    if before is not None and after is not None:
        fields = changed_fields(before, after)
        if not fields:
            return  # saved unchanged: nothing to record
        before = {k: before.get(k) for k in fields}
        after = {k: after.get(k) for k in fields}
    pk = obj.pk if obj.pk is not None else (before or {}).get(obj._meta.pk.attname, "")
    record(
        actor=request.user,
        action=f"{obj._meta.model_name}.{verb}",
        obj=obj,
        object_id=str(pk),
        before=before,
        after=after,
        reason="admin",
    )


def _stored(obj: Model) -> dict[str, Any] | None:
    if obj.pk is None:
        return None
    current = type(obj)._default_manager.filter(pk=obj.pk).first()
    return snapshot(current) if current is not None else None


class AuditedModelAdmin(admin.ModelAdmin[_M]):
    """A ModelAdmin that audits its saves and deletes and freezes locked studies' objects."""

    def has_change_permission(self, request: HttpRequest, obj: _M | None = None) -> bool:
        return not _frozen(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: _M | None = None) -> bool:
        return not _frozen(obj) and super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: _M, form: Any, change: bool) -> None:
        with transaction.atomic():
            _guard(obj)
            before = _stored(obj) if change else None
            super().save_model(request, obj, form, change)
            _record_change(request, obj, "update" if change else "create", before)

    def delete_model(self, request: HttpRequest, obj: _M) -> None:
        with transaction.atomic():
            _guard(obj, deleting=True)
            before = _stored(obj)
            _record_change(request, obj, "delete", before)
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[_M]) -> None:
        with transaction.atomic():
            for obj in queryset:
                _guard(obj, deleting=True)
                _record_change(request, obj, "delete", snapshot(obj))
            super().delete_queryset(request, queryset)

    def save_formset(
        self, request: HttpRequest, form: Any, formset: BaseModelFormSet[Any, Any], change: bool
    ) -> None:
        with transaction.atomic():
            study = study_of(form.instance)
            if study is not None and study.pk is not None and formset.has_changed():
                # The inline's rows belong to the parent's study; truth rows to its truth.
                lock_study_for_write(study, truth=formset.model is Truth)
            before = {f.instance.pk: _stored(f.instance) for f in formset.initial_forms}
            super().save_formset(request, form, formset, change)
            for obj in formset.new_objects:
                _record_change(request, obj, "create", None)
            for obj, _fields in formset.changed_objects:
                _record_change(request, obj, "update", before.get(obj.pk))
            for obj in formset.deleted_objects:
                _record_change(request, obj, "delete", before.get(obj.pk))


class FrozenStudyInlineMixin(admin.options.InlineModelAdmin[_M, _P]):
    """An inline that turns read-only when its parent belongs to a locked study."""

    def _parent_frozen(self, obj: _P | None) -> bool:
        return _frozen(obj)

    def has_add_permission(self, request: HttpRequest, obj: _P | None = None) -> bool:
        return not self._parent_frozen(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: _P | None = None) -> bool:
        return not self._parent_frozen(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: _P | None = None) -> bool:
        return not self._parent_frozen(obj) and super().has_delete_permission(request, obj)


class FrozenTruthInlineMixin(FrozenStudyInlineMixin[_M, _P]):
    """An inline that turns read-only when its parent's study is locked or its truth final."""

    def _parent_frozen(self, obj: _P | None) -> bool:
        study = study_of(obj) if obj is not None else None
        if study is None:
            return False
        state, finalized = Study.objects.filter(pk=study.pk).values_list(
            "state", "truth_finalized_at"
        ).first() or (None, None)
        return state == StudyState.LOCKED or finalized is not None


class StudySigningAdminMixin(admin.ModelAdmin[Study]):
    """Adds the signature pages to the study admin and shows the study's signatures."""

    def get_urls(self) -> list[URLPattern]:
        sign = self.admin_site.admin_view(views.sign)
        return [
            path(
                "<int:study_id>/lock/",
                sign,
                {"kind": Signature.Kind.STUDY_LOCK, "admin_site": self.admin_site},
                name="studies_study_lock",
            ),
            path(
                "<int:study_id>/finalize-truth/",
                sign,
                {"kind": Signature.Kind.TRUTH_FINALIZE, "admin_site": self.admin_site},
                name="studies_study_finalize_truth",
            ),
            path(
                "<int:study_id>/amend-protocol/",
                self.admin_site.admin_view(views.amend),
                {"admin_site": self.admin_site},
                name="studies_study_amend_protocol",
            ),
            *super().get_urls(),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Study | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "signatures"] if obj is not None else fields

    @admin.display(description="signatures")
    def signatures(self, obj: Study) -> str:
        parts = []
        for kind, url_name in (
            (Signature.Kind.TRUTH_FINALIZE, "admin:studies_study_finalize_truth"),
            (Signature.Kind.STUDY_LOCK, "admin:studies_study_lock"),
        ):
            signature = signature_for(obj, kind)
            if signature is None:
                parts.append(
                    format_html(
                        '<a href="{}">{}…</a>', reverse(url_name, args=[obj.pk]), kind.label
                    )
                )
            else:
                parts.append(
                    format_html(
                        "{}: signed by {} on {:%Y-%m-%d %H:%M} UTC",
                        kind.label,
                        signature.signer,
                        signature.signed_at,
                    )
                )
        return format_html(" · ".join(["{}"] * len(parts)), *parts)


class _ReadOnlyAdmin(admin.ModelAdmin[_M]):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: _M | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: _M | None = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(StudyScopedAdmin[AuditEvent], _ReadOnlyAdmin[AuditEvent]):
    """The trail, read-only. Events of a study that is neither locked nor unblinded show no seed
    and no arm (a study created in the admin records its seed): the stored event keeps them, so
    the chain still verifies, and shows them once the study is locked."""

    study_path = "study"
    unbound_visible = True  # platform-wide events (models, sites) belong to no study
    exclude = ["before", "after"]
    readonly_fields = ["before_shown", "after_shown"]
    list_display = ["sequence", "occurred_at", "actor_username", "action", "object_type"]
    list_display_links = ["sequence"]
    list_filter = ["action", "object_type", "study", "occurred_at"]
    search_fields = ["actor_username", "object_id", "reason", "hash"]
    date_hierarchy = "occurred_at"
    list_per_page = 100

    def _shown(self, event: AuditEvent, value: Any) -> str:
        if event.study is not None and not allocation_revealed(event.study):
            value = conceal_seed_and_arms(value)
        return json.dumps(value, indent=1, sort_keys=True, cls=DjangoJSONEncoder)

    @admin.display(description="before")
    def before_shown(self, obj: AuditEvent) -> str:
        return self._shown(obj, obj.before)

    @admin.display(description="after")
    def after_shown(self, obj: AuditEvent) -> str:
        return self._shown(obj, obj.after)


@admin.register(Signature)
class SignatureAdmin(StudyScopedAdmin[Signature], _ReadOnlyAdmin[Signature]):
    study_path = "study"
    list_display = ["study", "kind", "signer", "meaning", "signed_at"]
    list_filter = ["kind", "study"]
    list_select_related = ["study", "signer"]
