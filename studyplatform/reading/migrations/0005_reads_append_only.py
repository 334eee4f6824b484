"""On PostgreSQL, refuse UPDATE and DELETE of submitted reads and their findings.

Reads are evidence: a correction is a new row, never an edit. The one exception is purging a
whole demo study (``manage.py demo`` rebuilding its own study), which sets the transaction-local
setting ``studyplatform.purge_reads`` first. TRUNCATE stays possible, as for the audit trail (the
test runner empties tables with it). Other databases rely on the signed digests, which
``verify_audit`` recomputes.
"""

from __future__ import annotations

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

CREATE = """
CREATE OR REPLACE FUNCTION reading_read_refuse_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('studyplatform.purge_reads', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'submitted reads are append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER reading_read_append_only
    BEFORE UPDATE OR DELETE ON reading_read
    FOR EACH ROW EXECUTE FUNCTION reading_read_refuse_change();
CREATE TRIGGER reading_readfinding_append_only
    BEFORE UPDATE OR DELETE ON reading_readfinding
    FOR EACH ROW EXECUTE FUNCTION reading_read_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS reading_readfinding_append_only ON reading_readfinding;
DROP TRIGGER IF EXISTS reading_read_append_only ON reading_read;
DROP FUNCTION IF EXISTS reading_read_refuse_change();
"""


def _run_on_postgresql(sql: str):  # type: ignore[no-untyped-def]
    def run(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            # No parameters: the '%' in the function body is PL/pgSQL's, not a placeholder.
            schema_editor.execute(sql, None)

    return run


class Migration(migrations.Migration):
    dependencies = [("reading", "0004_protocol_integrity")]

    operations = [migrations.RunPython(_run_on_postgresql(CREATE), _run_on_postgresql(DROP))]
