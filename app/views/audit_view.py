"""Audit screen: the filterable audit trail, the chain head, and a Verify button with its result.
Thin over app.core.store.audit."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.core.governance.integrity import ProjectVerdict, verify_project
from app.core.store.audit import read_audit
from app.core.store.project import Project
from app.views.screen import Screen
from app.views.table_model import Column, FrameTableModel
from app.views.table_view import DataTable
from app.views.workers import Task

EMPTY = "No project open.\n\nOpen a project (Ctrl+O) to see who changed what, and verify the audit trail."
COLUMNS = [Column("seq", "#"), Column("ts_text", "When (UTC)", "instant", tooltip=lambda r: r["ts_text"]), Column("actor", "Who"), Column("host", "Host"),
           Column("action", "Action"), Column("target", "Object", tooltip=lambda r: r["target"], free_text=True),
           Column("reason", "Reason", tooltip=lambda r: r["reason"] or "", free_text=True)]


class AuditView(Screen):
    """The log on the left, the selected entry's values on the right, the chain state on top."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.intact: bool | None = None  # the last verification's verdict (None while one runs)
        self.action = QLineEdit(placeholderText="Action starts with… (e.g. approval.)")
        self.actor = QLineEdit(placeholderText="Who")
        self.text = QLineEdit(placeholderText="Text in object, details or reason")
        # Ctrl+Shift+V is the window's Verify packet: a second owner would make both shortcuts dead (ambiguous).
        self.verify_button = QPushButton("Verify chain", toolTip="Recompute every entry's hash and link (Ctrl+Shift+A)")
        self.verify_button.setShortcut("Ctrl+Shift+A")
        self.head = QLabel(wordWrap=True, objectName="chainHead",
                           textInteractionFlags=Qt.TextInteractionFlag.TextSelectableByMouse)
        self.head.setToolTip("The newest entry's hash: compare it with the head printed in earlier packets")
        bar = QHBoxLayout()
        for w in (QLabel("Filter"), self.action, self.actor, self.text, self.verify_button):
            bar.addWidget(w, 1 if isinstance(w, QLineEdit) else 0)
        self.entries = FrameTableModel(COLUMNS)
        self.table = DataTable(self.entries)
        self.detail = QPlainTextEdit(readOnly=True, placeholderText="Select an entry to see its values.")
        left = QGroupBox("Audit trail (newest first)")
        QVBoxLayout(left).addWidget(self.table)
        right = QGroupBox("Entry")
        QVBoxLayout(right).addWidget(self.detail)
        body = QSplitter(Qt.Orientation.Horizontal)
        body.addWidget(left)
        body.addWidget(right)
        body.setSizes([800, 400])
        self.install(bar, self.head, body, empty_message=EMPTY)
        for edit in (self.action, self.actor, self.text):
            edit.textChanged.connect(lambda _: self.reload())
        self.verify_button.clicked.connect(self.verify)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._show_entry())

    def set_project(self, project: Project | None) -> None:
        """Show a project's audit trail (or the empty state)."""
        self.stop_jobs()
        self.project = project
        if project is None:
            self.show_empty(EMPTY)
            return
        self.show_content()
        self.reload()
        self.verify()

    def set_project_refresh(self) -> None:
        """Another screen changed something: show the new entries and the new head."""
        self.reload()
        self.verify()

    def reload(self) -> None:
        """Re-read the filtered entries."""
        if self.project is None:
            return
        with self.project.reading() as con:
            self.entries.set_frame(read_audit(con, 1000, self.action.text().strip() or None,
                                              self.actor.text().strip() or None, self.text.text().strip() or None))

    def verify(self) -> Task | None:
        """Verify the chain and the signed receipts in the worker (both grow with the project: every entry is
        re-hashed, every receipt's signature checked); the result shows above the log when it lands."""
        if self.project is None:
            return None
        for task in list(self.jobs):  # a newer check replaces one still running
            task.cancel()
        project = self.project
        self.intact = None
        if "verifying…" not in self.head.text().lower():
            self.head.setText(self.head.text() + " <i>(verifying…)</i>" if self.head.text() else "Verifying…")

        task = self.run_job("Verifying the audit trail", lambda progress: verify_project(project))
        task.done.connect(lambda result: self._show_verdict(result) if project is self.project else None)
        task.error.connect(lambda exc: self.head.setText(f"<span style='color:#c00000'><b>Could not verify"
                                                         f"</b></span>: {exc}"))
        return task

    def _show_verdict(self, full: ProjectVerdict) -> None:
        verdict, checked, problems = full.chain, full.anchors.checked, full.anchors.problems
        if verdict.ok:
            text = (f"<span style='color:#2e7d32'><b>Chain intact</b></span>: {verdict.entries} entries. "
                    f"Head #{verdict.head_seq}: <code>{verdict.head_hash}</code>")
        else:
            text = (f"<span style='color:#c00000'><b>CHAIN BROKEN at entry {verdict.first_bad_seq}</b></span>: "
                    f"{verdict.problem}")
        if problems:
            text += ("<br><span style='color:#c00000'><b>SIGNED RECEIPTS FAILED</b></span>: "
                     + "; ".join(problems[:3]))
        else:
            text += (f"<br>Signed receipts: {checked} checked, all match" if checked else
                     "<br>No signed receipt yet (one is written at every signed action; "
                     "<code>lineproof audit receipt</code> exports one to keep outside the project)")
        if full.governance:
            text += (f"<br><span style='color:#c00000'><b>{len(full.governance)} GOVERNANCE ROW(S) NOT BACKED BY A "
                     "SIGNATURE</b></span> (ignored): " + "; ".join(full.governance[:3]))
        if not full.anchored:
            text += f"<br><span style='color:#c00000'>{full.anchor_note}</span>"
        if verdict.clock_warnings:
            text += "<br>Clock warnings: " + "; ".join(verdict.clock_warnings[:3])
        self.head.setText(text)
        self.head.setToolTip("\n".join(full.governance + problems + full.anchors.notes))
        self.intact = full.ok

    def _show_entry(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return
        r = self.entries.row(rows[0].row())
        parts = [f"#{r['seq']} {r['action']} {r['target']}", f"when {r['ts_text']} by {r['actor']} on {r['host']} "
                 f"(Lineproof {r['app_version']})"]
        if r["reason"]:
            parts.append(f"reason: {r['reason']}")
        for key in ("details_json", "old_json", "new_json"):
            if r[key]:
                parts.append(f"{key[:-5]}:\n{json.dumps(json.loads(r[key]), indent=2, ensure_ascii=False)}")
        parts.append(f"entry hash: {r['entry_hash']}")
        self.detail.setPlainText("\n".join(parts))


if __name__ == "__main__":
    from app.views.screen import run_alone

    raise SystemExit(run_alone(AuditView))
