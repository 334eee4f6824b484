"""The migration that introduced series: a stored case's images become one series, in order."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("studies", "0005_froc_rule")]
AFTER = [("studies", "0006_series")]


def test_existing_images_become_one_series_per_case_in_their_order():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    study = old.get_model("studies", "Study").objects.create(slug="old", title="Old")
    site = old.get_model("studies", "Site").objects.create(code="s", name="S")
    Case = old.get_model("studies", "Case")
    Image = old.get_model("studies", "Image")
    two = Case.objects.create(study=study, case_id="two", site=site, modality="DX")
    Case.objects.create(study=study, case_id="none", site=site, modality="DX")
    for position in (5, 2):  # stored out of order, with a hole in the numbering
        Image.objects.create(
            case=two, position=position, original=f"{position}.dcm", display=f"{position}.png",
            sha256="0" * 64, rows=4, columns=4, window_center=1, window_width=2,
        )  # fmt: skip

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    series = new.get_model("studies", "Series").objects.get()
    images = new.get_model("studies", "Image").objects.order_by("position")

    assert (series.case.case_id, series.position, series.modality) == ("two", 1, "DX")
    assert [(im.position, im.series_id, im.slice_number) for im in images] == [
        (2, series.pk, 1),
        (5, series.pk, 2),
    ]
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
