"""Reads of reading data for the front ends: the reading page, pixels, AI output (the worklist:
``studyplatform.reading.worklist``).

Concealment lives here as much as in the templates: the worklist carries no arm, and the AI view
of a case is built only for an assignment whose arm shows the AI, that the reader has opened and
not yet submitted (``ai_visible``). A reader who reads the same case in both arms therefore never
gets AI output while reading it unassisted, nor after the assisted read is submitted. The one
exception is a training read: once submitted, the study may show the AI's answer beside the
truth (``training_ai_view``); training cases are never analysed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.fields.files import FieldFile
from django.db.models.functions import Coalesce
from django.utils import timezone
from PIL import Image as PILImage

from studyplatform.prereads.heatmaps import slice_heatmap
from studyplatform.prereads.models import PreRead, PreReadStatus
from studyplatform.prereads.selectors import finding_thresholds, pinned_model
from studyplatform.reading.models import Assignment, Read, ReadDraft, Reader, ReadingSession
from studyplatform.reading.services.washout import readable_state
from studyplatform.studies.hanging import Layout, case_layout
from studyplatform.studies.models import FindingType, Image, Protocol, Study, StudyState
from studyplatform.studies.selectors import SeriesView, case_series


def _user_id(user: User | AnonymousUser) -> int:
    return int(user.pk) if user.pk is not None else 0


def is_reader(user: User | AnonymousUser) -> bool:
    return Reader.objects.filter(user_id=_user_id(user)).exists()


def session_for_reader(*, user: User | AnonymousUser, session_id: int) -> ReadingSession | None:
    return (
        ReadingSession.objects.filter(pk=session_id, reader__user_id=_user_id(user))
        .select_related("study")
        .order_by()  # the default ordering would join more tables for one row
        .first()
    )


def next_assignment(session: ReadingSession) -> Assignment | None:
    """The first assignment of the session, in the allocated order, without a read."""
    return (
        Assignment.objects.filter(session=session, reads__isnull=True)
        .order_by("position", "step")
        .only("pk")
        .first()
    )


def assignment_for_reader(*, user: User | AnonymousUser, assignment_id: int) -> Assignment | None:
    """The user's own assignment with what every reading view needs, or None (not theirs).

    Annotated with ``submitted`` (an original read exists).
    """
    return (
        Assignment.objects.filter(pk=assignment_id, reader__user_id=_user_id(user))
        # No default ordering: it would join the reader and study again for one row, and
        # PostgreSQL's planning time grows fast with every join.
        .order_by()
        .select_related("session__study", "arm", "draft")
        .annotate(
            submitted=Exists(
                Read.objects.filter(assignment=OuterRef("pk"), supersedes__isnull=True)
            )
        )
        .first()
    )


def ai_visible(assignment: Assignment) -> bool:
    """The one rule for showing AI output: assisted arm, opened, not submitted, study open
    (or, for a training read, a draft)."""
    return (
        assignment.arm.shows_ai
        and assignment.opened_at is not None
        and not getattr(assignment, "submitted", True)
        and readable_state(assignment.session.study, training=assignment.session.training)
    )


@dataclass(frozen=True)
class AIFinding:
    code: str
    name: str
    probability: float
    threshold: float
    flagged: bool


@dataclass(frozen=True)
class AIView:
    model: str
    findings: tuple[AIFinding, ...]
    has_heatmap: bool
    # A slices model's per-slice maps: the image positions (in the case) that have one.
    heatmap_images: tuple[int, ...] = ()


def _done_preread(assignment: Assignment) -> PreRead | None:
    """The case's done pre-read by the study's pinned model (never another model's)."""
    model = pinned_model(assignment.session.study)
    if model is None:
        return None
    preread = PreRead.objects.filter(
        case_id=assignment.case_id, model=model, status=PreReadStatus.DONE
    ).first()
    if preread is not None:
        preread.model = model
    return preread


def ai_view(assignment: Assignment) -> AIView | None:
    """The AI's pre-read of the case for an assignment that may show it; None otherwise."""
    if not ai_visible(assignment):
        return None
    return _ai_view_of(assignment)


def training_ai_view(assignment: Assignment) -> AIView | None:
    """The AI's answer shown after a submitted training read, where the study wants it.

    Never for an analysed assignment, never before the training read is submitted.
    """
    session = assignment.session
    if not (session.training and session.study.training_shows_ai):
        return None
    if not Read.objects.filter(assignment=assignment).exists():
        return None
    return _ai_view_of(assignment)


def _ai_view_of(assignment: Assignment) -> AIView:
    preread = _done_preread(assignment)
    if preread is None:
        return AIView(model="", findings=(), has_heatmap=False)
    thresholds = finding_thresholds(assignment.session.study, preread.model)
    findings = []
    for f in preread.findings.select_related("finding_type").order_by(
        "finding_type__order", "finding_type__code"
    ):
        code = f.finding_type.code
        threshold = thresholds[code]
        findings.append(
            AIFinding(
                code=code,
                name=f.finding_type.name,
                probability=f.probability,
                threshold=threshold,
                flagged=f.probability >= threshold,
            )
        )
    images: tuple[int, ...] = ()
    if preread.heatmap and preread.heatmap_slices:
        images = tuple(
            Image.objects.filter(
                case_id=assignment.case_id,
                series__position=1,
                slice_number__lte=preread.heatmap_slices,
            )
            .order_by("slice_number")
            .values_list("position", flat=True)
        )
    return AIView(
        model=str(preread.model),
        findings=tuple(findings),
        has_heatmap=bool(preread.heatmap) and not preread.heatmap_slices,
        heatmap_images=images,
    )


def heatmap_file(assignment: Assignment) -> Any | None:
    """The heatmap file of the case's pre-read, only where ``ai_visible``; else None."""
    if not ai_visible(assignment):
        return None
    preread = _done_preread(assignment)
    if preread is None or not preread.heatmap or preread.heatmap_slices:
        return None
    return preread.heatmap


def slice_heatmap_png(assignment: Assignment, position: int) -> bytes | None:
    """The heatmap of the case's image at ``position`` (a slice of its first series) from a
    slices model's pre-read, only where ``ai_visible``; else None."""
    if not ai_visible(assignment):
        return None
    preread = _done_preread(assignment)
    if preread is None or not preread.heatmap or not preread.heatmap_slices:
        return None
    number = (
        Image.objects.filter(case_id=assignment.case_id, position=position, series__position=1)
        .values_list("slice_number", flat=True)
        .first()
    )
    if number is None or number > preread.heatmap_slices:
        return None
    with preread.heatmap.open("rb") as handle:
        stacked = handle.read()
    return slice_heatmap(stacked, slices=preread.heatmap_slices, index=number - 1)


@dataclass(frozen=True)
class ImageView:
    position: int
    rows: int
    columns: int
    bits_stored: int
    window_center: float
    window_width: float
    series: int = 1  # the series' place in the case
    slice_number: int = 1  # in the series


@dataclass(frozen=True)
class ReadingPage:
    assignment: Assignment
    images: tuple[ImageView, ...]
    finding_types: tuple[FindingType, ...]
    draft: dict[str, Any]
    started_at: datetime | None
    total: int
    done: int
    ai: AIView | None
    earlier_step: dict[str, Any] | None
    rating_scale: str
    contradiction_rule: str
    series: tuple[SeriesView, ...] = ()
    layout: Layout | None = None

    @property
    def opened_seconds(self) -> float:
        """Seconds since the case was first opened (server time), when the page is made.

        To a tenth of a second: enough for the time to the first AI view, and the page holds no
        number that could be read as an AI probability (two or more decimals).
        """
        opened = self.assignment.opened_at
        return 0.0 if opened is None else round((timezone.now() - opened).total_seconds(), 1)


def case_images(case_id: int) -> tuple[ImageView, ...]:
    return tuple(
        ImageView(*row)
        for row in Image.objects.filter(case_id=case_id)
        .order_by("position")
        .values_list(
            "position",
            "rows",
            "columns",
            "bits_stored",
            "window_center",
            "window_width",
            "series__position",
            "slice_number",
        )
    )


def finding_types_of(study_id: int) -> tuple[FindingType, ...]:
    return tuple(FindingType.objects.filter(study_id=study_id).order_by("order", "code"))


def _version_at(study_id: int, moment: datetime) -> Coalesce:
    """The study's protocol version in force at ``moment`` (1 before any was stored), in SQL."""
    latest = (
        Protocol.objects.filter(study_id=study_id, created_at__lte=moment)
        .order_by("-version")
        .values("version")[:1]
    )
    return Coalesce(Subquery(latest), Value(1))


def finding_types_for(assignment: Assignment) -> tuple[FindingType, ...]:
    """The finding types a read of ``assignment`` asks, for the page, the submit and corrections.

    Those of the protocol version in force when the reader opened the case: a finding type added
    by a later amendment is asked from the next case opened, never half-way through a read.
    """
    study_id = assignment.session.study_id
    version = _version_at(study_id, assignment.opened_at or timezone.now())
    return tuple(
        FindingType.objects.filter(study_id=study_id, introduced_in__lte=version).order_by(
            "order", "code"
        )
    )


def read_answers(read: Read) -> dict[str, Any]:
    """A read as the report form's data: ``{findings: {code: {...}}, free_text}``."""
    return {
        "findings": {
            f.finding_type.code: {
                "present": f.present,
                "confidence": f.confidence,
                "marks": f.marks,
            }
            for f in read.findings.select_related("finding_type")
        },
        "free_text": read.free_text,
    }


def reading_page(assignment: Assignment) -> ReadingPage:
    """Everything the reading page shows for an opened assignment (a handful of queries)."""
    try:
        draft: ReadDraft | None = assignment.draft  # loaded with the assignment, or at opening
    except ReadDraft.DoesNotExist:
        draft = None
    progress = Assignment.objects.filter(session_id=assignment.session_id).aggregate(
        total=Count("pk", distinct=True),
        done=Count("pk", filter=Q(reads__isnull=False), distinct=True),
    )
    earlier_step = None
    if assignment.step > 1:
        # Sequential design: the locked earlier read of the same case, shown for reference.
        earlier = (
            Read.objects.filter(
                assignment__session_id=assignment.session_id,
                assignment__position=assignment.position,
                assignment__step=assignment.step - 1,
                supersedes__isnull=True,
            )
            .order_by("pk")
            .first()
        )
        earlier_step = read_answers(earlier) if earlier else None
    series = case_series(assignment.case_id)
    return ReadingPage(
        assignment=assignment,
        images=case_images(assignment.case_id),
        series=series,
        layout=case_layout(
            study_id=assignment.session.study_id,
            case_modality=assignment.case.modality,
            series=series,
        ),
        finding_types=finding_types_for(assignment),
        draft=draft.data if draft else {},
        started_at=draft.started_at if draft else assignment.opened_at,
        total=progress["total"],
        done=progress["done"],
        ai=ai_view(assignment),
        earlier_step=earlier_step,
        rating_scale=assignment.session.study.get_rating_scale_display(),
        contradiction_rule=assignment.session.study.contradiction_rule,
    )


def ai_arm_assignments(*, reader_id: int, case_id: int) -> QuerySet[Assignment]:
    """The reader's assignments of the case in an arm that shows the AI, opened or not."""
    return Assignment.objects.filter(
        reader_id=reader_id, case_id=case_id, arm__shows_ai=True
    ).order_by("opened_at", "pk")


def correction_refusal(*, study: Study, assisted: Iterable[Assignment]) -> str | None:
    """Why the reader's reads of a case can no longer be corrected, in the reader's words.

    ``assisted`` are the reader's assignments of the case in arms that show the AI
    (:func:`ai_arm_assignments`). A read may be corrected only while the study is open and the
    reader has not opened any of them: once the AI's output for the case has been on screen, a
    changed answer would carry it, whatever the arm of the read being corrected. None when a
    correction is allowed.
    """
    if study.state == StudyState.LOCKED:
        return (
            "The study is locked for analysis: its reads are final and can no longer be "
            "corrected. If a read holds an error, tell the study coordinator."
        )
    exposed = next((a for a in assisted if a.opened_at is not None), None)
    if exposed is not None:
        return (
            "You have already seen the AI's output for this case (opened in session "
            f"{exposed.session.number} on {exposed.opened_at:%Y-%m-%d %H:%M} UTC). A read can "
            "only be corrected before the AI's findings for the case have been on your screen: "
            "a changed answer now could carry what the AI showed, and the study compares reads "
            "with and without it. Your read stays as you submitted it; if it holds a clerical "
            "error, tell the study coordinator."
        )
    return None


@dataclass(frozen=True)
class CorrectionPage:
    """The correction form of an assignment's latest read, or why it cannot be corrected."""

    read: Read
    answers: dict[str, Any]
    finding_types: tuple[FindingType, ...]
    refusal: str | None
    rating_scale: str
    contradiction_rule: str


def latest_read(assignment: Assignment) -> Read | None:
    """The assignment's effective read: the original, or the latest correction of it."""
    return (
        Read.objects.filter(assignment=assignment, superseded_by__isnull=True)
        .order_by("-submitted_at", "-pk")
        .first()
    )


def correction_page(assignment: Assignment) -> CorrectionPage | None:
    """What the correction page shows for the reader's own ``assignment``; None without a read."""
    read = latest_read(assignment)
    if read is None:
        return None
    study = assignment.session.study
    assisted = ai_arm_assignments(
        reader_id=assignment.reader_id, case_id=assignment.case_id
    ).select_related("session")
    return CorrectionPage(
        read=read,
        answers=read_answers(read),
        finding_types=finding_types_for(assignment),
        refusal=correction_refusal(study=study, assisted=assisted),
        rating_scale=study.get_rating_scale_display(),
        contradiction_rule=study.contradiction_rule,
    )


def image_display(*, case_id: int, position: int) -> FieldFile | None:
    """The stored 16-bit PNG derivative of one image (sent as is; the viewer decodes it)."""
    image = Image.objects.filter(case_id=case_id, position=position).only("display").first()
    if image is None or not image.display:
        return None
    return image.display


def image_pixels(*, case_id: int, position: int) -> tuple[bytes, int, int, int] | None:
    """The stored values of one image as little-endian uint16 bytes, with rows, columns, bits.

    Browsers decode a 16-bit PNG to 8 bits, which would make window/level coarse; the viewer
    gets the full-precision values instead and applies window/level itself.
    """
    image = Image.objects.filter(case_id=case_id, position=position).first()
    if image is None or not image.display:
        return None
    with image.display.open("rb") as handle, PILImage.open(handle) as png:
        png.load()
        pixels = np.asarray(png)
    data = np.ascontiguousarray(pixels, dtype="<u2")
    return data.tobytes(), int(data.shape[0]), int(data.shape[1]), image.bits_stored
