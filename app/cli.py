"""The `lineproof` command: every core capability headless, plus `gui`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from app import __version__
from app.core.errors import LineproofError, ProjectLockedError
from app.core.progress import TaskProgress


def _progress(quiet: bool) -> TaskProgress:
    last = [0.0]

    def show(fraction: float, message: str) -> None:
        now = time.monotonic()
        if quiet or (now - last[0] < 0.2 and fraction < 1.0):
            return
        last[0] = now
        end = "\n" if fraction >= 1.0 or not sys.stderr.isatty() else ""
        print(f"\r[{fraction:4.0%}] {message:<70}", end=end, file=sys.stderr, flush=True)

    return TaskProgress(show)


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise LineproofError(f"{what} {item!r} is not of the form NAME=COLUMN.", "Example: --map score=proba")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def _open(path: str, read_only: bool = False, allow_snapshot: bool = False):
    from app.core.store.project import Project

    try:
        return Project.open(path, read_only=read_only)
    except ProjectLockedError as exc:
        if not allow_snapshot:
            raise
        print(f"note: {exc.what} Showing a read-only snapshot.", file=sys.stderr)
        return Project.open_snapshot(path)


def cmd_init(args: argparse.Namespace) -> int:
    """Create an empty project."""
    from app.core.store.project import Project

    dims = tuple(d.strip() for d in args.dimensions.split(",") if d.strip())
    with Project.create(args.path, args.name or Path(args.path).name, args.site, dims):
        pass
    print(f"Created project {args.path} (slice dimensions: {', '.join(dims)})")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    """Build the seeded sample project."""
    from app.sample.build import build_sample, model_hashes

    start = time.perf_counter()
    folder = build_sample(args.path, scale=args.scale, progress=_progress(args.quiet))
    print(f"Built the sample project in {folder} in {time.perf_counter() - start:.1f} s")
    for name, sha in model_hashes(folder).items():
        print(f"  {name:<28} sha256 {sha}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print the project overview."""
    from app.core.analysis.overview import build_overview, overview_json, overview_text

    with _open(args.path, read_only=True, allow_snapshot=True) as project:
        ov = build_overview(project)
    print(json.dumps(overview_json(ov), indent=2, default=str) if args.json else overview_text(ov))
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """Import a prediction log."""
    from app.core.store.ingest import PredictionMapping, guess_prediction_mapping, import_predictions
    from app.core.store.sources import inspect_file

    with _open(args.path) as project:
        roles = _pairs(args.map, "--map")
        slices = _pairs(args.slice, "--slice")
        info = inspect_file(project.cursor(), args.file, preview_rows=1)
        guess = guess_prediction_mapping([c for c, _ in info.columns], project.manifest.slice_dimensions)
        unknown = set(roles) - {"record_id", "timestamp", "model_version", "score", "predicted_label"}
        if unknown:
            raise LineproofError(f"Unknown role(s) {sorted(unknown)} in --map.",
                                 "Roles: record_id, timestamp, model_version, score, predicted_label.")
        mapping = PredictionMapping(
            record_id=roles.get("record_id", guess.record_id), timestamp=roles.get("timestamp", guess.timestamp),
            model_version=roles.get("model_version", guess.model_version), score=roles.get("score", guess.score),
            predicted_label=roles.get("predicted_label", guess.predicted_label),
            slices=slices or guess.slices,
            features=tuple(f.strip() for f in args.features.split(",")) if args.features else None)
        result = import_predictions(project, args.file, mapping, _progress(args.quiet))
    print(f"Imported {result.rows:,} predictions from {result.file_name} (import #{result.import_id})")
    if result.new_columns:
        print(f"  new columns: {', '.join(result.new_columns)}")
    return 0


def cmd_labels(args: argparse.Namespace) -> int:
    """Import ground-truth labels."""
    from app.core.store.ingest import LabelMapping, import_labels

    roles = _pairs(args.map, "--map")
    mapping = LabelMapping(record_id=roles.get("record_id", "record_id"), label=roles.get("label", "label"),
                           labelled_at=roles.get("labelled_at", "labelled_at"))
    with _open(args.path) as project:
        result = import_labels(project, args.file, mapping, args.skip_unknown, _progress(args.quiet))
    print(f"Imported {result.rows:,} labels from {result.file_name} (import #{result.import_id})")
    if result.replaced:
        print(f"  {result.replaced:,} earlier labels were replaced by corrections")
    if result.unknown_ids:
        print(f"  skipped {result.unknown_ids:,} labels for unknown record ids, e.g. "
              f"{', '.join(result.unknown_examples)}", file=sys.stderr)
    return 0


