"""The main window: File menu, navigation, status bar, and the project's lifecycle in the GUI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QThreadPool, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QToolButton,
    QWidget,
)

from app.core.analysis.overview import Overview, build_overview, log_rows_text
from app.core.analysis.slices import logged_span
from app.core.errors import LineproofError, ProjectLockedError
from app.core.governance.session import Session, updated_recent
from app.core.store.ingest import import_labels, import_predictions
from app.core.store.project import Project
from app.core.store.sources import inspect_file
from app.views.actions import MENUS, RECENT, SEPARATOR, ActionSpec, disabled_tip, enabled
from app.views.application import make_app
from app.views.errors import ask_discard_dialog, show_error
from app.views.import_dialog import LabelImportDialog, PredictionImportDialog
from app.views.resources import resource_path
from app.views.screen_stack import LABELS, NAMES, ScreenStack
from app.views.time_range_bar import TimeRangeBar
from app.views.workers import Task, attach_progress_dialog, call_off_thread, start_task

DATA_FILES = "Prediction data (*.csv *.tsv *.txt *.parquet *.pq);;All files (*)"


TIME_SCREENS = ("slices", "drift", "alerts", "reviews")  # the screens that follow the window's time range


def default_sample_folder() -> Path:
    """Where `lineproof` with no argument keeps the sample project."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("lineproof", appauthor=False)) / "weld-seam-inspection"


