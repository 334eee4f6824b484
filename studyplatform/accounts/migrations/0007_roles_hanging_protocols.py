"""Let coordinators maintain their studies' hanging protocols (statisticians see them)."""

from __future__ import annotations

from django.db import migrations

from studyplatform.accounts.migrations import _sync


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_staff_totp"),
        ("studies", "0008_hanging_protocols"),
    ]

    operations = [migrations.RunPython(_sync.sync, migrations.RunPython.noop)]
