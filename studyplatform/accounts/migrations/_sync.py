"""Shared by the role migrations (the migration loader skips modules named with a leading _)."""

from __future__ import annotations

from django.apps.registry import Apps
from django.contrib.auth.management import create_permissions
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

from studyplatform.accounts.roles import sync_roles


def sync(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Create the permissions of the apps migrated so far, then set the roles' permissions."""
    # Permissions are normally created after all migrations; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True  # type: ignore[assignment]
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    sync_roles(
        apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"), missing_ok=True
    )
