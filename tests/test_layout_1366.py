"""Every screen and dialog on a 1366x768 field laptop: no label, field, button or column cut, no column hidden
off to the side (tests/layout_audit.py says what counts as cut)."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import QThreadPool
from PySide6.QtWidgets import QTableView, QTabWidget

from app.core.analysis.alerts import evaluate_alerts
from app.core.analysis.slices import logged_span
from app.core.governance import approvals as gov
from app.core.governance.identity import cert_pem, create_identity
from app.core.store.project import Project
from app.core.store.sources import inspect_file
from app.views.main_window import MainWindow
from tests.helpers import pin_self_signed_identities, write_csv
from tests.layout_audit import cut_widgets, hidden_columns

pytestmark = pytest.mark.gui

# A 1366x768 screen less a taskbar and a title bar: what the window's client area gets on a field laptop.
CLIENT = (1366, 705)
PASS = "passphrase-1"


@pytest.fixture(scope="module")
def busy_template(sample_folder: Path, tmp_path_factory) -> Path:
    """The sample with what fills the screens' tables: alerts, users with long role lists, a signed request, a
    benchmark; built once (~7 s), copied per test with its profile."""
    folder = tmp_path_factory.mktemp("busy-sample")
    shutil.copytree(sample_folder, folder / "weld")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LINEPROOF_HOME", str(folder / "profile"))
        pin_self_signed_identities(mp)
        _fill(folder / "weld")
    return folder


@pytest.fixture
def busy_sample(busy_template: Path, tmp_path: Path, monkeypatch) -> Path:
    """A private copy of the busy sample, this PC's profile holding its users' keys."""
    shutil.copytree(busy_template, tmp_path / "busy")
    monkeypatch.setenv("LINEPROOF_HOME", str(tmp_path / "busy" / "profile"))
    return tmp_path / "busy" / "weld"


def _fill(sample_copy: Path) -> None:
    project = Project.open(sample_copy)
    first, last = logged_span(project)
    evaluate_alerts(project, (first, first + timedelta(days=84)), (last - timedelta(days=42), last))
    for user_id, name, roles in (("vera", "Vera Łukasz-Hoffmann", ["admin", "validation_lead"]),
                                 ("anna", "Anna Öberg", ["approver", "engineer"]),
                                 ("omar", "Omar Al-Khatib", ["approver"])):
        cert = create_identity(user_id, name, PASS)
        gov.add_user(project, user_id, name, cert_pem(cert), roles,
                     by=gov.unlock(project, "vera", PASS))
    # Once a decision exists the Approvals tables fill (Signature, When, Run), and a benchmark fills Hardware.
    request = gov.create_request(project, "weld-defect:v2", "P1", "pilot", gov.unlock(project, "anna", PASS),
                                 comment="v2 on line P1-L01 for four weeks")
    gov.decide(project, request, "review", gov.unlock(project, "vera", PASS), "slices and drift checked")
    gov.decide(project, request, "approve", gov.unlock(project, "omar", PASS), "approved for P1")
    from app.core.models.bench.config import BenchConfig
    from app.core.models.bench.runner import run_benchmark

    run_benchmark(project, "weld-defect:v1", BenchConfig(iterations=50, warmup=2))
    project.close()


def _settle(qtbot) -> None:
    """Let the screen's workers finish and their results land."""
    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0, timeout=60_000)
    qtbot.wait(150)


def _problems(name: str, root) -> list[str]:
    found = [f"{name}: {p}" for p in cut_widgets(root)]
    for table in root.findChildren(QTableView):
        if table.isVisible() and table.model() is not None:
            found += [f"{name}: column {c!r} only by scrolling sideways" for c in hidden_columns(table)]
    return found


