"""GUI: the main window on the sample project, imports through the worker with progress, Cancel, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from app.core.store.ingest import PredictionMapping
from app.views.main_window import MainWindow
from app.views.table_model import Column, FrameTableModel
from tests.helpers import project_state, write_csv

pytestmark = pytest.mark.gui


def _open(qtbot, window: MainWindow, folder: Path) -> None:
    assert window.open_project(folder)
    qtbot.waitUntil(lambda: window.last_overview is not None, timeout=20_000)


def test_table_model_over_a_frame_without_a_widget(qtbot):
    model = FrameTableModel([Column("line", "Line"), Column("rows", "Rows"),
                             Column("coverage", "Coverage", "percent", tooltip=lambda r: f"{r['coverage']:.4f}")])
    model.set_frame(pl.DataFrame({"line": ["L2", "L1"], "rows": [1500, 20], "coverage": [0.5, 0.25]}))
    assert (model.rowCount(), model.columnCount()) == (2, 3)
    assert model.data(model.index(0, 1)) == "1,500"
    assert model.data(model.index(1, 2)) == "25.0%"
    assert model.data(model.index(1, 2), Qt.ItemDataRole.ToolTipRole) == "0.2500"
    model.sort(0, Qt.SortOrder.AscendingOrder)
    assert model.data(model.index(0, 0)) == "L1"
    assert model.as_tsv([0]) == "Line\tRows\tCoverage\nL1\t20\t25.0%"
    model.set_frame(pl.DataFrame())
    assert model.rowCount() == 0


def test_overview_shows_the_sample_numbers(qtbot, window: MainWindow, sample_copy: Path):
    _open(qtbot, window, sample_copy)
    ov = window.last_overview
    assert window.overview.lines_model.rowCount() == 12
    assert window.overview.models_model.rowCount() == 3
    assert window.overview.cards["predictions"].text() == f"{ov.prediction_rows:,}"
    assert "labelled" in window.status_rows.text()
    assert window.windowTitle().startswith("Weld-seam inspection")
    assert window.recent_projects()[0] == str(sample_copy.resolve())
    window.close_project()
    con = duckdb.connect(str(sample_copy / "project.duckdb"), read_only=True)
    rows, lines = con.execute("SELECT count(*), count(DISTINCT line) FROM predictions").fetchall()[0]
    con.close()
    assert ov.prediction_rows == rows and ov.lines.height == lines


def test_progress_reaches_every_slot_in_order_when_a_slot_spins_the_event_loop(qtbot):
    """A window-modal progress dialog runs the event loop inside setValue: the reports queued behind the one being
    delivered must not overtake it on the way to the slots connected after the dialog."""
    from PySide6.QtWidgets import QApplication

    from app.views.workers import start_task

    def job(progress) -> str:
        for fraction in (0.1, 0.3, 0.85, 0.95, 1.0):
            progress.report(fraction, f"{fraction:.0%}")
        return "done"

    task = start_task("ordered", job)
    spun: list[float] = []
    seen: list[float] = []
    task.progress.connect(lambda f, _m: spun or (spun.append(f), QApplication.processEvents()))  # as setValue does
    task.progress.connect(lambda f, _m: seen.append(f))
    assert task.wait(10)  # every report is queued before the first is delivered
    with qtbot.waitSignal(task.done, timeout=10_000):
        pass
    assert seen == [0.1, 0.3, 0.85, 0.95, 1.0]


def test_import_runs_in_the_worker_with_progress(qtbot, window: MainWindow, sample_copy: Path, tmp_path: Path):
    _open(qtbot, window, sample_copy)
    before = window.last_overview.prediction_rows
    rows = [f"NEW{i},2026-11-02 0{i}:00:00,weld-defect:v1,0.{i},P1,P1-L01,R1,early" for i in range(5)]
    src = write_csv(tmp_path / "new.csv", "record_id,ts,model_version,score,plant,line,asset,shift", *rows)
    task = window.start_import("predictions", src, PredictionMapping(
        slices={"plant": "plant", "line": "line", "asset": "asset", "shift": "shift"}, features=()))
    seen: list[float] = []
    task.progress.connect(lambda f, m: seen.append(f))
    with qtbot.waitSignal(task.done, timeout=30_000) as done:
        pass
    assert done.args[0].rows == 5
    assert seen and seen[-1] == 1.0
    qtbot.waitUntil(lambda: window.last_overview.prediction_rows == before + 5, timeout=20_000)
    assert "Imported 5 predictions" in window.statusBar().currentMessage()


def test_cancel_an_import_leaves_the_project_unchanged(qtbot, window: MainWindow, sample_copy: Path,
                                                       tmp_path: Path):
    n = 600_000
    rng = np.random.default_rng(5)
    src = tmp_path / "big.parquet"
    pl.DataFrame({"record_id": np.char.add("C", np.arange(n).astype(str)),
                  "ts": [datetime(2026, 11, 3)] * n, "model_version": ["weld-defect:v1"] * n,
                  "score": rng.random(n)}).write_parquet(src)
    before = project_state(sample_copy)
    _open(qtbot, window, sample_copy)
    task = window.start_import("predictions", src, PredictionMapping(features=()))
    task.progress.connect(lambda f, m: task.cancel())  # the user presses Cancel as soon as it starts
    with qtbot.waitSignal(task.cancelled, timeout=30_000):
        pass
    assert "cancelled" in window.statusBar().currentMessage()
    window.close_project()
    after = project_state(sample_copy)
    # DuckDB writes big appends to the file before COMMIT ("optimistic writes"); a rollback frees those blocks
    # but the file's bytes can differ. What must hold is the content: every table, column and the manifest.
    before.pop("project.duckdb"), after.pop("project.duckdb")
    assert after == before


def test_a_bad_file_shows_the_message_in_a_dialog(qtbot, window: MainWindow, sample_copy: Path, tmp_path: Path):
    _open(qtbot, window, sample_copy)
    src = write_csv(tmp_path / "bad.csv", "record_id,ts,model_version,score", "x1,2026-11-02,v,0.5", "x2,2026-11-02,v,nan")
    task = window.start_import("predictions", src, PredictionMapping(features=()))
    with qtbot.waitSignal(task.error, timeout=30_000):
        pass
    boxes = [b for b in window.findChildren(QMessageBox) if b.objectName() == "errorDialog"]
    assert boxes and "bad.csv, row 2 (line 3 of the file)" in boxes[-1].text()
    assert "nothing was imported" in boxes[-1].informativeText()


def test_opening_a_non_project_shows_an_error_and_keeps_running(qtbot, window: MainWindow, tmp_path: Path):
    assert not window.open_project(tmp_path)
    boxes = [b for b in window.findChildren(QMessageBox) if b.objectName() == "errorDialog"]
    assert "not a Lineproof project" in boxes[-1].text()
    assert window.project is None and not window.act_import.isEnabled()


def test_geometry_is_kept_in_settings(qtbot, tmp_path: Path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    first = MainWindow(settings)
    qtbot.addWidget(first)
    first.show()
    first.setGeometry(first.x() + 7, first.y() + 5, first.width(), 517)  # offscreen screens are 800x600
    saved = first.geometry()
    first.close()
    second = MainWindow(settings)
    qtbot.addWidget(second)
    assert settings.value("window/geometry") is not None
    assert second.height() == saved.height() == 517  # widths are clamped by the 800x600 offscreen screen


@pytest.mark.slow  # ~7 s; export and import themselves are tested by default in test_portable (make test-slow, CI)
def test_export_and_import_project_from_the_file_menu(qtbot, window: MainWindow, sample_copy: Path, tmp_path: Path):
    window.open_project(sample_copy)
    archive = tmp_path / "weld.lpz"
    task = window.export_project_dialog(str(archive))
    errors: list = []
    task.error.connect(errors.append)
    with qtbot.waitSignal(task.ended, timeout=60_000):
        pass
    assert errors == [] and archive.exists()
    task = window.import_project_dialog(str(archive), str(tmp_path / "arrived"))
    with qtbot.waitSignal(task.ended, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: window.project is not None and window.project.folder == tmp_path / "arrived",
                    timeout=10_000)


def test_a_read_only_window_does_not_keep_writers_out(qtbot, window: MainWindow, sample_copy: Path, tmp_path: Path):
    """`gui --read-only` reads a private snapshot: an ingest (here in the same process, as strict as another one)
    can still write the project while the window stays open."""
    from app.core.store.project import Project

    assert window.open_project(sample_copy, read_only=True)
    assert window.project.read_only and window.project.snapshot_of == sample_copy.resolve()
    log = write_csv(tmp_path / "more.csv", "record_id,ts,model_version,score,line",
                    "late-1,2026-11-01 10:00,weld-defect:v1,0.3,P1-L01")
    with Project.open(sample_copy) as writer:
        from app.core.store.ingest import import_predictions

        assert import_predictions(writer, log, PredictionMapping(timestamp="ts", slices={"line": "line"})).rows == 1
    window.close_project()


def test_every_keyboard_shortcut_does_one_thing(qtbot, window: MainWindow, sample_folder: Path):
    """Menus and screens together: a key that two places claim does nothing in Qt (an ambiguous shortcut)."""
    from collections import defaultdict

    from PySide6.QtGui import QAction, QShortcut

    _open(qtbot, window, sample_folder)
    owners = defaultdict(list)
    for action in window.findChildren(QAction):
        for key in action.shortcuts():
            if not key.isEmpty():
                owners[key.toString()].append(action.text())
    for shortcut in window.findChildren(QShortcut):
        if not shortcut.key().isEmpty():
            owners[shortcut.key().toString()].append(type(shortcut.parent()).__name__)
    assert len(owners) > 15
    assert {k: v for k, v in owners.items() if len(v) > 1} == {}


def test_adding_the_first_user_updates_every_screen_that_shows_users(qtbot, window: MainWindow, sample_copy: Path,
                                                                     tmp_path: Path, monkeypatch):
    """No stale 'Nobody is registered' on Approvals after a user was added on Users & roles."""
    from app.core.governance import approvals as gov
    from app.core.governance.identity import cert_pem, create_identity, unlock_identity

    monkeypatch.setenv("LINEPROOF_HOME", str(tmp_path / "profile"))
    _open(qtbot, window, sample_copy)
    assert window.approvals.stack.currentWidget() is window.approvals.empty
    assert "Nobody is registered" in window.approvals.empty.text()
    gov.add_user(window.project, "ines", "Ines", cert_pem(create_identity("ines", "Ines", "pass-word-1")),
                 ["validation_lead"], by=unlock_identity("ines", "pass-word-1"))
    window.users.changed.emit()  # what the Users & roles screen says after its Add user dialog
    assert window.approvals.stack.currentWidget() is not window.approvals.empty
    assert window.approvals.user.findText("ines") >= 0
    assert window.models.stage_user.findData("ines") >= 0 or window.models.stage_user.findText("ines") >= 0


def test_sorting_keeps_the_selection_on_the_same_record(qtbot):
    from app.views.table_view import DataTable

    model = FrameTableModel([Column("id", "Id", "text"), Column("value", "Value", "float")])
    table = DataTable(model)
    qtbot.addWidget(table)
    model.set_frame(pl.DataFrame({"id": ["a", "b", "c", "d"], "value": [3.0, 1.0, 4.0, 2.0]}))
    table.selectRow(2)  # record "c"
    for column, order in ((1, Qt.SortOrder.AscendingOrder), (1, Qt.SortOrder.DescendingOrder),
                          (0, Qt.SortOrder.DescendingOrder)):
        table.sortByColumn(column, order)
        rows = table.selectionModel().selectedRows()
        assert len(rows) == 1 and model.row(rows[0].row())["id"] == "c"
    assert [model.row(r)["id"] for r in range(4)] == ["d", "c", "b", "a"]


def test_the_overview_points_at_alerts_the_worst_line_and_silent_assets(qtbot, window: MainWindow,
                                                                       sample_folder: Path):
    _open(qtbot, window, sample_folder)
    qtbot.waitUntil(lambda: "Worst line" in window.overview.attention.text(), timeout=30_000)
    import html
    import re

    text = html.unescape(re.sub("<[^>]+>", "", window.overview.attention.text()))  # what the label shows
    assert text.startswith("Open alerts: ") and "Silent now: " in text


def test_unsaved_edits_are_not_lost_without_asking(qtbot, window: MainWindow, sample_copy: Path):
    _open(qtbot, window, sample_copy)
    asked: list[list[str]] = []
    window.ask_discard = lambda lost: asked.append(lost) or False  # the user answers Cancel
    window.validation.editor.setPlainText(window.validation.editor.toPlainText() + "\n# tightened by the lead\n")
    assert window.close_project() is False and window.project is not None
    assert asked and "acceptance plan" in asked[0][0]
    models = window.models
    models.table.selectRow(0)
    first = models.selected()["version_id"]
    models.fields["author"].setText("edited, not saved")
    models.ask_discard = lambda lost: asked.append(lost) or False
    models.table.selectRow(1)  # another version: the edit would be overwritten
    qtbot.waitUntil(lambda: models.selected()["version_id"] == first, timeout=5_000)
    assert models.selected()["version_id"] == first and models.fields["author"].text() == "edited, not saved"
    assert any("author" in item for lost in asked for item in lost)
    window.ask_discard = lambda lost: asked.append(lost) or True  # now the user discards
    assert window.close_project() is True and window.project is None


def test_a_dataset_is_registered_from_the_file_menu(qtbot, window: MainWindow, sample_copy: Path, tmp_path: Path):
    _open(qtbot, window, sample_copy)
    frame = pl.DataFrame({"record_id": ["a", "b"], "current_a": [210.0, 215.5], "label": [0, 1]})
    frame.write_parquet(tmp_path / "spot-check.parquet")
    before = window.last_overview.datasets.height
    task = window.register_dataset_dialog(str(tmp_path / "spot-check.parquet"), "spot-check", "validation")
    qtbot.waitUntil(lambda: window.last_overview is not None and window.last_overview.datasets.height == before + 1,
                    timeout=30_000)
    assert task is not None
    rows = window.project.con.execute("SELECT kind, row_count FROM datasets WHERE dataset_id = 'spot-check'"
                                      ).fetchall()
    assert rows == [("validation", 2)]
    assert window.validation.dataset.findText("spot-check", Qt.MatchFlag.MatchContains) >= 0


def test_changes_are_audited_under_the_signed_in_user(qtbot, window: MainWindow, sample_copy: Path, tmp_path: Path,
                                                      monkeypatch):
    from app.core.governance import approvals as gov
    from app.core.governance.identity import cert_pem, create_identity, unlock_identity

    monkeypatch.setenv("LINEPROOF_HOME", str(tmp_path / "profile"))
    _open(qtbot, window, sample_copy)
    gov.add_user(window.project, "ines", "Ines", cert_pem(create_identity("ines", "Ines", "pass-word-1")),
                 ["engineer"], by=unlock_identity("ines", "pass-word-1"))
    with pytest.raises(gov.GovernanceError):
        window.sign_in("ines", "wrong passphrase")
    assert window.signed_in is None
    window.sign_in("ines", "pass-word-1")
    assert window.status_user.text() == "Signed in: ines"
    pl.DataFrame({"record_id": ["a"], "current_a": [210.0], "label": [0]}).write_parquet(tmp_path / "d.parquet")
    task = window.register_dataset_dialog(str(tmp_path / "d.parquet"), "spot", "validation")
    with qtbot.waitSignal(task.ended, timeout=30_000):
        pass
    actor = window.project.con.execute("SELECT actor FROM audit_log WHERE action = 'dataset.register' "
                                       "ORDER BY seq DESC LIMIT 1").fetchall()[0][0]
    assert actor == "ines"
    window.close_project()
    from app.core.store.audit import current_actor

    assert window.signed_in is None and current_actor() != "ines"


def test_the_offline_bundle_opens_its_prebuilt_sample_on_first_start(qtbot, window: MainWindow, tmp_path,
                                                                     monkeypatch):
    """No recipe, but the archive the bundle ships: the first start unpacks it in the worker and opens it."""
    import importlib.util

    from app.views import main_window
    from tests.helpers import prebuilt_sample_archive

    monkeypatch.setenv("LINEPROOF_SAMPLE_ARCHIVE", str(prebuilt_sample_archive(tmp_path)))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    monkeypatch.setattr(main_window, "default_sample_folder", lambda: tmp_path / "home" / "sample")
    task = window.open_sample()
    assert task is not None
    qtbot.waitUntil(lambda: window.project is not None, timeout=30_000)
    assert window.project.display_name == "Weld-seam inspection"
    assert window.project.folder == (tmp_path / "home" / "sample").resolve()


def test_without_a_sample_recipe_the_window_says_what_to_do(qtbot, window: MainWindow, tmp_path, monkeypatch):
    """First start of the offline bundle with an empty HOME: no sample can be built; the window says so."""
    import importlib.util

    from app.views import main_window

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    monkeypatch.setattr(main_window, "default_sample_folder", lambda: tmp_path / "no-sample")
    assert window.open_sample() is None
    assert "cannot build the sample project" in window.statusBar().currentMessage()
    assert not (tmp_path / "no-sample").exists()


def test_no_shortcut_has_two_owners_on_any_screen_and_menus_show_ampersands(window: MainWindow):
    """Two owners of one shortcut make Qt fire neither (an ambiguous shortcut): the window's actions and each
    screen's buttons must not collide. A menu entry for "Users & roles" must not turn the & into a mnemonic."""
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QAbstractButton

    window_keys = [k.toString() for a in window.findChildren(QAction) for k in a.shortcuts() if not k.isEmpty()]
    assert len(window_keys) == len(set(window_keys)), sorted(window_keys)
    for i in range(window.nav.count()):
        window.nav.setCurrentRow(i)
        QApplication.processEvents()
        buttons = [b.shortcut().toString() for b in window.findChildren(QAbstractButton)
                   if b.isVisibleTo(window) and not b.shortcut().isEmpty()]
        clash = (set(buttons) & set(window_keys)) | {k for k in buttons if buttons.count(k) > 1}
        assert not clash, f"{window.nav.item(i).text()}: {sorted(clash)}"
    view = next(m.menu() for m in window.menuBar().actions() if m.text() == "&View")
    assert "Users && roles" in [a.text() for a in view.actions()]


