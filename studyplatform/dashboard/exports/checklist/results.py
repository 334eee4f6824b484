"""The checklist's results items: endpoint and estimates, flow, dates, failure analysis, the
audit trail, and what only a human can answer."""

from __future__ import annotations

from typing import Any

from studyplatform.audit.models import Action, AuditEvent
from studyplatform.audit.selectors import verify_chain
from studyplatform.dashboard.exports.checklist.items import Item, Table, event, when
from studyplatform.dashboard.selectors import long_reads_frame
from studyplatform.dashboard.selectors.flow import StudyFlow
from studyplatform.dashboard.selectors.submission import (
    ai_failures,
    conduct,
)
from studyplatform.studies.models import Study


def endpoint_item(study: Study, analysis: dict[str, Any] | None) -> list[Item]:
    margin = (
        "superiority" if study.ni_margin is None else f"non-inferiority margin {study.ni_margin}"
    )
    lines = [f"Primary endpoint: {study.get_primary_endpoint_display()}; {margin}."]
    missing = ""
    mrmc = ((analysis or {}).get("analysis") or {}).get("mrmc") or {}
    for finding, result in sorted(mrmc.items()):
        values = ", ".join(
            f"{arm} {value:.3f}" for arm, value in (result.get("treatment_value") or {}).items()
        )
        for diff in result.get("differences") or []:
            lines.append(
                f"{finding}: {result.get('metric', 'AUC')} by arm {values}; {diff['pair']} = "
                f"{diff['estimate']:.3f} (95% CI {diff['ci_lower']:.3f} to "
                f"{diff['ci_upper']:.3f}, p = {diff['p_value']:.4f})."
            )
    if not mrmc:
        missing = (
            "the analysis of the current data is not ready: open the analysis report (or run "
            "manage.py analyze STUDY), then export the checklist again"
        )
    return [
        Item(
            "CONSORT 6a, 17a; STARD 24",
            "Outcomes and estimates",
            "Give the primary endpoint and its estimate with a confidence interval.",
            lines,
            "export html (report); export json (analysis)",
            missing,
        ),
        Item(
            "CONSORT 7a; STARD 18",
            "Sample size",
            "Explain how the numbers of readers and cases were chosen.",
            [],
            "dashboard: power planning",
            "the sample-size rationale is not stored",
        ),
    ]


def results_items(study: Study, flow: StudyFlow) -> list[Item]:
    facts = conduct(study)
    long = long_reads_frame(study)
    failures = ai_failures(study, long)
    arms = [a.name for a in study.arms.order_by("order", "name")]
    return [
        Item(
            "CONSORT 13a, 13b; STARD 19",
            "Flow of cases and reads",
            "Give the numbers at every step, and the losses and exclusions with reasons.",
            [
                *[
                    f"{a.label}: {a.cases_allocated} cases allocated, {a.assignments} reads "
                    f"assigned, {a.reads} read, {a.analysed_reads} analysed."
                    for a in flow.arms
                ],
                f"Corrected reads: {facts.corrections} (the latest correction counts).",
            ],
            "flow diagram below; export long",
        ),
        Item(
            "CONSORT 14a; STARD 5",
            "Dates",
            "Give the dates of opening, reading and locking.",
            [
                f"Opened {when(study.opened_at)}; reads submitted from {when(facts.first_read)} "
                f"to {when(facts.last_read)}; locked {when(study.locked_at)}.",
            ],
            f"{event(study, Action.STUDY_LOCK)}; export long (submitted_at)",
        ),
        Item(
            "CONSORT-AI 19; STARD 25",
            "Failure analysis",
            "List the cases the AI missed or flagged falsely, and what the readers did with them "
            "in each arm.",
            [
                f"AI errors at the operating threshold on cases with truth: {len(failures)} "
                f"({sum(f.kind == 'missed' for f in failures)} missed, "
                f"{sum(f.kind == 'false flag' for f in failures)} false flags). "
                "Cells: readers right / readers who read the case in that arm."
            ],
            "export long (ai_probability, call, truth per read)",
            "",
            [
                Table(
                    ["case", "finding type", "AI error", "probability", "threshold", *arms],
                    [
                        [
                            f.case,
                            f.finding,
                            f.kind,
                            f"{f.probability:.3f}",
                            f"{f.threshold:g}",
                            *[f"{f.correct[a][0]} / {f.correct[a][1]}" for a in arms],
                        ]
                        for f in failures
                    ],
                )
            ],
        ),
    ]


def integrity_items(study: Study) -> list[Item]:
    chain = verify_chain()
    facts = conduct(study)
    signed = [
        f"{kind} by {who} at {when(at)} (data sha256 {digest})"
        for kind, who, at, digest in facts.signatures
    ]
    return [
        Item(
            "Platform (supports CONSORT 24, protocol and data)",
            "Audit trail and signatures",
            "Show that the data reported are the data recorded, unchanged.",
            [
                f"Audit trail: {chain.events} events, "
                + ("hash chain intact" if chain.ok else f"BROKEN at #{chain.first_bad_sequence}")
                + f", head {chain.head}.",
                f"Events of this study: {AuditEvent.objects.filter(study=study).count()}.",
                *([f"Signatures: {'; '.join(signed)}."] if signed else ["No signature yet."]),
            ],
            "export audit; manage.py verify_audit",
        ),
        Item(
            "CONSORT 23; CONSORT-AI 25",
            "Registration and access to the AI",
            "Give the trial registration, and whether and how the AI can be accessed.",
            [],
            "",
            "registration number and access to the AI (code, weights) are not stored",
        ),
        Item(
            "CONSORT 25",
            "Funding",
            "Give the sources of funding and the role of funders.",
            [],
            "",
            "funding is not stored",
        ),
    ]
