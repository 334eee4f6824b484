"""The demo study: synthetic chest-radiograph phantoms over three sites, truth and accounts.

Everything derives from one seed, so rebuilding gives the same cases, truth and image bytes; the
demo accounts are updated in place rather than duplicated.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.db import connection, transaction

from studyplatform.accounts.changes import acting_as
from studyplatform.accounts.roles import COORDINATOR, READER, STATISTICIAN, ensure_roles
from studyplatform.prereads.services import run_demo_prereads
from studyplatform.reading.demo import simulate_demo_reads, start_demo_reading
from studyplatform.reading.models import Enrolment, Read, Reader, ReaderRole
from studyplatform.studies import imaging, phantoms
from studyplatform.studies.models import (
    Arm,
    Case,
    Design,
    FindingType,
    Image,
    ImageFormat,
    MemberRole,
    Series,
    Site,
    Study,
    StudyMembership,
    Truth,
    TruthSource,
)
from studyplatform.studies.services.training import set_training_cases

DEMO_SLUG = "demo"
DEMO_SEED = 20261128
IMAGE_SIZE = 512
TRAINING_CASES = 3
"""Extra cases, ``DEMO-T01``..., that every demo reader trains on (never analysed)."""


@dataclass(frozen=True)
class DemoSite:
    code: str
    name: str
    modality: str
    manufacturer: str
    model_name: str
    style: int


# Three sites, two modalities and three vendors' processing: enough to show domain shift.
SITES = (
    DemoSite("north", "North General Hospital", "CR", "Acme Imaging", "CR-500", 0),
    DemoSite("east", "East Valley Clinic", "DX", "Borealis Medical", "DR-Flex 2", 1),
    DemoSite("south", "South Coast University Hospital", "DX", "Cygnus Systems", "Aurora X", 2),
)
FINDINGS = (
    # code, name, clinically significant, prevalence
    ("nodule", "Lung nodule", True, 0.35),
    ("pneumothorax", "Pneumothorax", True, 0.25),
    ("effusion", "Pleural effusion", False, 0.30),
)


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    role: str
    reader_code: str | None = None


ACCOUNTS = (
    DemoAccount("coordinator", "demo-coordinator", COORDINATOR),
    DemoAccount("statistician", "demo-statistician", STATISTICIAN),
    *(DemoAccount(f"reader{i}", f"demo-reader{i}", READER, f"R{i:02d}") for i in range(1, 5)),
)
# The demo readers' qualifications (specialty, years of experience, role), varied so that the
# report's reader subgroups have a subgroup of two readers (with its MRMC analysis) and
# subgroups of one (too few for MRMC) among the simulated readers R02-R04.
READER_QUALIFICATIONS: dict[str, tuple[str, int, str]] = {
    "R01": ("thoracic radiology", 6, ReaderRole.FELLOW),
    "R02": ("thoracic radiology", 14, ReaderRole.ATTENDING),
    "R03": ("general radiology", 8, ReaderRole.ATTENDING),
    "R04": ("thoracic radiology", 3, ReaderRole.RESIDENT),
}


@dataclass(frozen=True)
class DemoSummary:
    study: Study
    cases: int
    images: int
    accounts: tuple[DemoAccount, ...]
    simulated_reads: int = 0
    training_cases: int = 0


def build_demo_study(
    *, n_cases: int = 60, seed: int = DEMO_SEED, simulate_reads: bool = False
) -> DemoSummary:
    """Build the demo study from scratch, replacing an earlier one (idempotent).

    With ``simulate_reads`` readers R02-R04 have read every case in both arms (simulated, in
    the past), so the dashboard and the analysis report have data; R01 is left to a person.
    ``TRAINING_CASES`` more cases are the study's training cases: R01 trains on them before
    session 1; the simulated readers' training is waived by the demo coordinator.
    """
    if n_cases < len(SITES):
        raise ValueError(f"the demo needs at least {len(SITES)} cases, one per site")
    with transaction.atomic():
        _remove_previous_demo()
        study = _create_study(seed)
        findings = _create_finding_types(study)
        sites = [
            Site.objects.update_or_create(code=s.code, defaults={"name": s.name})[0] for s in SITES
        ]
        plan = _case_plan(n_cases=n_cases + TRAINING_CASES, seed=seed)
        with tempfile.TemporaryDirectory() as scratch:
            for number, (site_index, present) in enumerate(plan, start=1):
                _create_case(
                    study=study,
                    number=number,
                    case_id=_case_id(number, n_cases),
                    site=sites[site_index],
                    demo_site=SITES[site_index],
                    present=present,
                    findings=findings,
                    seed=seed,
                    scratch=Path(scratch),
                )
        accounts = _create_accounts(study)
        set_training_cases(
            study=study,
            case_ids=[_case_id(n, n_cases) for n in range(n_cases + 1, len(plan) + 1)],
            actor=None,
        )
        # The shipped demo model's probabilities and heatmaps for every case (a few seconds).
        run_demo_prereads(study=study)
        # Crossover allocation from the seed; the study opens, reader R01 may read session 2 now.
        start_demo_reading(study=study)
        reads = simulate_demo_reads(study=study, seed=seed) if simulate_reads else 0
    return DemoSummary(
        study=study,
        cases=n_cases,
        images=len(plan),
        accounts=accounts,
        simulated_reads=reads,
        training_cases=TRAINING_CASES,
    )


def _case_id(number: int, n_cases: int) -> str:
    """The demo's analysed cases are DEMO-001...; the training cases after them DEMO-T01..."""
    return f"DEMO-{number:03d}" if number <= n_cases else f"DEMO-T{number - n_cases:02d}"


