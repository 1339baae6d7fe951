"""`lineproof slices|drift|estimate|overrides|events|freshness|alerts`: how the models do on the line."""

from __future__ import annotations

import argparse
import json
import sys

from app.cli.common import open_project, parse_when, parse_window, show_progress
from app.core.errors import LineproofError


def cmd_slices(args: argparse.Namespace) -> int:
    """Print slice performance, worst first."""
    from app.core.analysis.slice_report import slices_json, slices_text
    from app.core.analysis.slices import SliceQuery, compute_slices, resolve_version

    if args.engine and not args.log:
        raise LineproofError("--engine applies to an attached log.", "Add --log NAME (see lineproof attach-log "
                                                                    "PROJECT --list), or leave --engine out.")
    with open_project(args.path, read_only=True, allow_snapshot=True) as project:
        if args.log and ":" not in args.model:
            raise LineproofError(f"Name the version in the attached log {args.log}: --model {args.model}:VERSION.",
                                 "An attached log is not scanned to guess a version.")
        version = args.model if args.log else resolve_version(project, args.model)
        by = tuple(d.strip() for d in (args.by or "").split(",") if d.strip())
        query = SliceQuery(version, by, args.window, parse_when(args.start, "--from"), parse_when(args.end, "--to"),
                           min_support=args.min_support, confidence=args.confidence, threshold=args.threshold,
                           log=args.log, engine=args.engine)
        table = compute_slices(project, query, show_progress(args.quiet or args.format != "table"))
    metric = args.metric or table.metrics[0 if table.task != "binary" else 2]
    if args.format == "json":
        print(slices_json(table, metric))
    elif args.format == "csv":
        sys.stdout.write(table.worst(metric).write_csv())
    else:
        print(slices_text(table, metric, limit=args.limit))
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    """Print drift and data quality per feature and slice."""
    from app.core.analysis.drift import DriftQuery, compute_drift
    from app.core.analysis.triage import with_triage

    if not args.reference and not args.reference_dataset:
        raise LineproofError("drift needs a reference: --reference FROM..TO or --reference-dataset ID.",
                             "Example: --reference 2026-05-04..2026-08-24, or --reference-dataset train-v1")
    current = parse_window(args.current, "--current")
    reference = parse_window(args.reference, "--reference") if args.reference else (current[0], current[0])
    query = DriftQuery(reference, current, reference_dataset=args.reference_dataset,
                       by=tuple(d.strip() for d in args.by.split(",") if d.strip()),
                       features=tuple(f.strip() for f in args.features.split(",")) if args.features else None,
                       bins=args.bins, min_rows=args.min_rows, mode=args.mode, log=args.log, engine=args.engine)
    if args.engine and not args.log:
        raise LineproofError("--engine applies to an attached log.", "Add --log NAME, or leave --engine out.")
    with open_project(args.path, read_only=True, allow_snapshot=True) as project:
        table = with_triage(project, compute_drift(project, query, show_progress(args.quiet or args.format != "table")))
    rows = table.rows
    if args.only_drifted and rows.height:
        rows = rows.filter(rows["drifted"].fill_null(False))
    if args.format == "json":
        print(json.dumps([{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
                          for r in rows.iter_rows(named=True)], indent=2))
    elif args.format == "csv":
        sys.stdout.write(rows.write_csv())
    else:
        keys = list(query.by)
        print(f"reference {args.reference or 'dataset ' + args.reference_dataset}, current {args.current}; drift decided by "
              "normalised Wasserstein (numeric) / Jensen-Shannon (categorical), PSI alongside")
        print(bound_text(table))
        print("  ".join([*(k.ljust(10) for k in keys), "feature".ljust(22), "    PSI", "   KS D", "  KS p",
                         " W/std", "    JS", " missing", "drift", "triage"]))
        for r in rows.iter_rows(named=True):
            def f(v, d=3):
                return "–".rjust(7) if v is None else f"{v:7.{d}f}"
            flag = "DRIFT" if r["drifted"] else ("" if r["drifted"] is not None else r["status"])
            print("  ".join([*(str(r[k]).ljust(10) for k in keys), r["feature"].ljust(22), f(r["psi"]),
                             f(r["ks_d"]), f(r["ks_p"], 2), f(r["wasserstein_norm"]), f(r["js"]),
                             f"{(r['missing_cur'] or 0):8.1%}", flag.ljust(5),
                             f"{r['triage']}: {r['cause']}" if r.get("triage") else ""]))
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    """Print estimated performance per slice and window, with its band and the realized value."""
    from app.core.analysis.estimate import EstimateQuery, compute_estimates
    from app.core.analysis.slices import resolve_version

    start, end = parse_window(args.reference, "--reference")
    with open_project(args.path, read_only=True, allow_snapshot=True) as project:
        version = resolve_version(project, args.model)
        query = EstimateQuery(version, (start, end), tuple(d.strip() for d in args.by.split(",") if d.strip()),
                              args.window, min_rows=args.min_rows, threshold=args.threshold, mode=args.mode,
                              start=parse_when(args.start, "--from"), end=parse_when(args.end, "--to"))
        table = compute_estimates(project, query, show_progress(args.quiet or args.format != "table"))
    if args.format == "json":
        print(json.dumps([{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
                          for r in table.rows.iter_rows(named=True)], indent=2))
    elif args.format == "csv":
        sys.stdout.write(table.rows.write_csv())
    else:
        print(estimate_text(table, args.metric))
    return 0


def cmd_overrides(args: argparse.Namespace) -> int:
    """Print operator override rates per slice and window, with who was right."""
    from app.core.analysis.overrides import OverrideQuery, override_table
    from app.core.analysis.slices import resolve_version

    with open_project(args.path, read_only=True, allow_snapshot=True) as project:
        version = resolve_version(project, args.model)
        by = tuple(d.strip() for d in args.by.split(",") if d.strip())
        rows = override_table(project, OverrideQuery(version, by, args.window, parse_when(args.start, "--from"),
                                                     parse_when(args.end, "--to")))
    if args.format == "json":
        print(json.dumps([{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
                          for r in rows.iter_rows(named=True)], indent=2))
    elif args.format == "csv":
        sys.stdout.write(rows.write_csv())
    else:
        print(f"{version}: operator overrides (final decision other than the model's), 95% Wilson intervals; "
              "'right' = operator right among labelled overrides")
        print("  ".join([*(k.ljust(10) for k in by), "window".ljust(10), " decided", "overrides", "   rate",
                         "     interval", "confident", "  right", "model prec."]))
        for r in rows.iter_rows(named=True):
            def pct(v):
                return "–".rjust(7) if v is None else f"{v:7.1%}"
            print("  ".join([*(str(r[k]).ljust(10) for k in by), str(r["period"]).ljust(10), f"{r['decided']:8,}",
                             f"{r['overrides']:9,}", pct(r["override_rate"]),
                             f"{r['override_rate_low']:.1%}-{r['override_rate_high']:.1%}".rjust(13),
                             pct(r["confident_rate"]).rjust(9), pct(r["override_precision"]),
                             pct(r["model_precision"]).rjust(11)]))
    return 0


def estimate_text(table, metric: str) -> str:
    """The estimate table for a terminal: one line per slice and window, flagged gaps marked."""
    keys = list(table.query.by)
    lines = [f"{table.query.version_id}: {metric} estimated from the model's confidence (band: +-3 sampling errors); "
             "realized where labels have arrived", *(f"  {n}" for n in table.notes),
             "  ".join([*(k.ljust(10) for k in keys), "window".ljust(10), "      rows", "labelled",
                        f"{'estimate':>9}", f"{'band':>15}", f"{'realized':>9}", "  note"])]

    def f(v):
        return "–".rjust(9) if v is None else f"{v:9.3f}"
    for r in table.rows.iter_rows(named=True):
        shown = "" if r["status"] == "estimated" else r["status"]
        if r["gap_flagged"]:
            shown = f"GAP ({r['gap_metrics']}): the model's confidence no longer matches the labels"
        low, high = r[f"{metric}_lower"], r[f"{metric}_upper"]
        span = "–".rjust(15) if low is None else f"{low:.3f}..{high:.3f}".rjust(15)
        lines.append("  ".join([*(str(r[k]).ljust(10) for k in keys), str(r["period"]).ljust(10), f"{r['n']:10,}",
                                f"{r['labelled']:8,}", f(r[metric]), span, f(r[f"{metric}_realized"]),
                                ("R " if r["in_reference"] else "  ") + shown]))
    lines.append("R: window overlaps the reference.")
    return "\n".join(lines)


def bound_text(table) -> str:
    """One line on how exact the numeric statistics are (the bounded summaries' largest error bounds)."""
    bounds = table.largest_bounds()
    if bounds is None:
        return "KS and Wasserstein exact (every distinct value counted)"
    return (f"KS within +-{bounds[0]:.4f}, W/std within +-{bounds[1]:.4f} (bounded summaries, largest bound of any "
            "cell; --exact for exact values, at a cost that grows with rows x distinct values)")


def cmd_events(args: argparse.Namespace) -> int:
    """Detect, add and list timeline events."""
    from app.core.analysis.events import add_event, list_events, record_detected_events

    with open_project(args.path, read_only=not (args.detect or args.add)) as project:
        if args.detect:
            print(f"Detected {record_detected_events(project)} new version change(s).")
        if args.add:
            at = parse_when(args.at, "--at")
            if at is None:
                raise LineproofError("--add needs --at DATE.", "Example: --add 'new wire supplier' --at 2026-07-01")
            dim, _, scope = (args.scope or "").partition("=")
            event_id = add_event(project, at, args.add, dimension=dim or None, scope=scope or None)
            print(f"Added event #{event_id}.")
        events = list_events(project)
    for r in events.iter_rows(named=True):
        print(f"#{r['event_id']:<4} {r['ts']:%Y-%m-%d %H:%M}  {r['source']:<8} {r['line'] or '':<8} {r['description']}")
    if not events.height:
        print("No events. `lineproof events PROJECT --detect` finds firmware changes in the log.")
    return 0


def cmd_freshness(args: argparse.Namespace) -> int:
    """List silent gaps per asset."""
    from app.core.analysis.freshness import silent_gaps
    from app.core.engine.attach import load_log

    if args.engine and not args.log:
        raise LineproofError("--engine applies to an attached log.", "Add --log NAME, or leave --engine out.")
    with open_project(args.path, read_only=True, allow_snapshot=True) as project:
        if args.log:
            slices = sorted(load_log(project, args.log).slices)
        else:
            with project.reading() as con:
                slices = [r[0] for r in con.execute("SELECT name FROM log_columns WHERE role = 'slice' ORDER BY 1")
                          .fetchall()]
        if args.per not in slices:
            raise LineproofError(f"--per {args.per!r}: the log has no such slice column.",
                                 f"Use one of: {', '.join(slices) or 'none (import a log with slice columns)'}.")
        gaps = silent_gaps(project, per=args.per, expected_hours=args.expected_hours, log=args.log,
                           engine=args.engine)
    if not gaps.height:
        print(f"No {args.per} was silent for more than {args.expected_hours:g} h.")
    for r in gaps.iter_rows(named=True):
        state = "still silent" if r["open"] else f"until {r['gap_end']:%Y-%m-%d %H:%M}"
        print(f"{r[args.per]:<14} {r.get('line') or '':<8} silent {r['gap_hours']:6.0f} h from "
              f"{r['gap_start']:%Y-%m-%d %H:%M} {state}")
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    """Evaluate, acknowledge and list alerts, with alert precision per line."""
    from app.core.analysis.alerts import (
        acknowledge,
        alert_precision,
        alerts_json,
        evaluate_alerts,
        list_alerts,
    )
    from app.core.models.impact import measure_impact

    writes = bool(args.evaluate or args.ack is not None)
    with open_project(args.path, read_only=not writes, allow_snapshot=not writes) as project:
        if args.evaluate:
            if not (args.reference and args.current):
                raise LineproofError("--evaluate needs --reference FROM..TO and --current FROM..TO.",
                                     "Example: --reference 2026-05-04..2026-08-24 --current 2026-09-07..2026-10-19")
            new = evaluate_alerts(project, parse_window(args.reference, "--reference"), parse_window(args.current, "--current"),
                                  progress=show_progress(args.quiet or args.format == "json"),
                                  impact=None if args.log else measure_impact, log=args.log, engine=args.engine)
            print(f"{new} new alert(s).", file=sys.stderr if args.format == "json" else sys.stdout)
        if args.ack is not None:
            if args.verdict is None:
                raise LineproofError("--ack needs --as real|false.", "Example: --ack 3 --as false --comment seasonal")
            acknowledge(project, args.ack, args.verdict, args.comment or "")
            print(f"Alert #{args.ack} acknowledged as {args.verdict}.")
        alerts = list_alerts(project, None if args.all else "open")
        precision = alert_precision(project)
    if args.format == "json":
        print(json.dumps(alerts_json(alerts), indent=2, default=str))
        return 0
    for r in alerts.iter_rows(named=True):
        print(f"#{r['alert_id']:<4} {r['state']:<5} {r['severity']:<6} {r['rule']:<11} {r['message']}")
    if not alerts.height:
        print("No open alerts." if not args.all else "No alerts.")
    if precision.height:
        print("\nAlert precision per slice (real / acknowledged):")
        for r in precision.iter_rows(named=True):
            p = "–" if r["precision"] is None else f"{r['precision']:.0%}"
            print(f"  {r['line']:<10} raised {r['raised']:>3}  open {r['open']:>3}  real {r['real']:>3}  "
                  f"false {r['false_alarms']:>3}  precision {p}")
    return 0


def _exactness(p: argparse.ArgumentParser, exact: str, bounded: str) -> None:
    """--exact / --bounded (mode auto by default), worded for the command."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--exact", dest="mode", action="store_const", const="exact", help=exact)
    group.add_argument("--bounded", dest="mode", action="store_const", const="bounded", help=bounded)
    p.set_defaults(mode="auto")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register `slices`, `drift`, `estimate`, `overrides`, `events`, `freshness`, `alerts`."""
    p = sub.add_parser("slices", help="performance per slice with confidence intervals, worst first",
                       description="Metrics per slice of one model version's prediction log joined with its "
                       "labels. Binary: accuracy, precision, recall, f1, fpr, auc, brier; regression: mae, "
                       "rmse, bias; multiclass: accuracy, macro_f1. Slices below --min-support labelled rows "
                       "show 'insufficient data'.")
    p.add_argument("path", help="project folder")
    p.add_argument("--model", required=True, metavar="NAME[:VERSION]", help="model id or name, or a version id")
    p.add_argument("--by", default="", help="comma-separated slice dimensions, e.g. line,asset")
    p.add_argument("--window", choices=("day", "week", "month"), help="also slice by time window")
    p.add_argument("--metric", help="metric to rank by (default: recall for binary models)")
    p.add_argument("--from", dest="start", metavar="DATE", help="first day (inclusive)")
    p.add_argument("--to", dest="end", metavar="DATE", help="end (exclusive)")
    p.add_argument("--threshold", type=float, help="decision threshold on the score (default: the registered "
                   "version's, or the log's predicted labels; needed for a log-only model without them)")
    p.add_argument("--min-support", type=int, default=30, help="labelled rows a slice needs (default 30)")
    p.add_argument("--confidence", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--limit", type=int, default=40, help="rows in the table format (default 40)")
    p.add_argument("--log", metavar="NAME", help="an attached log (lineproof attach-log) instead of the project's own")
    p.add_argument("--engine", choices=("duckdb", "spark"),
                   help="where an attached log's rows are summarised (default: lineproof.toml [engine], else duckdb)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_slices)

    p = sub.add_parser("drift", help="input drift and data quality per feature and slice",
                       description="Compare a reference window with a current window of the prediction log.")
    p.add_argument("path", help="project folder")
    p.add_argument("--reference", metavar="FROM..TO", help="reference window, e.g. 2026-05-04..2026-08-24")
    p.add_argument("--reference-dataset", metavar="ID", help="a registered dataset as reference (e.g. train-v1)")
    p.add_argument("--current", required=True, metavar="FROM..TO", help="current window")
    p.add_argument("--by", default="line", help="comma-separated slice dimensions (default: line; '' for none)")
    p.add_argument("--features", help="comma-separated features (default: all)")
    p.add_argument("--bins", type=int, default=10, help="reference quantile bins for PSI and JS (default 10)")
    p.add_argument("--min-rows", type=int, default=30, help="rows each window needs (default 30)")
    p.add_argument("--only-drifted", action="store_true", help="show drifted cells only")
    _exactness(p, "exact KS and Wasserstein from every distinct value (default up to 1M rows in the two windows; "
                  "its cost grows with rows x distinct values)",
               "KS and Wasserstein from fixed-size summaries, with their error bound (default above 1M rows)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--log", metavar="NAME", help="an attached log (lineproof attach-log) instead of the project's own")
    p.add_argument("--engine", choices=("duckdb", "spark"),
                   help="where an attached log's summaries are built (spark: always bounded)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_drift)

    p = sub.add_parser("estimate", help="performance estimated before the labels arrive (CBPE), per slice and window",
                       description="Confidence-based performance estimation for a binary classifier: scores are "
                       "calibrated on a labelled reference window (isotonic, where it shows miscalibration), and "
                       "each window's expected confusion matrix gives auc, f1, precision, recall, accuracy and fpr "
                       "with a +-3 sampling-error band, the realized value where labels exist, and a flag when the "
                       "two part beyond sampling noise.")
    p.add_argument("path", help="project folder")
    p.add_argument("--model", required=True, metavar="NAME[:VERSION]", help="model id or name, or a version id")
    p.add_argument("--reference", required=True, metavar="FROM..TO",
                   help="labelled reference window, e.g. 2026-05-04..2026-06-29")
    p.add_argument("--by", default="", help="comma-separated slice dimensions, e.g. line or asset,shift")
    p.add_argument("--window", choices=("day", "week", "month", "all"), default="week",
                   help="time window (default week; all: the whole span as one window)")
    p.add_argument("--from", dest="start", metavar="DATE", help="first day estimated (inclusive)")
    p.add_argument("--to", dest="end", metavar="DATE", help="end of the span estimated (exclusive)")
    p.add_argument("--metric", choices=("auc", "f1", "precision", "recall", "accuracy", "fpr"), default="recall",
                   help="metric shown in the table format (csv and json carry all)")
    p.add_argument("--min-rows", type=int, default=300, help="rows a window needs for an estimate (default 300)")
    p.add_argument("--threshold", type=float, help="decision threshold (default: the log's decisions)")
    _exactness(p, "every distinct score (default up to 1M logged rows; costs a sort of them)",
               "1,000 score bins with error bounds (default above 1M rows)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("overrides", help="operator overrides per slice and window: rate, confidence, who was right",
                       description="How often operators overrode the model's decision (the log's operator_decision "
                       "column), with Wilson intervals, the share of confident decisions overridden, and once labels "
                       "arrive how often the operator was right, beside the model's precision.")
    p.add_argument("path", help="project folder")
    p.add_argument("--model", required=True, metavar="NAME[:VERSION]", help="model id or name, or a version id")
    p.add_argument("--by", default="line", help="comma-separated slice dimensions (default line)")
    p.add_argument("--window", choices=("day", "week", "month", "all"), default="week", help="time window")
    p.add_argument("--from", dest="start", metavar="DATE", help="first day (inclusive)")
    p.add_argument("--to", dest="end", metavar="DATE", help="end (exclusive)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=cmd_overrides)

    p = sub.add_parser("events", help="firmware changes and manual events on the timeline")
    p.add_argument("path", help="project folder")
    p.add_argument("--detect", action="store_true", help="find version changes (firmware) in the log and store them")
    p.add_argument("--add", metavar="TEXT", help="add a manual event with this description")
    p.add_argument("--at", metavar="DATE", help="when the manual event happened")
    p.add_argument("--scope", metavar="DIMENSION=VALUE", help="where, e.g. line=P1-L04")
    p.set_defaults(func=cmd_events)

    p = sub.add_parser("freshness", help="assets that went silent, and for how long")
    p.add_argument("path", help="project folder")
    p.add_argument("--per", default="asset", help="slice column to check (default asset)")
    p.add_argument("--expected-hours", type=float, default=24.0, help="longest normal silence (default 24)")
    p.add_argument("--log", metavar="NAME", help="an attached log (lineproof attach-log) instead of the project's own")
    p.add_argument("--engine", choices=("duckdb", "spark"), help="where an attached log's hourly counts are built")
    p.set_defaults(func=cmd_freshness)

    p = sub.add_parser("alerts", help="evaluate alert rules, acknowledge alerts, see the false-alert burden")
    p.add_argument("path", help="project folder")
    p.add_argument("--evaluate", action="store_true", help="evaluate the rules (needs --reference and --current)")
    p.add_argument("--reference", metavar="FROM..TO", help="reference window for drift")
    p.add_argument("--current", metavar="FROM..TO", help="window the rules look at")
    p.add_argument("--ack", type=int, metavar="ID", help="acknowledge this alert")
    p.add_argument("--as", dest="verdict", choices=("real", "false"), help="the acknowledgement's verdict")
    p.add_argument("--comment", help="why (stored and audited)")
    p.add_argument("--all", action="store_true", help="list acknowledged alerts too")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="json: each alert with its triage class, likely cause and impact, ranked by impact")
    p.add_argument("--log", metavar="NAME", help="evaluate over an attached log (lineproof attach-log)")
    p.add_argument("--engine", choices=("duckdb", "spark"), help="where an attached log's summaries are built")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_alerts)
