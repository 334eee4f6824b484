"""De-identification of DICOM headers to the PS3.15 Annex E Basic Application Level
Confidentiality Profile, in memory, before anything is stored.

The attribute table (which element is removed, emptied, replaced or given a new UID) is the
standard's Table E.1-1 as published by the maintained ``dicom-anonymizer`` package; this module
fixes what that package leaves open for a trial:

- UIDs are replaced deterministically from a per-study secret salt, so the same file always
  yields the same de-identified file (re-imports are recognisable) and instances of one patient
  stay grouped, yet the original UIDs cannot be recovered without the salt;
- PatientID and PatientName become the study's case ID (the trial's pseudonym);
- the rules are applied inside every sequence item as well, at any depth, not only at the top
  level;
- whole groups are removed wherever they occur: private groups (with their creators), overlays
  (60xx: data, description, label), curves (50xx) and the other retired groups that carry free
  text or pixels (1000, 1010, 4000, 4008, 7Fxx other than Pixel Data);
- the file meta information is rebuilt from scratch with only the required elements (no Source
  or Sending AE Title, no Private Information), and the file preamble is zeroed;
- the result is checked: any identifying value seen before de-identification (names, IDs, birth
  date) that is still present afterwards stops the file (:class:`DeidentificationError`).

Burned-in annotation cannot be removed from the header: it is reported (``burned_in_annotation``)
for the coordinator to review. No Django import: the import service and tests share it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from dicomanonymizer import simpledicomanonymizer as annex_e
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_ROOT_UID, UID, generate_uid
from pydicom.valuerep import PersonName

#: The edition of Table E.1-1 applied; recorded in each file's DeidentificationMethod.
TABLE_EDITION: Final = "dicomfields_2026c"
# DeidentificationMethod is LO (64 characters per value), so the record takes two values.
METHOD: Final = ("DICOM PS3.15 E.1 Basic Profile", "Table E.1-1 2026c, dicom-anonymizer 2.1.0")
_BASIC_PROFILE_CODE: Final = ("113100", "DCM", "Basic Application Confidentiality Profile")

#: Written into every de-identified file's meta information: the files this platform wrote.
#: (generate_uid(PYDICOM_ROOT_UID, entropy_srcs=["studyplatform", "implementation class"]))
IMPLEMENTATION_CLASS_UID: Final = UID(
    "1.2.826.0.1.3680043.8.498.67534600336952199966391938929502209198"
)
IMPLEMENTATION_VERSION_NAME: Final = "STUDYPLATFORM010"  # SH, at most 16 characters

# Groups removed whole, wherever they occur: command (0000) and meta (0002) elements have no
# place in a data set; 1000 (escape triplets), 1010 (zonal map), 4000 (text), 4008 (results:
# interpretations, physicians' names) are retired groups of free text; 7F00-7F1E are retired
# variable pixel data. Overlays, curves and private groups are recognised by their ranges.
_REMOVED_GROUPS: Final = frozenset({0x0000, 0x0002, 0x1000, 0x1010, 0x4000, 0x4008})

# Value representations that carry free text or names, where leftovers are searched for.
_TEXT_VRS: Final = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "DA", "DT"})
# Coded strings holding only the standard's Defined Terms for the kind of image, which a word of
# a real patient's name can equal (a patient named "Perfusion^..." in the NEMA enhanced CT sample
# has ImageType DERIVED\PRIMARY\PERFUSION): not searched, so such a file is not refused.
_IMAGE_TYPE_TERMS: Final = frozenset({"ImageType", "FrameType"})
_IDENTIFYING: Final = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "PatientBirthDate",
    "PatientBirthName",
    "PatientMotherBirthName",
    "AccessionNumber",
    "ReferringPhysicianName",
    "PatientAddress",
    "IssuerOfPatientID",
)

Action = Callable[[Dataset, Any], None]


class DeidentificationError(ValueError):
    """The file cannot be de-identified safely; it must not be stored."""


@dataclass(frozen=True)
class DeidResult:
    """What the import records about a de-identified file (nothing identifying)."""

    burned_in_annotation: str  # "YES", "NO" or "" when the header does not say
    removed_private: bool


@cache
def _table() -> dict[tuple[int, ...], Action]:
    rules: dict[tuple[int, ...], Action] = annex_e.initialize_actions(TABLE_EDITION)
    return rules


def _uid_action(salt: str) -> Action:
    def replace_uid(dataset: Dataset, tag: Any) -> None:
        element = dataset.get(tag)
        if element is None or element.VR != "UI" or not element.value:
            return
        values = element.value if element.VM > 1 else [element.value]
        new = [generate_uid(PYDICOM_ROOT_UID, entropy_srcs=[salt, str(v)]) for v in values]
        element.value = new if element.VM > 1 else new[0]

    return replace_uid


def _remove(dataset: Dataset, tag: Any) -> None:
    if tag in dataset:
        del dataset[tag]


def _set_value(value: str) -> Action:
    def set_value(dataset: Dataset, tag: Any) -> None:
        if tag in dataset:
            dataset[tag].value = value

    return set_value


def _safe(action: Action) -> Action:
    """The package raises for value representations it has no dummy for; removing is stricter."""

    def apply(dataset: Dataset, tag: Any) -> None:
        try:
            action(dataset, tag)
        except NotImplementedError:
            _remove(dataset, tag)

    return apply


def _rules(*, pseudonym: str, salt: str) -> dict[tuple[int, ...], Action]:
    table = annex_e.dicom_anonymization_database_selector(TABLE_EDITION)
    rules = {tag: _safe(action) for tag, action in _table().items()}
    replace_uid = _uid_action(salt)
    for tag in table["U_TAGS"]:
        rules[tag] = replace_uid
    # X/Z/U*: the referencing sequences (source images, referenced images) are removed (X).
    for tag in table["X_Z_U_STAR_TAGS"]:
        rules[tag] = _remove
    rules[(0x0010, 0x0010)] = _set_value(pseudonym)  # PatientName
    rules[(0x0010, 0x0020)] = _set_value(pseudonym)  # PatientID
    return rules


def _items(dataset: Dataset) -> Iterator[Dataset]:
    """Every nested sequence item, deepest first, so that parents are handled after children."""
    for element in list(dataset):
        if element.VR == "SQ" and isinstance(element.value, Sequence):
            for item in element.value:
                yield from _items(item)
                yield item


def _removed_group(group: int) -> bool:
    return (
        group % 2 == 1  # private: values and their private creators alike
        or group in _REMOVED_GROUPS
        or 0x5000 <= group <= 0x501E  # curves (retired)
        or 0x6000 <= group <= 0x601E  # overlays: data, description, label, comments
        or 0x7F00 <= group <= 0x7F1E  # variable pixel data (retired); 7FE0 is kept
    )


def _remove_groups(dataset: Dataset) -> None:
    for tag in [element.tag for element in dataset if _removed_group(element.tag.group)]:
        del dataset[tag]


def _file_meta(dataset: Dataset, transfer_syntax: UID) -> FileMetaDataset:
    """Only the required group 0002 elements, for the de-identified instance (PS3.10 7.1)."""
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID  # the replacement UID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta


def _strings(value: Any) -> Iterator[str]:
    if value is None:
        return
    if isinstance(value, str | bytes | PersonName) or not hasattr(value, "__iter__"):
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        yield text
        return
    for v in value:
        yield from _strings(v)


def _identifying_tokens(dataset: Dataset) -> set[str]:
    """Names, IDs and dates that must not survive, split into the words they are made of."""
    tokens: set[str] = set()

    def visit(ds: Dataset, element: Any) -> None:
        if element.keyword in _IDENTIFYING or element.VR == "PN":
            for text in _strings(element.value):
                for word in text.replace("^", " ").replace("=", " ").split():
                    if len(word) >= 4:
                        tokens.add(word.upper())

    dataset.walk(visit)
    return tokens


def _leftovers(dataset: Dataset, tokens: set[str]) -> list[str]:
    found: list[str] = []

    def visit(ds: Dataset, element: Any) -> None:
        if element.VR not in _TEXT_VRS and not _removed_group(element.tag.group):
            return
        if element.keyword in _IMAGE_TYPE_TERMS:
            return
        for text in _strings(element.value):
            words = set(text.upper().replace("^", " ").replace("=", " ").split())
            if words & tokens:
                found.append(element.keyword or str(element.tag))

    dataset.walk(visit)
    meta = getattr(dataset, "file_meta", None)
    if meta is not None:
        meta.walk(visit)
    return found


def _apply(dataset: Dataset, rules: dict[tuple[int, ...], Action]) -> None:
    annex_e.anonymize_dataset(
        dataset,
        extra_anonymization_rules=None,
        delete_private_tags=True,
        base_rules_gen=lambda: rules,
    )


def deidentify(dataset: Dataset, *, pseudonym: str, salt: str) -> DeidResult:
    """De-identify ``dataset`` in place to the Basic Profile; raise if anything identifying stays.

    ``salt`` is secret and fixed per study: it makes the replacement UIDs reproducible for the
    study and unlinkable to the originals without it.
    """
    if not pseudonym:
        raise ValueError("pseudonym must not be empty")
    tokens = _identifying_tokens(dataset) - {pseudonym.upper()}
    had_private = any(element.tag.is_private for element in dataset.iterall())
    meta = getattr(dataset, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        raise DeidentificationError("the file meta information has no transfer syntax")
    transfer_syntax = UID(meta.TransferSyntaxUID)
    rules = _rules(pseudonym=pseudonym, salt=salt)
    for item in list(_items(dataset)):
        _remove_groups(item)
        _apply(item, rules)
    _remove_groups(dataset)
    _apply(dataset, rules)
    # The package keeps a module-level cache of the random UIDs it made for D-action UIDs;
    # clearing it keeps a long-running web process from accumulating them.
    annex_e.dictionary.clear()
    if "SOPClassUID" not in dataset or "SOPInstanceUID" not in dataset:
        raise DeidentificationError("the data set has no SOP Class or SOP Instance UID")
    # Built anew, not cleaned: whatever else the sender put there (AE titles, private
    # information) is left behind.
    dataset.file_meta = _file_meta(dataset, transfer_syntax)

    if hasattr(dataset, "preamble") and dataset.preamble is not None:
        dataset.preamble = b"\0" * 128  # hybrid TIFF/DICOM files hide data in the preamble
    burned_in = str(dataset.get("BurnedInAnnotation", "") or "").strip().upper()
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = list(METHOD)
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = _BASIC_PROFILE_CODE
    dataset.DeidentificationMethodCodeSequence = Sequence([code])
    # Dates were replaced by dummies, not shifted: no longitudinal temporal information remains.
    dataset.LongitudinalTemporalInformationModified = "REMOVED"

    leftovers = _leftovers(dataset, tokens)
    if leftovers:
        raise DeidentificationError(
            "identifying values remain after de-identification in "
            + ", ".join(sorted(set(leftovers)))
        )
    return DeidResult(burned_in_annotation=burned_in, removed_private=had_private)
