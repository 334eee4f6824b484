"""Let coordinators see and revoke the site tokens of hospital systems that send cases."""

from __future__ import annotations

from django.db import migrations

from studyplatform.accounts.migrations import _sync


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_roles_view_audit"),
        ("reading", "0003_roles_view_allocation"),
        ("studies", "0002_import_fields_and_site_tokens"),
    ]

    operations = [migrations.RunPython(_sync.sync, migrations.RunPython.noop)]
