"""`lineproof review PROJECT --month 2026-09`: the operating review from the command line.

`lineproof review PROJECT REQUEST --as USER --comment TEXT` stays the signed review of an approval request; the
period options (--month, --quarter, --event) select the operating review."""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

from app.cli.common import open_project, show_progress, signing_for
from app.core.errors import LineproofError


def is_operating(args: argparse.Namespace) -> bool:
    """Whether the review command was asked for an operating review."""
    return bool(args.month or args.quarter or args.event or args.list)


def _period(args: argparse.Namespace):
    from app.core.analysis import operating_review as ops

    if args.month:
        return ops.month(args.month)
    if args.quarter:
        return ops.quarter(args.quarter)
    try:
        day = date.fromisoformat(args.event)
    except ValueError as exc:
        raise LineproofError(f"--event {args.event!r} is not a date.", "Write it as YYYY-MM-DD.") from exc
    return ops.around(day, args.days)


def _print(review: dict) -> None:
    from app.core.analysis.quarterly import delivery_texts, lead_days_text

    h = review["health"]
    print(f"Operating review {review['period']['label']} ({review['period']['start'][:10]} to "
          f"{review['period']['end'][:10]}, compared with the period before)")
    sections = [("Triggers", [t["action"] for t in review["triggers"]]),
                ("Metric drops", [f["evidence"] for f in h["drops"]["findings"]]),
                ("Still open from earlier periods", [p["evidence"] for p in h.get("persisting", [])
                                                     if p["since"] < review["period"]["start"][:7]]),
                ("Confidence gaps (measured outside the estimate)",
                 [f"{g['version']} on {g['line']}: recall {g['recall_realized']:.3f} vs estimated {g['recall']:.3f} "
                  f"({g['recall_lower']:.3f}-{g['recall_upper']:.3f})" for g in h.get("estimates", {}).get("gaps", [])]),
                ("Production releases without a verified approval chain",
                 [f"{u['version_id']} at {u['site']} on {u['released_at'][:16]}"
                  for u in review.get("delivery", {}).get("unverified_releases", [])]),
                ("Input drift on single lines", [f["evidence"] for f in h["drift"]["line_specific"]]),
                ("Plant-wide input changes", [f["evidence"] for f in h["drift"]["plant_wide"]]),
                ("Silent assets", [f["evidence"] for f in h["silent"]]),
                ("Latency changes", [f["evidence"] for f in h["latency"]])]
    for title, items in sections:
        print(f"  {title}: {len(items) or 'none'}")
        for item in items:
            print(f"    - {item}")
    a = review["alerts"]
    print(f"  Alerts raised {a['raised']}: real {a['real']}, false {a['false']}, open {a['open']}")
    for r in a["precision_by_line"]:
        before = "-" if r["precision_before"] is None else f"{r['precision_before']:.0%} of {r['judged_before']}"
        print(f"    alert precision on {r['line']}: {r['precision']:.0%} of {r['judged']} judged (before: {before})")
    print(f"  Stage changes in the period: {len(review['inventory']['changes'])}")
    for item in review.get("answers", {}).get("lead_time", []):
        print(f"  Lead time: {lead_days_text(item)}")
    for scope, text in delivery_texts(review.get("answers", {})):
        print(f"  Delivery ({scope}): {text}")
    for o in review.get("outcomes", []):
        recall = "" if o["recall_now"] is None else f"; model recall {o['recall_now']:.3f} (before " \
            f"{o['recall_before']:.3f})"
        before = "-" if o["before"] is None else f"{o['before']:.2f}"
        print(f"  Outcome {o['kpi']} on {o['line']}: {o['now']:.2f} (before {before}){recall}")


def cmd_operating_review(args: argparse.Namespace) -> int:
    """Build (and optionally save, sign and export) an operating review; exit 0."""
    from app.core.analysis import operating_review as ops

    with open_project(args.path, read_only=not (args.save or args.out), allow_snapshot=True) as project:
        if args.list:
            with project.reading() as con:
                rows = con.execute("SELECT review_id, label, reviewer, created_at, decision FROM operating_reviews "
                                   "ORDER BY created_at DESC").fetchall()
            for r in rows:
                print(f"{r[0]:<28} {r[1]:<24} {r[2]:<12} {r[3]:%Y-%m-%d %H:%M}  {r[4]}")
            print("" if rows else "No saved reviews yet: lineproof review PROJECT --month YYYY-MM --save --decision TEXT")
            return 0
        review = ops.build_review(project, _period(args), show_progress(args.quiet or args.format == "json"))
        review_id = None
        if args.save or args.out:

            review_id = ops.save_review(project, review, args.decision or "", args.action or [],
                                        args.reviewer or _reviewer(args))
            if args.out:
                from app.core.packet.review_pdf import export_review

                signings = [signing_for(project, spec) for spec in args.sign_as or []]
                path = export_review(project, review_id, Path(args.out), signings)
    if args.format == "json":
        print(json.dumps({"review_id": review_id, **review}, indent=2, default=str))
        return 0
    _print(review)
    if review_id:
        print(f"Saved as {review_id}" + (f"; signed PDF: {path}" if args.out else ""))
    return 0


def _reviewer(args: argparse.Namespace) -> str:
    from app.core.store.audit import current_actor

    return (args.sign_as or [current_actor()])[0].partition(":")[0]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The operating-review options of `lineproof review`."""
    g = p.add_argument_group("operating review (instead of REQUEST)")
    g.add_argument("--month", metavar="YYYY-MM", help="monthly review, compared with the month before")
    g.add_argument("--quarter", metavar="YYYYQn", help="quarterly review")
    g.add_argument("--event", metavar="YYYY-MM-DD", help="event review: the days after an event vs before")
    g.add_argument("--days", type=int, default=14, help="length of an event review window (default 14)")
    g.add_argument("--decision", help="the reviewer's decision (needed to --save)")
    g.add_argument("--action", action="append", help="an action decided (repeatable)")
    g.add_argument("--save", action="store_true", help="store the review record in the project (audited)")
    g.add_argument("--reviewer", help="who reviewed (default: the first --sign-as, or you)")
    g.add_argument("--out", help="also export the record as a signed PDF (needs --sign-as)")
    g.add_argument("--sign-as", action="append", metavar="USER[:MEANING]", help="signer of the PDF, in order")
    g.add_argument("--list", action="store_true", help="list the saved reviews")
    g.add_argument("--format", choices=("text", "json"), default="text")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress output")
