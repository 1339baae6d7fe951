"""`lineproof import-model|models|stage|tier|diff`: model versions, their lifecycle stages and what changed
inside them."""

from __future__ import annotations

import argparse

from app.cli.common import open_project, signer
from app.core.errors import LineproofError


def cmd_tier(args: argparse.Namespace) -> int:
    """Change a model's risk tier: a signed statement by a registered user."""
    from app.core.models.registry import set_risk_tier

    with open_project(args.path) as project:
        by = signer(project, args.as_user)
        set_risk_tier(project, args.model, args.tier, by, args.reason or "")
    print(f"{args.model} is now risk tier {args.tier}.")
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    """Set model-card and lineage fields of a version (audited with the old and new values)."""
    from app.core.models.registry import edit_version_metadata

    def pairs(items: list[str], what: str) -> dict[str, str]:
        bad = [i for i in items if "=" not in i]
        if bad:
            raise LineproofError(f"{what} {bad[0]!r} is not FIELD=VALUE.", f"Write e.g. --{what} owner=ana.")
        return dict(i.split("=", 1) for i in items)
    card = pairs(args.set or [], "set")
    if args.features is not None:
        card["features"] = args.features
    lineage = pairs(args.lineage or [], "lineage")
    if not card and not lineage:
        raise LineproofError("Nothing to change.", "Give --features, --set FIELD=VALUE or --lineage FIELD=VALUE.")
    with open_project(args.path) as project:
        by = signer(project, args.as_user)
        changes = edit_version_metadata(project, args.version, lineage or None, card or None, args.reason or "", by)
    for field, change in changes.items():
        print(f"{args.version} {field}: {change['old']!r} -> {change['new']!r}")
    if not changes:
        print(f"{args.version}: nothing changed (the values were already so).")
    return 0


def cmd_variant(args: argparse.Namespace) -> int:
    """Make the INT8 or FP16 variant of a version and register it with lineage to its parent."""
    from app.cli.common import show_progress
    from app.core.models.variants import make_variant

    with open_project(args.path) as project:
        by = signer(project, args.as_user, "a new model version")
        result = make_variant(project, args.version, "int8" if args.int8 else "fp16", args.calibration,
                              args.samples, progress=show_progress(args.quiet), by=by)
        with project.reading() as con:
            lineage = con.execute("SELECT lineage_json FROM model_versions WHERE version_id = ?",
                                  [result.version_id]).fetchall()[0][0]
    import json

    record = json.loads(lineage)
    print(f"Registered {result.version_id} (sha256 {result.sha256[:16]}…), a variant of {args.version}: "
          f"{record['method']}, OpenVINO {record['openvino']}")
    if "calibration" in record:
        print(f"  calibrated on {record['calibration_samples']} samples from {record['calibration']} "
              f"(sha256 {record['calibration_sha256'][:16]}…), NNCF {record['nncf']}")
    print(f"  compare it with its parent: lineproof compare-variants {args.path} {args.version}")
    return 0


def cmd_compare_variants(args: argparse.Namespace) -> int:
    """A parent and its variants side by side: metrics per slice, agreement, latency on this PC."""
    from app.cli.common import show_progress
    from app.core.models.bench import BenchConfig
    from app.core.models.validation.variants_compare import compare_variants, comparison_text

    by = tuple(d.strip() for d in args.by.split(",") if d.strip())
    bench = None if args.no_bench else BenchConfig(runtime="openvino", batch=args.batch, seconds=args.seconds)
    with open_project(args.path) as project:
        result = compare_variants(project, args.version, args.dataset, by, bench=bench, rounds=args.rounds,
                                  progress=show_progress(args.quiet))
    print("\n".join(comparison_text(result)))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    """What changed inside the model between two versions (structure, weights, card)."""
    import json
    from dataclasses import asdict

    from app.core.models.structure import diff_text, diff_versions

    with open_project(args.path, read_only=True, allow_snapshot=True) as project:
        d = diff_versions(project, args.a, args.b)
    if args.json:
        body = {"a": args.a, "b": args.b, "identical": d.identical, "inputs_outputs": d.io, "versions": d.versions,
                "operators": [{"op": op, "a": x, "b": y} for op, x, y in d.operators],
                "parameters": {"a": d.a.parameters, "b": d.b.parameters},
                "weights_added": d.weights_added, "weights_removed": d.weights_removed,
                "weights_changed": [{"name": n, "relative_change": r} for n, r in d.weights_changed],
                "trees": {"a": d.a.trees, "b": d.b.trees}, "metadata": d.metadata, "card": d.card}
        print(json.dumps(body, indent=2, default=lambda v: asdict(v) if hasattr(v, "__dataclass_fields__") else str(v)))
    else:
        print("\n".join(diff_text(d)))
    return 0


