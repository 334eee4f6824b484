"""The checklist's methods items: identity, the AI and its inputs, readers, cases, truth,
randomization and washout."""

from __future__ import annotations

from collections import Counter

from studyplatform.audit.models import Action, AuditEvent
from studyplatform.dashboard.exports.checklist.items import Item, Table, event, when
from studyplatform.dashboard.selectors import protocol_history
from studyplatform.dashboard.selectors.flow import StudyFlow
from studyplatform.dashboard.selectors.longframe import ai_thresholds
from studyplatform.dashboard.selectors.submission import (
    allocation,
    case_mix,
    conduct,
    input_quality,
    reader_rows,
)
from studyplatform.prereads.models import AIModel
from studyplatform.studies.models import Design, ImportRefusal, Study


def identity(study: Study) -> list[Item]:
    history = protocol_history(study)
    amendments = [
        f"v{a.version} signed {when(a.signed_at)} by {a.signer}: {a.reason} "
        f"({'; '.join(a.changes) or 'no listed change'})"
        for a in history.amendments
    ]
    arms = ", ".join(
        f"{a.label} ({'shows the AI' if a.shows_ai else 'no AI'})"
        for a in study.arms.order_by("order", "name")
    )
    return [
        Item(
            "CONSORT-AI 1a,b(i); STARD 1",
            "Title and abstract",
            "Say that the study evaluates an AI aid for readers, and name the design.",
            [f"Study {study.slug}: {study.title}", f"Design: {study.get_design_display()}"],
            "the study's admin page; export html (report header)",
        ),
        Item(
            "CONSORT 3a; CONSORT-AI 3; STARD 5",
            "Design and changes",
            "Describe the design, the arms, and every change to the protocol after it opened.",
            [
                f"Design: {study.get_design_display()}; arms: {arms}.",
                f"Protocol version in force: v{history.version} (sha256 {history.sha256}), "
                f"frozen {when(history.frozen_at)}.",
                f"Amendments: {len(amendments)}" + (":" if amendments else "."),
                *amendments,
            ],
            f"{event(study, Action.PROTOCOL_FREEZE)}; "
            f"{event(study, Action.PROTOCOL_AMEND)}; dashboard: protocol section",
        ),
    ]


def model_items(study: Study) -> list[Item]:
    quality = input_quality(study)
    model = quality.model
    if model is None:
        return [
            Item(
                "CONSORT-AI 5(i)",
                "AI version",
                "Name the AI system and its version.",
                ["The study pins no AI model."],
                "the study's admin page",
                "the study pins no AI model: name the AI and its version",
            )
        ]
    thresholds = ai_thresholds(study, list(study.finding_types.values_list("code", flat=True)))
    spec = model.spec if isinstance(model.spec, dict) else {}
    with_heatmap = model.prereads.filter(case__study=study).exclude(heatmap="").count()
    model_event = event(
        study, Action.MODEL_REGISTER, object_type="prereads.aimodel", object_id=str(model.pk)
    )
    status = ", ".join(f"{k}: {n}" for k, n in sorted(quality.prereads.items())) or "none"
    refused = list(ImportRefusal.objects.filter(study=study).order_by("refused_at", "pk"))
    failures = quality.failures
    return [
        Item(
            "CONSORT-AI 5(i)",
            "AI version",
            "Name the AI system, its version, and how its file is identified.",
            [
                f"Model {model.name}, version {model.version} ({model.get_format_display()}).",
                f"File sha256: {model.sha256}.",
                f"Pinned by the study: {study.ai_model_name} {study.ai_model_version}, sha256 "
                f"{study.ai_model_sha256} (checked against the registry before every run).",
                f"Registered {when(model.registered_at)}.",
            ],
            f"{model_event}; admin: AI model #{model.pk}; protocol (ai_model)",
        ),
        _intended_use(model),
        Item(
            "CONSORT-AI 5(ii); STARD 9",
            "Input data",
            "Describe the input data the AI takes and how it is prepared.",
            [
                f"Input: {spec.get('input_size') or 'size not in the model spec'} pixels, "
                f"{spec.get('channels', 1)} channel(s), normalization "
                f"{spec.get('normalization') or 'the default (percentile 1-99)'}.",
                f"Images stored (de-identified at import): {quality.images}.",
            ],
            "admin: AI model spec; export long (modality, manufacturer per case)",
        ),
        Item(
            "CONSORT-AI 5(iii); STARD 10a",
            "Poor-quality and unavailable inputs",
            "Say how poor-quality or unavailable inputs were found and handled.",
            [
                f"Pre-reads of the pinned model by status: {status}; cases without a pre-read: "
                f"{quality.without_preread}.",
                f"Failed pre-reads ({len(failures)}): readers of the assisted arm see no AI "
                "output for these cases"
                + (": " + "; ".join(f"{c}: {e}" for c, e in failures[:20]) if failures else "."),
                f"Cases with an image whose header declares burned-in annotation: "
                f"{len(quality.burned_in_cases)}"
                + (
                    f" ({', '.join(quality.burned_in_cases[:20])})."
                    if quality.burned_in_cases
                    else "."
                ),
                _refused_line(refused),
            ],
            "dashboard: pre-reads section; admin: pre-reads (status, error); admin: import "
            f"refusals; {event(study, Action.IMPORT_REFUSED)}",
            tables=[
                Table(
                    ["source", "refusal", "reason", "refused"],
                    [
                        [r.get_source_display(), f"#{r.pk}", r.reason, when(r.refused_at)]
                        for r in refused[:REFUSALS_SHOWN]
                    ],
                )
            ]
            if refused
            else [],
        ),
        Item(
            "CONSORT-AI 5(iv), 5(v), 5(vi)",
            "Human-AI interaction and AI output",
            "Say what the readers of each arm see of the AI, and how its output is used.",
            [
                *[
                    f"Arm {a.label}: "
                    + (
                        "the AI panel shows each finding type's probability (0-1), flagged at "
                        "or above its threshold, with the Grad-CAM heatmap as an overlay the "
                        "reader can toggle."
                        if a.shows_ai
                        else "no AI output is shown."
                    )
                    for a in study.arms.order_by("order", "name")
                ],
                "Operating thresholds: "
                + ", ".join(f"{code} {value:g}" for code, value in sorted(thresholds.items()))
                + ".",
                f"Pre-reads with a heatmap: {with_heatmap}.",
                "The reader makes every call (present/absent and a confidence 0-100); the AI "
                "never records a call."
                + (
                    " Sequential design: the unassisted read is locked before the AI is shown."
                    if study.design == Design.SEQUENTIAL
                    else ""
                ),
            ],
            "protocol (arms.shows_ai, finding_types.ai_threshold); the reading page",
        ),
    ]


