"""On PostgreSQL, refuse UPDATE and DELETE of stored import refusals.

A refusal is evidence of what the imports turned away (the checklist and the flow diagram count
them), as reads are of what the readers answered: it is appended, never edited or removed. Like
reads, the one exception is purging a whole demo study (``manage.py demo`` rebuilding its own
study), which sets the transaction-local setting ``studyplatform.purge_reads`` first; so a study
with refusals, like one with reads, cannot be deleted otherwise. TRUNCATE stays possible (the
test runner empties tables with it). Other databases rely on the audit trail, where every refusal
is recorded (``import.refused``) in the hash chain that ``verify_audit`` checks.
"""

from __future__ import annotations

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

CREATE = """
CREATE OR REPLACE FUNCTION studies_importrefusal_refuse_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('studyplatform.purge_reads', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'import refusals are append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER studies_importrefusal_append_only
    BEFORE UPDATE OR DELETE ON studies_importrefusal
    FOR EACH ROW EXECUTE FUNCTION studies_importrefusal_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS studies_importrefusal_append_only ON studies_importrefusal;
DROP FUNCTION IF EXISTS studies_importrefusal_refuse_change();
"""


def _run_on_postgresql(sql: str):  # type: ignore[no-untyped-def]
    def run(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            # No parameters: the '%' in the function body is PL/pgSQL's, not a placeholder.
            schema_editor.execute(sql, None)

    return run


class Migration(migrations.Migration):
    dependencies = [("studies", "0011_import_refusal_api_source")]

    operations = [migrations.RunPython(_run_on_postgresql(CREATE), _run_on_postgresql(DROP))]