def cmd_import_model(args: argparse.Namespace) -> int:
    """Import a model file safely (ONNX, OpenVINO IR .xml+.bin, MLflow folder with an ONNX flavor)."""
    from app.core.models.model_import import import_model

    task_given, tier_given = args.task is not None, args.risk_tier is not None
    args.task, args.risk_tier = args.task or "binary", args.risk_tier or "medium"
    with open_project(args.path) as project:
        with project.reading() as con:
            existing = con.execute("SELECT task, risk_tier FROM models WHERE model_id = ?", [args.model]).fetchall()
        if existing:
            task, tier = existing[0]
            changed = []
            if task_given and args.task != task:
                changed.append(f"--task {args.task} (it is {task})")
            if tier_given and args.risk_tier != tier:
                changed.append(f"--risk-tier {args.risk_tier} (it is {tier})")
            if changed:
                raise LineproofError(f"{args.model} already exists, so {' and '.join(changed)} would be ignored; "
                                     "nothing was imported.",
                                     "A model's task is fixed. Change its risk tier with `lineproof tier PROJECT "
                                     f"{args.model} TIER --as USER --reason TEXT` (signed), then import the version "
                                     "without these options.")
        by = signer(project, getattr(args, "as_user", None))  # signs a new model's risk tier and the author
        # A new model is registered with its first version, in one transaction: a refused file leaves nothing.
        result = import_model(project, args.file, args.model, args.version, args.threshold,
                              lineage={"author": args.author} if getattr(args, "author", None) else None,
                              new_model={"name": args.name or args.model, "task": args.task,
                                         "risk_tier": args.risk_tier}, by=by)
    print(f"Imported {result.version_id} ({result.format}), sha256 {result.sha256}")
    for runtime, state in result.runtimes.items():
        print(f"  {runtime:<12} {state}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List model versions with stages, hashes and the runtimes that can load them."""
    from app.core.models.registry import list_versions

    with open_project(args.path, read_only=True, allow_snapshot=True) as project:
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

    with open_project(args.path) as project:
        by = signer(project, args.as_user)
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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register `import-model`, `models`, `stage`."""
    p = sub.add_parser("import-model", help="import a model file safely (ONNX, OpenVINO IR, MLflow ONNX folder)")
    p.add_argument("path", help="project folder")
    p.add_argument("file", help=".onnx file, OpenVINO .xml (with its .bin), or an MLflow model folder")
    p.add_argument("--model", required=True, help="model id (registered on first import)")
    p.add_argument("--version", required=True, help="version name, e.g. v3")
    p.add_argument("--name", help="display name of a new model")
    p.add_argument("--author", help="who built this version (never approves its release)")
    p.add_argument("--as", dest="as_user", metavar="USER",
                   help="in a governed project: sign the version's author and a new model's risk tier")
    p.add_argument("--task", choices=("binary", "regression", "multiclass"),
                   help="a new model's task (default binary); refused for an existing model")
    p.add_argument("--risk-tier", choices=("low", "medium", "high", "safety-relevant"),
                   help="a new model's risk tier (default medium); refused for an existing model")
    p.add_argument("--threshold", type=float, default=0.5, help="decision threshold for binary models")
    p.set_defaults(func=cmd_import_model)

    p = sub.add_parser("tier", help="change a model's risk tier (a signed, audited change)")
    p.add_argument("path", help="project folder")
    p.add_argument("model", help="model id")
    p.add_argument("tier", choices=("low", "medium", "high", "safety-relevant"))
    p.add_argument("--as", dest="as_user", required=True, metavar="USER", help="the registered user who signs it")
    p.add_argument("--reason", required=True, help="why (stored in the signed record)")
    p.set_defaults(func=cmd_tier)

    p = sub.add_parser("models", help="list model versions, stages, hashes and runtimes")
    p.add_argument("path", help="project folder")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("card", help="set model-card and lineage fields of a version (features, owner, ...)")
    p.add_argument("path", help="project folder")
    p.add_argument("version", help="version id, e.g. weld-defect:v1")
    p.add_argument("--features", help="the model's input columns in order, comma-separated")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="a model-card field (repeatable)")
    p.add_argument("--lineage", action="append", metavar="FIELD=VALUE", help="a lineage field (repeatable)")
    p.add_argument("--reason", required=True, help="why (audited with the old and new values)")
    p.add_argument("--as", dest="as_user", metavar="USER", help="who makes the change (governed projects)")
    p.set_defaults(func=cmd_card)

    p = sub.add_parser("variant", help="make the INT8 (NNCF) or FP16 variant of a version, with lineage")
    p.add_argument("path", help="project folder")
    p.add_argument("version", help="the parent version, e.g. weld-defect:v1")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--int8", action="store_true", help="post-training quantization with NNCF (default preset)")
    kind.add_argument("--fp16", action="store_true", help="weights compressed to FP16 by OpenVINO")
    p.add_argument("--calibration", metavar="SOURCE",
                   help="INT8: a registered dataset id, 'log' (this version's logged features) or FILE.npz")
    p.add_argument("--samples", type=int, default=300, help="calibration samples (default 300)")
    p.add_argument("--as", dest="as_user", metavar="USER", help="who makes it (required once the project has users)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_variant)

    p = sub.add_parser("compare-variants", help="a version and its INT8/FP16 variants: metrics per slice, "
                       "agreement, latency on this PC")
    p.add_argument("path", help="project folder")
    p.add_argument("version", help="the parent version, e.g. weld-defect:v1")
    p.add_argument("--dataset", required=True, help="held-out dataset id (with the model's features and a label)")
    p.add_argument("--by", default="line", help="slice dimensions, comma-separated (default line)")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds per benchmark run (default 3)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved benchmark rounds (default 3)")
    p.add_argument("--batch", type=int, default=1, help="benchmark batch size (default 1)")
    p.add_argument("--no-bench", action="store_true", help="metrics and agreement only, no benchmarks")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_compare_variants)

    p = sub.add_parser("diff", help="what changed inside the model between two versions (structure, weights, card)")
    p.add_argument("path", help="project folder")
    p.add_argument("a", help="the earlier version, e.g. weld-defect:v1")
    p.add_argument("b", help="the later version, e.g. weld-defect:v2")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("stage", help="move a model version through candidate/shadow/pilot/production/retired")
    p.add_argument("path", help="project folder")
    p.add_argument("version", nargs="?", help="version id, e.g. weld-defect:v2")
    p.add_argument("--site", required=True, help="plant or site, e.g. P1")
    p.add_argument("--to", choices=("candidate", "shadow", "pilot", "production", "retired"))
    p.add_argument("--rollback", metavar="MODEL", help="make the previous production version current again")
    p.add_argument("--reason", help="why (audited)")
    p.add_argument("--as", dest="as_user", metavar="USER", help="who makes the change (required once the project has users; passphrase asked)")
    p.set_defaults(func=cmd_stage)
