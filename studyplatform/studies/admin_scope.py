"""In the admin, staff see only the objects of the studies they are members of.

The role groups say what kind of object a coordinator or statistician may view or change;
StudyMembership says on which studies. Every study-bound ModelAdmin names the way from its model
to the study (``study_path``); its list, its object pages (an object of another study is "not
found") and the study, case and finding type choices of its forms hold only the user's studies.
Sites are shared between studies: staff see the sites their studies use (cases or site tokens)
or own (``Site.study``), and change one only when every study using or owning it is theirs
(:func:`visible_sites`, :func:`may_change_site`); a site no study uses or owns is nobody's to
change but a superuser's. Superusers see everything.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from django.contrib import admin
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Model, Q, QuerySet
from django.db.models.fields.related import ForeignKey
from django.forms import ModelChoiceField
from django.http import HttpRequest

from studyplatform.studies.models import Case, FindingType, Site, Study

_M = TypeVar("_M", bound=Model)
_ListFilter = Any  # what get_list_filter returns (django-stubs keeps its alias private)


def member_studies(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Study]:
    """The studies ``user`` is a member of (coordinator or statistician)."""
    pk = user.pk
    if not user.is_authenticated or pk is None:
        return Study.objects.none()
    return Study.objects.filter(memberships__user_id=pk)


def site_studies(site: Site) -> QuerySet[Study]:
    """The studies that use ``site``: those with cases from it or a site token for it."""
    return Study.objects.filter(Q(cases__site=site) | Q(site_tokens__site=site)).distinct()


def visible_sites(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Site]:
    """The sites ``user`` may see in the admin: every one for a superuser; for staff, the sites
    their studies use or own, and sites no study uses or owns (read-only to them)."""
    if getattr(user, "is_superuser", False):
        return Site.objects.all()
    studies = member_studies(user).values("pk")
    used = Q(cases__isnull=False) | Q(tokens__isnull=False) | Q(study__isnull=False)
    mine = Q(cases__study__in=studies) | Q(tokens__study__in=studies) | Q(study__in=studies)
    # A subquery on the primary key: the paths through cases and tokens never repeat rows.
    return Site.objects.filter(pk__in=Site.objects.filter(mine | ~used).values("pk"))


def site_stakeholders(site: Site) -> QuerySet[Study]:
    """The studies with a stake in ``site``: those that use it and the one that owns it."""
    return Study.objects.filter(
        Q(cases__site=site) | Q(site_tokens__site=site) | Q(own_sites=site)
    ).distinct()


def may_change_site(user: AbstractBaseUser | AnonymousUser, site: Site) -> bool:
    """Whether ``user`` may change ``site``: a superuser always; staff when the site is used or
    owned by some study and every such study is one of theirs (a site another study also uses is
    that study's data too; a site nobody owns or uses is nobody's to rename but a superuser's)."""
    if getattr(user, "is_superuser", False):
        return True
    stakeholders = site_stakeholders(site)
    if not stakeholders.exists():
        return False
    return not stakeholders.exclude(pk__in=member_studies(user).values("pk")).exists()


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
            elif db_field.related_model is FindingType:
                kwargs["queryset"] = FindingType.objects.filter(study__in=studies.values("pk"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
