"""Fixtures for the pre-read tests: small studies of phantom cases, the shipped demo model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from django.core.files.base import ContentFile

from studyplatform.prereads.demo_model import FACTORY, DemoCNN
from studyplatform.prereads.demo_model.training import demo_spec
from studyplatform.prereads.models import AIModel
from studyplatform.prereads.registry import register_demo_model, register_model
from studyplatform.prereads.services import pin_model
from studyplatform.studies import imaging
from studyplatform.studies.models import Case, FindingType, Image, Series, Study
from studyplatform.studies.phantoms import FINDING_NAMES, FINDING_TYPES, generate_phantom
from tests.factories import CaseFactory, SiteFactory, StudyFactory

# Far from the demo study's seeds and the demo model's training and held-out seeds.
TEST_SEED_BASE = 3_000_000_000


def add_case(
    study: Study, number: int, *, size: int = 256, findings: frozenset[str] = frozenset()
) -> Case:
    case: Case = CaseFactory(  # type: ignore[assignment]
        study=study, case_id=f"T{number:03d}", site=SiteFactory(code="test-site")
    )
    phantom = generate_phantom(seed=TEST_SEED_BASE + number, findings=findings, size=size)
    png = imaging.to_display_png16(phantom.pixels)
    image = Image(
        case=case,
        series=Series.objects.first_of(case),
        position=1,
        sha256="0" * 64,
        rows=size,
        columns=size,
        bits_stored=12,
        window_center=2000,
        window_width=3000,
    )
    image.original.save(f"{case.case_id}.png", ContentFile(png), save=False)
    image.display.save(f"{case.case_id}-display.png", ContentFile(png), save=False)
    image.save()
    return case


def make_study(
    n_cases: int, *, size: int = 256, slug: str | None = None, model: AIModel | None = None
) -> Study:
    """A draft study of phantom cases; with ``model``, the study pins that model."""
    study: Study = StudyFactory(**({"slug": slug} if slug else {}))  # type: ignore[assignment]
    if model is not None:
        pin_model(study=study, model=model)
    for order, code in enumerate(FINDING_TYPES, start=1):
        FindingType.objects.create(study=study, code=code, name=FINDING_NAMES[code], order=order)
    for number in range(1, n_cases + 1):
        present = frozenset(FINDING_TYPES[j] for j in range(3) if (number >> j) & 1)
        add_case(study, number, size=size, findings=present)
    return study


@pytest.fixture
def study_factory(db: None) -> Callable[..., Study]:
    return make_study


@pytest.fixture
def demo_ai(db: None) -> AIModel:
    """The shipped, trained demo model."""
    return register_demo_model()


def register_random_model(
    folder: Path, *, name: str = "test-cnn", factory: str = FACTORY
) -> AIModel:
    """The demo architecture with seeded random weights: fast tests that need no accuracy."""
    torch.manual_seed(0)
    weights = folder / f"{name}.pt"
    torch.save(DemoCNN().state_dict(), weights)
    model, _ = register_model(
        name=name, version="1", path=weights, fmt="factory", spec=demo_spec().as_json(),
        factory=factory,
    )  # fmt: skip
    return model


@pytest.fixture
def ai_model(db: None, tmp_path: Path) -> AIModel:
    return register_random_model(tmp_path)
