"""``multipart/related`` messages (RFC 2387) as DICOMweb uses them (PS3.18 8.6.1.2).

WADO-RS answers and STOW-RS requests carry DICOM instances as the parts of one
``multipart/related`` body. A WADO-RS answer (one instance) is parsed from the bytes received; a
STOW-RS request, spooled to a file, is scanned a chunk at a time, each part's content left in the
file as a byte range. A malformed message is a :class:`MultipartError` that says what is wrong.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from email.message import Message
from typing import IO, Final

_CRLF: Final = b"\r\n"
# RFC 2046 5.1.1 allows 1 to 70 characters, but routers send more: Orthanc's DICOMweb plugin
# (1.7) joins two UUIDs, 73 characters. Longer than this is refused all the same.
MAX_BOUNDARY: Final = 200


class MultipartError(ValueError):
    """A body that is not a well-formed ``multipart/related`` message."""


@dataclass(frozen=True)
class MediaType:
    """A Content-Type value: the type in lower case and its parameters (names in lower case)."""

    type: str
    params: dict[str, str]

    @classmethod
    def parse(cls, value: str) -> MediaType:
        message = Message()
        message["Content-Type"] = value
        params = {str(k).lower(): str(v) for k, v in message.get_params(failobj=[])[1:]}
        return cls(message.get_content_type().lower() if value.strip() else "", params)


@dataclass(frozen=True)
class Part:
    """One part: its headers (names in lower case) and its content."""

    headers: dict[str, str]
    content: bytes

    @property
    def media_type(self) -> MediaType:
        return MediaType.parse(self.headers.get("content-type", ""))


def boundary_of(media_type: MediaType) -> str:
    """The boundary of a ``multipart/related`` media type, refused when absent or too long."""
    if media_type.type != "multipart/related":
        raise MultipartError(f"expected multipart/related, got {media_type.type or 'no type'}")
    boundary = media_type.params.get("boundary", "")
    if not boundary or len(boundary) > MAX_BOUNDARY:
        raise MultipartError(
            f"multipart/related needs a boundary parameter of 1-{MAX_BOUNDARY} characters"
        )
    return boundary


def _headers(block: bytes, number: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.split(_CRLF):
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            raise MultipartError(f"part {number}: malformed header line {line[:80]!r}")
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    return headers


@dataclass(frozen=True)
class PartRange:
    """One part of a body kept in a file: its headers and where its content lies (``start`` to
    ``end``, end excluded)."""

    headers: dict[str, str]
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def media_type(self) -> MediaType:
        return MediaType.parse(self.headers.get("content-type", ""))


class _Scanner:
    """Searches a seekable binary file a chunk at a time (never more than a chunk held)."""

    def __init__(self, file: IO[bytes], chunk_size: int) -> None:
        self.file = file
        self.chunk_size = chunk_size
        file.seek(0, io.SEEK_END)
        self.length = file.tell()

    def read(self, start: int, size: int) -> bytes:
        self.file.seek(start)
        return self.file.read(max(size, 0))

    def startswith(self, prefix: bytes, position: int) -> bool:
        return self.read(position, len(prefix)) == prefix

    def find(self, needle: bytes, start: int, stop: int | None = None) -> int:
        """Where ``needle`` first begins at or after ``start`` (and before ``stop``), or -1."""
        stop = self.length if stop is None else min(stop, self.length)
        overlap = len(needle) - 1
        position = start
        while position < stop:
            window = self.read(position, min(self.chunk_size + overlap, stop + overlap - position))
            found = window.find(needle)
            if found >= 0 and position + found < stop:
                return position + found
            if len(window) <= overlap:
                break
            position += len(window) - overlap
        return -1

    def end_of_line(self, position: int) -> int:
        """Where the CRLF after ``position`` begins, or -1 when something but spaces and tabs
        comes first (or the file ends)."""
        while position < self.length:
            window = self.read(position, self.chunk_size)
            stripped = window.lstrip(b" \t")
            if stripped:
                at = position + len(window) - len(stripped)
                return at if self.startswith(_CRLF, at) else -1
            position += len(window)
        return -1


def scan_parts(
    file: IO[bytes], boundary: str, *, chunk_size: int = 1 << 20, max_header_bytes: int = 1 << 16
) -> list[PartRange]:
    """Find the parts of a ``multipart/related`` body kept in a seekable file, without loading it.

    The body is ``--boundary`` CRLF, then per part header lines, an empty line and the content,
    each part closed by CRLF ``--boundary``, and the last by CRLF ``--boundary--`` (RFC 2046
    5.1.1). A preamble before the first delimiter and an epilogue after the last are ignored.
    The file is read a chunk at a time; only a part's header block (at most
    ``max_header_bytes``) is held, and each part's content is a byte range of the file.
    """
    body = _Scanner(file, chunk_size)
    marker = b"--" + boundary.encode("latin-1")
    delimiter = _CRLF + marker
    if body.startswith(marker, 0):
        start = 0
    else:
        found = body.find(delimiter, 0)
        if found < 0:
            raise MultipartError("no part: the boundary never occurs in the body")
        start = found + len(_CRLF)
    position = start + len(marker)
    parts: list[PartRange] = []
    while True:
        if body.startswith(b"--", position):
            break  # the close delimiter
        number = len(parts) + 1
        end_of_line = body.end_of_line(position)
        if end_of_line < 0:
            raise MultipartError(f"part {number}: garbage after the boundary")
        next_delimiter = body.find(delimiter, end_of_line)
        if next_delimiter < 0:
            raise MultipartError(f"part {number}: not closed by a boundary (truncated?)")
        # The empty line that ends the headers must begin before the next delimiter.
        header_end = body.find(_CRLF + _CRLF, end_of_line, next_delimiter)
        if body.startswith(_CRLF, end_of_line + len(_CRLF)):
            header_block, content_start = b"", end_of_line + 2 * len(_CRLF)
        elif header_end >= 0:
            if header_end - end_of_line > max_header_bytes:
                raise MultipartError(f"part {number}: headers longer than {max_header_bytes} bytes")
            header_start = end_of_line + len(_CRLF)
            header_block = body.read(header_start, header_end - header_start)
            content_start = header_end + 2 * len(_CRLF)
        else:
            raise MultipartError(f"part {number}: headers not ended by an empty line")
        # An empty part may end where its headers' empty line overlaps the delimiter's CRLF.
        parts.append(
            PartRange(
                _headers(header_block, number), content_start, max(content_start, next_delimiter)
            )
        )
        position = next_delimiter + len(delimiter)
    return parts


def parse_parts(body: bytes, boundary: str) -> list[Part]:
    """Split a ``multipart/related`` body held in memory into its parts (see :func:`scan_parts`)."""
    return [
        Part(part.headers, body[part.start : part.end])
        for part in scan_parts(io.BytesIO(body), boundary)
    ]
