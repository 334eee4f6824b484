"""python manage.py analyze STUDY [--json]: the study's analysis, as the report shows it."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analysis.longreads import ARMS
from analysis.subgroup_tables import subgroups_section
from analysis.tables import text_table
from studyplatform.dashboard import services
from studyplatform.dashboard.models import AnalysisStatus
from studyplatform.dashboard.selectors.training import (
    training_rows,
    training_summary,
    training_table,
)
from studyplatform.studies.models import Study


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _behaviour_lines(b: dict[str, Any] | None) -> list[str]:
    """Reading behaviour in brief: per arm slices viewed, time on screen and overlay use, and
    the readers' accuracy where the AI was wrong."""
    if not b:
        return []
    lines = ["", "reading behaviour: slices viewed (mean fraction), time on screen (median s)"]
    for arm in b["arms"]:
        overlay = arm["overlay_on"]
        use = f", overlay on in {overlay['events']} of {overlay['n']} reads" if overlay else ""
        lines.append(
            f"  {arm['arm']:<16}{_f(arm['slices_fraction']['mean'])}  "
            f"{_f(arm['time_s']['median'], 1)}{use}"
        )
    wrong = [r for r in b["automation_bias"] if r["ai"] == "wrong"]
    if wrong:
        lines.append("  accuracy where the AI was wrong: " + ", ".join(
            f"{r['group']} {_f(r['estimate'])} ({r['events']}/{r['n']})" for r in wrong
        ))  # fmt: skip
    return lines + [f"  note: {note}" for note in b["notes"]]


class Command(BaseCommand):
    help = (
        "Run (or reuse, when the data has not changed) every analysis of a study and print it: "
        "MRMC ROC per finding type, missed findings, AI standalone, drift, reading time, reader "
        "subgroups (specialty, experience, role)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("study", help="study slug")
        parser.add_argument("--json", action="store_true", help="one JSON object on stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"no study {options['study']!r}")
        row = services.analysis_for(study=study, inline=True)
        services.record_interim_view(user=None, study=study, what="manage.py analyze")
        if row.status != AnalysisStatus.DONE or row.result is None:
            raise CommandError(f"the analysis could not run: {row.error or row.status}")
        payload = {k: v for k, v in row.result.items() if k != "figures"}
        training = training_rows(study)
        if options["json"]:
            data = {
                "study": study.slug,
                "data_version": row.data_version,
                **payload,
                "training": training,
            }
            self.stdout.write(json.dumps(data, allow_nan=False))
            return
        a = payload["analysis"]
        protocol = payload.get("protocol") or {}
        lines = [
            f"study {study.slug}: {a['n_readers']} readers, {a['n_cases']} cases, "
            f"{a['n_rows']} rows (data version {row.data_version[:12]})",
            f"protocol version {protocol.get('version', '-')} "
            f"({str(protocol.get('sha256', ''))[:12]})",
            "",
            f"readers in the {a.get('label', 'analysis')}: "
            f"{', '.join(a['readers']['included']) or 'none'}",
            *(f"  left out: {x['reader']} {x['reason']}" for x in a["readers"]["excluded"]),
            "",
            "MRMC ROC (OR, RRRC, jackknife, Hillis df): AUC unassisted / assisted, p",
        ]
        for finding, r in a["mrmc"].items():
            values = " / ".join(_f(r["treatment_value"].get(arm)) for arm in ARMS)
            lines.append(f"  {finding:<16}{values}   p {_f(r['global_test']['p_value'], 4)}")
            tests = r.get("non_inferiority")
            for c in tests["comparisons"] if tests else ():
                decision = "non-inferior" if c["non_inferior"] else "non-inferiority not shown"
                lines.append(
                    f"  {'':<16}{c['pair']} {_f(c['estimate'])}, lower limit {_f(c['lower'])} "
                    f"vs margin -{tests['margin']:g}, one-sided p {_f(c['p_value'], 4)}: "
                    f"{decision}"
                )
        every_read = a.get("all_available") or {}
        lines += ["", f"MRMC ROC, {every_read.get('label', 'all available data')}"]
        for finding, r in (every_read.get("mrmc") or {}).items():
            values = " / ".join(_f(r["treatment_value"].get(arm)) for arm in ARMS)
            lines.append(f"  {finding:<16}{values}   p {_f(r['differences'][0]['p_value'], 4)}")
        lines += ["", "Missed-finding rate unassisted / assisted"]
        for fm in (a["missed"] or {}).get("findings", []):
            rates = " / ".join(_f(x["rate"]) for x in fm["missed"]["arms"])
            lines.append(f"  {fm['finding']:<16}{rates}")
        lines += ["", "AI standalone AUC"]
        for fs in a["standalone"]["findings"]:
            lines.append(f"  {fs['finding']:<16}{_f(fs['overall']['auc'])}")
        drift = payload.get("drift")
        if drift:
            shifted = [
                f"{r['finding']}@{r['site']} PSI {_f(r['psi'], 2)}"
                for r in drift["rows"]
                # "stable" unless the site's (multiplicity-adjusted) test rejects
                if r.get("stratum", "all") == "all"
                and r["level"] not in ("stable", "reference", "n/a")
            ]
            lines += ["", f"AI score drift vs {drift['reference']}: {', '.join(shifted) or 'none'}"]
        rt = a["reading_time"]
        if rt:
            lines += ["", f"reading time ratio assisted/unassisted {_f(rt['ratio'])}"]
        lines += _behaviour_lines(payload.get("behaviour"))
        subgroups = subgroups_section(a)
        lines += ["", subgroups.title, *(f"  {n}" for n in subgroups.notes)]
        for table in subgroups.tables:
            lines += ["", *(f"  {line}" for line in text_table(table))]
        lines.append("")
        lines += ["", f"reader training: {training_summary(training)}"]
        lines += [f"  {' | '.join(cells)}" for cells in training_table(training)]
        for note in a["notes"]:
            lines.append(f"note: {note}")
        self.stdout.write("\n".join(lines))
