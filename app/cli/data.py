"""`lineproof ingest|labels|kpis|history`: prediction logs, delayed labels and business KPIs into the project."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.cli.common import open_project, pairs, show_progress
from app.core.errors import LineproofError


def cmd_ingest(args: argparse.Namespace) -> int:
    """Import a prediction log."""
    from app.core.store.ingest import PredictionMapping, guess_prediction_mapping, import_predictions
    from app.core.store.sources import header_columns

    with open_project(args.path) as project:
        roles = pairs(args.map, "--map")
        slices = pairs(args.slice, "--slice")
        # The header is enough to guess the mapping: the file itself is parsed once, by the import.
        guess = guess_prediction_mapping(header_columns(project.cursor(), args.file), project.manifest.slice_dimensions)
        known = ("record_id", "timestamp", "model_version", "score", "predicted_label", "operator_decision",
                 "override_reason")
        unknown = set(roles) - set(known)
        if unknown:
            raise LineproofError(f"Unknown role(s) {sorted(unknown)} in --map.", f"Roles: {', '.join(known)}.")
        if args.inputs_only and {"model_version", "score", "predicted_label"} & set(roles):
            raise LineproofError("--inputs-only imports no model version, score or predicted label, but --map "
                                 "names one.", "Leave those roles out of --map, or drop --inputs-only.")
        model = {} if args.inputs_only else {
            "model_version": roles.get("model_version", guess.model_version), "score": roles.get("score", guess.score),
            "predicted_label": roles.get("predicted_label", guess.predicted_label)}
        mapping = PredictionMapping(
            record_id=roles.get("record_id", guess.record_id), timestamp=roles.get("timestamp", guess.timestamp),
            model_version=model.get("model_version"), score=model.get("score"),
            predicted_label=model.get("predicted_label"),
            slices=slices or guess.slices,
            features=tuple(f.strip() for f in args.features.split(",")) if args.features else None,
            score_kind=args.score_kind,
            operator_decision=roles.get("operator_decision", guess.operator_decision),
            override_reason=roles.get("override_reason", guess.override_reason))
        result = import_predictions(project, args.file, mapping, show_progress(args.quiet))
    what = "input records (no model: drift and data quality only)" if mapping.inputs_only else "predictions"
    print(f"Imported {result.rows:,} {what} from {result.file_name} (import #{result.import_id})")
    if result.new_columns:
        print(f"  new columns: {', '.join(result.new_columns)}")
    for note in result.notes:
        print(f"  note: {note}")
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    """Register a Parquet file as a validation, reference or training dataset (copied, hashed, audited)."""
    from app.core.store.datasets import register_dataset

    with open_project(args.path) as project:
        sha = register_dataset(project, args.id, args.name or args.id, args.kind, args.file, args.description or "")
    print(f"Registered dataset {args.id} ({args.kind}), sha256 {sha}")
    return 0


def cmd_labels(args: argparse.Namespace) -> int:
    """Import ground-truth labels."""
    from app.core.store.ingest import LabelMapping, import_labels

    roles = pairs(args.map, "--map")
    mapping = LabelMapping(record_id=roles.get("record_id", "record_id"), label=roles.get("label", "label"),
                           labelled_at=roles.get("labelled_at", "labelled_at"))
    with open_project(args.path) as project:
        result = import_labels(project, args.file, mapping, args.skip_unknown, show_progress(args.quiet))
    print(f"Imported {result.rows:,} labels from {result.file_name} (import #{result.import_id})")
    if result.replaced:
        print(f"  {result.replaced:,} earlier labels were replaced by corrections")
    if result.older_than_stored:
        print(f"  {result.older_than_stored:,} labels were not applied: the project holds a newer verdict for those "
              "records (the newest labelled_at wins)")
    if result.unknown_ids:
        print(f"  skipped {result.unknown_ids:,} labels for unknown record ids, e.g. "
              f"{', '.join(result.unknown_examples)}", file=sys.stderr)
    return 0


def cmd_kpis(args: argparse.Namespace) -> int:
    """Import business KPIs (line, week, kpi, value) from CSV for the operating reviews."""
    from app.core.analysis.kpis import import_kpis

    with open_project(args.path) as project:
        rows = import_kpis(project, args.file)
    print(f"Imported {rows:,} KPI values from {Path(args.file).name}.")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    """Import a release history recorded before Lineproof, or list what was imported."""
    from app.core.governance.release_history import history_events, import_history

    with open_project(args.path, read_only=not args.file) as project:
        if args.file:
            rows = import_history(project, args.file)
            print(f"Imported {rows:,} release event(s) from {Path(args.file).name}; they date the delivery metrics "
                  "and never count as verified releases.")
            return 0
        events = history_events(project)
    if events.is_empty():
        print("No release history imported. Import one with: lineproof history PROJECT FILE.csv "
              "(columns model, version, site, event, at, by, note).")
    for r in events.iter_rows(named=True):
        print(f"{r['at']:%Y-%m-%d %H:%M}  {r['version_id']:<22} {r['site'] or '-':<6} {r['event']:<19} "
              f"{r['actor']:<14} {r['note']}  [{r['file_name']}]")
    return 0


def cmd_attach_log(args: argparse.Namespace) -> int:
    """Attach a prediction log where it lives (no copy), check one again, or list them."""
    from app.core.engine.attach import attach_log, attached_logs, load_log

    with open_project(args.path, read_only=args.list) as project:
        if args.list:
            logs = attached_logs(project)
            if not logs:
                print("No logs attached. Attach one with: lineproof attach-log PROJECT SOURCE --as NAME")
            for r in logs:
                print(f"{r['name']:<16} {r['rows']:>12,} rows  {r['files']:>5} files  {r['bytes'] / 1e6:>9.1f} MB  "
                      f"{r['source']}  (attached {r['attached_at']:%Y-%m-%d %H:%M} by {r['by']}"
                      f"{', labels ' + r['labels'] if r['labels'] else ''})")
            return 0
        if args.recheck:
            old = load_log(project, args.recheck, check=False)
            roles = {k: v for k, v in old.roles.items() if v}
            log = attach_log(project, old.source, old.name, roles, old.slices, old.features, old.labels_source,
                             old.score_kind, replace=True)
            verb = "Checked again"
        else:
            if not args.source or not args.name:
                raise LineproofError("attach-log needs SOURCE and --as NAME (or --list, or --recheck NAME).",
                                     "Example: lineproof attach-log PROJECT 'lake/plant=*/line=*/*.parquet' --as lake")
            features = tuple(f.strip() for f in args.features.split(",")) if args.features else None
            log = attach_log(project, args.source, args.name, pairs(args.map, "--map"), pairs(args.slice, "--slice"),
                             features, args.labels, args.score_kind)
            verb = "Attached"
    print(f"{verb} {log.name}: {log.rows:,} rows in {len(log.files)} files under {log.root} (nothing copied); "
          f"slices {', '.join(log.slices) or 'none'}; {len(log.features)} features"
          f"{'; labels from ' + log.labels_source if log.labels_source else ''}.")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register `ingest`, `labels`, `dataset`."""
    p = sub.add_parser("ingest", help="import a prediction log (CSV or Parquet)",
                       description="Import a prediction log. Columns are matched by name; map others with "
                       "--map ROLE=COLUMN (roles: record_id, timestamp, model_version, score, predicted_label, "
                       "operator_decision: the operator's final 0/1 decision, override_reason) "
                       "and --slice DIMENSION=COLUMN. Every other column becomes a feature unless --features.")
    p.add_argument("path", help="project folder")
    p.add_argument("file", help="CSV or Parquet file")
    p.add_argument("--map", action="append", metavar="ROLE=COLUMN")
    p.add_argument("--score-kind", choices=("probability", "logit", "value"),
                   help="what the score column holds: probability (0..1, the default for binary models), logit "
                        "(converted with the logistic function) or value (regression output)")
    p.add_argument("--inputs-only", action="store_true",
                   help="the file logs a line's inputs without a model version or score: its rows feed drift "
                        "and data-quality checks, not performance metrics")
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
    p = sub.add_parser("kpis", help="import business KPIs per line and week (CSV: line, week, kpi, value)")
    p.add_argument("path", help="project folder")
    p.add_argument("file", help="CSV with columns line, week (2026-09-07 or 2026-W37), kpi, value")
    p.set_defaults(func=cmd_kpis)
    p = sub.add_parser("attach-log", help="register a prediction log where it lives (Parquet lake), no copy",
                       description="Attach a hive-partitioned Parquet folder or glob (e.g. "
                       "'lake/plant=*/line=*/date=*/*.parquet') as a prediction log without copying it. Columns are "
                       "matched as by ingest (--map ROLE=COLUMN for others); partition columns become slice "
                       "dimensions. The source is checked as ingest checks a file, and its file list (sizes, "
                       "modification times) is recorded: a later change is reported and refused until "
                       "--recheck. Analyse it with `lineproof slices PROJECT --log NAME [--engine spark]`.")
    p.add_argument("path", help="project folder")
    p.add_argument("source", nargs="?", help="folder, glob or Parquet file")
    p.add_argument("--as", dest="name", metavar="NAME", help="the name analyses use (--log NAME)")
    p.add_argument("--map", action="append", metavar="ROLE=COLUMN",
                   help="roles: record_id, timestamp, model_version, score, predicted_label")
    p.add_argument("--slice", action="append", metavar="DIMENSION=COLUMN")
    p.add_argument("--features", help="comma-separated feature columns (default: every other numeric column)")
    p.add_argument("--labels", metavar="SOURCE", help="labels where they live (Parquet: record_id, label, labelled_at)")
    p.add_argument("--score-kind", choices=("probability", "value"), default="probability")
    p.add_argument("--list", action="store_true", help="list the attached logs")
    p.add_argument("--recheck", metavar="NAME", help="check an attached log again and record its files as they are")
    p.set_defaults(func=cmd_attach_log)

    p = sub.add_parser("history", help="import the release history kept before Lineproof (CSV), or list it",
                       description="Dated release events from the plant's change-management records: columns "
                       "model, version, site, event (built, approval_requested, approved, candidate, shadow, pilot, "
                       "production, retired), at (ISO 8601, UTC unless an offset is given), by, and optionally note. "
                       "They date the delivery metrics and quarterly answers; they never make a release verified. "
                       "Without FILE, lists what was imported.")
    p.add_argument("path", help="project folder")
    p.add_argument("file", nargs="?", help="CSV of release events")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("dataset", help="register a Parquet file (or images, or tensors) as a validation, "
                       "reference or training dataset",
                       description="Copy a Parquet file into the project's artifacts (content-addressed, read-only) "
                       "and record it: a held-out validation set for `lineproof validate`, a reference for drift, "
                       "or a model's training data. For an image model: a folder of images with labels.csv (file, "
                       "label, slice columns; the model card's preprocess resizes and normalises them), or an .npz "
                       "of input tensors with a label array.")
    p.add_argument("path", help="project folder")
    p.add_argument("file", help="Parquet file, folder of images with labels.csv, or .npz")
    p.add_argument("--id", required=True, help="dataset id, e.g. holdout-2026H2")
    p.add_argument("--kind", required=True, choices=("validation", "reference", "training"))
    p.add_argument("--name", help="display name (default: the id)")
    p.add_argument("--description", help="what it holds and where it came from")
    p.set_defaults(func=cmd_dataset)
