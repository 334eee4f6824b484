"""Let coordinators and statisticians see each study's allocation record in the admin."""

from __future__ import annotations

from django.db import migrations

from studyplatform.accounts.migrations import _sync


class Migration(migrations.Migration):
    dependencies = [("reading", "0002_allocation_record"), ("accounts", "0003_roles_view_audit")]

    operations = [migrations.RunPython(_sync.sync, migrations.RunPython.noop)]
