"""Validation screen: pick candidate, champion, dataset and plan (edited in place, checked as you go), run with
progress and Cancel; verdict, criteria and their checks, per-slice comparison, runtime parity, the plan of the run.
Thin over app.core.models.validation."""

from __future__ import annotations

from typing import Any

import polars as pl
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFont, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import LineproofError
from app.core.models.registry import list_versions, model_ids, stages_by_version, variant_parent
from app.core.models.validation import EXAMPLE_PLAN, PlanError, parse_plan, run_validation
from app.core.models.validation.criteria import metric_name
from app.core.models.validation.store import list_plans, list_runs, load_result, save_plan
from app.core.store.datasets import list_datasets
from app.core.store.project import Project
from app.views.errors import show_error
from app.views.screen import Screen
from app.views.table_model import Column, FrameTableModel
from app.views.table_view import DataTable
from app.views.task_controls import TaskControls
from app.views.validation_charts import LEGEND, ParityPlot, SliceComparison
from app.views.workers import Task

EMPTY = "No project open.\n\nOpen a project (Ctrl+O) to validate a candidate model against production."
NO_MODELS = ("No classifier versions (binary or multiclass) to validate.\n\nImport the candidate and the production "
             "model first "
             "(Models screen, or lineproof import-model).")
NO_DATASET = ("No held-out dataset in this project.\n\nRegister a validation dataset: Parquet with the model's "
              "features, the label and the slice columns; for an image model a folder of images with labels.csv "
              "(file, label, slice columns) or an .npz of input tensors with label:\nlineproof dataset PROJECT "
              "FILE.parquet --id holdout --kind validation (or FOLDER, or FILE.npz in place of FILE.parquet)")
COLOURS = {"PASS": "#e2efda", "FAIL": "#f8cbad", "INCONCLUSIVE": "#fff2cc", "SKIPPED": "#ededed",
           "NOT JUDGED": "#ededed"}
BANNER = {"PASS": ("#375623", "#e2efda"), "FAIL": ("#9c0006", "#f8cbad"), "INCONCLUSIVE": ("#7f6000", "#fff2cc")}


def _status_colour(r: dict[str, Any]) -> str | None:
    return COLOURS.get(r["status"])


RUN_COLUMNS = [
    Column("finished_at", "Finished (UTC)"), Column("verdict", "Verdict", background=lambda r: COLOURS.get(r["verdict"])),
    Column("candidate_version", "Candidate"), Column("champion_version", "Champion"), Column("dataset_id", "Dataset"),
    Column("created_by", "By"), Column("run_id", "Run", tooltip=lambda r: f"plan sha256 {r['plan_sha256']}"),
]
CRITERIA_COLUMNS = [
    Column("status", "Status", background=_status_colour), Column("kind", "Type"), Column("title", "Criterion"),
    Column("tally", "Checks", tooltip=lambda r: "pass / fail / inconclusive / not judged or skipped"),
]
CHECK_COLUMNS = [
    Column("status", "Status", background=_status_colour), Column("where", "Where"),
    Column("candidate", "Candidate", tooltip=lambda r: "The candidate's value of the metric"),
    Column("champion", "Champion", tooltip=lambda r: "The champion's value (non-regression criteria)"),
    Column("value", "Judged", tooltip=lambda r: r["interval_tip"]),
    Column("bound", "Bound", tooltip=lambda r: "Required minimum or maximum of the judged value"),
    Column("support", "Support", tooltip=lambda r: "Count the interval rests on (defects for recall, good parts "
                                                   "for the false-alarm rate, ...)"),
    Column("evidence", "Evidence", tooltip=lambda r: r["evidence"], free_text=True),
]


