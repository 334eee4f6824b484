"""Serving stored files after a permission check, and refusing oversized or unexpected uploads.

Media files are never served by URL alone: a view checks that the user may see the object, then
answers with ``serve_protected_file(field_file)``. The helper refuses any stored name that
resolves outside MEDIA_ROOT (``..``, absolute paths, symbolic links leading out) and marks the
answer private and not cacheable, so a shared cache or the browser's back button cannot show it
to someone else::

    def image(request, image_id):
        image = selectors.image_for_reader(request.user, image_id)   # 404/403 when not allowed
        return serve_protected_file(image.display)

Uploads: ``check_upload(uploaded, allowed_suffixes={".csv"})`` raises ValidationError naming
the file when it is larger than MAX_UPLOAD_SIZE or has another suffix.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404
from django.template.defaultfilters import filesizeformat


def resolve_media_path(name: str) -> Path:
    """The file under MEDIA_ROOT that ``name`` names; Http404 for anything outside it."""
    root = Path(settings.MEDIA_ROOT).resolve()
    if not name or "\x00" in name:
        raise Http404("no such file")
    candidate = (root / name).resolve()
    if not candidate.is_relative_to(root) or candidate == root:
        raise Http404("no such file")
    if not candidate.is_file():
        raise Http404("no such file")
    return candidate


def serve_protected_file(
    field_file: FieldFile | str,
    *,
    as_attachment: bool = False,
    filename: str | None = None,
    content_type: str | None = None,
) -> FileResponse:
    """Stream a stored file; call it only after checking the user may see its object."""
    name = field_file if isinstance(field_file, str) else field_file.name
    path = resolve_media_path(name or "")
    response = FileResponse(
        path.open("rb"),
        as_attachment=as_attachment,
        filename=filename or path.name,
        content_type=content_type,
    )
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _size(n: int) -> str:
    return str(filesizeformat(n)).replace("\xa0", " ")


def check_upload(
    uploaded: UploadedFile[bytes], *, allowed_suffixes: set[str], max_bytes: int | None = None
) -> None:
    """Refuse an uploaded file that is too large or of a type the view does not take."""
    limit = settings.MAX_UPLOAD_SIZE if max_bytes is None else max_bytes
    name = uploaded.name or "the uploaded file"
    if uploaded.size is not None and uploaded.size > limit:
        raise ValidationError(f"{name} is {_size(uploaded.size)}; the limit is {_size(limit)}")
    suffix = Path(name).suffix.lower()
    if suffix not in {s.lower() for s in allowed_suffixes}:
        allowed = ", ".join(sorted(allowed_suffixes))
        raise ValidationError(f"{name} is not an accepted file type (accepted: {allowed})")
