"""Models screen: versions, signature and files, runtimes that can load them, lineage and model card editor,
stage per site with promote and rollback. Thin over app.core.models.registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import polars as pl
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.governance import approvals as gov
from app.core.models.registry import (
    CARD_FIELDS,
    LINEAGE_FIELDS,
    RegistryError,
    card_text,
    edit_version_metadata,
    list_versions,
    model_ids,
    rollback,
    set_stage,
    stage_history,
    variant_parent,
)
from app.core.store.datasets import list_datasets
from app.core.store.project import Project
from app.core.store.schema import STAGES
from app.views.errors import ask_discard_dialog, show_error
from app.views.screen import Screen
from app.views.signing import ask_passphrase_dialog, unlock_with_prompt
from app.views.table_model import Column, FrameTableModel
from app.views.table_view import DataTable
from app.views.workers import Task

EMPTY = "No project open.\n\nOpen a project (Ctrl+O) to see its model versions."
NO_MODELS = ("No model versions yet.\n\nImport one from the command line:\n"
             "lineproof import-model PROJECT model.onnx --model ID --version v1")

VERSION_COLUMNS = [
    Column("version_id", "Version"), Column("format", "Format"), Column("risk_tier", "Risk tier"),
    Column("runs_on", "Runs on", tooltip=lambda r: f"ONNX Runtime: {r['onnxruntime']}\nOpenVINO: {r['openvino']}",
           free_text=True),
    Column("stages", "Stage per site", tooltip=lambda r: r["stages"] or "not staged", free_text=True),
    Column("sha256", "sha256", "digest", tooltip=lambda r: f"sha256 of the model files: {r['sha256']}"),
]
def runs_on() -> pl.Expr:
    """Both runtime checks in one column: 'ONNX Runtime, OpenVINO', a failing one with its reason in brackets."""
    checks = (("onnxruntime", "ONNX Runtime"), ("openvino", "OpenVINO"))
    fine = pl.concat_str([pl.when(pl.col(c) == "ok").then(pl.lit(n)) for c, n in checks], separator=", ",
                         ignore_nulls=True)
    failed = pl.concat_str([pl.when(pl.col(c) != "ok").then(pl.format("({}: {})", pl.lit(n), pl.col(c)))
                            for c, n in checks], separator=" ", ignore_nulls=True)
    return pl.concat_str([fine, failed], separator=" ").str.strip_chars().alias("runs_on")


HISTORY_COLUMNS = [Column("changed_at", "When (UTC)"), Column("site", "Site"), Column("stage", "Stage"),
                   Column("version_id", "Version"), Column("changed_by", "By"),
                   Column("reason", "Reason", tooltip=lambda r: r["reason"], free_text=True)]
LABELS = {"training_dataset": "Training dataset", "code_revision": "Code revision",
          "parent_version": "Parent version", "author": "Author", "intended_use": "Intended use",
          "out_of_scope": "Out-of-scope use", "known_limits": "Known limits", "training_data": "Training data",
          "features": "Input features (comma-separated)", "classes": "Classes (multiclass, in output order)",
          "preprocess": "Image preprocess (JSON)"}


def describe_signature(row: dict[str, Any]) -> str:
    """Inputs, outputs, opset, producer, metadata and file hashes as readable text."""
    def tensors(items: list[dict]) -> list[str]:
        return [f"  {t['name']}: {t['dtype']} [{', '.join(str(d) if d is not None else '?' for d in t['shape'])}]"
                for t in items]

    inputs = json.loads(row["inputs_json"] or "[]")
    rest = json.loads(row["outputs_json"] or "{}")
    runtimes = json.loads(row["runtimes_json"] or "{}")
    lines = ["Inputs:", *(tensors(inputs) or ["  (read by the runtime: OpenVINO IR)"]),
             "Outputs:", *(tensors(rest.get("outputs", [])) or ["  –"])]
    if rest.get("opset"):
        lines.append("Opset: " + ", ".join(f"{k} {v}" for k, v in rest["opset"].items()))
    if rest.get("producer"):
        lines.append(f"Producer: {rest['producer']}")
    for key, value in (rest.get("metadata") or {}).items():
        lines.append(f"Metadata {key}: {value}")
    lines += [f"Decision threshold: {row['threshold']}", f"Size: {row['size_bytes']:,} bytes", "Files (sha256):"]
    lines += [f"  {name}  {sha}" for name, sha in (runtimes.get("files") or {}).items()]
    lines += ["Runtimes:", f"  ONNX Runtime: {row['onnxruntime']}", f"  OpenVINO: {row['openvino']}"]
    return "\n".join(lines)


class ModelsView(Screen):
    """Versions on the left; signature, lineage and card, stages on the right."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.versions = FrameTableModel(VERSION_COLUMNS)
        self.table = DataTable(self.versions)
        self.table.setToolTip("Model versions in this project; select one to see and edit its details")
        self.signature = QPlainTextEdit(readOnly=True)

        self.fields: dict[str, QLineEdit | QPlainTextEdit] = {}
        form = QFormLayout()
        for name in LINEAGE_FIELDS:
            self.fields[name] = QLineEdit()
            if name in ("training_dataset", "code_revision"):  # usually a hash: fixed pitch, and 64 hex digits fit
                self.fields[name].setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
            form.addRow(LABELS[name], self.fields[name])
        for name in CARD_FIELDS:
            edit = QPlainTextEdit()
            edit.setFixedHeight(46)
            self.fields[name] = edit
            form.addRow(LABELS[name], edit)
        self.reason = QLineEdit(placeholderText="Reason (required, audited)",
                                toolTip="Why the lineage or card changes: required, and kept in the audit trail")
        self.save_button = QPushButton("Save lineage and card", toolTip="Write the changes with their reason to the "
                                                                         "audit log (Ctrl+S)")
        self.save_button.setShortcut("Ctrl+S")
        form_widget = QWidget()
        form_widget.setLayout(form)
        card_scroll = QScrollArea(widgetResizable=True)  # a long form must not set the window's minimum height
        card_scroll.setWidget(form_widget)
        # Reason and Save stay in sight under the scrolling form: at 1366x768 they were below its fold.
        save_row = QHBoxLayout()
        save_row.addWidget(QLabel("Reason"))
        save_row.addWidget(self.reason, 1)
        save_row.addWidget(self.save_button)
        card_page = QWidget()
        card_layout = QVBoxLayout(card_page)
        card_layout.setContentsMargins(0, 0, 0, 4)
        card_layout.addWidget(card_scroll, 1)
        card_layout.addLayout(save_row)

        self.site = QComboBox(editable=True, toolTip="Plant or site")
        self.stage = QComboBox(toolTip="Lifecycle stage")
        self.stage.addItems(STAGES)
        self.stage_reason = QLineEdit(placeholderText="Reason (audited)")
        self.apply_stage = QPushButton("Set stage", toolTip="Move the selected version to this stage at the site")
        self.rollback_button = QPushButton("Roll back", toolTip="Make the previous production version of this "
                                                                "model current again at the site")
        self.stage_user = QComboBox(toolTip="Who makes the change (a registered user; passphrase asked)",
                                    sizeAdjustPolicy=QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.stage_user_label = QLabel("As")
        self.ask_passphrase: Callable[[str], str | None] = lambda user: ask_passphrase_dialog(self, user)
        self.ask_discard: Callable[[list[str]], bool] = lambda lost: ask_discard_dialog(self, lost)
        stage_bar = QHBoxLayout()
        for w in (QLabel("Site"), self.site, QLabel("Stage"), self.stage, self.stage_user_label, self.stage_user):
            stage_bar.addWidget(w)
        stage_bar.addWidget(self.stage_reason, 1)
        stage_bar.addWidget(self.apply_stage)
        stage_bar.addWidget(self.rollback_button)
        self.history = FrameTableModel(HISTORY_COLUMNS)
        stage_page = QWidget()
        sl = QVBoxLayout(stage_page)
        sl.addLayout(stage_bar)
        sl.addWidget(DataTable(self.history), 1)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.signature, "Signature and files")
        self.tabs.addTab(card_page, "Lineage and model card")
        self.tabs.addTab(stage_page, "Stages")
        self.title = QLabel(objectName="sectionTitle", wordWrap=True)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.title)
        rl.addWidget(self.tabs, 1)
        self.import_button = QPushButton("Import model…", toolTip="Check a model file (ONNX, OpenVINO IR, MLflow "
                                                                   "folder) and add it as a new version")
        self.variant_button = QPushButton("Make variant…", toolTip="An INT8 (NNCF) or FP16 copy of the selected "
                                                                   "version, registered with lineage to it")
        self.variant_button.setEnabled(False)
        self.compare_button = QPushButton("Compare variants…", toolTip="The selected version and its INT8/FP16 "
                                          "variants side by side: metrics per slice, agreement, latency here")
        self.compare_button.setEnabled(False)
        left = QGroupBox("Model versions")
        ll = QVBoxLayout(left)
        actions = QHBoxLayout()
        actions.addWidget(self.import_button)
        actions.addWidget(self.variant_button)
        actions.addWidget(self.compare_button)
        actions.addStretch(1)
        ll.addLayout(actions)
        ll.addWidget(self.table)
        # Versions above their details: a project holds a handful of versions, and side by side neither the
        # versions' columns nor a sha256 in the lineage fit 1366 px.
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(left)
        body.addWidget(right)
        body.setSizes([180, 420])
        self.install(body, empty_message=EMPTY)

        self.table.selectionModel().selectionChanged.connect(lambda *_: self._show_selected())
        self.save_button.clicked.connect(self.save_metadata)
        self.import_button.clicked.connect(self.import_model_dialog)
        self.variant_button.clicked.connect(self.variant_dialog)
        self.compare_button.clicked.connect(self.compare_dialog)
        self.apply_stage.clicked.connect(self.apply_selected_stage)
        self.rollback_button.clicked.connect(self.rollback_selected)

    def set_project(self, project: Project | None) -> None:
        """Show a project's versions (or the empty state)."""
        self.project = project
        self._shown = None
        if project is None:
            self.show_empty(EMPTY)
            return
        writable = not project.read_only
        self.stage_user.clear()
        for r in gov.list_users(project).iter_rows(named=True):
            self.stage_user.addItem(f"{r['name']} ({r['user_id']})", r["user_id"])
        for w in (self.stage_user_label, self.stage_user):
            w.setVisible(self.stage_user.count() > 0)  # projects without users are in setup mode
        for w in (self.save_button, self.apply_stage, self.rollback_button):
            w.setEnabled(writable)
            if not writable:
                w.setToolTip("The project is open read-only")
        self.reload()

    def reload(self, keep: str | None = None) -> None:
        """Re-read the versions (a small query) and keep the selection."""
        if self.project is None:
            return
        frame = list_versions(self.project)
        if frame.is_empty():
            self.show_empty(NO_MODELS)
            return
        self.show_content()
        self.versions.set_frame(frame.with_columns(runs_on()))
        sites = set(self.project.manifest.site.split(",")) if self.project.manifest.site else set()
        sites |= set(stage_history(self.project)["site"].to_list())
        current = self.site.currentText()
        self.site.clear()
        self.site.addItems(sorted(s for s in sites if s.strip()))
        if current:
            self.site.setCurrentText(current)
        ids = frame["version_id"].to_list()
        self.select(keep if keep in ids else ids[0])

    def select(self, version_id: str) -> None:
        """Select a version by id."""
        for row in range(self.versions.rowCount()):
            if self.versions.row(row)["version_id"] == version_id:
                self.table.selectRow(row)
                return

    def selected(self) -> dict[str, Any] | None:
        """The selected version's row."""
        rows = self.table.selectionModel().selectedRows()
        return self.versions.row(rows[0].row()) if rows else None

    def unsaved_changes(self) -> list[str]:
        """What would be lost now: lineage or model-card fields edited but not saved."""
        shown = getattr(self, "_shown", None)
        if self.project is None or shown is None:
            return []
        lineage, card = json.loads(shown["lineage_json"] or "{}"), json.loads(shown["card_json"] or "{}")
        edited = [name for name, value in self._field_values(tuple(self.fields)).items()
                  if value != card_text((lineage if name in LINEAGE_FIELDS else card).get(name))]
        return [f"{shown['version_id']}: {', '.join(edited)} (Models > lineage and card)"] if edited else []

    def _show_selected(self) -> None:
        row = self.selected()
        if row is None or self.project is None:
            return
        lost, shown = self.unsaved_changes(), getattr(self, "_shown", None)
        if lost and shown is not None:
            if row["version_id"] == shown["version_id"]:
                return  # back on the version being edited (the user kept the edits): leave the fields alone
            if not self.ask_discard(lost):
                self._reselect(shown["version_id"])
                return
        self._shown = row
        self.variant_button.setEnabled(not self.project.read_only)
        self.compare_button.setEnabled(True)
        self.title.setText(f"<b>{row['version_id']}</b> — {row['model_name']} ({row['task']}, risk tier "
                           f"{row['risk_tier']})")
        self.signature.setPlainText(describe_signature(row))
        lineage, card = json.loads(row["lineage_json"] or "{}"), json.loads(row["card_json"] or "{}")
        for name, edit in self.fields.items():
            value = card_text((lineage if name in LINEAGE_FIELDS else card).get(name))
            edit.setText(value) if isinstance(edit, QLineEdit) else edit.setPlainText(value)
        self.history.set_frame(stage_history(self.project, model_id=row["model_id"]))

    def import_model_dialog(self) -> None:
        """Ask for a model file and its version, then import it in the worker."""
        from app.views.import_model_dialog import ImportModelDialog

        if self.project is None or self.project.read_only:
            return
        models = model_ids(self.project)
        dialog = ImportModelDialog(models, self)
        if dialog.exec() == ImportModelDialog.DialogCode.Accepted:
            self.start_import(**dialog.values())

    def start_import(self, path: str, model_id: str, version: str, threshold: float = 0.5,
                     new_model: dict | None = None):
        """Import a model file in the worker (the runtimes load it in a child process); reload when done."""
        from app.core.models.model_import import import_model

        if self.project is None:
            return None
        if not (path and model_id and version):
            show_error(self, RegistryError("A file, a model id and a version name are needed.",
                                           "Fill them in; nothing was imported."), "Import model")
            return None
        project = self.project
        task = self.run_job("Importing a model", lambda progress: import_model(
            project, path, model_id, version, threshold, new_model=new_model))
        self.import_button.setEnabled(False)

        def imported(result) -> None:
            self.reload(keep=result.version_id)
            self.changed.emit()

        task.done.connect(imported)
        task.error.connect(lambda exc: show_error(self, exc, "Import model"))
        task.ended.connect(lambda: self.import_button.setEnabled(True))
        return task

    def variant_dialog(self) -> None:
        """Ask how to make a variant of the selected version, then make it in the worker."""
        from app.views.variant_dialog import VariantDialog

        row = self.selected()
        if row is None or self.project is None or self.project.read_only:
            return
        datasets = list_datasets(self.project)
        dialog = VariantDialog(row["version_id"], datasets, self)
        if dialog.exec() == VariantDialog.DialogCode.Accepted:
            self.start_variant(**dialog.values())

    def compare_dialog(self):
        """The selected version (or the version it was made from) and its variants side by side."""
        from app.views.variants_dialog import VariantsDialog

        row = self.selected()
        if row is None or self.project is None:
            return None
        parent = variant_parent(row["lineage_json"]) or row["version_id"]
        datasets = list_datasets(self.project, exclude_kind="training")
        dialog = VariantsDialog(self.project, parent, datasets, self)
        dialog.show()
        return dialog

    def start_variant(self, parent: str, method: str, calibration: str | None, samples: int = 300) -> Task | None:
        """Make the variant in the worker (the converter runs in a child process Cancel stops); reload when done."""
        from app.core.models.variants import make_variant
        from app.views.workers import attach_progress_dialog

        if self.project is None:
            return None
        signer = self._signer("Make variant")
        if signer is False:
            return None
        project = self.project
        task = self.run_job(f"Making the {method.upper()} variant of {parent}", lambda progress: make_variant(
            project, parent, method, calibration, samples, progress, by=signer))
        attach_progress_dialog(task, self)
        self.variant_button.setEnabled(False)

        def made(result) -> None:
            self.reload(keep=result.version_id)
            self.changed.emit()

        task.done.connect(made)
        task.error.connect(lambda exc: show_error(self, exc, "Make variant"))
        task.ended.connect(lambda: self.variant_button.setEnabled(self.selected() is not None))
        return task

    def _reselect(self, version_id: str) -> None:
        """Go back to the version whose edits the user kept (later, once this selection change is over)."""
        rows = [r for r in range(self.versions.rowCount()) if self.versions.row(r)["version_id"] == version_id]
        if rows:
            QTimer.singleShot(0, lambda: self.table.selectRow(rows[0]))

    def _field_values(self, names: tuple[str, ...]) -> dict[str, str]:
        out = {}
        for name in names:
            edit = self.fields[name]
            out[name] = edit.text() if isinstance(edit, QLineEdit) else edit.toPlainText()
        return out

    def save_metadata(self) -> bool:
        """Save edited lineage and card fields with the reason; returns whether anything was written."""
        row = self.selected()
        if row is None or self.project is None:
            return False
        old_l, old_c = json.loads(row["lineage_json"] or "{}"), json.loads(row["card_json"] or "{}")
        lineage = {k: v for k, v in self._field_values(LINEAGE_FIELDS).items() if card_text(old_l.get(k)) != v}
        card = {k: v for k, v in self._field_values(CARD_FIELDS).items() if card_text(old_c.get(k)) != v}
        try:
            by = self._signer("Lineage and model card") if "author" in lineage else None  # the author decides who may approve: signed
            if by is False:
                return False
            changes = edit_version_metadata(self.project, row["version_id"], lineage, card, self.reason.text(),
                                            by=by or None)
        except Exception as exc:
            show_error(self, exc, "Lineage and model card")
            return False
        self.reason.clear()
        self._shown = None  # saved: the stored values are the new baseline
        self.reload(keep=row["version_id"])
        self.changed.emit()
        return bool(changes)

    def apply_selected_stage(self) -> Task | None:
        """Move the selected version to the chosen stage at the chosen site, in the worker (its files are re-hashed
        first, which takes a while for a large model); None when nothing was started."""
        row = self.selected()
        site = self.site.currentText().strip()
        if row is None or self.project is None:
            return None
        if not site:
            show_error(self, RegistryError("No site chosen.", "Type or pick the plant or site, e.g. P1."), "Stage")
            return None
        by = self._signer("Stage")
        if by is False:
            return None
        project, version_id, stage = self.project, row["version_id"], self.stage.currentText()
        reason = self.stage_reason.text()
        task = self._stage_job("Changing a stage", lambda progress: set_stage(
            project, version_id, site, stage, reason, by=by or None), "Stage")
        task.done.connect(lambda _result: (self.stage_reason.clear(), self.reload(keep=version_id)))
        return task

    def _stage_job(self, title: str, fn: Callable, error_title: str) -> Task:
        """Run a stage change in the worker; the stage buttons wait for it, the other screens refresh after it."""
        for button in (self.apply_stage, self.rollback_button):
            button.setEnabled(False)
        task = self.run_job(title, fn)
        task.done.connect(lambda _result: self.changed.emit())
        task.error.connect(lambda exc: show_error(self, exc, error_title))
        task.ended.connect(self._enable_stage_buttons)
        return task

    def _enable_stage_buttons(self) -> None:
        writable = self.project is not None and not self.project.read_only
        for button in (self.apply_stage, self.rollback_button):
            button.setEnabled(writable)

    def _signer(self, title: str):
        """The chosen user unlocked (governed projects), None in setup mode, False when the prompt was cancelled
        or the passphrase refused (said in a message box)."""
        if self.project is None or not gov.governed(self.project):
            return None
        try:
            signer = unlock_with_prompt(self.project, self.stage_user.currentData(), self.ask_passphrase)
        except Exception as exc:
            show_error(self, exc, title)
            return False
        return False if signer is None else signer

    def rollback_selected(self) -> Task | None:
        """Roll the selected version's model back at the chosen site, in the worker; the task's result is the
        version now in production."""
        row = self.selected()
        if row is None or self.project is None:
            return None
        by = self._signer("Roll back")
        if by is False:
            return None
        project, model_id, site = self.project, row["model_id"], self.site.currentText().strip()
        reason = self.stage_reason.text() or "rollback"
        task = self._stage_job("Rolling back", lambda progress: rollback(project, model_id, site, reason,
                                                                         by=by or None), "Roll back")
        task.done.connect(lambda version: self.reload(keep=version))
        return task


if __name__ == "__main__":
    from app.views.screen import run_alone

    raise SystemExit(run_alone(ModelsView))
