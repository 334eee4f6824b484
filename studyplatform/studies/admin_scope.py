"""In the admin, staff see only the objects of the studies they are members of.

The role groups say what kind of object a coordinator or statistician may view or change;
StudyMembership says on which studies. Every study-bound ModelAdmin names the way from its model
to the study (``study_path``); its list, its object pages (an object of another study is "not
found") and the study and case choices of its forms hold only the user's studies. Superusers
see everything.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from django.contrib import admin
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Model, Q, QuerySet
from django.db.models.fields.related import ForeignKey
from django.forms import ModelChoiceField
from django.http import HttpRequest

from studyplatform.studies.models import Case, Study

_M = TypeVar("_M", bound=Model)
_ListFilter = Any  # what get_list_filter returns (django-stubs keeps its alias private)


def member_studies(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Study]:
    """The studies ``user`` is a member of (coordinator or statistician)."""
    pk = user.pk
    if not user.is_authenticated or pk is None:
        return Study.objects.none()
    return Study.objects.filter(memberships__user_id=pk)


class StudyScopedAdmin(admin.ModelAdmin[_M]):
    """Limit an admin to the requesting staff member's studies.

    ``study_path`` is the lookup from the model to its Study (``"pk"`` for Study itself);
    ``unbound_visible`` also shows rows that belong to no study (platform-wide audit events).
    """

    study_path: ClassVar[str]
    unbound_visible: ClassVar[bool] = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[_M]:
        queryset = super().get_queryset(request)
        if getattr(request.user, "is_superuser", False):
            return queryset
        studies = member_studies(request.user).values("pk")
        condition = Q(**{f"{self.study_path}__in": studies})
        if self.unbound_visible:
            condition |= Q(**{f"{self.study_path}__isnull": True})
        # A subquery on the primary key: a path through a to-many relation never repeats rows.
        visible = self.model._default_manager.filter(condition).values("pk")
        return queryset.filter(pk__in=visible)

    def get_list_filter(self, request: HttpRequest) -> _ListFilter:
        # A filter by study offers the studies of the rows shown, not every study's name.
        return [
            (entry, admin.RelatedOnlyFieldListFilter)
            if isinstance(entry, str) and (entry == "study" or entry.endswith("__study"))
            else entry
            for entry in super().get_list_filter(request)
        ]

    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField[Any] | None:
        if not getattr(request.user, "is_superuser", False):
            studies = member_studies(request.user)
            if db_field.related_model is Study:
                kwargs["queryset"] = Study.objects.filter(pk__in=studies.values("pk"))
            elif db_field.related_model is Case:
                kwargs["queryset"] = Case.objects.filter(study__in=studies.values("pk"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
