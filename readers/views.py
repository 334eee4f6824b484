"""The readers' pages. Views parse the request, call one service or selector, render.

Access: every reading URL needs a logged-in reader (anonymous -> login page, staff without a
reader profile -> 403) and the reader's own assignment (someone else's -> 404, so that the
existence of an assignment is not disclosed). AI output leaves the server only through the
assisted reading page and the heatmap URL, both keyed by the assignment and gated by
``selectors.ai_visible``.
"""

from __future__ import annotations

import mimetypes
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, Concatenate, ParamSpec

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from studyplatform.jsontext import JSONTextError, parse_json
from studyplatform.reading import prefetch, selectors, services
from studyplatform.reading.feedback import training_feedback
from studyplatform.reading.models import Assignment, Reader
from studyplatform.reading.worklist import home_for
from studyplatform.studies.hanging import Layout
from studyplatform.studies.models import Study
from studyplatform.studies.selectors import SeriesView

P = ParamSpec("P")
IMAGE_MAX_AGE = 365 * 24 * 3600  # seconds
AssignmentView = Callable[Concatenate[HttpRequest, Assignment, P], HttpResponseBase]


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Where every account lands after login: a reader's worklist, or links for staff."""
    assert request.user.is_authenticated  # narrowed by login_required
    context = {"home": home_for(user=request.user)}
    return render(request, "readers/home.html", context)


def _not_found_or_forbidden(request: HttpRequest) -> HttpResponseBase:
    if not selectors.is_reader(request.user):
        raise PermissionDenied("Only readers read cases.")
    raise Http404("No such assignment.")


def reader_assignment(view: AssignmentView[P]) -> Callable[..., HttpResponseBase]:
    """Load the requesting reader's own assignment ``pk`` (with session, study, arm, case)."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, pk: int, *args: P.args, **kwargs: P.kwargs) -> Any:
        assignment = selectors.assignment_for_reader(user=request.user, assignment_id=pk)
        if assignment is None:
            return _not_found_or_forbidden(request)
        return view(request, assignment, *args, **kwargs)

    return wrapped


@login_required
@require_POST
def training(request: HttpRequest, slug: str) -> HttpResponse:
    """Start (or resume) the reader's training in a study: its first unread training case."""
    reader = Reader.objects.filter(user_id=request.user.pk or 0).first()
    if reader is None:
        raise PermissionDenied("Only readers train.")
    study = get_object_or_404(Study, slug=slug, enrolments__reader=reader)
    try:
        session = services.start_training(study=study, reader=reader)
    except services.TrainingError as error:
        return render(request, "readers/locked.html", {"reason": str(error)}, status=409)
    return redirect("readers-continue", session_id=session.pk)


@login_required
@require_GET
def continue_session(request: HttpRequest, session_id: int) -> HttpResponse:
    """Go to the next unread case of a session, or back to the worklist when none is left."""
    session = selectors.session_for_reader(user=request.user, session_id=session_id)
    if session is None:
        _not_found_or_forbidden(request)
        raise Http404
    following = selectors.next_assignment(session)
    if following is None:
        done = "Training" if session.training else f"Session {session.number}"
        messages.success(request, f"{done} of {session.study.slug} is done.")
        return redirect("home")
    return redirect("readers-assignment", pk=following.pk)