def _remove_previous_demo(slug: str = DEMO_SLUG) -> None:
    previous = Study.objects.filter(slug=slug).first()
    if previous is None:
        return
    # Reads and import refusals are append-only everywhere else (PostgreSQL triggers refuse
    # deletes); the demo alone may discard its own, and says so to the triggers for this
    # transaction only.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL studyplatform.purge_reads = 'on'")
    Read.objects.filter(assignment__session__study=previous, supersedes__isnull=False).delete()
    Read.objects.filter(assignment__session__study=previous).delete()
    folder = Path(settings.MEDIA_ROOT) / "studies" / str(previous.pk)
    previous.delete()
    transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))


def _create_study(seed: int) -> Study:
    study = Study.objects.create(
        slug=DEMO_SLUG,
        title="Demo: AI assistance for chest radiograph reading",
        description=(
            "Synthetic chest-radiograph phantoms from three sites. Readers report nodules, "
            "pneumothorax and pleural effusion with and without the AI's pre-read."
        ),
        design=Design.CROSSOVER,
        seed=seed,
        washout_days=28,
    )
    Arm.objects.bulk_create(
        [
            Arm(study=study, name="unassisted", label="Unassisted", shows_ai=False, order=1),
            Arm(study=study, name="assisted", label="AI-assisted", shows_ai=True, order=2),
        ]
    )
    return study


def _create_finding_types(study: Study) -> dict[str, FindingType]:
    return {
        code: FindingType.objects.create(
            study=study, code=code, name=name, clinically_significant=significant, order=order
        )
        for order, (code, name, significant, _) in enumerate(FINDINGS, start=1)
    }


def _case_plan(*, n_cases: int, seed: int) -> list[tuple[int, frozenset[str]]]:
    """Site and present findings per case; sites in rotation so each gets a third."""
    rng = np.random.default_rng([seed, 1])
    plan = []
    for number in range(n_cases):
        present = frozenset(
            code for code, _, _, prevalence in FINDINGS if rng.random() < prevalence
        )
        plan.append((number % len(SITES), present))
    return plan


