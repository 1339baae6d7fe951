"""Users & roles screen (admin): users with roles and certificate fingerprints, role changes signed off by an
admin's passphrase with a reason, and the risk-tier rules. Thin over app.core.governance.approvals."""

from __future__ import annotations

import json
from collections.abc import Callable

import polars as pl
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
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
from app.core.store.project import Project
from app.views.errors import show_error
from app.views.screen import Screen
from app.views.signing import ask_passphrase_dialog, unlock_with_prompt
from app.views.table_model import Column, FrameTableModel
from app.views.table_view import DataTable

EMPTY = "No project open.\n\nOpen a project (Ctrl+O) to manage its users and roles."
USER_COLUMNS = [Column("user_id", "User"), Column("name", "Name"), Column("roles", "Roles"),
                Column("cert_sha256", "Certificate sha256", "digest", tooltip=lambda r: r["cert_sha256"]),
                Column("added_at", "Added")]
TIER_COLUMNS = [Column("tier", "Risk tier"), Column("needs", "Production needs", tooltip=lambda r: r["needs"], free_text=True)]


def describe_rule(rule: dict) -> str:
    """A tier rule in words."""
    steps = ", then ".join(f"{'review' if a == 'review' else 'approval'} by {gov.ROLE_NAMES[r]}"
                           for a, r in rule["steps"])
    extras = [t for t, on in (("a passed validation run", rule.get("needs_validation")),) if on]
    people = []
    if rule.get("distinct_people") and len(rule["steps"]) > 1:
        people.append("different people")
    if rule.get("exclude_author"):
        people.append("not the model's author")
    return ", ".join([*extras, steps]) + (f" ({', '.join(people)})" if people else "")


class UsersView(Screen):
    """Users on the left with the role editor; tier rules on the right."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.ask_passphrase: Callable[[str], str | None] = lambda user: ask_passphrase_dialog(self, user)
        self.users = FrameTableModel(USER_COLUMNS)
        self.table = DataTable(self.users)
        self.role_boxes = {role: QCheckBox(gov.ROLE_NAMES[role]) for role in gov.ROLES}
        self.admin = QComboBox(toolTip="Admin who authorises the change (passphrase asked)")
        self.reason = QLineEdit(placeholderText="Reason (required, audited)")
        self.save_button = QPushButton("Save roles", toolTip="Change the selected user's roles")
        roles_row = QHBoxLayout()
        for box in self.role_boxes.values():
            roles_row.addWidget(box)
        roles_row.addStretch(1)
        auth_row = QHBoxLayout()
        for w in (QLabel("As admin"), self.admin, self.reason, self.save_button):
            auth_row.addWidget(w, 1 if w is self.reason else 0)
        self.add_button = QPushButton("Add user…", toolTip="Register a user with roles and a signing identity")
        self.hint = QLabel("Keys stay in each user's profile; the project keeps certificates and roles. From the "
                           "command line: lineproof user create PROJECT --id ID --name NAME --role ROLE --as ADMIN.",
                           wordWrap=True)
        left = QGroupBox("Users")
        ll = QVBoxLayout(left)
        ll.addWidget(self.table, 1)
        ll.addLayout(roles_row)
        ll.addLayout(auth_row)
        hint_row = QHBoxLayout()
        hint_row.addWidget(self.hint, 1)
        hint_row.addWidget(self.add_button)
        ll.addLayout(hint_row)
        self.tiers = FrameTableModel(TIER_COLUMNS)
        right = QGroupBox("What production needs, per risk tier")
        # The rules are sentences: they wrap (they were cut at 1366 px).
        QVBoxLayout(right).addWidget(DataTable(self.tiers, wrap=True))
        body = QSplitter(Qt.Orientation.Horizontal)
        body.addWidget(left)
        body.addWidget(right)
        body.setSizes([700, 500])
        self.install(body, empty_message=EMPTY)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._show_roles())
        self.save_button.clicked.connect(self.save_roles)
        self.add_button.clicked.connect(self.add_user_dialog)

    def set_project(self, project: Project | None) -> None:
        """Show a project's users and tier rules (or the empty state)."""
        self.project = project
        if project is None:
            self.show_empty(EMPTY)
            return
        self.show_content()
        self.save_button.setEnabled(not project.read_only and gov.governed(project))
        self.add_button.setEnabled(not project.read_only)
        if not gov.governed(project):
            self.hint.setText("Nobody is registered yet (setup mode: stage changes are only audited). "
                              "Add the first user: they become admin.")
        self.reload()

    def reload(self, select: str | None = None) -> None:
        """Re-read users and tier rules."""
        if self.project is None:
            return
        frame = gov.list_users(self.project)
        frame = frame.with_columns(pl.col("roles_json").map_elements(lambda r: ", ".join(json.loads(r)),
                                                                     return_dtype=pl.String).alias("roles"))
        self.users.set_frame(frame)
        admins = [r["user_id"] for r in frame.iter_rows(named=True) if "admin" in json.loads(r["roles_json"])]
        self.admin.clear()
        self.admin.addItems(admins)
        rules = gov.tier_rules(self.project)
        order = [t for t in gov.TIER_ORDER if t in rules]
        self.tiers.set_frame(pl.DataFrame({"tier": order, "needs": [describe_rule(rules[t]) for t in order]}))
        ids = frame["user_id"].to_list()
        if ids:
            self.table.selectRow(ids.index(select) if select in ids else 0)

    def selected_user(self) -> str | None:
        """Id of the selected user."""
        rows = self.table.selectionModel().selectedRows()
        return self.users.row(rows[0].row())["user_id"] if rows else None

    def _show_roles(self) -> None:
        user = self.selected_user()
        if user is None or self.project is None:
            return
        roles = set(gov.user_roles(self.project, user))
        for role, box in self.role_boxes.items():
            box.setChecked(role in roles)

    def add_user_dialog(self):
        """Open the Add user dialog; reload when a user was added. Returns the dialog (tests drive it)."""
        from app.views.add_user_dialog import AddUserDialog

        if self.project is None or self.project.read_only:
            return None
        dialog = AddUserDialog(self.project, self)
        dialog.ask_passphrase = self.ask_passphrase
        dialog.accepted.connect(lambda: (self.set_project(self.project), self.reload(select=dialog.added),
                                         self.changed.emit()))
        dialog.show()
        return dialog

    def save_roles(self) -> bool:
        """Change the selected user's roles, authorised by the chosen admin's passphrase."""
        user = self.selected_user()
        if user is None or self.project is None:
            return False
        roles = [r for r, box in self.role_boxes.items() if box.isChecked()]
        try:
            admin = unlock_with_prompt(self.project, self.admin.currentText(), self.ask_passphrase)
            if admin is None:
                return False
            gov.set_roles(self.project, user, roles, admin, self.reason.text())
        except Exception as exc:
            show_error(self, exc, "Roles")
            return False
        self.reason.clear()
        self.reload(select=user)
        self.changed.emit()
        return True


if __name__ == "__main__":
    from app.views.screen import run_alone

    raise SystemExit(run_alone(UsersView, read_only=False))