class MainWindow(QMainWindow):
    """Holds at most one open project; every screen gets its data from core through workers."""

    overview = property(lambda self: self.screens.screen("overview"), doc="The Overview screen.")
    slices = property(lambda self: self.screens.screen("slices"), doc="The Slices screen (built on first use).")
    drift = property(lambda self: self.screens.screen("drift"), doc="The Drift screen (built on first use).")
    alerts = property(lambda self: self.screens.screen("alerts"), doc="The Alerts screen (built on first use).")
    models = property(lambda self: self.screens.screen("models"), doc="The Models screen (built on first use).")
    benchmarks = property(lambda self: self.screens.screen("benchmarks"), doc="The Benchmarks screen.")
    validation = property(lambda self: self.screens.screen("validation"), doc="The Validation screen.")
    approvals = property(lambda self: self.screens.screen("approvals"), doc="The Approvals screen.")
    reviews = property(lambda self: self.screens.screen("reviews"), doc="The Reviews screen.")
    audit = property(lambda self: self.screens.screen("audit"), doc="The Audit screen (built on first use).")
    users = property(lambda self: self.screens.screen("users"), doc="The Users & roles screen.")

    project = property(lambda self: self.session.project, doc="The open project (None: none).")
    signed_in = property(lambda self: self.session.signed_in, doc="Who is signed in (None: the PC's account).")

    def __init__(self, settings: QSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or QSettings("Lineproof", "Lineproof")
        self.ask_discard: Callable[[list[str]], bool] = lambda lost: ask_discard_dialog(self, lost)
        self.session = Session()  # the open project, who is signed in: Qt-free, tested without a window
        self.remember_geometry = True  # the smoke run (gui --quit-after) leaves the user's window size alone
        self.tasks: list[Task] = []
        self.last_overview: Overview | None = None
        # One time range for the window (as in Grafana): Slices, Drift, Alerts and Reviews follow it.
        self.time_bar = TimeRangeBar()
        self.time_bar.changed.connect(self._time_range_changed)
        self.setWindowTitle("Lineproof")
        self.setWindowIcon(QIcon(str(resource_path("icons", "lineproof.svg"))))

        self.nav = QListWidget(objectName="navigation")
        self.nav.addItems(list(LABELS))
        self.nav.setFixedWidth(140)
        self.nav.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.nav.setToolTip("Screens (Ctrl+1 …)")
        # Screens are imported and built when first shown (or asked for): only the Overview at start.
        self.screens = ScreenStack()
        self.screens.created.connect(self._screen_created)
        self.nav.currentRowChanged.connect(self.screens.show_index)
        self.nav.setCurrentRow(0)
        self.screens.show_index(0)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.nav)
        layout.addWidget(self.screens, 1)
        self.setCentralWidget(central)

        self.status_project = QLabel("No project")
        self.status_rows = QLabel("")
        self.status_user = QLabel("", toolTip="Changes made here are audited under this user (File > Sign out)")
        self.status_busy = QProgressBar()
        self.status_busy.setMaximumWidth(160)
        self.status_busy.setRange(0, 0)
        self.status_busy.hide()
        self.statusBar().addWidget(self.status_project, 1)
        self.statusBar().addPermanentWidget(self.status_user)
        self.statusBar().addPermanentWidget(self.status_rows)
        self.statusBar().addPermanentWidget(self.status_busy)
        # Alert rules evaluated in the background on new data: its progress and Cancel live in the status bar.
        self.alerts_progress = QProgressBar(maximumWidth=160, toolTip="Evaluating the alert rules on new data",
                                            textVisible=False, maximum=1000)
        self.alerts_cancel = QToolButton(text="Cancel", toolTip="Stop evaluating the alert rules (Alerts > "
                                                                "Evaluate rules runs them again)")
        self.alerts_task: Task | None = None
        self._closing = False  # set while close_project stops the running work: nothing new may start then
        for widget in (self.alerts_progress, self.alerts_cancel):
            widget.hide()
            self.statusBar().addPermanentWidget(widget)
        self.alerts_cancel.clicked.connect(lambda: self.alerts_task and self.alerts_task.cancel())
        toolbar = self.addToolBar("Time range")
        toolbar.setObjectName("timeRangeToolbar")
        toolbar.setMovable(False)
        toolbar.addWidget(self.time_bar)
        self._build_menus()
        self._update_actions()
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 720)

    def _screen_created(self, name: str, screen: QWidget) -> None:
        """Wire a screen built on first use, and give it the open project."""
        if name == "overview":
            screen.open_rows.connect(self.show_rows)
            screen.open_screen.connect(lambda target: self.nav.setCurrentRow(NAMES.index(target)))
        if name in ("models", "approvals", "users", "reviews"):
            screen.changed.connect(lambda source=screen: self.project_changed(source))
        if name == "validation":
            screen.recorded.connect(lambda _run: self.project_changed(screen))
            screen.export_requested.connect(self.export_packet_dialog)
        screen.time_range = self.time_bar.range
        if name != "overview" and self.project is not None:
            screen.set_project(self.project)

    def _time_range_changed(self, time_range) -> None:
        for screen in self.screens.built(*TIME_SCREENS):
            screen.set_time_range(time_range)

    def show_rows(self, record_filter) -> QDialog | None:
        """The log's rows behind a number (an attention item, a finding): a record table, exportable to CSV."""
        from app.views.records_dialog import show_records

        return show_records(self.project, record_filter, self)

    def focus_time_range(self) -> None:
        """View > Time range (Ctrl+T): open the toolbar's preset list."""
        if self.time_bar.isEnabled():
            self.time_bar.preset.setFocus()
            self.time_bar.preset.showPopup()
        else:
            self.statusBar().showMessage("Open a project with a prediction log to choose a time range.", 5_000)

    def _set_span(self, first, last) -> None:
        """The log's first and last day (None: no log): the toolbar's presets count back from the last."""
        span = (first.date(), last.date()) if first is not None and last is not None else None
        if span != self.time_bar.span:
            self.time_bar.set_span(span)

    # ----- menus (built from app.views.actions: the menus and shortcuts are data)
    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip)
        action.setToolTip(tip)
        action.triggered.connect(slot)
        return action

    def _slot(self, spec: ActionSpec):
        """The window method an action runs (called without the `checked` argument QAction passes)."""
        if spec.slot.startswith("show_screen:"):
            row = NAMES.index(spec.slot.partition(":")[2])
            return lambda _=False: self.nav.setCurrentRow(row)
        method = getattr(self, spec.slot)
        return lambda _=False: method()

    def _build_menus(self) -> None:
        self.actions_by_key: dict[str, tuple[ActionSpec, QAction]] = {}
        for title, items in MENUS:
            menu = self.menuBar().addMenu(title)
            for item in items:
                if item is SEPARATOR:
                    menu.addSeparator()
                elif item == RECENT:
                    self.recent_menu = menu.addMenu("Open &recent")
                else:
                    shortcut = item.shortcut
                    if shortcut.startswith("std:"):
                        shortcut = getattr(QKeySequence.StandardKey, shortcut[4:])
                    action = self._action(item.text, self._slot(item), shortcut, item.tip)
                    setattr(self, f"act_{item.key}", action)
                    self.actions_by_key[item.key] = (item, action)
                    menu.addAction(action)
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_projects()
        for path in recent:
            self.recent_menu.addAction(self._action(path, lambda _=False, p=path: self.open_project(p)))
        self.recent_menu.setEnabled(bool(recent))

    def recent_projects(self) -> list[str]:
        """Most recent first."""
        value = self.settings.value("recent/projects", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _remember(self, folder: Path | str) -> None:
        self.settings.setValue("recent/projects", updated_recent(self.recent_projects(), folder))
        self.settings.setValue("recent/last", str(folder))
        self._fill_recent()

    def _update_actions(self) -> None:
        has = self.project is not None
        writable = has and not self.project.read_only
        signed_in = bool(self.signed_in)
        for spec, action in self.actions_by_key.values():
            on = enabled(spec, has, writable, signed_in)
            action.setEnabled(on)
            action.setToolTip(spec.tip if on else disabled_tip(spec))

    def register_dataset_dialog(self, path: str | None = None, dataset_id: str | None = None,
                                kind: str | None = None) -> Task | None:
        """File > Register dataset: a Parquet file becomes a dataset (copied, hashed, audited) in the worker."""
        from PySide6.QtWidgets import QInputDialog

        from app.core.store.datasets import DATASET_KINDS, register_dataset

        if self.project is None or self.project.read_only:
            return None
        if not path:
            path, _ = QFileDialog.getOpenFileName(self, "Register dataset", str(Path.home()),
                                                  "Parquet (*.parquet);;All files (*)")
        if not path:
            return None
        if not dataset_id:
            dataset_id, ok = QInputDialog.getText(self, "Register dataset", "Dataset id (e.g. holdout-2026H2):",
                                                  text=Path(path).stem)
            if not ok or not dataset_id.strip():
                return None
        if not kind:
            kind, ok = QInputDialog.getItem(self, "Register dataset", "What is it for?", list(DATASET_KINDS), 0,
                                            False)
            if not ok:
                return None
        project, name = self.project, dataset_id.strip()
        task = self._track(start_task("Registering a dataset", lambda progress: register_dataset(
            project, name, name, kind, path), self))
        attach_progress_dialog(task, self)
        task.done.connect(lambda _sha: self.project_changed())
        task.done.connect(lambda _sha: [v.set_project(project) for v in self.screens.built("validation")]
                          if project is self.project else None)
        task.error.connect(lambda exc: show_error(self, exc, "Register dataset"))
        return task

    def export_packet_dialog(self, run_id: str | None = None) -> None:
        """Open the Export packet dialog for the open project."""
        from app.views.packet_dialogs import ExportPacketDialog

        if self.project is None or self.project.read_only:
            return
        dialog = ExportPacketDialog(self.project, run_id if isinstance(run_id, str) else None, self)
        dialog.exported.connect(lambda _path: self.project_changed())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()

    def verify_packet_dialog(self) -> None:
        """Open the Verify packet dialog (works without a project too)."""
        from app.views.packet_dialogs import VerifyPacketDialog

        dialog = VerifyPacketDialog(self.project, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()

    # ----- project lifecycle
    def open_read_only_dialog(self) -> None:
        """File > Open project read-only: ask for a folder and open a read-only snapshot of it."""
        self.open_project_dialog(read_only=True)

    def open_project_dialog(self, read_only: bool = False) -> None:
        """Ask for a folder and open it."""
        folder = QFileDialog.getExistingDirectory(self, "Open Lineproof project", self.settings.value(
            "recent/last", str(Path.home())))
        if folder:
            self.open_project(folder, read_only=read_only)

    def new_project_dialog(self) -> None:
        """Ask for a new folder and a name, then create the project."""
        folder = QFileDialog.getSaveFileName(self, "New project folder", str(Path.home() / "new-project"))[0]
        if not folder:
            return
        name, ok = QInputDialog.getText(self, "New project", "Project name:", text=Path(folder).name)
        if not ok:
            return
        if not self.close_project():  # the open project (and any unsaved edit) goes first
            return
        try:
            project = Project.create(folder, name or Path(folder).name)
        except LineproofError as exc:
            show_error(self, exc)
            return
        self._set_project(project)

    def open_project(self, folder: str | Path, read_only: bool = False) -> bool:
        """Open a project folder; offers a read-only snapshot when another process holds it."""
        if not self.close_project():
            return False
        try:
            # Read-only is a private snapshot: DuckDB's lock would otherwise keep every writer (an ingest from
            # the command line, a colleague's Lineproof) out for as long as this window stays open.
            # Opening checks the schema and the storage (~0.2 s, seconds on a busy PC): off the GUI thread.
            project = call_off_thread(lambda: Session.load(folder, read_only))
        except ProjectLockedError as exc:
            answer = QMessageBox.question(
                self, "Project in use", f"{exc.what}\n\nOpen a read-only snapshot of it instead?",
                QMessageBox.StandardButton.Open | QMessageBox.StandardButton.Cancel)
            if answer != QMessageBox.StandardButton.Open:
                return False
            try:
                project = call_off_thread(lambda: Session.load(folder, read_only=True))
            except LineproofError as exc2:
                show_error(self, exc2)
                return False
        except LineproofError as exc:
            show_error(self, exc)
            return False
        self._set_project(project)
        return True

    def _set_project(self, project: Project) -> None:
        self.session.adopt(project)
        self._remember(self.session.location)
        self.setWindowTitle(self.session.title)
        self.status_project.setText(f"{self.session.location}{self.session.mode}")
        self._update_actions()
        self.overview.show_empty("Computing the overview…")
        self.refresh()
        self.time_bar.blockSignals(True)  # the screens take the new range with the project, below
        self._set_span(*logged_span(project))
        self.time_bar.blockSignals(False)
        for screen in self.screens.built(*NAMES[1:]):  # the others get it when they are built
            screen.time_range = self.time_bar.range
            screen.set_project(project)

    def sign_in(self, user_id: str, passphrase: str) -> None:
        """Prove who works at this PC (the passphrase unlocks their identity); changes are audited under them."""
        if self.project is None:
            return
        # The key derivation: off the GUI thread. Wrong passphrases count towards the lockout, as anywhere.
        call_off_thread(lambda: self.session.sign_in(user_id, passphrase))
        self.status_user.setText(f"Signed in: {user_id}")
        self._update_actions()

    def sign_out(self) -> None:
        """Back to the PC's own account in the audit trail."""
        self.session.sign_out()
        self.status_user.setText("")
        self._update_actions()

    def sign_in_dialog(self) -> None:
        """File > Sign in: pick a registered user and give the passphrase."""
        from PySide6.QtWidgets import QInputDialog

        from app.core.governance import approvals as gov
        from app.views.signing import ask_passphrase_dialog

        if self.project is None:
            return
        users = gov.list_users(self.project)["user_id"].to_list()
        if not users:
            self.statusBar().showMessage("Nobody is registered in this project: add users on Users & roles first.",
                                         10_000)
            return
        user_id, ok = QInputDialog.getItem(self, "Sign in", "Who is working at this PC?", users, 0, False)
        if not ok:
            return
        passphrase = ask_passphrase_dialog(self, user_id)
        if passphrase is None:
            return
        try:
            self.sign_in(user_id, passphrase)
        except LineproofError as exc:
            show_error(self, exc, "Sign in")

    def unsaved_changes(self) -> list[str]:
        """Edits that closing the project now would lose."""
        return [lost for screen in self.screens.built("validation", "models", "reviews")
                for lost in screen.unsaved_changes()]

    def close_project(self, force: bool = False) -> bool:
        """Cancel running work and release the project; False when the user kept unsaved edits."""
        if not self.session.may_close([] if self.project is None else self.unsaved_changes(), self.ask_discard,
                                      force):
            return False
        for screen in self.screens.built(*NAMES[1:]):
            screen.set_project(None)
        self._stop_tasks()  # before the project closes under the running work
        self.session.close()
        self.status_user.setText("")
        self.last_overview = None
        self.time_bar.set_span(None)
        self.setWindowTitle("Lineproof")
        self.status_project.setText("No project")
        self.status_rows.setText("")
        self.overview.show_empty("No project open.\n\nFile > Open project… (Ctrl+O), File > New project… "
                                 "(Ctrl+N), or File > Open sample project.")
        self._update_actions()
        return True

    def _stop_tasks(self) -> None:
        # A task that ends may start the next (overview -> attention -> alert rules): while closing none may start,
        # and the loop stops whatever slipped in while the last ones delivered their signals.
        self._closing = True
        try:
            for _ in range(10):
                for task in list(self.tasks):
                    task.cancel()
                QThreadPool.globalInstance().waitForDone(30_000)
                QApplication.processEvents()
                if not any(task.running for task in self.tasks):
                    break
        finally:
            self._closing = False

    def _track(self, task: Task) -> Task:
        self.tasks.append(task)
        task.ended.connect(lambda: self.tasks.remove(task) if task in self.tasks else None)
        return task

    def project_changed(self, source: QWidget | None = None) -> None:
        """A screen changed users, requests, stages, reviews or runs: every screen that shows them re-reads the
        project (the source keeps its own state), and the overview is recomputed."""
        if self.project is None:
            return
        models = self.screens.built("models")
        for screen in self.screens.built("models", "approvals", "users", "reviews"):
            if screen is not source and not (screen in models and screen.unsaved_changes()):
                screen.set_project(self.project)
        for audit in self.screens.built("audit"):
            audit.set_project_refresh()
        self.refresh()

    # ----- background work
    def refresh(self) -> Task | None:
        """Recompute the overview (and the slices, when shown) off the GUI thread."""
        project = self.project
        if project is None or self._closing:
            return None
        if self.screens.current_name() in ("slices", "drift"):
            self.screens.currentWidget().recompute()
        task = self._track(start_task("Computing the overview", lambda progress: build_overview(project), self))
        self.status_busy.show()
        task.ended.connect(self.status_busy.hide)
        task.done.connect(self._show_overview)
        task.done.connect(lambda _ov: self._start_attention(project))
        task.error.connect(lambda exc: show_error(self, exc))
        return task

    def _start_attention(self, project: Project) -> Task | None:
        """Open alerts, worst line and silent assets: they scan the log, so they follow the overview."""
        if project is not self.project or self._closing:
            return None

        def attention(_progress):
            # Imported by the worker: its first import would otherwise pause the GUI thread.
            from app.core.analysis.attention import build_attention

            return build_attention(project)
        self.overview.attention.setText("Looking for open alerts, the worst line and silent assets…")
        task = self._track(start_task("Open alerts, worst line, silent assets", attention, self))
        task.done.connect(lambda attention: self.overview.set_attention(attention) if project is self.project
                          else None)
        task.done.connect(lambda _a: self._evaluate_alerts_if_due(project))
        task.error.connect(lambda exc: self.overview.attention.setText(f"Could not check alerts and lines: {exc}"))
        return task

    def _evaluate_alerts_if_due(self, project: Project) -> Task | None:
        """Data arrived since the alert rules last ran: run them now in the worker (progress and Cancel in the
        status bar), then show the open alerts they found."""
        if project is not self.project or project.read_only or self.alerts_task is not None or self._closing:
            return None

        def evaluate(progress) -> int | None:
            from app.core.analysis.alerts import alerts_due, evaluate_alerts
            from app.core.models.impact import measure_impact

            due = alerts_due(project)
            return None if due is None else evaluate_alerts(project, *due, progress=progress, impact=measure_impact)
        task = self._track(start_task("Evaluating alert rules on new data", evaluate, self))
        self.alerts_task = task
        task.progress.connect(lambda f, m: (self.alerts_progress.setValue(int(f * 1000)),
                                            self.alerts_progress.setToolTip(f"Alert rules on new data: {m}")))
        QTimer.singleShot(300, lambda: self.alerts_task is task and (self.alerts_progress.show(),
                                                                     self.alerts_cancel.show()))

        def finished(new: int | None) -> None:
            if new is None or project is not self.project:
                return
            self.statusBar().showMessage(f"Alert rules evaluated on the new data: {new} new alert(s).", 10_000)
            self._start_attention(project)
            for screen in self.screens.built("alerts"):
                screen.reload()

        def ended() -> None:
            self.alerts_task = None
            self.alerts_progress.hide()
            self.alerts_cancel.hide()
        task.done.connect(finished)
        task.error.connect(lambda exc: self.statusBar().showMessage(f"Could not evaluate the alert rules: {exc}",
                                                                    10_000))
        task.cancelled.connect(lambda: self.statusBar().showMessage(
            "Alert rules stopped; Alerts > Evaluate rules runs them again.", 10_000))
        task.ended.connect(ended)
        return task

    def _show_overview(self, ov: Overview) -> None:
        self.last_overview = ov
        self._set_span(ov.first_ts, ov.last_ts)  # data arrived: "last 30 days" counts from the newest record
        self.overview.set_overview(ov)
        self.status_rows.setText(f"{log_rows_text(ov)} · {ov.label_rows:,} labels · {ov.label_coverage:.1%} labelled")
        if ov.prediction_rows == 0:
            self.statusBar().showMessage("No prediction log yet: File > Import predictions… (Ctrl+I)", 10_000)

    def start_import(self, kind: str, path: str | Path, mapping=None, skip_unknown: bool = False) -> Task | None:
        """Run a predictions or labels import through the worker with a progress dialog."""
        project = self.project
        if project is None:
            return None
        if kind == "predictions":
            def job(progress):
                return import_predictions(project, path, mapping, progress)
        else:
            def job(progress):
                return import_labels(project, path, mapping, skip_unknown, progress)
        task = self._track(start_task(f"Importing {Path(path).name}", job, self))
        attach_progress_dialog(task, self)
        task.done.connect(lambda result: self._import_done(kind, result))
        task.error.connect(lambda exc: show_error(self, exc, "Import failed"))
        task.cancelled.connect(lambda: self.statusBar().showMessage(
            "Import cancelled; the project is unchanged.", 10_000))
        return task

    def _import_done(self, kind: str, result) -> None:
        text = f"Imported {result.rows:,} {kind} from {result.file_name}."
        if result.unknown_ids:
            text += f" Skipped {result.unknown_ids:,} labels for unknown records."
        if result.older_than_stored:
            text += f" {result.older_than_stored:,} labels were older than the stored ones and not applied."
        self.statusBar().showMessage(text, 15_000)
        if result.notes:  # choices made on the user's behalf are said where they cannot be missed
            QMessageBox.information(self, "Imported, with notes", text + "\n\n" + "\n\n".join(result.notes))
        self.refresh()
        for screen in self.screens.built("slices", "drift"):
            screen.set_project(self.project)

    def _pick_and_inspect(self, title: str, on_info) -> None:
        path = QFileDialog.getOpenFileName(self, title, self.settings.value("import/dir", str(Path.home())),
                                           DATA_FILES)[0]
        if not path or self.project is None:
            return
        self.settings.setValue("import/dir", str(Path(path).parent))
        cursor = self.project.cursor()  # created here, used only by the worker, closed by inspect_file
        task = self._track(start_task(f"Reading {Path(path).name}", lambda progress: inspect_file(cursor, path),
                                      self))
        attach_progress_dialog(task, self)
        task.done.connect(on_info)
        task.error.connect(lambda exc: show_error(self, exc, title))

    def import_predictions_dialog(self) -> None:
        """File > Import predictions: pick, map, import."""
        def on_info(info) -> None:
            dialog = PredictionImportDialog(info, self.project.manifest.slice_dimensions, self)
            if dialog.exec():
                self.start_import("predictions", info.source.path, dialog.mapping())
        self._pick_and_inspect("Import predictions", on_info)

    def import_labels_dialog(self) -> None:
        """File > Import labels: pick, map, import."""
        def on_info(info) -> None:
            dialog = LabelImportDialog(info, self)
            if dialog.exec():
                self.start_import("labels", info.source.path, dialog.mapping(), dialog.skip_unknown.isChecked())
        self._pick_and_inspect("Import labels", on_info)

    def export_project_dialog(self, path: str | None = None) -> Task | None:
        """File > Export project: one .lpz archive with a manifest of every file's sha256."""
        from app.core.governance.portable import export_project

        if self.project is None:
            return None
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Export project", str(Path.home() / (
                self.project.folder.name + ".lpz")), "Lineproof project archive (*.lpz)")
        if not path:
            return None
        project = self.project
        by = self._exporting_user(project)
        if by is False:
            return None
        task = self._track(start_task("Exporting the project", lambda p: export_project(project, path, p, by=by),
                                      self))
        attach_progress_dialog(task, self)
        task.done.connect(lambda out: self.statusBar().showMessage(f"Exported to {out}", 15_000))
        task.error.connect(lambda exc: show_error(self, exc, "Export project"))
        return task

    def _exporting_user(self, project):
        """In a governed project the exporting user signs the manifest: pick them and unlock (False: cancelled)."""
        from PySide6.QtWidgets import QInputDialog

        from app.core.governance import approvals as gov
        from app.views.signing import ask_passphrase_dialog, unlock_with_prompt

        if not gov.governed(project):
            return None
        users = [u for u in gov.list_users(project)["user_id"].to_list() if gov.user_roles(project, u)]
        user_id, ok = QInputDialog.getItem(self, "Export project", "Who exports (signs the archive's manifest)?",
                                           users, 0, False)
        if not ok:
            return False
        signer = unlock_with_prompt(project, user_id, lambda uid: ask_passphrase_dialog(self, uid))
        return False if signer is None else signer

    def import_project_dialog(self, archive: str | None = None, dest: str | None = None) -> Task | None:
        """File > Import project: check the archive completely, unpack into a new folder, open it."""
        from app.core.governance.portable import import_project

        if not archive:
            archive, _ = QFileDialog.getOpenFileName(self, "Import project", str(Path.home()),
                                                     "Lineproof project archive (*.lpz)")
        if not archive:
            return None
        if not dest:
            parent = QFileDialog.getExistingDirectory(self, "Folder to put the project in", str(Path.home()))
            if not parent:
                return None
            dest = str(Path(parent) / Path(archive).stem)
        task = self._track(start_task("Checking and importing the project",
                                      lambda p: import_project(archive, dest, p), self))
        attach_progress_dialog(task, self)
        task.done.connect(lambda folder: self.open_project(folder))
        task.error.connect(lambda exc: show_error(self, exc, "Import project"))
        return task

    def open_sample(self) -> Task | None:
        """Open the sample project, building it first (in the worker) if needed."""
        folder = default_sample_folder()
        if (folder / "lineproof.toml").exists():
            self.open_project(folder)
            return None
        from app.core.errors import SampleUnavailableError
        from app.core.governance.sample_archive import sample_source, unpack_prebuilt_sample

        try:
            source = sample_source()
        except SampleUnavailableError as why:  # neither recipe nor archive: say so, never a traceback on stderr
            self.statusBar().showMessage(f"{why.what} {why.todo}", 0)
            return None
        if folder.exists():  # a half-built sample from an interrupted run
            import shutil
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        if source == "archive":  # the offline bundle ships it built: seconds, every file's hash checked
            task = self._track(start_task("Unpacking the sample project",
                                          lambda progress: unpack_prebuilt_sample(folder, progress), self))
        else:
            from app.sample.build import build_sample

            task = self._track(start_task("Building the demo project (once: about 30 s on a quiet PC)",
                                          lambda progress: build_sample(folder, progress=progress), self))
        attach_progress_dialog(task, self)
        task.done.connect(lambda _: self.open_project(folder))
        task.error.connect(lambda exc: show_error(self, exc, "Sample project"))
        return task

    def help_for_screen(self) -> QDialog:
        """Help > Help for this screen (F1): the README's sections for the current screen, and the glossary."""
        from app.views.help_dialogs import HelpDialog
        from app.views.help_text import help_markdown

        row = max(self.nav.currentRow(), 0)
        dialog = HelpDialog(f"Help: {LABELS[row]}", help_markdown(NAMES[row], LABELS[row]), self)
        dialog.show()
        return dialog

    def shortcut_rows(self) -> list[tuple[str, str, str]]:
        """(keys, what, where) of every shortcut: menus, then each screen (built now if it was not yet)."""
        from PySide6.QtGui import QShortcut
        from PySide6.QtWidgets import QAbstractButton

        rows = [(k.toString(QKeySequence.SequenceFormat.NativeText), _plain(a.text()), "menu")
                for a in self.findChildren(QAction) for k in a.shortcuts()[:1] if not k.isEmpty() and a.text()]
        for name, label in zip(NAMES, LABELS, strict=True):
            screen = self.screens.screen(name)
            rows += [(b.shortcut().toString(QKeySequence.SequenceFormat.NativeText),
                      _plain(b.text() or b.toolTip()), label) for b in screen.findChildren(QAbstractButton)
                     if not b.shortcut().isEmpty()]
            rows += [(s.key().toString(QKeySequence.SequenceFormat.NativeText), s.whatsThis(), label)
                     for s in screen.findChildren(QShortcut) if not s.key().isEmpty()]
        return rows

    def shortcuts_dialog(self) -> QDialog:
        """Help > Keyboard shortcuts."""
        from app.views.help_dialogs import ShortcutsDialog

        dialog = ShortcutsDialog(self.shortcut_rows(), self)
        dialog.show()
        return dialog

    def about(self) -> QDialog:
        """Help > About: version, platform, the bundled libraries' licences, About Qt."""
        from app.views.help_dialogs import AboutDialog

        dialog = AboutDialog(self)
        dialog.show()
        return dialog

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.close_project():
            event.ignore()
            return
        if self.remember_geometry:
            self.settings.setValue("window/geometry", self.saveGeometry())
        super().closeEvent(event)


