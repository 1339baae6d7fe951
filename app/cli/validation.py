"""`lineproof validate` and `lineproof validations`: offline validation from the command line.

Exit codes gate release scripts: 0 PASS, 1 FAIL, 2 INCONCLUSIVE or an error."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.cli.common import open_project, passphrase, show_progress
from app.core.errors import LineproofError

EXIT = {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 2}


MARK = {"PASS": "pass", "FAIL": "FAIL", "INCONCLUSIVE": "????", "SKIPPED": "skip", "NOT JUDGED": "n/j"}


def _plan_text(project, spec: str) -> tuple[str, str]:
    """A plan from a file, or the latest revision of a plan stored in the project (by id or name)."""
    path = Path(spec)
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8"), path.name
        except (OSError, UnicodeDecodeError) as exc:
            raise LineproofError(f"Cannot read the plan {path}: {exc}.", "Give a UTF-8 TOML file.") from exc
    from app.core.models.validation.store import list_plans

    with project.reading() as con:
        plans = list_plans(con)
    match = plans.filter((plans["plan_id"] == spec) | (plans["name"] == spec))
    if match.is_empty():
        stored = ", ".join(plans["plan_id"].to_list()) or "none"
        raise LineproofError(f"No plan file {spec!r}, and no plan of that id in the project.",
                             f"Give a TOML file, or one of the stored plans: {stored}.")
    return match["plan_toml"][0], f"{match['plan_id'][0]} (rev {match['revision'][0]})"


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate a candidate against the champion under a plan; store the run; exit with the verdict."""
    from app.core.models.validation import parse_plan, run_validation

    with open_project(args.path) as project:
        text, source = _plan_text(project, args.plan)
        plan = parse_plan(text, source)
        by = None
        if args.as_user:  # the person running it signs the result (a governed release needs that)
            from app.core.governance.approvals import unlock

            by = unlock(project, args.as_user, passphrase(f"Passphrase for {args.as_user}: "))
        run = run_validation(project, plan, args.candidate, args.champion, args.dataset,
                             show_progress(args.quiet or args.format == "json"), by=by)
    if args.format == "json":
        print(json.dumps({"run_id": run.run_id, "verdict": run.verdict, "result_sha256": run.result_sha256,
                          **run.result}, indent=2, default=str))
        return EXIT[run.verdict]
    r = run.result
    print(f"Validation {run.run_id}: {args.candidate} vs {args.champion or 'no champion'} on "
          f"{r['dataset']['dataset_id']} ({r['dataset']['rows']:,} rows), plan {r['plan']['name']!r} "
          f"rev {r['plan']['revision']} (sha256 {r['plan']['sha256'][:12]})")
    for c in run.criteria:
        print(f"  [{MARK[c.status]}] {c.title}")
        shown = [k for k in c.checks if k.status != "PASS" or not c.checks[1:]]
        for k in shown[: args.max_lines]:
            print(f"         {MARK[k.status]:>4}  {k.evidence}")
        if len(shown) > args.max_lines:
            print(f"         ... {len(shown) - args.max_lines} more (--format json for all)")
    print(f"Verdict: {run.verdict}   (result sha256 {run.result_sha256[:16]}, stored in the project)")
    return EXIT[run.verdict]


def cmd_validations(args: argparse.Namespace) -> int:
    """List stored validation runs (or sign one's result as the person who ran it)."""
    from app.core.models.validation.store import list_runs

    if args.sign:
        from app.core.governance.approvals import unlock
        from app.core.models.validation.run import sign_run

        if not args.as_user:
            raise LineproofError("Signing a run needs --as USER (the person who ran it).",
                                 f"lineproof validations PROJECT --sign {args.sign} --as USER")
        with open_project(args.path) as project:
            sign_run(project, args.sign, unlock(project, args.as_user, passphrase(f"Passphrase for {args.as_user}: ")))
        print(f"{args.sign}: result signed by {args.as_user}.")
        return 0

    with open_project(args.path, read_only=True, allow_snapshot=True) as project:
        with project.reading() as con:
            frame = list_runs(con, args.candidate)
    if args.format == "json":
        print(json.dumps(frame.to_dicts(), indent=2, default=str))
        return 0
    if frame.is_empty():
        print("No validation runs yet: lineproof validate PROJECT --candidate M:V --champion M:V --plan plan.toml")
        return 0
    for r in frame.iter_rows(named=True):
        print(f"{r['run_id']:<30} {r['verdict']:<13} {r['candidate_version']:<16} vs "
              f"{r['champion_version'] or '-':<16} {r['dataset_id']:<16} {r['finished_at']:%Y-%m-%d %H:%M} "
              f"{r['created_by']}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register the validation commands."""
    p = sub.add_parser("validate", help="validate a candidate against the champion under an acceptance plan",
                       description="Scores both versions on a held-out dataset with ONNX Runtime (and OpenVINO for "
                                   "parity), judges every criterion of the plan and stores the run. Exit code: "
                                   "0 PASS, 1 FAIL, 2 INCONCLUSIVE or error.")
    p.add_argument("path", help="project folder")
    p.add_argument("--candidate", required=True, metavar="M:V", help="version to validate, e.g. weld-defect:v2")
    p.add_argument("--champion", metavar="M:V", help="production version to compare with, e.g. weld-defect:v1")
    p.add_argument("--plan", required=True, help="plan TOML file, or the id of a plan stored in the project")
    p.add_argument("--dataset", metavar="ID", help="held-out dataset (default: the plan's)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--max-lines", type=int, default=8, help="checks shown per criterion (default 8)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("--as", dest="as_user", metavar="USER", help="sign the result as this user (passphrase asked)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("validations", help="list stored validation runs")
    p.add_argument("path", help="project folder")
    p.add_argument("--candidate", metavar="M:V", help="only runs of this candidate")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--sign", metavar="RUN", help="sign this run's result as the person who ran it (with --as)")
    p.add_argument("--as", dest="as_user", metavar="USER", help="who signs")
    p.set_defaults(func=cmd_validations)
