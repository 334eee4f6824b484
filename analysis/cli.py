"""Command line ``python -m analysis SUBCOMMAND ...``.

Each subcommand is a :class:`Command`: a function that adds its arguments to an argparse
sub-parser and a function that runs it; :data:`COMMANDS` lists them all, so adding one is one
entry there. A run prints its result on stdout and returns the exit status; a ``ValueError``
(bad input or options) becomes one line on stderr and exit status 2, without a traceback.

Heavy modules (pandas, the statistics) are imported inside the run functions: every command
pays only for what it uses, and ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

if TYPE_CHECKING:
    from analysis.partial import PartialArea

EXIT_INPUT_ERROR = 2


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, one-line help, argument set-up and runner."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


class _OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT_ERROR, f"{self.prog}: error: {message}\n")


def _print_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, allow_nan=False) + "\n")


class _Result(Protocol):
    def to_dict(self) -> dict[str, Any]: ...
    def to_text(self) -> str: ...


def _print_result(result: _Result, *, as_json: bool) -> int:
    """Print a result as one JSON object or as its readable table; exit status 0."""
    if as_json:
        _print_json(result.to_dict())
    else:
        sys.stdout.write(result.to_text())
    return 0


# -- mrmc ---------------------------------------------------------------------------------------


def _configure_mrmc(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="CSV with columns reader,treatment,case,truth,rating")
    parser.add_argument(
        "--metric",
        choices=("empirical_auc", "binormal_auc", "binormalLR_auc", "sensitivity", "specificity"),
        default="empirical_auc",
    )
    parser.add_argument(
        "--partial",
        choices=("specificity", "sensitivity"),
        default=None,
        help="partial AUC over a range of specificity or sensitivity (AUC metrics)",
    )
    parser.add_argument("--min", type=float, default=None, help="lower end of --partial (0)")
    parser.add_argument("--max", type=float, default=None, help="upper end of --partial (1)")
    parser.add_argument(
        "--normalize", action="store_true", help="divide the partial AUC by max - min"
    )
    parser.add_argument(
        "--cov", choices=("jackknife", "delong", "unbiased", "bootstrap"), default="jackknife"
    )
    parser.add_argument("--factors", choices=("RRRC", "FRRC", "RRFC"), default="RRRC")
    parser.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level")
    _add_inference_options(parser)
    parser.add_argument(
        "--n-boot", type=int, default=None, help="bootstrap replicates (--cov bootstrap; 2000)"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of the replicates (--cov bootstrap; 0)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _add_inference_options(parser: argparse.ArgumentParser) -> None:
    """Non-inferiority and multiplicity options, shared by mrmc and dbm."""
    parser.add_argument(
        "--margin",
        type=float,
        default=None,
        help="non-inferiority margin in (0, 1): one-sided test of each treatment - reference",
    )
    parser.add_argument(
        "--reference", default=None, help="reference treatment (default: the first in the file)"
    )
    parser.add_argument(
        "--adjust",
        choices=("none", "holm"),
        default="none",
        help="adjust the pairwise p-values for multiplicity (Holm)",
    )


def _run_mrmc(args: argparse.Namespace) -> int:
    from analysis.io import read_mrmc_csv
    from analysis.mrmc import or_analysis
    from analysis.mrmc.bootstrap import DEFAULT_N_BOOT, DEFAULT_SEED
    from analysis.mrmc.noninferiority import check_margin

    check_margin(args.margin, args.reference)  # before the file is read: a bad option fails fast
    if args.cov != "bootstrap" and (args.n_boot is not None or args.seed is not None):
        raise ValueError("--n-boot and --seed need --cov bootstrap")
    partial = _partial_area(args)
    result = or_analysis(
        read_mrmc_csv(args.file),
        metric=args.metric,
        partial=partial,
        cov=args.cov,
        factors=args.factors,
        alpha=args.alpha,
        n_boot=DEFAULT_N_BOOT if args.n_boot is None else args.n_boot,
        seed=DEFAULT_SEED if args.seed is None else args.seed,
        margin=args.margin,
        reference=args.reference,
        adjust=args.adjust,
    )
    return _print_result(result, as_json=args.json)


def _partial_area(args: argparse.Namespace) -> PartialArea | None:
    """The ``--partial --min --max --normalize`` options as a PartialArea (None without)."""
    from analysis.partial import PartialArea

    if args.partial is None:
        if args.min is not None or args.max is not None or args.normalize:
            raise ValueError("--min, --max and --normalize need --partial specificity|sensitivity")
        return None
    if args.metric not in ("empirical_auc", "binormal_auc", "binormalLR_auc"):
        raise ValueError(f"--partial needs an AUC metric, not --metric {args.metric}")
    return PartialArea(
        kind=args.partial,
        min=0.0 if args.min is None else args.min,
        max=1.0 if args.max is None else args.max,
        normalize=args.normalize,
    )


# -- dbm ----------------------------------------------------------------------------------------


def _configure_dbm(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="CSV with columns reader,treatment,case,truth,rating")
    parser.add_argument(
        "--metric", choices=("empirical_auc", "sensitivity", "specificity"), default="empirical_auc"
    )
    parser.add_argument("--factors", choices=("RRRC", "FRRC", "RRFC"), default="RRRC")
    parser.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level")
    _add_inference_options(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _run_dbm(args: argparse.Namespace) -> int:
    from analysis.dbm import dbm_analysis
    from analysis.io import read_mrmc_csv
    from analysis.mrmc.noninferiority import check_margin, with_inference_options

    check_margin(args.margin, args.reference)
    result = dbm_analysis(
        read_mrmc_csv(args.file), metric=args.metric, factors=args.factors, alpha=args.alpha
    )
    options = {"margin": args.margin, "reference": args.reference, "adjust": args.adjust}
    return _print_result(with_inference_options(result, **options), as_json=args.json)


# -- froc ---------------------------------------------------------------------------------------


def _configure_froc(parser: argparse.ArgumentParser) -> None:
    from analysis.froc.fom import FOMS  # light: numpy only

    parser.add_argument("file", help="RJafroc Excel workbook (sheets TRUTH, NL, LL)")
    parser.add_argument("--fom", choices=FOMS, default="wAFROC", help="figure of merit")
    parser.add_argument("--method", choices=("OR", "DBM"), default="OR")
    parser.add_argument("--factors", choices=("RRRC", "FRRC", "RRFC"), default="RRRC")
    parser.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _run_froc(args: argparse.Namespace) -> int:
    from analysis.froc import read_workbook
    from analysis.froc.analysis import froc_analysis

    result = froc_analysis(
        read_workbook(args.file),
        fom=args.fom,
        method=args.method,
        factors=args.factors,
        alpha=args.alpha,
    )
    if args.json:
        _print_json({"method": args.method, **result.to_dict()})
        return 0
    return _print_result(result, as_json=False)


# -- imrmc --------------------------------------------------------------------------------------


def _configure_imrmc(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", help="CSV with columns reader,treatment,case,truth,rating (missing reads absent)"
    )
    parser.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _run_imrmc(args: argparse.Namespace) -> int:
    from analysis.io import read_mrmc_csv
    from analysis.mrmc import imrmc_analysis

    result = imrmc_analysis(read_mrmc_csv(args.file), alpha=args.alpha)
    return _print_result(result, as_json=args.json)


# -- kappa --------------------------------------------------------------------------------------


def _configure_kappa(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="CSV with columns rater,item,rating")
    parser.add_argument("--weights", choices=("none", "linear", "quadratic"), default="none")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _run_kappa(args: argparse.Namespace) -> int:
    from analysis.agreement import kappa_analysis, read_kappa_csv

    result = kappa_analysis(read_kappa_csv(args.file), weights=args.weights)
    return _print_result(result, as_json=args.json)


# -- report -------------------------------------------------------------------------------------


def _configure_report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="long reads CSV (study,reader,case,arm,...,duration_s)")
    parser.add_argument("--out", required=True, help="HTML file to write")
    parser.add_argument(
        "--ai-threshold", type=float, default=0.5, help="AI operating threshold, in (0, 1)"
    )
    parser.add_argument(
        "--significant", default=None, help="comma-separated clinically significant finding types"
    )
    parser.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level")
    parser.add_argument(
        "--margin",
        type=float,
        default=None,
        help="the protocol's non-inferiority margin on the AUC (assisted - unassisted), in (0, 1)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="also print the analysis object (as manage.py analyze --json, without figures)",
    )


def _run_report(args: argparse.Namespace) -> int:
    from analysis.mrmc.noninferiority import check_margin
    from analysis.report import check_ai_threshold, read_long_csv
    from analysis.report_html import write_html
    from analysis.study import analyze_file

    check_ai_threshold(args.ai_threshold)  # before the file is read: a bad option fails fast
    check_margin(args.margin, None)
    significant = None if args.significant is None else args.significant.split(",")
    payload = analyze_file(
        read_long_csv(args.file, validate=False),  # analyze_file validates it, once
        significant=significant,
        ai_threshold=args.ai_threshold,
        alpha=args.alpha,
        ni_margin=args.margin,
    )
    write_html(payload, args.out)
    if args.json:
        _print_json({k: v for k, v in payload.items() if k != "figures"})
    return 0


# -- power --------------------------------------------------------------------------------------


def _configure_power(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", help="pilot CSV with columns reader,treatment,case,truth,rating (2 treatments)"
    )
    parser.add_argument("--readers", type=int, required=True, help="readers J of the study")
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--cases", type=int, help="cases K of the study: give its power")
    size.add_argument(
        "--target-power", type=float, help="give the smallest K reaching this power instead"
    )
    parser.add_argument(
        "--effect",
        type=float,
        required=True,
        help="difference of the reader-averaged figures of merit to detect",
    )
    parser.add_argument("--alpha", type=float, default=0.05, help="size of the test")
    parser.add_argument("--factors", choices=("RRRC", "FRRC", "RRFC"), default="RRRC")
    parser.add_argument(
        "--metric", choices=("empirical_auc", "sensitivity", "specificity"), default="empirical_auc"
    )
    parser.add_argument(
        "--reader-groups",
        type=int,
        default=None,
        help="split-plot study of G reader groups (default: the pilot's, 1 if factorial)",
    )
    parser.add_argument(
        "--max-cases", type=int, default=2000, help="largest K tried with --target-power"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _run_power(args: argparse.Namespace) -> int:
    from analysis.io import read_mrmc_csv
    from analysis.power import cases_for_power, check_plan, pilot_components, power_given

    groups = 1 if args.reader_groups is None else args.reader_groups
    # Options first: a bad J, effect or alpha fails before the pilot is read.
    check_plan(
        readers=args.readers,
        effect=args.effect,
        alpha=args.alpha,
        factors=args.factors,
        reader_groups=groups,
    )
    components = pilot_components(read_mrmc_csv(args.file), metric=args.metric)
    if args.reader_groups is None:
        groups = components.reader_groups
    plan = {
        "readers": args.readers,
        "effect": args.effect,
        "alpha": args.alpha,
        "factors": args.factors,
        "reader_groups": groups,
    }
    result: _Result
    if args.cases is not None:
        result = power_given(components, cases=args.cases, **plan)
    else:
        result = cases_for_power(
            components, target_power=args.target_power, max_cases=args.max_cases, **plan
        )
    return _print_result(result, as_json=args.json)


COMMANDS: tuple[Command, ...] = (
    Command(
        "mrmc",
        "Obuchowski-Rockette MRMC ROC analysis with Hillis degrees of freedom (factorial, "
        "split-plot and nested designs, as MRMCaov)",
        _configure_mrmc,
        _run_mrmc,
    ),
    Command(
        "dbm",
        "Dorfman-Berbaum-Metz MRMC ROC analysis (jackknife pseudovalues), Hillis df",
        _configure_dbm,
        _run_dbm,
    ),
    Command(
        "froc",
        "FROC analysis of an RJafroc workbook: wAFROC and other figures of merit, OR or DBM "
        "(as RJafroc St())",
        _configure_froc,
        _run_froc,
    ),
    Command(
        "imrmc",
        "iMRMC U-statistic MRMC analysis of the AUC for any design with missing reads "
        "(BDG df, t on floor(df))",
        _configure_imrmc,
        _run_imrmc,
    ),
    Command(
        "kappa",
        "Cohen's kappa for every pair of raters and Fleiss' kappa, with SE and 95% CI",
        _configure_kappa,
        _run_kappa,
    ),
    Command(
        "power",
        "power of the OR test of two treatments, or the cases for a target power, from a "
        "pilot (Hillis, Obuchowski and Berbaum 2011, as RJafroc SsPowerGivenJK)",
        _configure_power,
        _run_power,
    ),
    Command(
        "report",
        "every analysis of a long reads CSV, written as one self-contained HTML report",
        _configure_report,
        _run_report,
    ),
)


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    """The ``python -m analysis`` parser with one sub-parser per command."""
    parser = _OneLineParser(
        prog="python -m analysis", description="Statistics for radiology reader studies."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in commands:
        # argparse %-formats help strings: a literal "95% CI" must not break --help.
        sub = subparsers.add_parser(
            command.name, help=command.help.replace("%", "%%"), description=command.help
        )
        command.configure(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 success, 2 bad input or options)."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except ValueError as error:
        message = " ".join(str(error).split())  # one line, whatever the message holds
        sys.stderr.write(f"python -m analysis {args.command}: error: {message}\n")
        return EXIT_INPUT_ERROR
    return status