def _plain(text: str) -> str:
    """A menu or button text without its mnemonic markers ("&&" is a literal &)."""
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&").replace("…", "")


def run_gui(path: str | None = None, read_only: bool = False, quit_after: float = 0.0) -> int:
    """Open the main window on a project (or the last one, or the sample) and run the event loop.

    `quit_after` (seconds) closes the window by itself: the bundle's smoke test starts the real app that way.
    """
    app = make_app()
    window = MainWindow()
    screen = app.primaryScreen().availableGeometry()
    saved_fits = window.settings.value("window/geometry") is not None and screen.contains(window.geometry())
    if not saved_fits and screen.width() <= 1440:
        window.setGeometry(screen)  # field laptops: use every pixel (works without a window manager too)
    window.show()
    if path:
        QTimer.singleShot(0, lambda: window.open_project(path, read_only=read_only))
    else:
        last = window.settings.value("recent/last")
        if last and (Path(last) / "lineproof.toml").exists():
            QTimer.singleShot(0, lambda: window.open_project(last, read_only=read_only))
        else:
            QTimer.singleShot(0, window.open_sample)
    if quit_after > 0:
        window.remember_geometry = False

        def report_and_quit() -> None:
            shown = window.project.display_name if window.project is not None else "no project"
            print(f"smoke: window shown with {shown}; screens: {window.nav.count()}", flush=True)
            window.close()

        QTimer.singleShot(int(quit_after * 1000), report_and_quit)
    return app.exec()
