"""Approvals screen: release requests, who must still act, and signed decisions (passphrase asked at every
signature). Thin over app.core.governance.approvals."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.core.governance import approvals as gov
from app.core.governance.identity import identity_path
from app.core.models.registry import list_versions
from app.core.store.project import Project
from app.core.store.schema import STAGES
from app.views.errors import show_error
from app.views.screen import Screen
from app.views.signing import ask_passphrase_dialog, unlock_with_prompt
from app.views.table_model import Column, FrameTableModel
from app.views.table_view import DataTable

EMPTY = "No project open.\n\nOpen a project (Ctrl+O) to see its release requests."
NO_USERS = ("Nobody is registered in this project yet.\n\nAdd the first user (it becomes admin) on the Users & roles "
            "screen, or from the command line:\n"
            "lineproof user create PROJECT --id YOUR.ID --name \"Your Name\" --role validation_lead")
REQUEST_COLUMNS = [Column("request_id", "Request"), Column("version_id", "Version"), Column("site", "Site"),
                   Column("target_stage", "To"), Column("state", "State"), Column("requested_by", "By"),
                   Column("requested_at", "When"), Column("validation_run_id", "Validation run")]
DECISION_COLUMNS = [Column("step", "#"), Column("meaning", "Meaning"), Column("user_id", "Signer"),
                    Column("role", "Role"), Column("decided_at", "Signed (UTC)"),
                    Column("comment", "Comment", tooltip=lambda r: r["comment"], free_text=True),
                    Column("verified", "Signature", tooltip=lambda r: r["verified_tip"])]


class ApprovalsView(Screen):
    """Requests on the left; the selected request's steps, decisions and the decide form on the right."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.ask_passphrase: Callable[[str], str | None] = lambda user: ask_passphrase_dialog(self, user)
        self.requests = FrameTableModel(REQUEST_COLUMNS)
        self.table = DataTable(self.requests)
        self.decisions = FrameTableModel(DECISION_COLUMNS)
        self.status = QLabel(wordWrap=True, objectName="requestStatus")
        self.user = QComboBox(toolTip="Who signs: users of this project whose identity is in your profile")
        self.comment = QLineEdit(placeholderText="What you checked",
                                 toolTip="What you checked; signed with the decision and shown in the packet")
        self.review_button = QPushButton("Review", toolTip="Sign 'reviewed by'")
        self.approve_button = QPushButton("Approve", toolTip="Sign 'approved by'")
        self.reject_button = QPushButton("Reject", toolTip="Sign 'rejected by'; the request ends")
        decide_row = QHBoxLayout()
        for w in (QLabel("Sign as"), self.user, self.comment, self.review_button, self.approve_button,
                  self.reject_button):
            decide_row.addWidget(w, 1 if w is self.comment else 0)
        detail = QGroupBox("Request")
        dl = QVBoxLayout(detail)
        dl.addWidget(self.status)
        dl.addWidget(DataTable(self.decisions), 1)
        dl.addLayout(decide_row)

        self.version = QComboBox(toolTip="Model version to release")
        self.stage = QComboBox()
        self.stage.addItems(STAGES)
        self.stage.setCurrentText("production")
        self.site = QLineEdit(placeholderText="Site, e.g. P1")
        self.run = QLineEdit(placeholderText="Validation run (needed for high tiers)")
        self.request_button = QPushButton("New request", toolTip="Ask for this release, signed in as the user above")
        new_row = QHBoxLayout()
        for w in (QLabel("Release"), self.version, QLabel("to"), self.stage, QLabel("at"), self.site, self.run,
                  self.request_button):
            new_row.addWidget(w)
        left = QGroupBox("Release requests")
        QVBoxLayout(left).addWidget(self.table)
        # Requests above, the selected one's signatures below: side by side, each table lost its last columns
        # (Signature, Validation run) at 1366 px once a decision existed.
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(left)
        body.addWidget(detail)
        body.setSizes([260, 340])
        self.install(new_row, body, empty_message=EMPTY)

        self.table.selectionModel().selectionChanged.connect(lambda *_: self.show_selected())
        self.review_button.clicked.connect(lambda: self.decide("review"))
        self.approve_button.clicked.connect(lambda: self.decide("approve"))
        self.reject_button.clicked.connect(lambda: self.decide("reject"))
        self.request_button.clicked.connect(self.new_request)

    def set_project(self, project: Project | None) -> None:
        """Show a project's requests (or the empty state)."""
        self.project = project
        if project is None:
            self.show_empty(EMPTY)
            return
        if not gov.governed(project):
            self.show_empty(NO_USERS)
            return
        users = gov.list_users(project)["user_id"].to_list()
        self.user.clear()
        self.user.addItems([u for u in users if identity_path(u).exists()] or users)
        self.version.clear()
        self.version.addItems(list_versions(project)["version_id"].to_list())
        for w in (self.review_button, self.approve_button, self.reject_button, self.request_button):
            w.setEnabled(not project.read_only)
        self.show_content()
        self.reload()

    def reload(self, select: str | None = None) -> None:
        """Re-read the requests."""
        if self.project is None:
            return
        self.requests.set_frame(gov.list_requests(self.project))
        rows = [self.requests.row(r)["request_id"] for r in range(self.requests.rowCount())]
        if rows:
            self.table.selectRow(rows.index(select) if select in rows else 0)
        else:
            self.status.setText("No requests yet. Choose a version, stage and site above and press New request.")
            self.decisions.set_frame(pl.DataFrame())

    def selected_request(self) -> str | None:
        """Id of the selected request."""
        rows = self.table.selectionModel().selectedRows()
        return self.requests.row(rows[0].row())["request_id"] if rows else None

    def show_selected(self) -> None:
        """Steps done, signature checks and who must still act."""
        request_id = self.selected_request()
        if request_id is None or self.project is None:
            return
        status = gov.request_status(self.project, request_id)
        checks = {v["decision_id"]: v for v in gov.verify_decisions(self.project, request_id)}
        frame = pl.DataFrame(status.decisions) if status.decisions else pl.DataFrame(
            schema={"decision_id": pl.String, "step": pl.Int64, "meaning": pl.String,
                    "user_id": pl.String, "role": pl.String, "decided_at": pl.String,
                    "comment": pl.String})
        frame = frame.with_columns(
            pl.Series("verified", ["valid" if checks[d]["ok"] else "FAILED" for d in frame["decision_id"]],
                          dtype=pl.String),
            pl.Series("verified_tip", [checks[d]["problem"] or "Signature matches the decision, the request "
                                           "and the signer's registered certificate" for d in frame["decision_id"]],
                          dtype=pl.String))
        self.decisions.set_frame(frame)
        needs = status.describe_missing()
        tier = f"risk tier {status.risk_tier}"
        text = {"open": f"Open: still needs {needs}.", "approved": "Approved: the release can be applied.",
                "applied": "Applied: the version was moved.", "rejected": "Rejected."}.get(status.state, status.state)
        self.status.setText(f"<b>{request_id}</b>: {status.version_id} → {status.target_stage} at {status.site} "
                            f"({tier}). {text}")
        is_open = status.state == "open" and not self.project.read_only
        for w in (self.review_button, self.approve_button, self.reject_button):
            w.setEnabled(is_open)

    def _signer(self):
        return unlock_with_prompt(self.project, self.user.currentText(), self.ask_passphrase)

    def decide(self, decision: str) -> bool:
        """Sign a decision on the selected request."""
        request_id = self.selected_request()
        if request_id is None or self.project is None:
            return False
        try:
            signer = self._signer()
            if signer is None:
                return False
            gov.decide(self.project, request_id, decision, signer, self.comment.text())
        except Exception as exc:
            show_error(self, exc, "Sign decision")
            self.reload(select=request_id)
            return False
        self.comment.clear()
        self.reload(select=request_id)
        self.changed.emit()
        return True

    def new_request(self) -> str | None:
        """Create a request for the chosen release."""
        if self.project is None:
            return None
        try:
            signer = self._signer()
            if signer is None:
                return None
            request_id = gov.create_request(self.project, self.version.currentText(), self.site.text().strip(),
                                            self.stage.currentText(), signer, self.run.text().strip() or None)
        except Exception as exc:
            show_error(self, exc, "New request")
            return None
        self.reload(select=request_id)
        self.changed.emit()
        return request_id


if __name__ == "__main__":
    from app.views.screen import run_alone

    raise SystemExit(run_alone(ApprovalsView, read_only=False))