@reader_assignment
@require_GET
@never_cache
def assignment(request: HttpRequest, assignment: Assignment) -> HttpResponse:
    """The reading page. The first GET opens the case: server start time, arm revealed."""
    if getattr(assignment, "submitted", False):
        feedback = training_feedback(assignment)
        if feedback is not None:
            shown = {"assignment": assignment, "feedback": feedback}
            return render(request, "readers/training_feedback.html", shown)
        return render(request, "readers/submitted.html", {"assignment": assignment})
    try:
        services.open_assignment(assignment=assignment)
    except services.OutOfOrderError:
        return redirect("readers-continue", session_id=assignment.session_id)
    except services.NotAvailableError as error:
        return render(request, "readers/locked.html", {"reason": str(error)}, status=403)
    page = selectors.reading_page(assignment)
    key = page.draft.get("idempotency_key") or secrets.token_urlsafe(24)
    data: dict[str, Any] = {
        "assignment": assignment.pk,
        "images": [
            {
                "position": im.position,
                "rows": im.rows,
                "columns": im.columns,
                "bitsStored": im.bits_stored,
                "windowCenter": im.window_center,
                "windowWidth": im.window_width,
                "pixelsUrl": _pixels_url(assignment.case_id, im.position),
            }
            for im in page.images
        ],
        "series": _series_data(assignment, page.series),
        "layout": _layout_data(page.layout),
        "findings": [{"code": ft.code, "name": ft.name} for ft in page.finding_types],
        "ratingScale": page.rating_scale,
        "contradictionRule": page.contradiction_rule,
        "draft": page.draft,
        "earlierStep": page.earlier_step,
        "idempotencyKey": key,
        # Where the page's clock starts on the server's (telemetry: time to the first AI view).
        "openedSeconds": page.opened_seconds,
        "draftUrl": reverse("readers-draft", kwargs={"pk": assignment.pk}),
        "submitUrl": reverse("readers-submit", kwargs={"pk": assignment.pk}),
        # The next case's images, for the browser's cache: no arm, no AI, nothing opened.
        "prefetch": [_pixels_url(case, p) for case, p in prefetch.prefetch_images(assignment)],
    }
    context: dict[str, Any] = {"page": page, "data": data}
    if page.ai is not None:
        # Only ever built for an assisted, opened, unsubmitted assignment (selectors.ai_visible).
        context["ai_data"] = {
            "heatmapUrl": reverse("readers-heatmap", kwargs={"pk": assignment.pk})
            if page.ai.has_heatmap
            else None,
            "sliceHeatmaps": [
                {
                    "image": position,
                    "url": reverse(
                        "readers-slice-heatmap", kwargs={"pk": assignment.pk, "position": position}
                    ),
                }
                for position in page.ai.heatmap_images
            ],
            "findings": [
                {"code": f.code, "probability": f.probability, "flagged": f.flagged}
                for f in page.ai.findings
            ],
        }
    return render(request, "readers/reading.html", context)


def _pixels_url(case_id: int, position: int) -> str:
    return reverse("readers-case-pixels", kwargs={"case": case_id, "position": position})


def _series_data(assignment: Assignment, series: tuple[SeriesView, ...]) -> list[dict[str, Any]]:
    """The viewer's stacks: per series its geometry and window, and per slice its pixels URL,
    its position along the normal (mm) and the offset from stored values to the derivative."""
    return [
        {
            "position": s.position,
            "number": s.number,
            "modality": s.modality,
            "description": s.description,
            "bodyPart": s.body_part,
            "viewPosition": s.view_position,
            "normal": s.normal,
            "sliceSpacing": s.slice_spacing,
            "sliceThickness": s.slice_thickness,
            "pixelSpacing": s.pixel_spacing,
            "windowCenter": s.window_center,
            "windowWidth": s.window_width,
            "orderedBy": s.ordered_by,
            "slices": [
                {
                    "image": sl.image,
                    "slice": sl.slice_number,
                    "z": sl.slice_position,
                    "offset": sl.display_offset,
                    "url": _pixels_url(assignment.case_id, sl.image),
                }
                for sl in s.slices
            ],
        }
        for s in series
    ]


def _layout_data(layout: Layout | None) -> dict[str, Any] | None:
    """The study's hanging protocol for this case (None: the single default viewport)."""
    if layout is None:
        return None
    return {
        "protocol": layout.protocol,
        "rows": layout.rows,
        "columns": layout.columns,
        "viewports": [
            {"number": v.number, "series": v.series, "image": v.image} for v in layout.viewports
        ],
    }


def _json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = parse_json(request.body or b"{}", what="the request body")
    except JSONTextError as error:
        raise services.InvalidReadError(str(error)) from None
    if not isinstance(body, dict):
        raise services.InvalidReadError("the request body must be a JSON object")
    return body


