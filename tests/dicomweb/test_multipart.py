"""multipart/related parsing as DICOMweb bodies need it (RFC 2046 5.1.1)."""

from __future__ import annotations

import io

import pytest

from studyplatform.studies.dicomweb.multipart import (
    MediaType,
    MultipartError,
    boundary_of,
    parse_parts,
    scan_parts,
)


def test_parts_with_preamble_epilogue_and_headers_are_split_exactly():
    body = (
        b"preamble\r\n--xyz\r\nContent-Type: application/dicom\r\nX-Note: a:b\r\n\r\n"
        b"first\r\n--not-the-boundary\r\n--xyz\r\n\r\nsecond\r\n--xyz--\r\nepilogue"
    )
    parts = parse_parts(body, "xyz")
    assert [p.content for p in parts] == [b"first\r\n--not-the-boundary", b"second"]
    assert parts[0].headers == {"content-type": "application/dicom", "x-note": "a:b"}
    assert parts[0].media_type.type == "application/dicom" and parts[1].media_type.type == ""


def test_a_quoted_boundary_is_unquoted():
    media_type = MediaType.parse('Multipart/Related; type="application/dicom"; boundary="a b"')
    assert media_type.type == "multipart/related"
    assert boundary_of(media_type) == "a b" and media_type.params["type"] == "application/dicom"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"nothing here", "never occurs"),
        (b"--xyz\r\nContent-Type: application/dicom\r\n\r\ntruncated", "not closed"),
        (b"--xyz\r\nno colon here\r\n\r\ndata\r\n--xyz--", "malformed header"),
        (b"--xyzjunk\r\n\r\ndata\r\n--xyz--", "garbage after the boundary"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(body, message):
    with pytest.raises(MultipartError, match=message):
        parse_parts(body, "xyz")


def test_a_boundary_is_required():
    with pytest.raises(MultipartError, match="boundary"):
        boundary_of(MediaType.parse('multipart/related; type="application/dicom"'))


def test_a_boundary_longer_than_rfc_2046_allows_is_accepted_within_reason():
    # Orthanc's DICOMweb plugin sends two UUIDs joined by a dash: 73 characters.
    orthanc = "3157f8b5-6d33-4388-a5f4-a525a357227b-3157f8b5-6d33-4388-a5f4-a525a357227b"
    assert boundary_of(MediaType.parse(f"multipart/related; boundary={orthanc}")) == orthanc
    body = f"--{orthanc}\r\n\r\ndata\r\n--{orthanc}--\r\n".encode()
    assert [part.content for part in parse_parts(body, orthanc)] == [b"data"]
    with pytest.raises(MultipartError, match="1-200 characters"):
        boundary_of(MediaType.parse(f"multipart/related; boundary={'b' * 201}"))


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 1 << 20])
def test_a_body_in_a_file_is_scanned_into_the_same_parts_whatever_the_chunk(chunk_size):
    body = (
        b"preamble\r\n--xyz\r\nContent-Type: application/dicom\r\nX-Note: a:b\r\n\r\n"
        b"first\r\n--not-the-boundary\r\n--xyz \t\r\n\r\nsecond\r\n--xyz--\r\nepilogue"
    )
    parts = scan_parts(io.BytesIO(body), "xyz", chunk_size=chunk_size)
    assert [body[p.start : p.end] for p in parts] == [b"first\r\n--not-the-boundary", b"second"]
    assert parts[0].headers == {"content-type": "application/dicom", "x-note": "a:b"}
    truncated = body[: body.index(b"second") + 3]
    with pytest.raises(MultipartError, match="part 2: not closed"):
        scan_parts(io.BytesIO(truncated), "xyz", chunk_size=chunk_size)


def test_a_header_block_too_long_to_hold_is_refused():
    body = b"--xyz\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\ndata\r\n--xyz--"
    with pytest.raises(MultipartError, match="part 1: headers longer than 65536 bytes"):
        scan_parts(io.BytesIO(body), "xyz")
