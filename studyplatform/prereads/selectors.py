"""Reads of pre-read state for pages and commands: the study's pinned model, progress, pre-reads.

A study pins one AI model version (name, version and file sha256) before it opens.
:func:`pinned_model` is the one way to that model: the reading page, the heatmap, the analysis,
the dashboard and ``manage.py preread`` all ask it, so a model registered later never changes
what readers see or what is analysed. Other models may pre-read a study for comparison; their
output is reached only by naming the model.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count

from studyplatform.prereads.models import AIModel, PreRead, PreReadStatus
from studyplatform.studies.models import Case, FindingType, Study


class PinnedModelError(ValueError):
    """The study's pinned model is not registered, or not with the pinned file."""


def pinned_model(study: Study) -> AIModel | None:
    """The AI model the study pinned, checked against the registry; None when none is pinned.

    Raises PinnedModelError when the pinned name and version are not registered, or are
    registered with another file (sha256): never a silent fallback to another model.
    """
    if not study.has_pinned_model:
        return None
    model = AIModel.objects.filter(name=study.ai_model_name, version=study.ai_model_version).first()
    if model is None:
        raise PinnedModelError(
            f"study {study.slug} pins AI model {study.ai_model_name} {study.ai_model_version} "
            f"(sha256 {study.ai_model_sha256}), which is not registered"
        )
    if model.sha256 != study.ai_model_sha256:
        raise PinnedModelError(
            f"study {study.slug} pins AI model {model} with sha256 {study.ai_model_sha256}, but "
            f"the registered {model} has sha256 {model.sha256}"
        )
    return model


def finding_thresholds(study: Study, model: AIModel | None) -> dict[str, float]:
    """The operating threshold per finding code of the study, as readers and the analysis see it.

    The finding type's own ``ai_threshold`` (part of the protocol) when set, else the model's
    spec threshold for that finding, else the model's threshold (0.5 without a model).
    """
    spec: dict[str, object] = {}
    if model is not None and isinstance(model.spec, dict):
        spec = model.spec.get("thresholds", {}) or {}
    default = model.threshold if model is not None else 0.5
    thresholds = {}
    for code, override in FindingType.objects.filter(study=study).values_list(
        "code", "ai_threshold"
    ):
        value = spec.get(code, default) if override is None else override
        thresholds[code] = float(value)  # type: ignore[arg-type]
    return thresholds


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
    """Counts per status of the study's pre-reads by ``model`` (default: the pinned model).

    Without a model and with none pinned, everything counts as missing.
    """
    if model is None:
        model = pinned_model(study)
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
    """One progress line per model that has pre-read any of the study's cases (comparison)."""
    models = AIModel.objects.filter(prereads__case__study=study).distinct()
    return [(model, preread_progress(study, model)) for model in models]


def case_preread(case: Case, model: AIModel | None = None) -> PreRead | None:
    """The case's done pre-read by ``model`` (default: its study's pinned model), with findings.

    None when the pre-read is not done, or no model is given and the study pins none.
    """
    if model is None:
        model = pinned_model(case.study)
        if model is None:
            return None
    return (
        PreRead.objects.filter(case=case, model=model, status=PreReadStatus.DONE)
        .select_related("model")
        .prefetch_related("findings__finding_type")
        .first()
    )


def model_thresholds(model: AIModel) -> dict[str, float]:
    """The model's operating threshold per finding code (from its spec; 0.5 where unset)."""
    thresholds = model.spec.get("thresholds", {}) if isinstance(model.spec, dict) else {}
    return {code: float(thresholds.get(code, 0.5)) for code in model.finding_codes}