def _error(error: services.ReadingError) -> JsonResponse:
    """A refusal as JSON: 409 when the case cannot be written now (locked), else 400.

    A contradiction between a call and its rating also lists them, and says whether the study
    accepts them once confirmed (``confirm``: the page asks, then resubmits with
    ``confirm_contradictions``).
    """
    status = 409 if isinstance(error, services.NotAvailableError) else 400
    body: dict[str, Any] = {"error": str(error)}
    if isinstance(error, services.ContradictionError):
        body["contradictions"] = error.contradictions
        body["confirm"] = error.confirmable
    return JsonResponse(body, status=status)


@reader_assignment
@require_POST
def draft(request: HttpRequest, assignment: Assignment) -> JsonResponse:
    """Save the report in progress (the page posts it, debounced, as the reader works)."""
    try:
        if getattr(assignment, "submitted", False):
            raise services.NotAvailableError("this case is already submitted")
        services.save_draft(assignment=assignment, data=_json_body(request))
    except services.ReadingError as error:
        return _error(error)
    return JsonResponse({"saved": True})


@reader_assignment
@require_POST
def submit(request: HttpRequest, assignment: Assignment) -> JsonResponse:
    """Submit the read once; answers where to go next (the next case in the reader's order)."""
    assert request.user.is_authenticated  # narrowed by login_required
    images = selectors.case_images(assignment.case_id)
    try:
        body = _json_body(request)
        read, created = services.submit_read(
            assignment=assignment,
            user=request.user,
            idempotency_key=body.get("idempotency_key", ""),
            findings=body.get("findings"),
            free_text=body.get("free_text", ""),
            finding_types=list(selectors.finding_types_for(assignment)),
            image_sizes={im.position: (im.rows, im.columns) for im in images},
            image_slices={im.position: (im.series, im.slice_number) for im in images},
            confirm_contradictions=body.get("confirm_contradictions") is True,
            measurements=body.get("measurements"),
            telemetry=body.get("telemetry"),
        )
    except services.ReadingError as error:
        return _error(error)
    # After a training read, the reader sees its feedback (the truth) before the next case.
    following = (
        reverse("readers-assignment", kwargs={"pk": assignment.pk})
        if assignment.session.training
        else reverse("readers-continue", kwargs={"session_id": assignment.session_id})
    )
    return JsonResponse(
        {
            "read": read.pk,
            "created": created,
            "submitted_at": read.submitted_at.isoformat(),
            "next": following,
        },
        status=201 if created else 200,
    )


@reader_assignment
@require_GET
def pixels(request: HttpRequest, assignment: Assignment, position: int) -> HttpResponseBase:
    """One image's stored values for the viewer's exact window/level.

    By default the 16-bit PNG derivative as stored (the page's script decodes it); with
    ``?format=raw``, the values decoded here as little-endian uint16, with the size in headers.
    """
    if assignment.opened_at is None:
        raise Http404("Open the case first.")
    return _pixels(request, case_id=assignment.case_id, position=position)


@login_required
@require_GET
def case_pixels(request: HttpRequest, case: int, position: int) -> HttpResponseBase:
    """One image's stored values by case, as ``pixels``: the URL the reading page uses, the same
    whichever assignment shows the case, so that the browser's cache serves it to each. For a
    case of the reader's opened assignments, or the case that comes next after the one they
    have open (prefetched before it is opened: nothing is opened by it)."""
    if not prefetch.may_load_pixels(user=request.user, case_id=case):
        return _not_found_or_forbidden(request)
    return _pixels(request, case_id=case, position=position)


def _pixels(request: HttpRequest, *, case_id: int, position: int) -> HttpResponseBase:
    if request.GET.get("format") == "raw":
        found = selectors.image_pixels(case_id=case_id, position=position)
        if found is None:
            raise Http404("No such image.")
        data, rows, columns, bits = found
        response: HttpResponseBase = HttpResponse(data, content_type="application/octet-stream")
        response["X-Image-Rows"] = str(rows)
        response["X-Image-Columns"] = str(columns)
        response["X-Bits-Stored"] = str(bits)
    else:
        display = selectors.image_display(case_id=case_id, position=position)
        if display is None:
            raise Http404("No such image.")
        # Streamed from the file in blocks: serving a whole series keeps memory flat.
        response = FileResponse(display.open("rb"), content_type="image/png")
    # A stored image never changes, and holds nothing of the AI: the browser keeps it for good
    # (private: never a shared cache), so that scrolling back through a series, and opening a
    # case whose images were prefetched, costs nothing.
    response["Cache-Control"] = f"private, max-age={IMAGE_MAX_AGE}, immutable"
    return response


