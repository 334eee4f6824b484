"""The coordinator's training page under ``/dashboard/STUDY/manage/training/``.

Which cases are training cases (chosen while the study is a draft), where each reader stands
with the training, and the waiver of a reader's training (with a reason, audited). Only the
study's coordinators (and superusers); a refusal renders the page again with the reason (409),
a waiver without a reason is a bad request (400).
"""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from studyplatform.dashboard import access
from studyplatform.reading.models import Enrolment
from studyplatform.reading.services import TrainingError, waive_training
from studyplatform.reading.training import training_statuses
from studyplatform.studies.guards import FrozenStudyError
from studyplatform.studies.models import Study
from studyplatform.studies.services.training import TrainingCasesError, set_training_cases


def _page(request: HttpRequest, study: Study, status: int = 200, error: str = "") -> HttpResponse:
    context = {
        "study": study,
        "cases": study.cases.select_related("site").order_by("case_id"),
        "statuses": training_statuses(study),
        "editable": study.state == "draft",
        "error": error,
    }
    return render(request, "dashboard/manage/training.html", context, status=status)


@login_required
@require_GET
def training(request: HttpRequest, slug: str) -> HttpResponse:
    return _page(request, access.manage_study_for(request.user, slug))


@login_required
@require_POST
def training_cases(request: HttpRequest, slug: str) -> HttpResponse:
    """Make the ticked cases the study's training cases (all others analysed)."""
    study = access.manage_study_for(request.user, slug)
    try:
        marked, unmarked = set_training_cases(
            study=study, case_ids=request.POST.getlist("training"), actor=cast(User, request.user)
        )
    except (TrainingCasesError, FrozenStudyError) as error:
        return _page(request, study, 409, str(error))
    messages.success(
        request, f"Training cases saved ({len(marked)} marked, {len(unmarked)} unmarked)."
    )
    return redirect("dashboard:manage_training", slug=study.slug)


@login_required
@require_POST
def training_waive(request: HttpRequest, slug: str, enrolment_id: int) -> HttpResponse:
    """Waive one reader's training, with the reason typed beside it."""
    study = access.manage_study_for(request.user, slug)
    enrolment = get_object_or_404(Enrolment, pk=enrolment_id, study=study)
    reason = request.POST.get("reason", "")
    if not reason.strip():
        return _page(request, study, 400, "a training waiver needs a reason")
    try:
        waive_training(
            study=study, reader=enrolment.reader, user=cast(User, request.user), reason=reason
        )
    except (TrainingError, FrozenStudyError) as error:
        return _page(request, study, 409, str(error))
    messages.success(request, f"Training of {enrolment.reader.code} waived.")
    return redirect("dashboard:manage_training", slug=study.slug)
