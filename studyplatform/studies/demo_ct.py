"""The CT demo study: chest CT phantoms from two scanners, lung nodules with their locations.

Built by ``manage.py demo --ct`` beside the radiograph demo (which it leaves as it is). Every
case is a real DICOM CT series (``phantoms_ct_dicom``) stored through the same import as any
DICOM, so its slices are de-identified, ordered along their normal and given the series' window
as a hospital's would be. The truth of each case says whether it has a nodule and, for each,
where: its centre slice, its extent along the stack (``depth``), its centre and radius in the
slice's pixels, so that the readers' marks are scored as FROC. Readers read in a crossover of
unassisted and assisted arms, as in the radiograph demo; the assisted arm shows the CT demo
model's pre-read (the case's probability, the maximum over its slices, and a heatmap per slice).
Everything derives from one seed: rebuilding gives the same cases and truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import transaction

from studyplatform.prereads.services import run_demo_prereads
from studyplatform.reading.demo import simulate_demo_reads, start_demo_reading
from studyplatform.studies.demo import (
    DEMO_SEED,
    SITES,
    DemoSummary,
    _create_accounts,
    _remove_previous_demo,
)
from studyplatform.studies.importing import Upload
from studyplatform.studies.lesions import lesion_problems, normalize_lesions
from studyplatform.studies.models import (
    Arm,
    Design,
    FindingType,
    Image,
    Site,
    Study,
    Truth,
    TruthSource,
)
from studyplatform.studies.phantoms_ct import CtPhantom, generate_ct_phantom
from studyplatform.studies.phantoms_ct_dicom import ct_series_files
from studyplatform.studies.services import import_case

DEMO_CT_SLUG = "demo-ct"
CT_SIZE = 128
CT_SLICES = 48
P_NORMAL = 0.5

# The two CT scanners, at two of the radiograph demo's sites (site code, vendor index).
CT_SITES = (("north", 0), ("south", 1))


@dataclass(frozen=True)
class CtCasePlan:
    case_id: str
    site: str
    vendor: int
    nodules: int
    seed: int


def case_plan(*, n_cases: int, seed: int) -> list[CtCasePlan]:
    """Site, vendor and number of nodules per case; sites alternate, half the cases normal."""
    rng = np.random.default_rng([seed, 31])
    plan = []
    for number in range(1, n_cases + 1):
        site, vendor = CT_SITES[(number - 1) % len(CT_SITES)]
        nodules = 0 if rng.random() < P_NORMAL else int(rng.integers(1, 4))
        plan.append(CtCasePlan(f"CT-{number:03d}", site, vendor, nodules, seed * 1000 + number))
    return plan


def build_demo_ct_study(
    *,
    n_cases: int = 24,
    seed: int = DEMO_SEED,
    simulate_reads: bool = False,
    size: int = CT_SIZE,
    slices: int = CT_SLICES,
) -> DemoSummary:
    """Build the CT demo study from scratch, replacing an earlier one (idempotent).

    With ``simulate_reads`` readers R02-R04 have read every case in both arms (simulated), as in
    the radiograph demo.
    """
    if n_cases < 2 * len(CT_SITES):
        raise ValueError(f"the CT demo needs at least {2 * len(CT_SITES)} cases")
    with transaction.atomic():
        _remove_previous_demo(DEMO_CT_SLUG)
        study = _create_study(seed)
        nodule = FindingType.objects.create(
            study=study, code="nodule", name="Lung nodule", clinically_significant=True, order=1
        )
        names = {s.code: s.name for s in SITES}
        for code, _ in CT_SITES:
            Site.objects.update_or_create(code=code, defaults={"name": names[code]})
        images = 0
        for case in case_plan(n_cases=n_cases, seed=seed):
            phantom = generate_ct_phantom(
                seed=case.seed, n_nodules=case.nodules, vendor=case.vendor, size=size,
                slices=slices,
            )  # fmt: skip
            images += _import(study, case, phantom, nodule)
        accounts = _create_accounts(study)
        # The CT demo model's pre-reads: every slice of every case (a few seconds).
        run_demo_prereads(study=study, ct=True)
        start_demo_reading(study=study)
        reads = simulate_demo_reads(study=study, seed=seed) if simulate_reads else 0
    return DemoSummary(
        study=study, cases=n_cases, images=images, accounts=accounts, simulated_reads=reads
    )


def _create_study(seed: int) -> Study:
    study = Study.objects.create(
        slug=DEMO_CT_SLUG,
        title="Demo: AI assistance for lung nodule detection on chest CT",
        description=(
            "Synthetic chest CT phantoms from two scanners. Readers find and mark lung nodules "
            "with and without the AI's slice-by-slice pre-read."
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


def _import(study: Study, case: CtCasePlan, phantom: CtPhantom, nodule: FindingType) -> int:
    """Store the case through the DICOM import, then its truth's lesions; returns its slices."""
    files = ct_series_files(phantom, patient_id=case.case_id)
    stored = import_case(
        study=study,
        case_id=case.case_id,
        site_code=case.site,
        uploads=[Upload(f.name, f.data) for f in files],
        truth={"nodule": bool(phantom.nodules)},
        via="demo --ct",
    ).case
    if phantom.nodules:
        location = _lesions(stored.pk, phantom)
        Truth.objects.filter(case=stored, finding_type=nodule).update(
            location=location, source=TruthSource.SYNTHETIC
        )
    else:
        Truth.objects.filter(case=stored).update(source=TruthSource.SYNTHETIC)
    return len(files)


def _lesions(case_pk: int, phantom: CtPhantom) -> list[dict[str, Any]]:
    """The nodules as the truth's lesions, checked as an imported truth's are.

    The radius is the nodule's in-plane radius plus half a pixel, so that a mark on any pixel
    of the drawn nodule falls inside it.
    """
    rows = list(
        Image.objects.filter(case_id=case_pk)
        .order_by("position")
        .values_list("position", "rows", "columns", "series__position", "slice_number")
    )
    sizes = {position: (r, c) for position, r, c, _, _ in rows}
    stacks = {position: (s, n, len(rows)) for position, _, _, s, n in rows}
    by_slice = {(s, n): position for position, _, _, s, n in rows}
    lesions = [
        {
            "lesion": number,
            "image": by_slice[(1, n.slice + 1)],
            "series": 1,
            "slice": n.slice + 1,
            "depth": n.depth,
            "x": n.x,
            "y": n.y,
            "radius": round(n.radius_px + 0.5, 2),
        }
        for number, n in enumerate(phantom.nodules, start=1)
    ]
    problems = lesion_problems(lesions, present=True, sizes=sizes, stacks=stacks)
    if problems:
        raise ValueError(f"demo CT case lesions: {'; '.join(problems)}")
    return normalize_lesions(lesions)
