"""A client of one DICOMweb archive: QIDO-RS searches (paged) and WADO-RS instance retrieval.

Searches go through ``dicomweb-client``. Instances are retrieved one per request and kept as the
bytes the archive sent (never re-encoded), so that their digest identifies them across runs; a
response larger than ``max_bytes`` is refused while it streams in, before it is held whole.
Every failure is an :class:`ArchiveError` whose message names the URL, study, series or instance.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from studyplatform.studies.dicomweb.multipart import (
    MediaType,
    MultipartError,
    boundary_of,
    parse_parts,
)

PAGE_SIZE: Final = 100
# Any transfer syntax: the archive sends what it stores, the import decodes it (PS3.18 8.7.3.5.2).
_ACCEPT_DICOM: Final = 'multipart/related; type="application/dicom"; transfer-syntax=*'
_STUDY_FIELDS: Final = (
    "StudyInstanceUID",
    "AccessionNumber",
    "PatientID",
    "StudyDate",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedInstances",
)
_INSTANCE_FIELDS: Final = ("SeriesInstanceUID", "SeriesNumber", "InstanceNumber", "SOPClassUID")


class ArchiveError(Exception):
    """The archive refused a request or answered something unusable."""


class ArchiveUnreachableError(ArchiveError):
    """The archive did not answer (connection refused, lost, or timed out)."""


@dataclass(frozen=True)
class StudyRecord:
    """A study as QIDO-RS describes it (only what the import needs)."""

    uid: str
    accession: str
    patient_id: str
    modalities: tuple[str, ...]
    instances: int | None


@dataclass(frozen=True)
class InstanceRecord:
    """An instance of a study as QIDO-RS lists it."""

    study_uid: str
    series_uid: str
    sop_uid: str
    series_number: int | None
    instance_number: int | None

    @property
    def where(self) -> str:
        return f"study {self.study_uid} series {self.series_uid} instance {self.sop_uid}"

    @property
    def order(self) -> tuple[int, str, int, str]:
        """The order of a study's images: series number and UID, instance number and UID."""
        return (
            self.series_number if self.series_number is not None else 2**31,
            self.series_uid,
            self.instance_number if self.instance_number is not None else 2**31,
            self.sop_uid,
        )


def _value(record: Mapping[str, Any], tag: str) -> list[Any]:
    element = record.get(tag) or {}
    value = element.get("Value") if isinstance(element, dict) else None
    return value if isinstance(value, list) else []


def _text(record: Mapping[str, Any], tag: str) -> str:
    values = _value(record, tag)
    return str(values[0]).strip() if values else ""


def _number(record: Mapping[str, Any], tag: str) -> int | None:
    values = _value(record, tag)
    try:
        return int(values[0]) if values else None
    except (TypeError, ValueError):
        return None


def _session(*, username: str, password: str, token: str) -> requests.Session:
    if token and (username or password):
        raise ArchiveError(
            "set either DICOMWEB_TOKEN or DICOMWEB_USERNAME/DICOMWEB_PASSWORD, not both"
        )
    if bool(username) != bool(password):
        raise ArchiveError("DICOMWEB_USERNAME and DICOMWEB_PASSWORD must be set together")
    session = requests.Session()
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    elif username:
        session.auth = (username, password)
    return session


