"""The study's flow (CONSORT / STARD style): cases received to reads analysed, with counts.

One selector, :func:`study_flow`, computes every count of the diagram from the database; the
checklist's SVG and its items both draw on it, so the two never disagree.

Steps:

* **received**: the study's cases; beside them, the inputs the imports refused (files, manifest
  rows, DICOM studies or instances: ``ImportRefusal``), by source.
* **excluded before allocation**: received cases without an assignment (arrived after the
  randomization, or not allocated yet), by reason; the training cases (read by the readers for
  training, never randomized or analysed).
* **allocated**: per arm, the cases with at least one assignment in it and the assignments.
* **read**: per arm, the assignments with a submitted read (a correction does not add one),
  and per reader.
* **analysed (complete case)**: the reads of the readers who finished every assignment, on
  cases with ground truth for every finding type of the study; the reads left out, by reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from django.db.models import Count

from studyplatform.dashboard.selectors.readers import complete_readers
from studyplatform.reading.models import Assignment
from studyplatform.studies.models import Case, ImportRefusal, RefusalSource, Study, Truth


@dataclass(frozen=True)
class ArmFlow:
    """One arm's counts: cases allocated, assignments, reads submitted, reads analysed."""

    arm: str
    label: str
    cases_allocated: int
    assignments: int
    reads: int
    reads_per_reader: dict[str, int]
    readers: int
    analysed_reads: int
    analysed_cases: int
    analysed_readers: int


@dataclass(frozen=True)
class StudyFlow:
    received: int
    not_allocated: dict[str, int]
    allocated: int
    arms: list[ArmFlow]
    cases_without_full_truth: int
    incomplete_readers: list[str]
    left_out_reads: dict[str, int] = field(default_factory=dict)
    refused_inputs: dict[str, int] = field(default_factory=dict)  # by source label

    @property
    def excluded(self) -> int:
        return sum(self.not_allocated.values())

    @property
    def refused(self) -> int:
        return sum(self.refused_inputs.values())


def _full_truth_cases(study: Study) -> set[int]:
    n_findings = study.finding_types.count()
    counted = (
        Truth.objects.filter(case__study=study, case__training=False)
        .values("case_id")
        .annotate(n=Count("finding_type", distinct=True))
        .values_list("case_id", "n")
    )
    return {case for case, n in counted if n_findings and n >= n_findings}


def study_flow(study: Study) -> StudyFlow:
    """Every count of the flow diagram, from the database (see the module docstring)."""
    cases = Case.objects.filter(study=study)
    case_ids = set(cases.filter(training=False).values_list("pk", flat=True))
    training = cases.filter(training=True).count()
    rows = list(
        Assignment.objects.filter(session__study=study, session__training=False)
        .order_by()
        .annotate(n_reads=Count("reads"))
        .values_list("case_id", "arm_id", "reader__code", "n_reads")
    )
    allocated = {case for case, _, _, _ in rows}
    with_truth = _full_truth_cases(study)
    unallocated = case_ids - allocated
    not_allocated: dict[str, int] = {}
    if training:
        not_allocated["training case (reader training, never analysed)"] = training
    if unallocated:
        no_truth = len(unallocated - with_truth)
        if no_truth:
            not_allocated["no assignment, no ground truth"] = no_truth
        if len(unallocated) - no_truth:
            not_allocated["no assignment (arrived after the randomization)"] = (
                len(unallocated) - no_truth
            )
    complete = set(complete_readers(study))
    arms = []
    left_out: Counter[str] = Counter()
    for arm in study.arms.order_by("order", "name"):
        mine = [row for row in rows if row[1] == arm.pk]
        read = [row for row in mine if row[3] > 0]
        per_reader = Counter(code for _, _, code, _ in read)
        analysed = [row for row in read if row[2] in complete and row[0] in with_truth]
        for case, _, code, _ in read:
            if code not in complete:
                left_out["reader did not finish every assignment"] += 1
            elif case not in with_truth:
                left_out["case without ground truth for every finding type"] += 1
        arms.append(
            ArmFlow(
                arm=arm.name,
                label=arm.label,
                cases_allocated=len({row[0] for row in mine}),
                assignments=len(mine),
                reads=len(read),
                reads_per_reader=dict(sorted(per_reader.items())),
                readers=len(per_reader),
                analysed_reads=len(analysed),
                analysed_cases=len({row[0] for row in analysed}),
                analysed_readers=len({row[2] for row in analysed}),
            )
        )
    incomplete = sorted({code for _, _, code, _ in rows} - complete)
    refused = (
        ImportRefusal.objects.filter(study=study)
        .order_by()
        .values_list("source")
        .annotate(n=Count("pk"))
    )
    return StudyFlow(
        received=len(case_ids) + training,
        not_allocated=not_allocated,
        allocated=len(allocated),
        arms=arms,
        cases_without_full_truth=len(case_ids - with_truth),
        incomplete_readers=incomplete,
        left_out_reads=dict(left_out),
        refused_inputs={RefusalSource(source).label: n for source, n in refused},
    )
