"""Let coordinators and statisticians see the inputs refused at import."""

from __future__ import annotations

from django.db import migrations

from studyplatform.accounts.migrations import _sync


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0007_roles_hanging_protocols"),
        ("studies", "0009_import_refusal"),
    ]

    operations = [migrations.RunPython(_sync.sync, migrations.RunPython.noop)]