def cmd_slices(args: argparse.Namespace) -> int:
    """Print slice performance, worst first."""
    from app.core.analysis.slice_report import slices_json, slices_text
    from app.core.analysis.slices import SliceQuery, compute_slices, resolve_version

    with _open(args.path, read_only=True, allow_snapshot=True) as project:
        version = resolve_version(project, args.model)
        by = tuple(d.strip() for d in (args.by or "").split(",") if d.strip())
        query = SliceQuery(version, by, args.window, _when(args.start, "--from"), _when(args.end, "--to"),
                           min_support=args.min_support, confidence=args.confidence)
        table = compute_slices(project, query, _progress(args.quiet or args.format != "table"))
    metric = args.metric or table.metrics[0 if table.task != "binary" else 2]
    if args.format == "json":
        print(slices_json(table, metric))
    elif args.format == "csv":
        sys.stdout.write(table.worst(metric).write_csv())
    else:
        print(slices_text(table, metric, limit=args.limit))
    return 0


def _when(text: str | None, flag: str):
    from datetime import datetime

    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise LineproofError(f"{flag} {text!r} is not a date.", "Use YYYY-MM-DD or YYYY-MM-DDTHH:MM.") from exc


def _window(text: str, flag: str):
    if ".." not in text:
        raise LineproofError(f"{flag} {text!r} is not a window.", f"Use FROM..TO, e.g. {flag} 2026-05-04..2026-08-24")
    start, end = text.split("..", 1)
    return _when(start, flag), _when(end, flag)


def cmd_drift(args: argparse.Namespace) -> int:
    """Print drift and data quality per feature and slice."""
    from app.core.analysis.drift import DriftQuery, compute_drift

    if not args.reference and not args.reference_dataset:
        raise LineproofError("drift needs a reference: --reference FROM..TO or --reference-dataset ID.",
                             "Example: --reference 2026-05-04..2026-08-24, or --reference-dataset train-v1")
    current = _window(args.current, "--current")
    reference = _window(args.reference, "--reference") if args.reference else (current[0], current[0])
    query = DriftQuery(reference, current, reference_dataset=args.reference_dataset,
                       by=tuple(d.strip() for d in args.by.split(",") if d.strip()),
                       features=tuple(f.strip() for f in args.features.split(",")) if args.features else None,
                       bins=args.bins, min_rows=args.min_rows)
    with _open(args.path, read_only=True, allow_snapshot=True) as project:
        table = compute_drift(project, query, _progress(args.quiet or args.format != "table"))
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
        print("  ".join([*(k.ljust(10) for k in keys), "feature".ljust(22), "    PSI", "   KS D", "  KS p",
                         " W/std", "    JS", " missing", "drift"]))
        for r in rows.iter_rows(named=True):
            def f(v, d=3):
                return "–".rjust(7) if v is None else f"{v:7.{d}f}"
            flag = "DRIFT" if r["drifted"] else ("" if r["drifted"] is not None else r["status"])
            print("  ".join([*(str(r[k]).ljust(10) for k in keys), r["feature"].ljust(22), f(r["psi"]),
                             f(r["ks_d"]), f(r["ks_p"], 2), f(r["wasserstein_norm"]), f(r["js"]),
                             f"{(r['missing_cur'] or 0):8.1%}", flag]))
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    """Detect, add and list timeline events."""
    from app.core.analysis.events import add_event, list_events, record_detected_events

    with _open(args.path, read_only=not (args.detect or args.add)) as project:
        if args.detect:
            print(f"Detected {record_detected_events(project)} new version change(s).")
        if args.add:
            at = _when(args.at, "--at")
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

    with _open(args.path, read_only=True, allow_snapshot=True) as project:
        gaps = silent_gaps(project, per=args.per, expected_hours=args.expected_hours)
    if not gaps.height:
        print(f"No {args.per} was silent for more than {args.expected_hours:g} h.")
    for r in gaps.iter_rows(named=True):
        state = "still silent" if r["open"] else f"until {r['gap_end']:%Y-%m-%d %H:%M}"
        print(f"{r[args.per]:<14} {r['line'] or '':<8} silent {r['gap_hours']:6.0f} h from "
              f"{r['gap_start']:%Y-%m-%d %H:%M} {state}")
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    """Evaluate, acknowledge and list alerts, with alert precision per line."""
    from app.core.analysis.alerts import acknowledge, alert_precision, evaluate_alerts, list_alerts

    writes = bool(args.evaluate or args.ack is not None)
    with _open(args.path, read_only=not writes, allow_snapshot=not writes) as project:
        if args.evaluate:
            if not (args.reference and args.current):
                raise LineproofError("--evaluate needs --reference FROM..TO and --current FROM..TO.",
                                     "Example: --reference 2026-05-04..2026-08-24 --current 2026-09-07..2026-10-19")
            new = evaluate_alerts(project, _window(args.reference, "--reference"), _window(args.current, "--current"),
                                  progress=_progress(args.quiet))
            print(f"{new} new alert(s).")
        if args.ack is not None:
            if args.verdict is None:
                raise LineproofError("--ack needs --as real|false.", "Example: --ack 3 --as false --comment seasonal")
            acknowledge(project, args.ack, args.verdict, args.comment or "")
            print(f"Alert #{args.ack} acknowledged as {args.verdict}.")
        alerts = list_alerts(project, None if args.all else "open")
        precision = alert_precision(project)
    for r in alerts.iter_rows(named=True):
        print(f"#{r['alert_id']:<4} {r['state']:<5} {r['severity']:<6} {r['rule']:<11} {r['message']}")
    if not alerts.height:
        print("No open alerts." if not args.all else "No alerts.")
    if precision.height:
        print("\nAlert precision per line (real / acknowledged):")
        for r in precision.iter_rows(named=True):
            p = "–" if r["precision"] is None else f"{r['precision']:.0%}"
            print(f"  {r['line']:<10} raised {r['raised']:>3}  open {r['open']:>3}  real {r['real']:>3}  "
                  f"false {r['false_alarms']:>3}  precision {p}")
    return 0


