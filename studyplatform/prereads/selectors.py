"""Reads of pre-read state for pages and commands: progress per status, a case's pre-read."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count

from studyplatform.prereads.models import AIModel, PreRead, PreReadStatus
from studyplatform.studies.models import Case, Study


@dataclass(frozen=True)
class PrereadProgress:
    """How far a study's pre-reads are: cases, and pre-reads per status (``missing``: none yet)."""

    cases: int
    pending: int
    running: int
    done: int
    failed: int

    @property
    def missing(self) -> int:
        return max(0, self.cases - self.pending - self.running - self.done - self.failed)

    @property
    def finished(self) -> bool:
        """Nothing left to wait for (failed ones need a look, not more waiting)."""
        return self.pending == 0 and self.running == 0

    @property
    def fraction_done(self) -> float:
        return (self.done + self.failed) / self.cases if self.cases else 1.0

    def as_dict(self) -> dict[str, int]:
        return {
            "cases": self.cases,
            "pending": self.pending,
            "running": self.running,
            "done": self.done,
            "failed": self.failed,
            "missing": self.missing,
        }


def preread_progress(study: Study, model: AIModel | None = None) -> PrereadProgress:
    """Counts per status of the study's pre-reads by ``model``.

    Without a model: the most recently registered model that has pre-reads in the study (the
    one the study is being pre-read with); with none, everything counts as missing.
    """
    if model is None:
        model = (
            AIModel.objects.filter(prereads__case__study=study)
            .order_by("-registered_at", "-pk")
            .first()
        )
    cases = Case.objects.filter(study=study).count()
    if model is None:
        return PrereadProgress(cases=cases, pending=0, running=0, done=0, failed=0)
    counts = dict(
        PreRead.objects.filter(case__study=study, model=model)
        .values_list("status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return PrereadProgress(
        cases=cases,
        pending=counts.get(PreReadStatus.PENDING, 0),
        running=counts.get(PreReadStatus.RUNNING, 0),
        done=counts.get(PreReadStatus.DONE, 0),
        failed=counts.get(PreReadStatus.FAILED, 0),
    )


def progress_by_model(study: Study) -> list[tuple[AIModel, PrereadProgress]]:
    """One progress line per model that has pre-read any of the study's cases."""
    models = AIModel.objects.filter(prereads__case__study=study).distinct()
    return [(model, preread_progress(study, model)) for model in models]


def case_preread(case: Case, model: AIModel | None = None) -> PreRead | None:
    """The case's done pre-read (by ``model``, else the latest model's), with its findings."""
    prereads = PreRead.objects.filter(case=case, status=PreReadStatus.DONE)
    if model is not None:
        prereads = prereads.filter(model=model)
    return (
        prereads.select_related("model")
        .prefetch_related("findings__finding_type")
        .order_by("-model__registered_at", "-model_id")
        .first()
    )


def model_thresholds(model: AIModel) -> dict[str, float]:
    """The model's operating threshold per finding code (from its spec; 0.5 where unset)."""
    thresholds = model.spec.get("thresholds", {}) if isinstance(model.spec, dict) else {}
    return {code: float(thresholds.get(code, 0.5)) for code in model.finding_codes}
