"""The user admin: Django's, with every account change recorded under the admin's name.

The records themselves are made by the model hooks in ``changes`` (which also catch the command
line and scripts); the admin's views only say who acts, so that an event names the person.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest, HttpResponse

from studyplatform.accounts.changes import acting_as

User = get_user_model()


class AuditedUserAdmin(UserAdmin):  # type: ignore[type-arg]
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # The add and change pages, their inlines and group and permission fields included.
        with acting_as(request.user, reason="admin"):
            return super().changeform_view(request, object_id, form_url, extra_context)

    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        with acting_as(request.user, reason="admin"):
            return super().user_change_password(request, id, form_url)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        with acting_as(request.user, reason="admin"):
            return super().delete_view(request, object_id, extra_context)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # The changelist's actions (delete selected users).
        with acting_as(request.user, reason="admin"):
            return super().changelist_view(request, extra_context)


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, AuditedUserAdmin)