def _too_wide_while_working(window: MainWindow, name: str) -> list[str]:
    """While a screen computes, its progress bars and Cancel buttons show and take room too: the window must still
    fit the laptop then (Drift's 1,420 px pushed its right half off the screen)."""
    from PySide6.QtWidgets import QProgressBar, QPushButton

    screen = window.screens.currentWidget()
    hidden = [w for w in screen.findChildren(QProgressBar) + [b for b in screen.findChildren(QPushButton)
                                                              if b.text() == "Cancel"] if w.isHidden()]
    for w in hidden:
        w.show()
    wide = window.minimumSizeHint().width()
    for w in hidden:
        w.hide()
    return [f"{name}: the window needs {wide} px while the screen computes"] if wide > CLIENT[0] else []


@pytest.fixture
def laptop_window(window: MainWindow) -> MainWindow:
    """The main window in a field laptop's client area (the user's saved size left alone)."""
    window.remember_geometry = False
    window.resize(*CLIENT)
    return window


def test_every_screen_shows_every_column_and_field_whole(qtbot, busy_sample: Path, laptop_window: MainWindow):
    window = laptop_window
    assert window.open_project(busy_sample)
    qtbot.waitUntil(lambda: window.last_overview is not None, timeout=20_000)
    hint = window.minimumSizeHint()
    assert hint.width() <= CLIENT[0] and hint.height() <= CLIENT[1], "the window cannot shrink to the laptop"
    problems = []
    for row in range(window.nav.count()):
        window.nav.setCurrentRow(row)
        _settle(qtbot)
        problems += _too_wide_while_working(window, window.nav.item(row).text())
        screen = window.screens.currentWidget()
        if screen is window.models:  # the production version: the longest stage history of the sample
            window.models.table.selectRow(window.models.versions.frame["version_id"].to_list().index(
                "weld-defect:v1"))
            _settle(qtbot)
        for tabs in [t for t in screen.findChildren(QTabWidget) if t.isVisible()] or [None]:
            for tab in range(tabs.count()) if tabs else [None]:
                if tabs:
                    tabs.setCurrentIndex(tab)
                    _settle(qtbot)
                name = window.nav.item(row).text() + (f" / {tabs.tabText(tab)}" if tabs else "")
                problems += _problems(name, screen)
    assert window.alerts.alerts_model.rowCount() > 0 and window.users.users.rowCount() == 3  # tables were full
    assert not problems, "\n".join(problems)


def test_every_dialog_fits_and_shows_its_fields_whole(qtbot, busy_sample: Path, tmp_path: Path):
    from app.views.add_user_dialog import AddUserDialog
    from app.views.import_dialog import LabelImportDialog, PredictionImportDialog
    from app.views.import_model_dialog import ImportModelDialog
    from app.views.packet_dialogs import ExportPacketDialog, VerifyPacketDialog

    log = write_csv(tmp_path / "line_export_2026-11.csv",
                    "record_id,ts,model_version,score,plant,line,asset,shift,firmware,current_a,voltage_v",
                    "a,2026-11-01 10:00,weld-defect:v1,0.4,P1,P1-L01,P1-L01-R01,A,5.0.0,212.5,24.1")
    labels = write_csv(tmp_path / "inspection_results_2026-11.csv", "record_id,label,labelled_at",
                       "a,1,2026-11-10 10:00")
    project = Project.open(busy_sample)
    try:
        makers = {
            "import predictions": lambda: PredictionImportDialog(inspect_file(project.cursor(), log),
                                                                 project.manifest.slice_dimensions),
            "import labels": lambda: LabelImportDialog(inspect_file(project.cursor(), labels)),
            "import model": lambda: ImportModelDialog(["weld-defect", "seam-vision"]),
            "add user": lambda: AddUserDialog(project),
            "export packet": lambda: ExportPacketDialog(project),
            "verify packet": lambda: VerifyPacketDialog(project),
        }
        problems = []
        for name, make in makers.items():
            dialog = make()
            qtbot.addWidget(dialog)
            dialog.show()
            qtbot.wait(100)
            if dialog.width() > CLIENT[0] or dialog.height() > CLIENT[1]:
                problems.append(f"{name}: {dialog.width()}x{dialog.height()} is larger than the screen")
            problems += [f"{name}: {p}" for p in cut_widgets(dialog)]
            dialog.close()
        assert not problems, "\n".join(problems)
    finally:
        project.close()


