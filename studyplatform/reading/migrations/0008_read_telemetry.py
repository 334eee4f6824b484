"""Read telemetry: how each read was read (slices, time per series, AI overlay).

Append-only as the reads are: the trigger of 0005 refuses UPDATE and DELETE (purging a whole demo
study excepted) on PostgreSQL.
"""

import django.db.models.deletion
from django.apps.registry import Apps
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

CREATE = """
CREATE TRIGGER reading_readtelemetry_append_only
    BEFORE UPDATE OR DELETE ON reading_readtelemetry
    FOR EACH ROW EXECUTE FUNCTION reading_read_refuse_change();
"""
DROP = "DROP TRIGGER IF EXISTS reading_readtelemetry_append_only ON reading_readtelemetry;"


def _on_postgresql(sql: str):  # type: ignore[no-untyped-def]
    def run(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, None)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("reading", "0007_read_measurements"),
    ]

    operations = [
        migrations.CreateModel(
            name="ReadTelemetry",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("series", models.JSONField(default=list)),
                ("slices_viewed", models.PositiveIntegerField()),
                ("slices_total", models.PositiveIntegerField()),
                (
                    "series_time_s",
                    models.FloatField(help_text="Seconds the case's images were on screen."),
                ),
                ("ai_panel_shown", models.BooleanField(default=False)),
                (
                    "ai_overlay_on",
                    models.BooleanField(
                        default=False,
                        help_text="The AI heatmap overlay was on screen at some time.",
                    ),
                ),
                (
                    "ai_overlay_s",
                    models.FloatField(default=0.0, help_text="Seconds the overlay was on screen."),
                ),
                (
                    "ai_first_view_s",
                    models.FloatField(
                        blank=True,
                        help_text="Seconds from opening the case to the first AI view.",
                        null=True,
                    ),
                ),
                ("notes", models.JSONField(blank=True, default=list)),
                (
                    "read",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="telemetry",
                        to="reading.read",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "read telemetry",
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("series_time_s__gte", 0), ("ai_overlay_s__gte", 0)),
                        name="readtelemetry_durations_nonnegative",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("slices_viewed__lte", models.F("slices_total"))),
                        name="readtelemetry_viewed_within_total",
                    ),
                ],
            },
        ),
        migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP)),
    ]
