"""``multipart/related`` messages (RFC 2387) as DICOMweb uses them (PS3.18 8.6.1.2).

WADO-RS answers and STOW-RS requests carry DICOM instances as the parts of one
``multipart/related`` body. Parsing works on bytes already received (one instance for a WADO-RS
answer, one request for STOW-RS); a malformed message is a :class:`MultipartError` that says what
is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from typing import Final

_CRLF: Final = b"\r\n"


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
    if not boundary or len(boundary) > 70:  # RFC 2046 5.1.1: 1 to 70 characters
        raise MultipartError("multipart/related needs a boundary parameter of 1-70 characters")
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


def parse_parts(body: bytes, boundary: str) -> list[Part]:
    """Split a ``multipart/related`` body into its parts.

    The body is ``--boundary`` CRLF, then per part header lines, an empty line and the content,
    each part closed by CRLF ``--boundary``, and the last by CRLF ``--boundary--`` (RFC 2046
    5.1.1). A preamble before the first delimiter and an epilogue after the last are ignored.
    """
    marker = b"--" + boundary.encode("latin-1")
    delimiter = _CRLF + marker
    if body.startswith(marker):
        start = 0
    else:
        found = body.find(delimiter)
        if found < 0:
            raise MultipartError("no part: the boundary never occurs in the body")
        start = found + len(_CRLF)
    position = start + len(marker)
    parts: list[Part] = []
    while True:
        if body.startswith(b"--", position):
            break  # the close delimiter
        end_of_line = body.find(_CRLF, position)
        if end_of_line < 0 or body[position:end_of_line].strip(b" \t"):
            raise MultipartError(f"part {len(parts) + 1}: garbage after the boundary")
        header_end = body.find(_CRLF + _CRLF, end_of_line)
        next_delimiter = body.find(delimiter, end_of_line)
        if next_delimiter < 0:
            raise MultipartError(f"part {len(parts) + 1}: not closed by a boundary (truncated?)")
        if body.startswith(_CRLF, end_of_line + len(_CRLF)):
            header_block, content_start = b"", end_of_line + 2 * len(_CRLF)
        elif 0 <= header_end < next_delimiter:
            header_block = body[end_of_line + len(_CRLF) : header_end]
            content_start = header_end + 2 * len(_CRLF)
        else:
            raise MultipartError(f"part {len(parts) + 1}: headers not ended by an empty line")
        number = len(parts) + 1
        parts.append(Part(_headers(header_block, number), body[content_start:next_delimiter]))
        position = next_delimiter + len(delimiter)
    return parts