def test_free_text_columns_give_way_evenly_and_keep_their_text_in_the_tooltip(qtbot):
    import polars as pl
    from PySide6.QtCore import Qt

    from app.views.table_model import Column, FrameTableModel
    from app.views.table_view import DataTable, _common_cap

    # widths 300 and 200 must give 150 px: a common cap of 175 takes 125 + 25 (hand-worked)
    assert _common_cap([300, 200], [100, 100], 150) == 175
    assert _common_cap([300, 200], [100, 100], 1000) == 0  # not enough: everything at its floor
    model = FrameTableModel([Column("id", "Id"), Column("note", "What happened", free_text=True)])
    table = DataTable(model)
    qtbot.addWidget(table)
    table.resize(260, 200)
    table.show()
    note = "ambient_temp_c drifted on 12 of 12 lines at once, PSI 0.61 against the reference window"
    model.set_frame(pl.DataFrame({"id": ["A-000123456"], "note": [note]}))
    assert table.columnWidth(0) >= table.sizeHintForColumn(0)  # the id is never the one to give way
    assert table.columnWidth(1) < table.sizeHintForColumn(1) and table.horizontalScrollBar().maximum() == 0
    assert model.data(model.index(0, 1), Qt.ItemDataRole.ToolTipRole) == note


def test_runs_on_says_which_runtimes_run_the_model_and_why_not():
    import polars as pl

    from app.views.models_view import runs_on

    frame = pl.DataFrame({"onnxruntime": ["ok", "ok", "load failed"],
                          "openvino": ["ok", "not supported (TreeEnsembleClassifier)", "ok"]})
    assert frame.select(runs_on())["runs_on"].to_list() == [
        "ONNX Runtime, OpenVINO", "ONNX Runtime (OpenVINO: not supported (TreeEnsembleClassifier))",
        "OpenVINO (ONNX Runtime: load failed)"]


@pytest.mark.slow  # a third copy of the busy sample (a benchmark run, signed decisions): the slow suite keeps it
def test_what_the_field_laptop_cut_before_now_shows(qtbot, busy_sample: Path, laptop_window: MainWindow):
    """#27 item 9: the Save-card button below the form's fold, the tier rules cut mid-sentence, the alerts' text
    squeezed beside the evidence (the Approvals columns are checked above, now that a decision exists)."""
    from PySide6.QtCore import QRect, Qt

    window = laptop_window
    assert window.open_project(busy_sample)
    from app.views.screen_stack import NAMES

    window.nav.setCurrentRow(NAMES.index("models"))
    _settle(qtbot)
    models = window.models
    models.table.selectRow(models.versions.frame["version_id"].to_list().index("weld-defect:v1"))
    models.tabs.setCurrentIndex(1)
    _settle(qtbot)
    button = models.save_button
    assert button.isVisible() and button.visibleRegion().boundingRect() == button.rect(), \
        "Save lineage and card must be in sight without scrolling"

    window.nav.setCurrentRow(NAMES.index("users"))
    _settle(qtbot)
    rules = next(t for t in window.users.findChildren(QTableView) if t.model() is window.users.tiers)
    column = 1
    for row in range(window.users.tiers.rowCount()):
        text = str(window.users.tiers.data(window.users.tiers.index(row, column)))
        needed = rules.fontMetrics().boundingRect(QRect(0, 0, rules.columnWidth(column) - 8, 10_000),
                                                  Qt.TextFlag.TextWordWrap, text).height()
        assert rules.rowHeight(row) >= needed, f"tier rule {row} is cut: {text!r}"

    window.nav.setCurrentRow(NAMES.index("alerts"))
    _settle(qtbot)
    table = window.alerts.alerts_table
    what = [c.header for c in window.alerts.alerts_model.columns].index("What happened")
    assert table.columnWidth(what) >= 400, f"'What happened' is {table.columnWidth(what)} px wide"
