"""Layering: app.core never imports Qt or the views (checked two independent ways)."""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import app.core

ROOT = Path(__file__).parents[1]


def test_importing_all_of_core_loads_no_qt():
    modules = [m.name for m in pkgutil.walk_packages(app.core.__path__, "app.core.")]
    assert "app.core.store.ingest" in modules
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6')"
            " or m.startswith('app.views'))\n"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_core_sources_do_not_mention_qt():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "app" / "core").rglob("*.py")
                 if any(word in p.read_text() for word in ("PySide6", "pyqtgraph", "app.views"))]
    assert offenders == []


def test_import_linter_contract_holds():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is part of the test extra"
    out = subprocess.run([lint], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "5 kept, 0 broken" in out.stdout, out.stdout + out.stderr
    assert "Screens and dialogs never import the main window (it imports them: no circle) KEPT" in out.stdout
    assert "Layers: store, stats < governance < analysis, models < packet < views < cli KEPT" in out.stdout


def test_every_core_module_sits_in_a_layer():
    """A module outside the layer packages would escape the layers contract."""
    loose = sorted(p.name for p in (ROOT / "app" / "core").glob("*.py"))
    assert loose == ["__init__.py", "errors.py", "progress.py"], loose


def test_views_hold_no_sql():
    """#27: views are thin; every query is a core function a test can check without a window."""
    import re

    sql = re.compile(r"SELECT\s.*\sFROM\s|INSERT INTO\s|DELETE FROM\s|CREATE (TABLE|VIEW)\s|UPDATE \w+ SET\s|\.sql\(")
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "app" / "views").rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if sql.search(line)]
    assert offenders == []


def test_the_lookups_the_views_use_answer_as_duckdb_does(sample_folder):
    from app.core.models.registry import model_ids, stages_by_version
    from app.core.store.datasets import dataset_file, list_datasets
    from app.core.store.project import Project

    with Project.open(sample_folder, read_only=True) as project:
        con = project.con
        assert list_datasets(project) == [tuple(r) for r in con.execute(
            "SELECT dataset_id, name FROM datasets ORDER BY 1").fetchall()]
        kept = list_datasets(project, exclude_kind="training")
        assert kept and all(d not in ("train-v1", "train-v2") for d, _ in kept)
        assert dataset_file(project, "train-v1").exists() and dataset_file(project, "nope") is None
        assert model_ids(project) == ["seam-vision", "weld-defect"] and model_ids(project, "binary") == ["weld-defect"]
        assert stages_by_version(project) == {"seam-vision:v1": "shadow", "weld-defect:v1": "production",
                                              "weld-defect:v2": "candidate"}