def _create_case(
    *,
    study: Study,
    number: int,
    case_id: str,
    site: Site,
    demo_site: DemoSite,
    present: frozenset[str],
    findings: dict[str, FindingType],
    seed: int,
    scratch: Path,
) -> None:
    case = Case.objects.create(
        study=study,
        case_id=case_id,
        site=site,
        modality=demo_site.modality,
        manufacturer=demo_site.manufacturer,
        manufacturer_model=demo_site.model_name,
    )
    phantom = phantoms.generate_phantom(
        seed=seed * 1000 + number,
        findings=present,
        size=IMAGE_SIZE,
        modality=demo_site.modality,
        manufacturer_style=demo_site.style,
    )
    center, width = _default_window(phantom.pixels)
    dicom_path = scratch / f"{case_id}.dcm"
    imaging.write_dicom(
        dicom_path,
        phantom.pixels,
        patient_id=case_id,
        modality=demo_site.modality,
        manufacturer=demo_site.manufacturer,
        model_name=demo_site.model_name,
        window_center=center,
        window_width=width,
        bits_stored=12,
    )
    original = dicom_path.read_bytes()
    # The file's identity, as an import records it: the DICOM export (SR per read, the AI's SR
    # and its map) references the stored instance by these UIDs.
    header = pydicom.dcmread(dicom_path, stop_before_pixels=True)
    series = Series.objects.first_of(case)
    series.study_uid, series.series_uid = header.StudyInstanceUID, header.SeriesInstanceUID
    series.save(update_fields=["study_uid", "series_uid"])
    image = Image(
        case=case,
        series=series,
        position=1,
        sop_instance_uid=header.SOPInstanceUID,
        source_format=ImageFormat.DICOM,
        sha256=imaging.file_sha256(dicom_path),
        rows=int(phantom.pixels.shape[0]),
        columns=int(phantom.pixels.shape[1]),
        bits_stored=12,
        window_center=center,
        window_width=width,
    )
    image.original.save(f"{case_id}.dcm", ContentFile(original), save=False)
    image.display.save(
        f"{case_id}.png", ContentFile(imaging.to_display_png16(phantom.pixels)), save=False
    )
    image.save()
    Truth.objects.bulk_create(
        [
            Truth(
                case=case,
                finding_type=finding,
                present=code in present,
                source=TruthSource.SYNTHETIC,
                location=_location(phantom, code) if code in present else None,
            )
            for code, finding in findings.items()
        ]
    )


LESION_FINDINGS = ("nodule",)
"""Finding types whose demo truth holds lesions (FROC): a nodule is a round, countable lesion;
a pneumothorax or an effusion is a region, whose centre is kept as a note only."""


def _location(phantom: phantoms.Phantom, code: str) -> Any:
    """The truth's location of a present finding: the nodule as a lesion, else its centre.

    The lesion is the phantom's mask as a circle: its centre (the mask's centroid) and the
    largest distance from there to a mask pixel, plus half a pixel, as radius, so that every
    mark on the drawn nodule falls inside it.
    """
    if code not in phantom.locations:
        return None
    row, col = phantom.locations[code]
    if code not in LESION_FINDINGS:
        return {"image": 1, "row": row, "col": col}
    rows, cols = np.nonzero(phantom.masks[code])
    radius = float(np.hypot(rows - row, cols - col).max()) + 0.5
    return [{"lesion": 1, "image": 1, "x": float(col), "y": float(row), "radius": round(radius, 1)}]


def _default_window(pixels: np.ndarray) -> tuple[float, float]:
    """A window from the 1st-99th percentiles of the stored values: what a modality would set."""
    low, high = np.percentile(pixels, [1, 99])
    return float(round((low + high) / 2)), float(max(1, round(high - low)))


def _create_accounts(study: Study) -> tuple[DemoAccount, ...]:
    ensure_roles()
    # The account hooks audit each creation, password reset and role change; this names why.
    with acting_as(None, reason="demo accounts"):
        for account in ACCOUNTS:
            _demo_account(study, account)
    return ACCOUNTS


def _demo_account(study: Study, account: DemoAccount) -> None:
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=account.username)
    user.set_password(account.password)
    user.is_staff = account.role in {COORDINATOR, STATISTICIAN}
    user.is_active = True
    user.save()
    user.groups.set([Group.objects.get(name=account.role)])
    if account.role == READER:
        assert account.reader_code is not None
        specialty, years, role = READER_QUALIFICATIONS[account.reader_code]
        reader, _ = Reader.objects.update_or_create(
            user=user,
            defaults={
                "code": account.reader_code,
                "specialty": specialty,
                "years_experience": years,
                "role": role,
            },
        )
        Enrolment.objects.create(study=study, reader=reader)
    else:
        StudyMembership.objects.create(
            study=study,
            user=user,
            role=MemberRole.COORDINATOR if account.role == COORDINATOR else MemberRole.STATISTICIAN,
        )
