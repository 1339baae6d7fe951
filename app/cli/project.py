"""`lineproof init|sample|info|gui|export-project|import-project`: the project folder itself."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from app.cli.common import open_project, passphrase, show_progress


def cmd_init(args: argparse.Namespace) -> int:
    """Create an empty project."""
    from app.core.store.project import Project

    dims = tuple(d.strip() for d in args.dimensions.split(",") if d.strip())
    with Project.create(args.path, args.name or Path(args.path).name, args.site, dims):
        pass
    print(f"Created project {args.path} (slice dimensions: {', '.join(dims)})")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    """Build the seeded sample project (or, in the offline bundle, unpack the one built with it)."""
    from app.core.governance.sample_archive import sample_source, unpack_prebuilt_sample

    start = time.perf_counter()
    if sample_source() == "archive":
        if args.scale != 1.0:
            print("This installation ships the sample prebuilt at scale 1; --scale needs the recipe (a checkout).")
        folder = unpack_prebuilt_sample(args.path, progress=show_progress(args.quiet))
        print(f"Unpacked the prebuilt sample project into {folder} in {time.perf_counter() - start:.1f} s "
              "(every file's hash checked)")
        return 0
    from app.sample.build import build_sample, model_hashes

    folder = build_sample(args.path, scale=args.scale, progress=show_progress(args.quiet))
    print(f"Built the sample project in {folder} in {time.perf_counter() - start:.1f} s")
    for name, sha in model_hashes(folder).items():
        print(f"  {name:<28} sha256 {sha}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print the project overview."""
    from dataclasses import asdict

    from app.core.analysis.attention import attention_text, build_attention
    from app.core.analysis.overview import build_overview, overview_json, overview_text

    with open_project(args.path, read_only=True, allow_snapshot=True) as project:
        ov = build_overview(project)
        attention = build_attention(project) if ov.prediction_rows else None
    if args.json:
        print(json.dumps({**overview_json(ov), "attention": asdict(attention) if attention else None}, indent=2,
                         default=str))
    else:
        print(overview_text(ov) + (f"\nAttention\n  {attention_text(attention)}" if attention else ""))
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    """Open the desktop application."""
    from app.views.main_window import run_gui

    return run_gui(args.path, read_only=args.read_only, quit_after=args.quit_after)


def cmd_export_project(args: argparse.Namespace) -> int:
    """Write the project to one archive with a manifest of every file's sha256."""
    from app.core.governance.portable import export_project

    with open_project(args.path) as project:
        by = None
        if args.as_user:
            from app.core.governance.approvals import unlock

            by = unlock(project, args.as_user, passphrase(f"Passphrase for {args.as_user}: "))
        out = export_project(project, args.out, show_progress(args.quiet), by=by)
    print(f"Exported {project.display_name} to {out} ({out.stat().st_size / 1e6:,.1f} MB)")
    return 0


def cmd_import_project(args: argparse.Namespace) -> int:
    """Check an archive completely, then unpack it into a new folder."""
    from app.core.governance.portable import import_project

    dest = import_project(args.archive, args.dest, show_progress(args.quiet))
    print(f"Imported into {dest}: every file matches the manifest. Open it with: lineproof gui {dest}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register `init`, `sample`, `info`, `gui`."""
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

    p = sub.add_parser("gui", help="open the desktop application")
    p.add_argument("path", nargs="?", help="project folder (default: the last one, or the sample)")
    p.add_argument("--read-only", action="store_true", help="open without the right to change anything")
    p.add_argument("--quit-after", type=float, default=0.0, help=argparse.SUPPRESS)  # the bundle's smoke test
    p.set_defaults(func=cmd_gui)
    p = sub.add_parser("export-project", help="write the project to one .lpz archive (for a USB stick)")
    p.add_argument("path", help="project folder")
    p.add_argument("--out", required=True, help="archive to write (.lpz); never overwritten")
    p.add_argument("--as", dest="as_user", metavar="USER",
                   help="who exports: signs the manifest (required once the project has users; passphrase asked)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_export_project)
    p = sub.add_parser("import-project", help="check an archive and unpack it into a new project folder")
    p.add_argument("archive", help=".lpz archive")
    p.add_argument("dest", help="new project folder (must not exist)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_import_project)