REFUSALS_SHOWN = 50


def _refused_line(refused: list[ImportRefusal]) -> str:
    by_source = Counter(r.get_source_display() for r in refused)
    said = "; ".join(f"{source}: {n}" for source, n in sorted(by_source.items()))
    shown = f" (the first {REFUSALS_SHOWN} below)" if len(refused) > REFUSALS_SHOWN else ""
    return (
        f"Inputs refused at import (not stored as cases; each kept with its reason): "
        f"{len(refused)}" + (f" ({said}){shown}." if refused else ".")
    ) + (
        " Each is named by its number in the admin's import refusals, which alone shows the"
        " input's file name or UID: a file name as a site sent it may identify a patient."
        if refused
        else ""
    )


def _intended_use(model: AIModel) -> Item:
    stated = [
        (label, getattr(model, field))
        for label, field in (
            ("Intended use", "intended_use"),
            ("Target population", "target_population"),
            ("Modality", "modality"),
            ("Clinical setting", "clinical_setting"),
            ("Intended users", "intended_users"),
        )
    ]
    missing = [label.lower() for label, text in stated if not text]
    return Item(
        "CONSORT-AI 1b(ii), 4a(i)",
        "Intended use",
        "State the AI's intended use: clinical task, target population and users.",
        [
            *(f"{label}: {text}" for label, text in stated if text),
            f"Finding types the model reports: {', '.join(model.finding_codes)}.",
        ],
        f"admin: AI model #{model.pk} (intended use; frozen once a study pinning it opens); "
        "register_model --intended-use",
        f"the stored intended use of the model lacks: {', '.join(missing)}" if missing else "",
    )


def readers_item(study: Study) -> Item:
    rows = reader_rows(study)
    unknown = [r.code for r in rows if not r.specialty or r.years_experience is None]
    return Item(
        "CONSORT-AI 4a(i); STARD 10b",
        "Readers",
        "Describe the readers: how many, their specialty and experience.",
        [f"Readers enrolled: {len(rows)}."],
        "admin: readers and enrolments",
        f"qualifications not stored for {', '.join(unknown)}" if unknown else "",
        [
            Table(
                ["reader", "specialty", "years of experience", "group"],
                [
                    [
                        r.code,
                        r.specialty or "not stored",
                        "not stored" if r.years_experience is None else str(r.years_experience),
                        "" if r.group is None else str(r.group),
                    ]
                    for r in rows
                ],
            )
        ],
    )