@reader_assignment
@require_GET
def heatmap(request: HttpRequest, assignment: Assignment) -> HttpResponse:
    """The Grad-CAM heatmap: 404 unless this assignment is assisted, opened and unsubmitted."""
    found = selectors.heatmap_file(assignment)
    if found is None:
        raise Http404("No such resource.")
    content_type = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
    with found.open("rb") as handle:
        response = HttpResponse(handle.read(), content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response


@reader_assignment
@require_GET
def slice_heatmap(request: HttpRequest, assignment: Assignment, position: int) -> HttpResponse:
    """One slice's Grad-CAM heatmap (a CT/MR pre-read): 404 unless this assignment is
    assisted, opened and unsubmitted, as the image heatmap."""
    found = selectors.slice_heatmap_png(assignment, position)
    if found is None:
        raise Http404("No such resource.")
    response = HttpResponse(found, content_type="image/png")
    response["Cache-Control"] = "no-store"
    return response


def _posted_call(value: str | None) -> bool | None:
    return {"present": True, "absent": False}.get(value or "")


@reader_assignment
@require_http_methods(["GET", "POST"])
def correct(request: HttpRequest, assignment: Assignment) -> HttpResponse:
    """Correct a submitted read: a new read that supersedes it, with a reason (audited).

    Only while the study is open and the reader has not seen the AI's output for the case: the
    page says why otherwise, and shows no form (a POST is refused by the service all the same).
    """
    page = selectors.correction_page(assignment)
    if page is None:
        raise Http404("This case has no submitted read.")
    assert request.user.is_authenticated  # narrowed by login_required
    error, status, contradictions = None, 200, False
    answers = page.answers
    if request.method == "POST":
        images = selectors.case_images(assignment.case_id)
        marks = {code: a.get("marks", []) for code, a in page.answers["findings"].items()}
        findings = {
            ft.code: {
                "present": _posted_call(request.POST.get(f"{ft.code}-present")),
                "confidence": _int(request.POST.get(f"{ft.code}-confidence")),
                "marks": marks.get(ft.code, []),
            }
            for ft in page.finding_types
        }
        try:
            services.correct_read(
                read=page.read,
                user=request.user,
                reason=request.POST.get("reason", ""),
                findings=findings,
                free_text=request.POST.get("free_text", ""),
                finding_types=list(page.finding_types),
                image_sizes={im.position: (im.rows, im.columns) for im in images},
                image_slices={im.position: (im.series, im.slice_number) for im in images},
                idempotency_key=secrets.token_urlsafe(24),
                confirm_contradictions=request.POST.get("confirm_contradictions") == "on",
            )
        except services.ReadingError as failure:
            error = str(failure)
            status = 409 if isinstance(failure, services.NotAvailableError) else 400
            contradictions = isinstance(failure, services.ContradictionError) and (
                failure.confirmable
            )
            # Show what the reader posted, not the stored read: nothing typed is lost.
            answers = {"findings": findings, "free_text": request.POST.get("free_text", "")}
        else:
            messages.success(request, "The correction is recorded; the original read is kept.")
            return redirect("home")
    rows = [
        (ft, answers["findings"].get(ft.code, {"present": None, "confidence": None}))
        for ft in page.finding_types
    ]
    return render(
        request,
        "readers/correct.html",
        {
            "assignment": assignment,
            "page": page,
            "read": page.read,
            "rows": rows,
            "answers": answers,
            "error": error,
            # Refused outright (locked, AI seen): explained instead of the form.
            "refusal": page.refusal or (error if status == 409 else None),
            "reason": request.POST.get("reason", ""),
            "ask_confirmation": contradictions,
        },
        status=status,
    )


def _int(value: str | None) -> int | str | None:
    """A posted whole number; empty is None (unset), anything else is passed on to be refused."""
    if value is None or not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        return value
