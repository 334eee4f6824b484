"""The arrival API: a hospital system (or a coordinator) sends a new case.

``POST /api/studies/<slug>/cases/`` as multipart: ``metadata`` (JSON: ``case_id``, ``site``,
optional ``modality`` and ``truth``) or the same as plain form fields, and the image files as
``images`` (DICOM, PNG or JPEG). Authenticated by a site token (``Authorization: Bearer ...``,
no CSRF: the token is not a cookie) or by a coordinator's session (CSRF checked).

Received files are held in memory only (never in a temporary file: they still carry PHI) and
go through the same import service as ``import_cases``. Answers: 201 with the case, 200 with
the stored case for a resend of the same bytes, 400 naming the bad field or file, 401/403, 409
for a case ID taken by other images, a locked study or final truth, 413 for an oversized request,
429 (with Retry-After) past INTAKE_RATE_LIMIT requests a minute from one site token.

Once the caller is known (a valid site token, or the study's coordinator), every refusal that
names a reason (bad metadata, a bad or oversized file, a site the token may not send, a case ID
taken by other images, a token of another study) is also kept as an ``ImportRefusal`` of the
caller's study, once per input and reason (``services.refusals``). Requests from nobody known
(401, a non-coordinator's session, a failed CSRF check) and rate-limited ones (429) are not: they
name no input of a study.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import SuspiciousOperation
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponse, JsonResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from studyplatform.jsontext import JSONTextError, parse_json
from studyplatform.studies.guards import FrozenStudyError
from studyplatform.studies.importing import Problem, Upload, check_case_id
from studyplatform.studies.models import Case, MemberRole, RefusalSource, Study, StudyMembership
from studyplatform.studies.services import (
    CaseConflictError,
    ImportRefusedError,
    authenticate_site_token,
    claim_intake_request,
    receive_case,
)
from studyplatform.studies.services.refusals import record_refusals

MAX_REQUEST_BYTES: Final = 200 * 1024 * 1024
MAX_FILE_BYTES: Final = 100 * 1024 * 1024
MAX_FILES: Final = 16
ACCEPTED_TYPES: Final = frozenset(
    {"application/dicom", "application/octet-stream", "image/png", "image/jpeg", ""}
)
_METADATA_KEYS: Final = frozenset({"case_id", "site", "modality", "truth"})


class _MemoryOnlyUploadHandler(FileUploadHandler):
    """Keeps every uploaded file in memory; the request size is capped before parsing."""

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self._buffer = io.BytesIO()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self._buffer.write(raw_data)
        return None

    def file_complete(self, file_size: int) -> InMemoryUploadedFile:
        self._buffer.seek(0)
        return InMemoryUploadedFile(
            self._buffer,
            self.field_name,
            self.file_name,
            self.content_type,
            file_size,
            self.charset,
            self.content_type_extra,
        )


def _error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def _unauthorized(message: str) -> JsonResponse:
    response = _error(401, message)
    response["WWW-Authenticate"] = 'Bearer realm="studyplatform"'
    return response


class _RefusedError(Exception):
    """A refused request: the answer, and the problems to keep (none: nothing is kept).

    ``study`` is where they are kept when the caller is not yet known (a token of another study).
    """

    def __init__(
        self,
        response: HttpResponse,
        problems: Sequence[Problem] = (),
        *,
        study: Study | None = None,
        via: str = "",
    ) -> None:
        self.response = response
        self.problems = list(problems)
        self.study = study
        self.via = via


def _refused(status: int, message: str, *, where: str = "", **extra: Any) -> _RefusedError:
    """A 4xx answer whose message is also the reason kept; ``where``: the file it is about."""
    reason = message.removeprefix(f"{where}: ") if where else message
    return _RefusedError(_error(status, message, **extra), [Problem(where, reason)])


def _no_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse()  # stands for a view without csrf_exempt, so the check runs


class _Caller(NamedTuple):
    study: Study
    token_site: str | None  # the site a token binds the caller to; None for a session
    user: AbstractBaseUser | None
    via: str


def _authenticate(request: HttpRequest, slug: str) -> _Caller:
    """Who sends, to which study, from which site (a token binds it; a session names it)."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _RefusedError(_unauthorized("Authorization must be 'Bearer <site token>'"))
        site_token = authenticate_site_token(token.strip())
        if site_token is None:
            raise _RefusedError(_unauthorized("unknown or revoked site token"))
        if site_token.study.slug != slug:
            message = "this site token is for another study"
            raise _RefusedError(
                _error(403, message),
                [Problem("", f"{message} (sent to study {slug})")],
                study=site_token.study,
                via=f"site token {site_token.pk}",
            )
        wait = claim_intake_request(site_token=site_token)
        if wait:
            limited = _error(
                429,
                f"more than {settings.INTAKE_RATE_LIMIT} requests a minute from this site token; "
                f"try again in {wait} s",
            )
            limited["Retry-After"] = str(wait)
            raise _RefusedError(limited)
        return _Caller(site_token.study, site_token.site.code, None, f"site token {site_token.pk}")
    user = request.user
    if not user.is_authenticated:
        raise _RefusedError(_unauthorized("send a site token or log in as the study's coordinator"))
    membership = (
        StudyMembership.objects.select_related("study")
        .filter(study__slug=slug, user=user, role=MemberRole.COORDINATOR)
        .first()
    )
    if membership is None:
        raise _RefusedError(_error(403, "only the study's coordinators may send cases"))
    # The view is CSRF-exempt for token clients; a browser session must still pass the check.
    if CsrfViewMiddleware(_no_view).process_view(request, _no_view, (), {}):
        raise _RefusedError(_error(403, "CSRF check failed"))
    return _Caller(membership.study, None, membership.user, "arrival API (session)")