def cases_items(study: Study, flow: StudyFlow) -> list[Item]:
    mix = case_mix(study)
    sources = ", ".join(f"{k}: {n}" for k, n in sorted(mix.truth_sources.items())) or "none"
    signature = next(
        (s for s in conduct(study).signatures if s[0] == "Finalize ground truth"), None
    )
    truth_lines = [
        f"Truth sources (case x finding type): {sources}.",
        f"Ground truth finalized: {when(study.truth_finalized_at)}"
        + (f", signed by {signature[1]} (data sha256 {signature[3]})." if signature else "."),
    ]
    return [
        Item(
            "CONSORT-AI 4a(ii); STARD 6, 7, 8",
            "Eligibility and setting of the input data",
            "Give the inclusion and exclusion of cases at the level of the input data, with "
            "counts, and where the data came from.",
            [
                f"Cases received: {flow.received}; allocated: {flow.allocated}; excluded before "
                f"allocation: {flow.excluded}"
                + "".join(f"; {reason}: {n}" for reason, n in sorted(flow.not_allocated.items())),
                f"Cases without ground truth for every finding type (left out of the analysis): "
                f"{flow.cases_without_full_truth}.",
            ],
            "flow diagram below; export long (site, modality, manufacturer)",
            "",
            [
                Table(["site", "name", "cases"], [[c, n, str(k)] for c, n, k in mix.sites]),
                Table(
                    ["modality", "manufacturer", "cases"],
                    [[m, maker, str(k)] for m, maker, k in mix.devices],
                ),
            ],
        ),
        Item(
            "STARD 11, 13b; CONSORT 6a",
            "Reference standard",
            "Describe the reference standard, its source, and how and when it was finalized.",
            truth_lines,
            f"{event(study, Action.TRUTH_IMPORT)}; {event(study, Action.TRUTH_FINALIZE)}",
            "" if study.truth_finalized else "the ground truth is not finalized yet",
        ),
        Item(
            "STARD 20",
            "Case characteristics",
            "Give the distribution of the target conditions among the cases.",
            ["Truth per finding type (present / absent / missing):"],
            "export long (truth column)",
            "",
            [
                Table(
                    ["finding type", "present", "absent", "no truth"],
                    [[c, str(p), str(a), str(m)] for c, p, a, m in mix.prevalence],
                )
            ],
        ),
    ]


def randomization_items(study: Study) -> list[Item]:
    record = allocation(study)
    facts = conduct(study)
    if record is None:
        lines = ["The study has not been randomized."]
    else:
        lines = [
            f"Allocation made {when(record.created_at)} by the {record.design} randomizer from "
            f"a seed drawn by the server; {record.rows} rows, fingerprint "
            f"{record.fingerprint or '(prospective: allocated case by case)'}.",
            f"Seed commitment (sha256 of the seed) recorded before reading: "
            f"{record.seed_commitment or 'not recorded'}.",
            f"Seed: {record.seed}."
            if record.seed is not None
            else "Seed: concealed until the study is locked.",
        ]
    return [
        Item(
            "CONSORT 8a, 8b, 10",
            "Randomization",
            "Say how the allocation sequence was generated and by whom.",
            lines,
            f"{event(study, Action.ALLOCATION_CREATE)}; manage.py randomize --verify",
            "" if record is not None else "the study has not been randomized",
        ),
        Item(
            "CONSORT 9, 11a",
            "Allocation concealment and blinding",
            "Say how the allocation was concealed and who was blinded to what.",
            [
                "Each assignment's arm is hidden from the reader until the reader opens it; "
                "coordinators see no result by arm before the lock; the seed is shown only "
                "after the lock or an audited unblinding.",
                "Readers never see the ground truth or other readers' calls.",
                f"Unblindings recorded: "
                f"{AuditEvent.objects.filter(study=study, action=Action.UNBLIND).count()}.",
            ],
            f"{event(study, Action.UNBLIND)}; export audit",
        ),
        Item(
            "CONSORT 3a (crossover)",
            "Washout",
            "Give the washout between a reader's sessions and any exception.",
            [
                f"Washout: {study.washout_days} days between a reader's sessions; sessions: "
                f"{facts.sessions}; waivers: {facts.washout_waivers}.",
            ],
            f"{event(study, Action.WASHOUT_WAIVE)}; dashboard: washout section",
        ),
    ]