class ValidationView(Screen):
    """Plan and run validations; read a run's verdict and evidence."""

    recorded = Signal(object)
    export_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.result: dict[str, Any] | None = None
        self.candidate = QComboBox(toolTip="The version to validate")
        self.champion = QComboBox(toolTip="The production version it must not be worse than")
        self.dataset = QComboBox(toolTip="Held-out dataset (never used for training)")
        self.dataset.currentIndexChanged.connect(  # the box shows the id; its name is in the tooltip
            lambda i: self.dataset.setToolTip("Held-out dataset (never used for training): "
                                              f"{self.dataset.itemData(i, Qt.ItemDataRole.ToolTipRole) or ''}"))
        self.plan = QComboBox(toolTip="Plans stored in the project (latest revision); edit one in the Plan tab")
        self.open_plan = QPushButton("Open plan file…", toolTip="Load a TOML plan from a file into the editor")
        self.export_button = QPushButton("Export packet…", toolTip="Sign and export the packet of the selected run "
                                                                   "(Ctrl+E)")
        self.export_button.setEnabled(False)
        self.run_button = QPushButton("Run validation", toolTip="Score both models and judge the plan (Ctrl+R)")
        self.run_button.setShortcut("Ctrl+R")
        self.controls = TaskControls(self.run_button, "Stop scoring; the start stays in the audit trail, "
                                                           "no result is stored")
        self.cancel_button, self.progress = self.controls.cancel_button, self.controls.progress
        self.controls.can_run = lambda: self.project is not None and not self.project.read_only
        grid = QGridLayout()
        for i, (label, widget) in enumerate([("Candidate", self.candidate), ("Champion", self.champion),
                                             ("Dataset", self.dataset), ("Plan", self.plan)]):
            grid.addWidget(QLabel(label), 0, i * 2)
            grid.addWidget(widget, 0, i * 2 + 1)
            grid.setColumnStretch(i * 2 + 1, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.progress, 1)
        buttons.addStretch(0)
        buttons.addWidget(self.open_plan)
        buttons.addWidget(self.export_button)
        self.banner = QLabel(objectName="verdictBanner", wordWrap=True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top = QVBoxLayout()
        top.addLayout(grid)
        top.addLayout(buttons)
        top.addWidget(self.banner)

        self.runs = FrameTableModel(RUN_COLUMNS)
        self.runs_table = DataTable(self.runs)
        self.runs_table.setToolTip("Stored runs, newest first; select one to read its evidence")
        self.criteria = FrameTableModel(CRITERIA_COLUMNS)
        self.criteria_table = DataTable(self.criteria)
        self.checks = FrameTableModel(CHECK_COLUMNS)
        self.checks_table = DataTable(self.checks)
        criteria_page = QSplitter(Qt.Orientation.Vertical)
        criteria_page.addWidget(self.criteria_table)
        criteria_page.addWidget(self.checks_table)
        criteria_page.setSizes([170, 200])

        self.grouping = QComboBox(toolTip="Slices to compare")
        self.metric_choice = QComboBox(toolTip="Metric to compare")
        self.comparison = SliceComparison()
        slices_page = QWidget()
        sl = QVBoxLayout(slices_page)
        sl.setContentsMargins(0, 4, 0, 0)
        pick = QHBoxLayout()
        pick.addWidget(QLabel("Slices"))
        pick.addWidget(self.grouping)
        pick.addWidget(QLabel("Metric"))
        pick.addWidget(self.metric_choice)
        pick.addSpacing(16)
        pick.addWidget(QLabel(LEGEND))
        pick.addStretch(1)
        sl.addLayout(pick)
        sl.addWidget(self.comparison, 1)

        self.parity_model = QComboBox(toolTip="Model whose runtimes are compared")
        self.parity_note = QLabel(wordWrap=True)
        self.parity = ParityPlot()
        parity_page = QWidget()
        pp = QVBoxLayout(parity_page)
        pp.setContentsMargins(0, 4, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Model"))
        row.addWidget(self.parity_model)
        row.addWidget(self.parity_note, 1)
        pp.addLayout(row)
        pp.addWidget(self.parity, 1)

        self.editor = QPlainTextEdit(toolTip="The plan in TOML; checked as you type. Running saves it as a new "
                                             "revision when it changed.")
        self.editor.setFont(QFont("DejaVu Sans Mono", 9))
        self.plan_status = QLabel(wordWrap=True, objectName="planStatus")
        self.save_plan_button = QPushButton("Save plan", toolTip="Store this text as the plan's next revision "
                                                                 "(Ctrl+S)")
        self.example_button = QPushButton("Start from example", toolTip="Replace the text with a commented example")
        plan_page = QWidget()
        pl_ = QVBoxLayout(plan_page)
        pl_.setContentsMargins(0, 4, 0, 0)
        pl_.addWidget(self.editor, 1)
        prow = QHBoxLayout()
        prow.addWidget(self.plan_status, 1)
        prow.addWidget(self.example_button)
        prow.addWidget(self.save_plan_button)
        pl_.addLayout(prow)

        self.model_diff = QPlainTextEdit(readOnly=True, toolTip="What changed inside the model from the champion "
                                         "to the candidate: inputs and outputs, opsets, operators, weights, card "
                                         "(files re-hashed first); the packet carries the same text")
        self.model_diff.setFont(QFont("DejaVu Sans Mono", 9))
        self._diff_shown: tuple[str, str] | None = None

        self.tabs = QTabWidget()
        self.tabs.addTab(criteria_page, "Criteria")
        self.tabs.addTab(slices_page, "Per-slice comparison")
        self.tabs.addTab(parity_page, "Runtime parity")
        self.tabs.addTab(plan_page, "Plan")
        self.tabs.addTab(self.model_diff, "What changed inside")
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(self.runs_table)
        body.addWidget(self.tabs)
        body.setSizes([110, 420])
        self.install(top, body, empty_message=EMPTY)

        self.check_timer = QTimer(self, singleShot=True, interval=400)
        self.check_timer.timeout.connect(self.check_plan)
        self.editor.textChanged.connect(self.check_timer.start)
        self.plan.activated.connect(lambda _i: self._pick_stored_plan())
        self.open_plan.clicked.connect(self.open_plan_file)
        self.export_button.clicked.connect(lambda: self.result and self.export_requested.emit(self.result["run_id"]))
        self.example_button.clicked.connect(self.start_from_example)
        self.save_plan_button.clicked.connect(self.save_plan)
        QShortcut(QKeySequence.StandardKey.Save, self, activated=self.save_plan, whatsThis="Save the plan as a new revision")
        self.run_button.clicked.connect(self.start)
        self.runs_table.selectionModel().selectionChanged.connect(lambda *_: self.show_selected_run())
        self.criteria_table.selectionModel().selectionChanged.connect(lambda *_: self.show_checks())
        self.grouping.currentIndexChanged.connect(lambda _i: self.show_comparison())
        self.metric_choice.currentIndexChanged.connect(lambda _i: self.show_comparison())
        self.parity_model.currentIndexChanged.connect(lambda _i: self.show_parity())
        self.tabs.currentChanged.connect(lambda _i: self.show_model_diff())
        self.candidate.currentIndexChanged.connect(lambda _i: self._champion_for_variant())
        self.candidate.currentIndexChanged.connect(lambda _i: self.show_model_diff())
        self.champion.currentIndexChanged.connect(lambda _i: self.show_model_diff())
        self.plans = pl.DataFrame()
        self._parents: dict[str, str | None] = {}  # version -> the version it is a variant of

    # ----- project
    def set_project(self, project: Project | None) -> None:
        """Fill the choices from a project (or show the empty state)."""
        self.stop_jobs()
        self.project = project
        self._diff_shown = None
        if project is None:
            self.show_empty(EMPTY)
            return
        versions = list_versions(project)
        classifiers = set(model_ids(project, "binary")) | set(model_ids(project, "multiclass"))
        datasets = list_datasets(project, exclude_kind="training")
        stages = stages_by_version(project)
        versions = versions.filter(pl.col("model_id").is_in(list(classifiers))) if versions.height else versions
        self._parents = {v: variant_parent(lineage) for v, lineage in
                         versions.select("version_id", "lineage_json").iter_rows()} if versions.height else {}
        if versions.is_empty():
            self.show_empty(NO_MODELS)
            return
        if not datasets:
            self.show_empty(NO_DATASET)
            return
        self.candidate.clear()
        self.champion.clear()
        self.champion.addItem("(none: first release)", "")
        for v in versions["version_id"].to_list():
            label = f"{v}  [{stages[v]}]" if v in stages else v
            self.candidate.addItem(label, v)
            self.champion.addItem(label, v)
        _select(self.candidate, next((v for v in versions["version_id"] if "candidate" in stages.get(v, "")), None))
        _select(self.champion, next((v for v in versions["version_id"] if "production" in stages.get(v, "")), None))
        self.dataset.clear()
        for dataset_id, name in datasets:
            self.dataset.addItem(dataset_id, dataset_id)
            self.dataset.setItemData(self.dataset.count() - 1, f"{dataset_id}: {name}", Qt.ItemDataRole.ToolTipRole)
        self.run_button.setEnabled(not project.read_only)
        self.save_plan_button.setEnabled(not project.read_only)
        if project.read_only:
            self.run_button.setToolTip("The project is open read-only: runs cannot be stored")
        self.show_content()
        self.reload_plans()
        self.reload()

    def _champion_for_variant(self) -> None:
        """A variant (INT8, FP16) is judged against the version it was made from: that becomes the champion."""
        parent = self._parents.get(self.candidate.currentData())
        if parent:
            _select(self.champion, parent)

    def reload_plans(self, select: str | None = None) -> None:
        """Re-read the stored plans into the plan picker and the editor."""
        assert self.project is not None
        with self.project.reading() as con:
            self.plans = list_plans(con)
        self.plan.clear()
        for r in self.plans.iter_rows(named=True):
            self.plan.addItem(f"{r['name']} (rev {r['revision']})", r["plan_id"])
        if self.plans.is_empty():
            self.plan.addItem("(no stored plan: write one in the Plan tab)", "")
            self.editor.setPlainText(EXAMPLE_PLAN)
            self._plan_baseline = EXAMPLE_PLAN
            return
        _select(self.plan, select)
        self._load_stored_plan()
        self._picked = self.plan.currentIndex()

    def _edited(self) -> bool:
        baseline = getattr(self, "_plan_baseline", None)
        return baseline is not None and self.editor.toPlainText() != baseline

    def _may_replace_edits(self, what: str) -> bool:
        """Ask before an edited, unsaved plan is replaced (never silently)."""
        if not self._edited():
            return True
        answer = QMessageBox.question(self, "Replace the edited plan?",
                                      f"The plan in the Plan tab has unsaved changes. {what} replaces them.\n\n"
                                      "Save the plan first (Ctrl+S) to keep them as a new revision.",
                                      QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
                                      QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Discard

    def start_from_example(self) -> None:
        """Put the commented example in the editor (asking first if the current text was edited)."""
        if self._may_replace_edits("Starting from the example"):
            self.editor.setPlainText(EXAMPLE_PLAN)

    def _pick_stored_plan(self) -> None:
        if self._may_replace_edits("Picking a stored plan"):
            self._load_stored_plan()
            self._picked = self.plan.currentIndex()
        else:  # keep the picker naming the plan whose text is still in the editor
            self.plan.setCurrentIndex(getattr(self, "_picked", 0))

    def _load_stored_plan(self) -> None:
        plan_id = self.plan.currentData()
        match = self.plans.filter(pl.col("plan_id") == plan_id) if plan_id else pl.DataFrame()
        if match.height:
            text = match["plan_toml"][0]
            self.editor.setPlainText(text)
            self._plan_baseline = text
            try:
                _select(self.dataset, parse_plan(text).dataset or None)
            except PlanError:
                pass  # the editor's status line names the problem

    def reload(self, select: str | None = None) -> None:
        """Re-read the stored runs; select one (default the newest)."""
        if self.project is None:
            return
        with self.project.reading() as con:
            self.runs.set_frame(list_runs(con))
        target = next((i for i in range(self.runs.rowCount()) if self.runs.row(i)["run_id"] == select), 0)
        if self.runs.rowCount():
            self.runs_table.selectRow(target)
        else:
            self.show_result(None)

    # ----- plan editing
    def check_plan(self) -> bool:
        """Parse the editor's text and say what is wrong, or what the plan holds."""
        try:
            plan = parse_plan(self.editor.toPlainText(), "the plan")
        except PlanError as exc:
            self.plan_status.setText(f"<span style='color:#9c0006'>{_html(str(exc))}</span>")
            return False
        counts = (f"{len(plan.overall)} overall, {len(plan.per_slice)} per-slice, {len(plan.non_regression)} "
                  f"non-regression" + (", parity" if plan.parity else "") + (", latency" if plan.latency else ""))
        edited = (" <b>Edited, not saved:</b> Run validation judges this text (stored as a new revision), not "
                  "the revision named in Plan above.") if self._edited() else ""
        self.plan_status.setText(f"<span style='color:#375623'>Plan '{_html(plan.name)}' is valid: {counts}. "
                                 f"sha256 {plan.sha256[:16]}…</span>{edited}")
        return True

    def open_plan_file(self) -> None:
        """Load a TOML plan from a file into the editor."""
        path, _ = QFileDialog.getOpenFileName(self, "Open validation plan", "", "TOML plans (*.toml);;All files (*)")
        if path and self._may_replace_edits(f"Opening {path}"):
            try:
                with open(path, encoding="utf-8") as f:
                    self.editor.setPlainText(f.read())
            except (OSError, UnicodeDecodeError) as exc:
                show_error(self, LineproofError(f"Cannot read {path}: {exc}.", "Choose a UTF-8 TOML file."), "Plan")
                return
            self.tabs.setCurrentIndex(3)

    def unsaved_changes(self) -> list[str]:
        """What would be lost if the project closed now (the plan editor's unsaved text)."""
        if self.project is None or self.project.read_only:
            return []
        baseline = getattr(self, "_plan_baseline", None)
        return ["the acceptance plan being edited (Validation > Plan)"] if baseline is not None and \
            self.editor.toPlainText() != baseline else []

    def save_plan(self) -> None:
        """Store the editor's plan as a new revision (audited)."""
        if self.project is None or self.project.read_only:
            return
        try:
            plan = parse_plan(self.editor.toPlainText(), "the plan")
            with self.project.change("validation.plan.save", plan.name, {"sha256": plan.sha256}) as con:
                plan_id, revision, new = save_plan(con, plan, _actor())
        except LineproofError as exc:
            show_error(self, exc, "Plan")
            return
        self.reload_plans(select=plan_id)
        self.plan_status.setText(f"Saved as '{plan.name}' revision {revision}." if new else
                                 f"Unchanged: already revision {revision}.")

    # ----- running
    def start(self):
        """Run the validation described by the form and the editor in the worker."""
        if self.project is None or self.task is not None:
            return None
        try:
            plan = parse_plan(self.editor.toPlainText(), "the plan")
        except PlanError as exc:
            self.tabs.setCurrentIndex(3)
            show_error(self, exc, "Validation plan")
            return None
        project, cand, champ = self.project, self.candidate.currentData(), self.champion.currentData() or None
        dataset = self.dataset.currentData()
        task = self.run_job(f"Validate {cand}",
                            lambda progress: run_validation(project, plan, cand, champ, dataset, progress))
        self.controls.attach(task)
        task.done.connect(self._done)
        task.error.connect(lambda exc: show_error(self, exc, "Validation"))
        return task

    @property
    def task(self) -> Task | None:
        """The running validation, if any."""
        return self.controls.task

    def cancel(self) -> None:
        """Stop the running validation."""
        self.controls.cancel()

    def _done(self, run) -> None:
        self.reload_plans(select=run.result["plan"]["plan_id"])
        self.reload(select=run.run_id)
        self.tabs.setCurrentIndex(0)
        self.recorded.emit(run)

    def show_model_diff(self) -> Task | None:
        """Fill the "What changed inside" tab for the chosen champion -> candidate (in the worker, when shown)."""
        if self.tabs.currentWidget() is not self.model_diff or self.project is None:
            return None
        cand, champ = self.candidate.currentData(), self.champion.currentData()
        if not cand or not champ:
            self._diff_shown = None
            self.model_diff.setPlainText("Choose a champion: this tab shows what changed inside the candidate "
                                         "against it (lineproof diff PROJECT CHAMPION CANDIDATE).")
            return None
        if self._diff_shown == (champ, cand):
            return None
        self._diff_shown = key = (champ, cand)
        self.model_diff.setPlainText(f"Reading {champ} and {cand}…")
        project = self.project

        def diff(_progress) -> list[str]:
            from app.core.models.structure import diff_text, diff_versions

            return diff_text(diff_versions(project, champ, cand))
        task = self.run_job(f"What changed from {champ} to {cand}", diff)
        task.done.connect(lambda lines: self._diff_shown == key and self.model_diff.setPlainText("\n".join(lines)))
        task.error.connect(lambda exc: self._diff_shown == key and self.model_diff.setPlainText(
            f"{exc}" if isinstance(exc, LineproofError) else f"The diff failed: {exc}"))
        return task

    # ----- reading a run
    def show_selected_run(self) -> None:
        """Show the evidence of the selected stored run."""
        rows = self.runs_table.selectionModel().selectedRows()
        if self.project is None or not rows:
            self.show_result(None)
            return
        with self.project.reading() as con:
            run_id = self.runs.row(rows[0].row())["run_id"]
            result = load_result(con, run_id)
        self.show_result({**result, "run_id": run_id} if result else None)

    def show_result(self, result: dict[str, Any] | None) -> None:
        """Fill verdict, criteria, comparison and parity from a stored result."""
        self.result = result
        self.export_button.setEnabled(result is not None and self.project is not None and not self.project.read_only)
        if result is None:
            self.banner.setText("No validation run yet. Choose the candidate, the champion and a plan, then Run "
                                "validation (Ctrl+R).")
            self.banner.setStyleSheet("")
            self.criteria.set_frame(pl.DataFrame())
            self.checks.set_frame(pl.DataFrame())
            self.comparison.show_metric([], [], "recall", "", set())
            self.parity.clear_plot()
            return
        verdict = result["verdict"]
        fg, bg = BANNER[verdict]
        failed = [c for c in result["criteria"] if c["status"] == "FAIL"]
        unsure = [c for c in result["criteria"] if c["status"] == "INCONCLUSIVE"]
        m = result["models"]
        why = ("; ".join(c["title"] for c in failed[:3]) if failed else
               "; ".join(c["title"] for c in unsure[:3]) if unsure else "every criterion holds")
        self.banner.setText(
            f"<b>{verdict}</b> &nbsp; {m['candidate']['version_id']} vs "
            f"{m.get('champion', {}).get('version_id', 'no champion')} on {result['dataset']['dataset_id']} "
            f"({result['dataset']['rows']:,} rows), plan '{_html(result['plan']['name'])}' rev "
            f"{result['plan']['revision']}<br>{'Failed' if failed else 'Undecided' if unsure else 'Result'}: "
            f"{_html(why)}")
        self.banner.setStyleSheet(f"QLabel#verdictBanner {{ color: {fg}; background: {bg}; padding: 6px 10px; "
                                  "border-radius: 4px; font-size: 11pt; }")
        rows = []
        for i, c in enumerate(result["criteria"]):
            counts = [sum(k["status"] == s for k in c["checks"]) for s in ("PASS", "FAIL", "INCONCLUSIVE")]
            other = len(c["checks"]) - sum(counts)
            rows.append({"index": i, "status": c["status"], "kind": c["kind"].replace("_", "-"), "title": c["title"],
                         "tally": f"{counts[0]} / {counts[1]} / {counts[2]} / {other}"})
        self.criteria.set_frame(pl.DataFrame(rows))
        first_bad = next((r["index"] for r in rows if r["status"] == "FAIL"), 0)
        self.criteria_table.selectRow(first_bad)
        self._fill_comparison_choices(result)
        self._fill_parity_choices(result)

    def show_checks(self) -> None:
        """The checks of the selected criterion, failures first."""
        rows = self.criteria_table.selectionModel().selectedRows()
        if not self.result or not rows:
            self.checks.set_frame(pl.DataFrame())
            return
        c = self.result["criteria"][self.criteria.row(rows[0].row())["index"]]
        order = {"FAIL": 0, "INCONCLUSIVE": 1, "PASS": 2}
        checks = sorted(c["checks"], key=lambda k: order.get(k["status"], 3))
        self.checks.set_frame(pl.DataFrame([{
            "status": k["status"], "where": ", ".join(f"{a} {b}" for a, b in k["slice"].items()) or "overall",
            "candidate": k["candidate"] if k["candidate"] is not None else
            (k["value"] if c["kind"] in ("overall", "per_slice") else None), "champion": k["champion"],
            "value": k["value"], "bound": k["bound"], "support": k["support"], "evidence": k["evidence"],
            "interval_tip": _interval_tip(c["kind"], k)} for k in checks], strict=False))

    def _fill_comparison_choices(self, result: dict[str, Any]) -> None:
        self.grouping.blockSignals(True)
        self.metric_choice.blockSignals(True)
        self.grouping.clear()
        for key in result["slices"]:
            if key != "overall":
                self.grouping.addItem(key.replace(",", " x "), key)
        self.metric_choice.clear()
        overall = result["slices"].get("overall", [{}])[0]
        # The metrics the run computed: a binary detector's, or a multiclass model's accuracy and class recalls.
        metrics = [m for m in ("recall", "fpr", "auc", "precision", "accuracy", "brier", "macro_f1")
                   if f"cand_{m}" in overall] + sorted(k[5:] for k in overall
                                                       if k.startswith("cand_recall:") and not k.endswith(
                                                           ("_low", "_high")))
        for metric in metrics:
            self.metric_choice.addItem(metric_name(metric), metric)
        bad = next((c for c in result["criteria"] if c["status"] == "FAIL" and c["checks"] and c["checks"][0]["slice"]
                    and "model" not in c["checks"][0]["slice"]), None)
        if bad:
            _select(self.grouping, ",".join(bad["checks"][0]["slice"]))
            _select(self.metric_choice, bad["checks"][0]["metric"])
        self.grouping.blockSignals(False)
        self.metric_choice.blockSignals(False)
        self.show_comparison()

    def show_comparison(self) -> None:
        """Candidate vs champion per slice for the chosen grouping and metric."""
        if not self.result or self.grouping.currentData() is None:
            self.comparison.show_metric([], [], "recall", "", set())
            return
        key, metric = self.grouping.currentData(), self.metric_choice.currentData()
        keys = key.split(",")
        rows = self.result["slices"][key]
        failed = {", ".join(k["slice"][d] for d in keys) for c in self.result["criteria"] for k in c["checks"]
                  if k["status"] == "FAIL" and k["metric"] == metric and set(k["slice"]) == set(keys)}
        bound = next((k["bound"] for c in self.result["criteria"] if c["kind"] == "per_slice" for k in c["checks"]
                      if k["metric"] == metric and set(k["slice"]) == set(keys) and k["bound"] is not None), None)
        self.comparison.show_metric(rows, keys, metric, metric_name(metric), failed, bound)

    def _fill_parity_choices(self, result: dict[str, Any]) -> None:
        self.parity_model.blockSignals(True)
        self.parity_model.clear()
        for role in result.get("parity", {}):
            self.parity_model.addItem(f"{role} {result['models'][role]['version_id']}", role)
        self.parity_model.blockSignals(False)
        self.show_parity()

    def show_parity(self) -> None:
        """ORT vs OpenVINO scatter of the chosen model (from the run's stored scores)."""
        role = self.parity_model.currentData()
        if not self.result or self.project is None or role is None:
            self.parity.clear_plot()
            self.parity_note.setText("No model of this run was scored on both runtimes (the plan has no [parity]).")
            return
        summary = self.result["parity"][role]
        if not summary["compared"]:
            self.parity.clear_plot()
            self.parity_note.setText(f"Not compared: {summary['reason']}")
            return
        path = self.project.folder / self.result["scores_file"]["path"]
        try:
            frame = pl.read_parquet(path, columns=[f"{role}_onnxruntime", f"{role}_openvino"])
        except (OSError, pl.exceptions.PolarsError) as exc:
            self.parity.clear_plot()
            self.parity_note.setText(f"The run's score file cannot be read ({exc}); the figures above are stored.")
            return
        self.parity.show_scores(frame[:, 0].to_numpy(), frame[:, 1].to_numpy(),
                                self.result["models"][role]["threshold"])
        self.parity_note.setText(
            f"max |difference| {summary['max_abs_diff']:.2e}, mean {summary['mean_abs_diff']:.2e}; decisions agree on "
            f"{summary['agreement']:.4%} of {summary['rows']:,} rows ({summary['disagreements']} differ)")


def _interval_tip(kind: str, k: dict[str, Any]) -> str:
    what = "Gain over the champion (negative: worse)" if kind == "non_regression" else "The judged value"
    if k["low"] is None or k["high"] is None:
        return f"{what}; no interval"
    return f"{what}; confidence interval {k['low']:.4f} to {k['high']:.4f}"


def _select(combo: QComboBox, data: Any) -> None:
    if data is None:
        return
    index = combo.findData(data)
    if index >= 0:
        combo.setCurrentIndex(index)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br>")


def _actor() -> str:
    from app.core.store.audit import current_actor

    return current_actor()


if __name__ == "__main__":
    from app.views.screen import run_alone

    raise SystemExit(run_alone(ValidationView, read_only=False))
