"""Give coordinators and statisticians read access to the audit trail and signatures."""

from __future__ import annotations

from django.db import migrations

from studyplatform.accounts.migrations import _sync


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_failed_login"), ("audit", "0001_initial")]

    operations = [migrations.RunPython(_sync.sync, migrations.RunPython.noop)]
