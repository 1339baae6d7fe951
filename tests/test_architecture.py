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