def _metadata(request: HttpRequest) -> dict[str, Any]:
    if "metadata" in request.POST:
        try:
            metadata = parse_json(request.POST["metadata"], what="metadata")
        except JSONTextError as exc:
            raise _refused(400, str(exc), field="metadata") from None
        if not isinstance(metadata, dict):
            raise _refused(400, "metadata must be a JSON object", field="metadata")
    else:
        metadata = {
            key: request.POST[key] for key in _METADATA_KEYS - {"truth"} if key in request.POST
        }
    unknown = sorted(set(metadata) - _METADATA_KEYS)
    if unknown:
        raise _refused(400, f"unknown metadata field(s): {', '.join(unknown)}", field=unknown[0])
    for key in ("case_id", "site", "modality"):
        if key in metadata and not isinstance(metadata[key], str):
            raise _refused(400, f"{key} must be a string", field=key)
        if "\x00" in metadata.get(key, ""):  # PostgreSQL refuses NUL in text
            raise _refused(400, f"{key} may not contain NUL characters", field=key)
    if not metadata.get("case_id"):
        raise _refused(400, "case_id is required", field="case_id")
    truth = metadata.get("truth") or {}
    if not isinstance(truth, dict) or any(v not in (0, 1, True, False) for v in truth.values()):
        raise _refused(400, "truth must map finding codes to 0 or 1", field="truth")
    metadata["truth"] = {str(code): bool(value) for code, value in truth.items()}
    return metadata


def _uploads(request: HttpRequest) -> list[Upload]:
    unexpected = sorted(set(request.FILES) - {"images"})
    if unexpected:
        raise _refused(
            400, f"unexpected file field(s): {', '.join(unexpected)}", field=unexpected[0]
        )
    files = request.FILES.getlist("images")
    if not files:
        raise _refused(400, "no image files (send them as 'images')", field="images")
    if len(files) > MAX_FILES:
        raise _refused(400, f"at most {MAX_FILES} images per case", field="images")
    uploads = []
    for file in files:
        name = file.name or "image"
        if (file.content_type or "") not in ACCEPTED_TYPES:
            raise _refused(
                400,
                f"{name}: content type {file.content_type} is not accepted (DICOM, PNG or JPEG)",
                where=name,
                field="images",
                file=name,
            )
        if file.size is not None and file.size > MAX_FILE_BYTES:
            raise _refused(
                413, f"{name}: larger than {MAX_FILE_BYTES // 2**20} MiB", where=name, file=name
            )
        uploads.append(Upload(name=name, data=file.read()))
    return uploads