def test_screens_are_built_when_first_shown_and_get_the_open_project(qtbot, window: MainWindow, sample_copy: Path):
    """Only the Overview is built at start (issue #23: a busy PC shows its window sooner); a screen built later
    gets the project that is open then, and is wired like the others."""
    code = ("import sys\nfrom PySide6.QtWidgets import QApplication\napp = QApplication([])\n"
            "from app.views.main_window import MainWindow\nw = MainWindow()\n"
            "print(' '.join(m for m in sys.modules if m.startswith(('app.views.', 'app.core.models'))))")
    started = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, timeout=120)
    loaded = set(started.stdout.split())
    assert "app.views.overview_view" in loaded
    assert not loaded & {"app.views.bench_view", "app.views.validation_view", "app.views.drift_view",
                         "app.views.approvals_view", "app.core.models.registry"}, loaded
    assert window.screens.built() == [window.overview]
    _open(qtbot, window, sample_copy)
    window.nav.setCurrentRow(5)  # Benchmarks, built now
    assert window.screens.currentWidget() is window.benchmarks
    assert window.benchmarks.project is window.project
    assert len(window.screens.built()) == 2
    window.close_project(force=True)
    assert window.benchmarks.project is None


def test_alert_rules_run_in_the_background_when_a_project_with_new_data_opens(qtbot, window: MainWindow,
                                                                                sample_copy: Path):
    """The Overview's open alerts are not "0" only because nobody pressed Evaluate: new data since the rules last
    ran starts them in the worker, with progress and Cancel in the status bar; a second open finds nothing due."""
    from app.core.analysis.alerts import alerts_due
    from app.core.store.project import Project

    with Project.open(sample_copy) as project:
        assert alerts_due(project) is not None  # the sample's imports were never evaluated
    window.open_project(sample_copy)
    qtbot.waitUntil(lambda: window.alerts_task is not None, timeout=60_000)
    qtbot.waitUntil(lambda: window.alerts_task is None, timeout=120_000)
    with window.project.reading() as con:
        evaluated = con.execute("SELECT count(*) FROM audit_log WHERE action = 'alerts.evaluate'").fetchall()[0][0]
        open_alerts = con.execute("SELECT count(*) FROM alerts WHERE state = 'open'").fetchall()[0][0]
    assert evaluated == 1 and open_alerts > 0
    qtbot.waitUntil(lambda: f"Open alerts: {open_alerts}" in window.overview.attention.text(), timeout=60_000)
    assert alerts_due(window.project) is None
    window.close_project()
    window.open_project(sample_copy)  # nothing new: nothing runs
    qtbot.wait(1500)
    assert window.alerts_task is None


@pytest.mark.slow  # CPU-heavy: runs in the slow suite (make test-slow, CI)
def test_background_alert_rules_can_be_cancelled_and_store_nothing(qtbot, window: MainWindow, sample_copy: Path):
    window.open_project(sample_copy)
    qtbot.waitUntil(lambda: window.alerts_task is not None, timeout=60_000)
    window.alerts_cancel.click()
    qtbot.waitUntil(lambda: window.alerts_task is None, timeout=60_000)
    assert "Alert rules stopped" in window.statusBar().currentMessage()
    with window.project.reading() as con:
        assert con.execute("SELECT count(*) FROM alerts").fetchall()[0][0] == 0