class Archive:
    """One DICOMweb service at ``url`` (the root of its studies resource, PS3.18 8.2)."""

    def __init__(
        self,
        url: str,
        *,
        username: str = "",
        password: str = "",
        token: str = "",
        timeout: float = 60,
        page_size: int = PAGE_SIZE,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ArchiveError(f"archive URL {url!r} must start with http:// or https://")
        if "@" in urlsplit(url).netloc:
            # The URL is printed and audited: credentials belong in the environment.
            raise ArchiveError(
                "put the archive's credentials in DICOMWEB_USERNAME/DICOMWEB_PASSWORD, "
                "not in the URL"
            )
        self.url = url.rstrip("/")
        self.page_size = page_size
        self._timeout = timeout
        self._session = _session(username=username, password=password, token=token)
        self._client = DICOMwebClient(self.url, session=self._session, timeout=timeout)
        # Busy archives answer 429/503: retried a few times, then reported.
        self._client.set_http_retry_params(max_attempts=3, wait_exponential_multiplier=500)

    def close(self) -> None:
        self._session.close()

    def _failure(self, exc: Exception, what: str) -> ArchiveError:
        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            status = exc.response.status_code
            reason = {401: "not authorized (check DICOMWEB_* credentials)", 403: "forbidden"}
            detail = reason.get(status, exc.response.reason or "")
            return ArchiveError(f"{what}: the archive at {self.url} answered {status} {detail}")
        if isinstance(exc, requests.ConnectionError | requests.Timeout):
            return ArchiveUnreachableError(
                f"{what}: cannot reach the archive at {self.url} ({type(exc).__name__})"
            )
        return ArchiveError(f"{what}: {type(exc).__name__}: {exc}")

    def _pages(self, search: Any, what: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        offset = 0
        previous: list[Any] = []
        while True:
            try:
                page = search(limit=self.page_size, offset=offset, **kwargs)
            except (requests.RequestException, ValueError) as exc:
                raise self._failure(exc, what) from exc
            if not isinstance(page, list):
                raise ArchiveError(
                    f"{what}: the archive answered {type(page).__name__}, not a list"
                )
            # An archive may cap a page below the limit asked for: only an empty page ends it.
            if not page:
                return
            if page == previous:
                raise ArchiveError(f"{what}: the archive ignores the offset of a paged search")
            yield from (item for item in page if isinstance(item, dict))
            previous = page
            offset += len(page)

    def search_studies(self, filters: Mapping[str, str]) -> Iterator[StudyRecord]:
        """The studies matching ``filters`` (QIDO-RS attribute keywords), page by page."""
        for record in self._pages(
            self._client.search_for_studies,
            f"searching studies {dict(filters)}",
            search_filters=dict(filters),
            fields=list(_STUDY_FIELDS),
        ):
            uid = _text(record, "0020000D")
            if uid:
                yield StudyRecord(
                    uid=uid,
                    accession=_text(record, "00080050"),
                    patient_id=_text(record, "00100020"),
                    modalities=tuple(str(m) for m in _value(record, "00080061")),
                    instances=_number(record, "00201208"),
                )

    def instances(self, study_uid: str) -> list[InstanceRecord]:
        """The study's instances in image order (series, then instance number)."""
        found = [
            InstanceRecord(
                study_uid=study_uid,
                series_uid=_text(record, "0020000E"),
                sop_uid=_text(record, "00080018"),
                series_number=_number(record, "00200011"),
                instance_number=_number(record, "00200013"),
            )
            for record in self._pages(
                self._client.search_for_instances,
                f"listing the instances of study {study_uid}",
                study_instance_uid=study_uid,
                fields=list(_INSTANCE_FIELDS),
            )
        ]
        unnamed = [i for i in found if not i.series_uid or not i.sop_uid]
        if unnamed:
            raise ArchiveError(
                f"study {study_uid}: the archive listed {len(unnamed)} instance(s) without a "
                "series or SOP instance UID"
            )
        return sorted({i.sop_uid: i for i in found}.values(), key=lambda i: i.order)

    def retrieve(self, instance: InstanceRecord, *, max_bytes: int) -> bytes:
        """The instance's bytes as the archive sends them (WADO-RS Retrieve Instance)."""
        url = (
            f"{self.url}/studies/{instance.study_uid}/series/{instance.series_uid}"
            f"/instances/{instance.sop_uid}"
        )
        what = f"retrieving {instance.where}"
        try:
            with self._session.get(
                url, headers={"Accept": _ACCEPT_DICOM}, stream=True, timeout=self._timeout
            ) as response:
                response.raise_for_status()
                body = bytearray()
                for chunk in response.iter_content(chunk_size=1 << 20):
                    body += chunk
                    if len(body) > max_bytes:
                        raise ArchiveError(
                            f"{what}: larger than {max_bytes // 2**20} MiB (MAX_UPLOAD_MB)"
                        )
                content_type = response.headers.get("Content-Type", "")
        except requests.RequestException as exc:
            raise self._failure(exc, what) from exc
        media_type = MediaType.parse(content_type)
        if media_type.type == "application/dicom":
            return bytes(body)  # some archives send a lone instance unwrapped
        try:
            parts = parse_parts(bytes(body), boundary_of(media_type))
        except MultipartError as exc:
            raise ArchiveError(f"{what}: malformed answer ({exc})") from exc
        if len(parts) != 1:
            raise ArchiveError(f"{what}: the archive sent {len(parts)} parts, expected 1")
        return parts[0].content

    def store(self, study_uid: str, instances: Sequence[Dataset]) -> int:
        """Store ``instances`` of one study (STOW-RS, one request); the number stored.

        An answer that lists failed instances is an :class:`ArchiveError` naming them and the
        archive's reason code; an instance stored again is stored again (archives overwrite or
        keep the same SOP Instance UID), so sending twice is safe.
        """
        what = f"storing {len(instances)} instance(s) of study {study_uid}"
        try:
            answer = self._client.store_instances(list(instances), study_instance_uid=study_uid)
        except (requests.RequestException, ValueError) as exc:
            raise self._failure(exc, what) from exc
        failed = answer.get("FailedSOPSequence", []) if answer is not None else []
        if failed:
            reasons = ", ".join(
                f"{item.get('ReferencedSOPInstanceUID', '?')} "
                f"(reason {item.get('FailureReason', '?')})"
                for item in failed
            )
            raise ArchiveError(f"{what}: the archive at {self.url} refused {reasons}")
        return len(instances)