def case_json(case: Case) -> dict[str, Any]:
    return {
        "study": case.study.slug,
        "case_id": case.case_id,
        "site": case.site.code,
        "modality": case.modality,
        "manufacturer": case.manufacturer,
        "manufacturer_model": case.manufacturer_model,
        "arrived_at": case.arrived_at.isoformat(),
        "images": [
            {
                "position": image.position,
                "rows": image.rows,
                "columns": image.columns,
                "sha256": image.sha256,
                "source_sha256": image.source_sha256,
                "source_format": image.source_format,
                "transfer_syntax": image.transfer_syntax,
                "burned_in_annotation": image.burned_in_annotation,
            }
            for image in case.images.order_by("position")
        ],
    }


@csrf_exempt
@require_POST
def arrive_case(request: HttpRequest, slug: str) -> HttpResponse:
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > MAX_REQUEST_BYTES:
        return _error(413, f"request larger than {MAX_REQUEST_BYTES // 2**20} MiB")
    request.upload_handlers = [_MemoryOnlyUploadHandler(request)]
    try:
        caller = _authenticate(request, slug)
    except _RefusedError as refused:
        if refused.study is not None:
            _keep(refused.study, refused.problems, case_id=_case_id_sent(request), via=refused.via)
        return refused.response
    try:
        return _arrive(request, caller)
    except _RefusedError as refused:
        _keep(
            caller.study,
            refused.problems,
            case_id=_case_id_sent(request),
            actor=caller.user,
            via=caller.via,
        )
        return refused.response


def _arrive(request: HttpRequest, caller: _Caller) -> HttpResponse:
    """Store the case the authenticated ``caller`` sends; raise ``_RefusedError`` to refuse it."""
    token_site = caller.token_site
    metadata = _metadata(request)
    site = metadata.get("site") or token_site
    if token_site is not None and site != token_site:
        raise _refused(403, f"this site token may only send cases of site {token_site!r}")
    if not site:
        raise _refused(400, "site is required", field="site")
    uploads = _uploads(request)
    try:
        result = receive_case(
            study=caller.study,
            case_id=metadata["case_id"],
            site_code=site,
            uploads=uploads,
            truth=metadata["truth"],
            modality=(metadata.get("modality") or "").upper() or None,
            actor=caller.user,
            via=caller.via,
        )
    except FrozenStudyError as exc:
        raise _RefusedError(
            _error(409, str(exc), problems=[{"where": caller.study.slug, "reason": str(exc)}]),
            [Problem("", str(exc))],
        ) from None
    except CaseConflictError as exc:
        raise _RefusedError(_error(409, str(exc), problems=_problems(exc)), exc.problems) from None
    except ImportRefusedError as exc:
        raise _RefusedError(_error(400, str(exc), problems=_problems(exc)), exc.problems) from None
    return JsonResponse(case_json(result.case), status=201 if result.created else 200)


def _problems(exc: ImportRefusedError) -> list[dict[str, str]]:
    return [{"where": p.where, "reason": p.reason} for p in exc.problems]


def _case_id_sent(request: HttpRequest) -> str:
    """The case ID the request names, if it is a valid one; "" if none can be read."""
    metadata: Any
    try:
        if "metadata" in request.POST:
            metadata = parse_json(request.POST["metadata"], what="metadata")
        else:
            metadata = request.POST
    except (JSONTextError, MultiPartParserError, SuspiciousOperation, UnreadablePostError):
        return ""
    case_id = metadata.get("case_id") if isinstance(metadata, dict) else None
    return case_id if isinstance(case_id, str) and check_case_id(case_id) is None else ""


def _keep(
    study: Study,
    problems: Sequence[Problem],
    *,
    case_id: str,
    actor: AbstractBaseUser | None = None,
    via: str,
) -> None:
    """Keep the refusal with ``study``, each problem filed under the case and file it names."""
    filed = []
    for problem in problems:
        where = "" if problem.where in (case_id, "case_id") else problem.where
        named = [f"case {case_id}" if case_id else "", where]
        filed.append(Problem(", ".join(n for n in named if n) or "metadata", problem.reason))
    record_refusals(study=study, source=RefusalSource.API, problems=filed, actor=actor, via=via)


urlpatterns = [
    path("studies/<slug:slug>/cases/", arrive_case, name="api-arrive-case"),
]
