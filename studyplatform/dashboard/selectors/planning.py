"""The study's own interim data as a pilot for the power planning page."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis.report import mrmc_frame
from studyplatform.dashboard.selectors.frame import long_reads_frame
from studyplatform.dashboard.selectors.protocol import protocol_in_force
from studyplatform.dashboard.selectors.readers import complete_readers
from studyplatform.studies.models import PrimaryEndpoint, Study


@dataclass(frozen=True)
class InterimPilot:
    """One finding type's MRMC frame from the complete-case readers, and its figure of merit."""

    frame: pd.DataFrame
    finding: str
    metric: str
    readers: tuple[str, ...]


def primary_finding(study: Study) -> str | None:
    """The finding type the planning page starts from: the protocol's first clinically
    significant type, else the study's first type (by code); None without finding types."""
    significant = protocol_in_force(study).significant()
    if significant:
        return significant[0]
    return study.finding_types.order_by("code").values_list("code", flat=True).first()


def interim_pilot(study: Study, *, finding: str) -> InterimPilot:
    """The MRMC frame of ``finding`` as the report's complete-case analysis builds it.

    The readers who finished both arms (:func:`complete_readers`, the report's rule) and the
    study's primary endpoint's figure of merit: the AUC of the confidence, or for the missed
    findings endpoint the sensitivity of the call.

    Raises
    ------
    ValueError
        When no reader has finished both arms yet, or the finding type has no reads.
    """
    complete = complete_readers(study)
    if not complete:
        raise ValueError(
            f"no reader of study {study.slug} has finished both arms yet: the interim data "
            "give no pilot until one has (use the built-in pilot or upload one)"
        )
    long = long_reads_frame(study)
    cc = long[long["reader"].isin(complete)]
    if cc.empty or finding not in set(cc["finding"].astype(str)):
        raise ValueError(f"the finished readers of study {study.slug} have no reads of {finding}")
    sensitivity = study.primary_endpoint == PrimaryEndpoint.MISSED
    if sensitivity:
        # The missed-findings endpoint is the sensitivity of the reader's call.
        cc = cc.assign(confidence=cc["call"])
    return InterimPilot(
        frame=mrmc_frame(cc, finding),
        finding=finding,
        metric="sensitivity" if sensitivity else "empirical_auc",
        readers=tuple(complete),
    )