def cmd_import_model(args: argparse.Namespace) -> int:
    """Import a model file safely (ONNX, OpenVINO IR .xml+.bin, MLflow folder with an ONNX flavor)."""
    from app.core.models.model_import import import_model
    from app.core.models.registry import register_model

    with _open(args.path) as project:
        with project.reading() as con:
            known = con.execute("SELECT 1 FROM models WHERE model_id = ?", [args.model]).fetchall()
        if not known:
            register_model(project, args.model, args.name or args.model, args.task, args.risk_tier)
        result = import_model(project, args.file, args.model, args.version, args.threshold)
    print(f"Imported {result.version_id} ({result.format}), sha256 {result.sha256}")
    for runtime, state in result.runtimes.items():
        print(f"  {runtime:<12} {state}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List model versions with stages, hashes and the runtimes that can load them."""
    from app.core.models.registry import list_versions

    with _open(args.path, read_only=True, allow_snapshot=True) as project:
        frame = list_versions(project)
    for r in frame.iter_rows(named=True):
        print(f"{r['version_id']:<22} {r['format']:<11} {r['task']:<10} {r['risk_tier'] or '':<8} "
              f"sha256 {r['sha256'][:12]}  {r['stages'] or 'not staged'}")
        print(f"{'':<22} runtimes: onnxruntime {r['onnxruntime']}, openvino {r['openvino']}")
    if frame.is_empty():
        print("No models yet: lineproof import-model PROJECT FILE --model ID --version V")
    return 0


def cmd_stage(args: argparse.Namespace) -> int:
    """Move a version to a stage at a site, or roll a model back at a site."""
    from app.core.models.registry import rollback, set_stage

    with _open(args.path) as project:
        by = None
        if args.as_user:
            from app.cli_governance import _passphrase
            from app.core.governance.approvals import unlock

            by = unlock(project, args.as_user, _passphrase(f"Passphrase for {args.as_user}: "))
        if args.rollback:
            version = rollback(project, args.rollback, args.site, args.reason or "rollback", by=by)
            print(f"{version} is in production at {args.site} again.")
        else:
            if not (args.version and args.to):
                raise LineproofError("Name a version and --to STAGE, or --rollback MODEL.",
                                     "Example: lineproof stage PROJECT weld-defect:v2 --site P1 --to pilot")
            set_stage(project, args.version, args.site, args.to, args.reason or "", by=by)
            print(f"{args.version} is {args.to} at {args.site}.")
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    """Open the desktop application."""
    from app.views.main_window import run_gui

    return run_gui(args.path, read_only=args.read_only, quit_after=args.quit_after)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="lineproof", description="Trust machine-learning models on the production line. "
        "With no command, opens the last project (or the sample) in the desktop app.")
    parser.add_argument("--version", action="version", version=f"lineproof {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("init", help="create an empty project folder")
    p.add_argument("path", help="new project folder")
    p.add_argument("--name", help="display name (default: the folder name)")
    p.add_argument("--site", default="", help="plant or site this project belongs to")
    p.add_argument("--dimensions", default="plant,line,asset,shift,firmware",
                   help="comma-separated slice dimensions (default: %(default)s)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("sample", help="build the seeded weld-seam sample project")
    p.add_argument("path", help="folder to create")
    p.add_argument("--scale", type=float, default=1.0, help="1.0 = ~2M predictions; 5.0 = ~10M (benchmarks)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("info", help="print the project overview")
    p.add_argument("path", help="project folder")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("ingest", help="import a prediction log (CSV or Parquet)",
                       description="Import a prediction log. Columns are matched by name; map others with "
                       "--map ROLE=COLUMN (roles: record_id, timestamp, model_version, score, predicted_label) "
                       "and --slice DIMENSION=COLUMN. Every other column becomes a feature unless --features.")
    p.add_argument("path", help="project folder")
    p.add_argument("file", help="CSV or Parquet file")
    p.add_argument("--map", action="append", metavar="ROLE=COLUMN")
    p.add_argument("--slice", action="append", metavar="DIMENSION=COLUMN")
    p.add_argument("--features", help="comma-separated feature columns (default: all unmapped columns)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("labels", help="import delayed ground-truth labels (CSV or Parquet)")
    p.add_argument("path", help="project folder")
    p.add_argument("file", help="CSV or Parquet with record_id, label and optionally labelled_at")
    p.add_argument("--map", action="append", metavar="ROLE=COLUMN", help="roles: record_id, label, labelled_at")
    p.add_argument("--skip-unknown", action="store_true",
                   help="import the labels whose record ids are known and report the others")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_labels)

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
    p.add_argument("--min-support", type=int, default=30, help="labelled rows a slice needs (default 30)")
    p.add_argument("--confidence", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--limit", type=int, default=40, help="rows in the table format (default 40)")
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
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_drift)

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
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_alerts)

    p = sub.add_parser("import-model", help="import a model file safely (ONNX, OpenVINO IR, MLflow ONNX folder)")
    p.add_argument("path", help="project folder")
    p.add_argument("file", help=".onnx file, OpenVINO .xml (with its .bin), or an MLflow model folder")
    p.add_argument("--model", required=True, help="model id (registered on first import)")
    p.add_argument("--version", required=True, help="version name, e.g. v3")
    p.add_argument("--name", help="display name of a new model")
    p.add_argument("--task", default="binary", choices=("binary", "regression", "multiclass"))
    p.add_argument("--risk-tier", default="medium", choices=("low", "medium", "high", "safety-relevant"))
    p.add_argument("--threshold", type=float, default=0.5, help="decision threshold for binary models")
    p.set_defaults(func=cmd_import_model)

    p = sub.add_parser("models", help="list model versions, stages, hashes and runtimes")
    p.add_argument("path", help="project folder")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("stage", help="move a model version through candidate/shadow/pilot/production/retired")
    p.add_argument("path", help="project folder")
    p.add_argument("version", nargs="?", help="version id, e.g. weld-defect:v2")
    p.add_argument("--site", required=True, help="plant or site, e.g. P1")
    p.add_argument("--to", choices=("candidate", "shadow", "pilot", "production", "retired"))
    p.add_argument("--rollback", metavar="MODEL", help="make the previous production version current again")
    p.add_argument("--reason", help="why (audited)")
    p.add_argument("--as", dest="as_user", metavar="USER", help="who makes the change (required once the project has users; passphrase asked)")
    p.set_defaults(func=cmd_stage)

    p = sub.add_parser("gui", help="open the desktop application")
    p.add_argument("path", nargs="?", help="project folder (default: the last one, or the sample)")
    p.add_argument("--read-only", action="store_true", help="open without the right to change anything")
    p.add_argument("--quit-after", type=float, default=0.0, help=argparse.SUPPRESS)  # the bundle's smoke test
    p.set_defaults(func=cmd_gui)

    from app import cli_bench, cli_governance, cli_packet, cli_validate

    cli_bench.add_parsers(sub)
    cli_governance.add_parsers(sub)
    cli_validate.add_parsers(sub)
    cli_packet.add_parsers(sub)
    cli_packet.add_project_parsers(sub)
    from app.cli_review import add_kpi_parser

    add_kpi_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["gui"])
    try:
        return args.func(args)
    except LineproofError as exc:
        print(f"lineproof {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted; nothing was changed.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lineproof ... | head`: the reader has all it wanted
        sys.stderr.close()
        return 0
