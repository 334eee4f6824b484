"""STOW-RS for sites: ``POST /dicomweb/studies`` and ``POST /dicomweb/studies/<uid>``.

A site's PACS or router stores instances as PS3.18 10.5 defines: a ``multipart/related;
type="application/dicom"`` body, one instance per part, authorised by the site token of the
arrival API (``Authorization: Bearer ...``). Instances are grouped by Study Instance UID and each
DICOM study becomes one case (its case ID is the Study Instance UID), through the same service
as the arrival API: de-identified, pre-read and, in a prospective study, randomized.

The answer is the Store Instances Response Module as DICOM JSON (PS3.18 I.2): the instances
stored (or already stored: a repeat is idempotent) in the Referenced SOP Sequence, the others in
the Failed SOP Sequence with a Failure Reason, and one ``Warning`` header per failure saying why.
Status 200 when every instance is stored, 202 when some failed, 409 when none was stored, 400
for a body that is not a well-formed multipart message, 415 for another media type, 401/403 for
a missing, unknown or revoked token, 413 past STOW_MAX_REQUEST_MB, 429 past INTAKE_RATE_LIMIT.

A router sends a whole study in one request (a thin-slice CT: hundreds of MB), so the body is
never held in memory: it is spooled to a temporary file a chunk at a time (removed when the
request ends, whatever happens), its parts are found by a streaming scan and kept as byte ranges
of that file, each instance's header is read from its range, and the case import gets each
instance's bytes only when it comes to it: one instance in memory at a time.

A study's instances go in one request: a study already stored as a case with other instances
is refused (not merged), as the arrival API refuses a case ID taken by other images.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import IO, Any, Final

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from pydicom import dcmread

from studyplatform.studies.dicomweb.instances import has_pixel_data
from studyplatform.studies.dicomweb.multipart import (
    MediaType,
    MultipartError,
    PartRange,
    boundary_of,
    scan_parts,
)
from studyplatform.studies.guards import FrozenStudyError
from studyplatform.studies.importing import Problem, Upload, check_case_id
from studyplatform.studies.models import RefusalSource, SiteToken
from studyplatform.studies.services import (
    CaseConflictError,
    ImportRefusedError,
    authenticate_site_token,
    claim_intake_request,
    receive_case,
)
from studyplatform.studies.services.refusals import record_refusals

CHUNK_BYTES: Final = 1 << 20
DICOM_JSON: Final = "application/dicom+json"
# Failure Reason values (PS3.18 Table I.2-2).
PROCESSING_FAILURE: Final = 0x0110
SOP_CLASS_NOT_SUPPORTED: Final = 0x0122
STUDY_UID_MISMATCH: Final = 0xA900
CANNOT_UNDERSTAND: Final = 0xC000


# PS3.10 7.1: 128-byte preamble and "DICM" before the File Meta Information (group 0002).
_PREAMBLE: Final = bytes(128) + b"DICM"


class _Content(io.RawIOBase):
    """A part's content as a read-only, seekable file: a byte range of the spooled body, with
    the Part 10 preamble put in front when the sender left it out (some start at the meta
    group)."""

    def __init__(self, body: IO[bytes], start: int, end: int) -> None:
        super().__init__()
        self._body, self._start, self._end = body, start, end
        self._position = 0
        head = self._range(0, len(_PREAMBLE))
        missing = head[128:132] != b"DICM" and head[:2] == b"\x02\x00"
        self._prefix = _PREAMBLE if missing else b""

    @property
    def size(self) -> int:
        return len(self._prefix) + self._end - self._start

    def _range(self, offset: int, size: int) -> bytes:
        self._body.seek(self._start + offset)
        return self._body.read(max(0, min(size, self._end - self._start - offset)))

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._position = base + offset
        return self._position

    def read(self, size: int | None = -1, /) -> bytes:
        left = max(0, self.size - self._position)
        wanted = left if size is None or size < 0 else min(size, left)
        chunk = b""
        if self._position < len(self._prefix):
            chunk = self._prefix[self._position : self._position + wanted]
        chunk += self._range(self._position + len(chunk) - len(self._prefix), wanted - len(chunk))
        self._position += len(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def data(self) -> bytes:
        """The whole content (the instance's Part 10 bytes)."""
        return self._prefix + self._range(0, self._end - self._start)

    def sha256(self) -> str:
        digest = hashlib.sha256(self._prefix)
        for offset in range(0, self._end - self._start, CHUNK_BYTES):
            digest.update(self._range(offset, CHUNK_BYTES))
        return digest.hexdigest()


@dataclass
class _Instance:
    """One received part: where it was, its UIDs (when readable), where its bytes are (a range
    of the spooled body, read when needed), its outcome."""

    number: int
    content: _Content = field(repr=False)
    study_uid: str = ""
    sop_class: str = ""
    sop_uid: str = ""
    failure: int | None = None
    reason: str = ""

    @property
    def name(self) -> str:
        return f"part {self.number}" + (f" (instance {self.sop_uid})" if self.sop_uid else "")

    def fail(self, code: int, reason: str) -> None:
        self.failure, self.reason = code, reason

    @cached_property
    def sha256(self) -> str:
        return self.content.sha256()


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _site_token(request: HttpRequest) -> SiteToken | HttpResponse:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        response = _error(401, "send the site token as 'Authorization: Bearer <token>'")
        response["WWW-Authenticate"] = 'Bearer realm="studyplatform"'
        return response
    site_token = authenticate_site_token(token.strip())
    if site_token is None:
        response = _error(401, "unknown or revoked site token")
        response["WWW-Authenticate"] = 'Bearer realm="studyplatform", error="invalid_token"'
        return response
    wait = claim_intake_request(site_token=site_token)
    if wait:
        limited = _error(
            429,
            f"more than {settings.INTAKE_RATE_LIMIT} requests a minute from this site token; "
            f"try again in {wait} s",
        )
        limited["Retry-After"] = str(wait)
        return limited
    return site_token


def _spool(request: HttpRequest, file: IO[bytes]) -> bool:
    """Write the request body to ``file`` a chunk at a time; False past STOW_MAX_REQUEST_SIZE
    (declared, or counted while reading: never read beyond it)."""
    limit = settings.STOW_MAX_REQUEST_SIZE
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > limit:
        return False
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    # Django reads CONTENT_LENGTH bytes; a chunked body (the server has de-chunked it) has none.
    stream: Any = request.META["wsgi.input"] if chunked else request
    size = 0
    while chunk := stream.read(CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            return False
        file.write(chunk)
    file.flush()
    return True


def _read_instance(
    number: int, part: PartRange, body: IO[bytes], target_uid: str | None
) -> _Instance:
    instance = _Instance(number=number, content=_Content(body, part.start, part.end))
    part_type = part.media_type.type
    if part_type not in ("", "application/dicom"):
        instance.fail(CANNOT_UNDERSTAND, f"{instance.name}: {part_type} is not application/dicom")
        return instance
    try:
        instance.content.seek(0)
        ds = dcmread(instance.content, stop_before_pixels=True)
        instance.study_uid = str(ds.get("StudyInstanceUID", "")).strip()
        instance.sop_class = str(ds.get("SOPClassUID", "")).strip()
        instance.sop_uid = str(ds.get("SOPInstanceUID", "")).strip()
    except Exception as exc:  # a malformed part fails alone, whatever the parser raised
        instance.fail(CANNOT_UNDERSTAND, f"{instance.name}: not a readable DICOM instance ({exc})")
        return instance
    if not (instance.study_uid and instance.sop_class and instance.sop_uid):
        instance.fail(CANNOT_UNDERSTAND, f"{instance.name}: lacks a study, SOP class or SOP UID")
    elif target_uid is not None and instance.study_uid != target_uid:
        instance.fail(STUDY_UID_MISMATCH, f"{instance.name}: belongs to study {instance.study_uid}")
    elif reason := check_case_id(instance.study_uid):
        instance.fail(CANNOT_UNDERSTAND, f"{instance.name}: Study Instance UID {reason}")
    return instance


def _uploads(instances: list[_Instance]) -> Iterator[Upload]:
    """Each instance's bytes, read from the spooled body when the case import comes to it."""
    for instance in instances:
        yield Upload(name=instance.name, data=instance.content.data())


def _store_study(site_token: SiteToken, study_uid: str, instances: list[_Instance]) -> None:
    """Store one DICOM study as a case; on refusal, mark its instances failed with the reason."""
    try:
        receive_case(
            study=site_token.study,
            case_id=study_uid,
            site_code=site_token.site.code,
            # Consumed once, one instance at a time (import_case holds no list of them).
            uploads=_uploads(instances),
            via=f"STOW-RS site token {site_token.pk}",
        )
    except FrozenStudyError as exc:
        for instance in instances:
            instance.fail(PROCESSING_FAILURE, f"{instance.name}: {exc}")
    except CaseConflictError as exc:
        for instance in instances:
            instance.fail(
                PROCESSING_FAILURE,
                f"{instance.name}: {exc} (send all of a study's instances in one request)",
            )
    except ImportRefusedError as exc:
        reasons = {p.where: p.reason for p in exc.problems}
        for instance in instances:
            if instance.name in reasons:
                instance.fail(CANNOT_UNDERSTAND, f"{instance.name}: {reasons[instance.name]}")
            else:
                instance.fail(
                    PROCESSING_FAILURE, f"{instance.name}: not stored, its study was refused"
                )


def _store(site_token: SiteToken, instances: list[_Instance]) -> None:
    """Group the readable instances by study and store each study as a case."""
    studies: dict[str, list[_Instance]] = defaultdict(list)
    first_of: dict[str, _Instance] = {}
    repeats: list[tuple[_Instance, _Instance]] = []
    for instance in instances:
        if instance.failure is not None:
            continue
        first = first_of.setdefault(instance.sop_uid, instance)
        if first is instance:
            studies[instance.study_uid].append(instance)
        elif first.content.size == instance.content.size and first.sha256 == instance.sha256:
            repeats.append((instance, first))  # the same instance twice: one image
        else:
            instance.fail(PROCESSING_FAILURE, f"{instance.name}: sent twice, with other content")
    for uid, members in studies.items():
        for instance in members:
            if not has_pixel_data(instance.content):
                instance.fail(SOP_CLASS_NOT_SUPPORTED, f"{instance.name}: no pixel data")
        with_pixels = [i for i in members if i.failure is None]
        if with_pixels:
            _store_study(site_token, uid, with_pixels)
    for repeat, first in repeats:
        repeat.failure, repeat.reason = first.failure, first.reason


def _item(instance: _Instance) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if instance.sop_class:
        item["00081150"] = {"vr": "UI", "Value": [instance.sop_class]}
    if instance.sop_uid:
        item["00081155"] = {"vr": "UI", "Value": [instance.sop_uid]}
    if instance.failure is not None:
        item["00081197"] = {"vr": "US", "Value": [instance.failure]}
    return item


def _answer(instances: list[_Instance]) -> HttpResponse:
    stored = [i for i in instances if i.failure is None]
    failed = [i for i in instances if i.failure is not None]
    module: dict[str, Any] = {}
    if stored:
        module["00081199"] = {"vr": "SQ", "Value": [_item(i) for i in stored]}
    if failed:
        module["00081198"] = {"vr": "SQ", "Value": [_item(i) for i in failed]}
    status = 200 if not failed else (202 if stored else 409)
    response = JsonResponse(module, status=status, content_type=DICOM_JSON)
    if failed:
        # One warning per failure (RFC 7234 5.5), in ASCII: header values carry nothing else.
        texts = [i.reason.replace('"', "'").encode("ascii", "replace").decode() for i in failed]
        response["Warning"] = ", ".join(f'299 - "{text[:300]}"' for text in texts)
    return response


@csrf_exempt  # token clients only: a site token is not a cookie
@require_POST
def store_instances(request: HttpRequest, study_uid: str | None = None) -> HttpResponse:
    site_token = _site_token(request)
    if isinstance(site_token, HttpResponse):
        return site_token
    media_type = MediaType.parse(request.META.get("CONTENT_TYPE", ""))
    if media_type.type != "multipart/related" or (
        media_type.params.get("type", "").lower() != "application/dicom"
    ):
        return _error(
            415, 'send multipart/related; type="application/dicom" (one instance per part)'
        )
    with tempfile.NamedTemporaryFile(
        prefix="studyplatform-stow-", dir=settings.FILE_UPLOAD_TEMP_DIR
    ) as body:
        if not _spool(request, body):
            return _error(413, f"request larger than {settings.STOW_MAX_REQUEST_SIZE // 2**20} MiB")
        try:
            parts = scan_parts(body, boundary_of(media_type), chunk_size=CHUNK_BYTES)
        except MultipartError as exc:
            return _error(400, f"not a well-formed multipart/related body: {exc}")
        if not parts:
            return _error(400, "the request holds no instance")
        instances = [
            _read_instance(n, part, body, study_uid) for n, part in enumerate(parts, start=1)
        ]
        _store(site_token, instances)
    record_refusals(
        study=site_token.study,
        source=RefusalSource.STOW,
        # Keyed by the instance's UID when it could be read (a resend may number parts anew).
        problems=[
            Problem(i.sop_uid or i.name, i.reason.removeprefix(f"{i.name}: "))
            for i in instances
            if i.failure is not None
        ],
        via=f"STOW-RS site token {site_token.pk}",
    )
    return _answer(instances)


urlpatterns = [
    path("studies", store_instances, name="stow-rs"),
    path("studies/<str:study_uid>", store_instances, name="stow-rs-study"),
]
