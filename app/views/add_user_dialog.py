"""Add user dialog (Users & roles): a new signing identity made on this PC, or the certificate of one made on
the user's own PC; authorised by an admin's passphrase (the first user becomes admin). Thin over core."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import LineproofError
from app.core.governance import approvals as gov
from app.core.governance import identity
from app.core.store.project import Project
from app.views.dialog_buttons import action_buttons
from app.views.errors import show_error
from app.views.signing import ask_passphrase_dialog, unlock_with_prompt
from app.views.workers import call_off_thread

CREATE, IMPORT = "create", "import"


class AddUserDialog(QDialog):
    """Register a user with roles and a certificate."""

    def __init__(self, project: Project, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add user")
        self.setMinimumWidth(640)  # five role boxes in one row
        self.project = project
        self.ask_passphrase: Callable[[str], str | None] = lambda user: ask_passphrase_dialog(self, user)
        self.added: str | None = None
        first = not gov.governed(project)
        self.user_id = QLineEdit(placeholderText="e.g. m.kowalski (letters, digits, . _ -)")
        self.name = QLineEdit(placeholderText="Full name as it appears on signatures")
        self.roles = {role: QCheckBox(gov.ROLE_NAMES[role]) for role in gov.ROLES}
        if first:
            self.roles["admin"].setChecked(True)
            self.roles["admin"].setEnabled(False)
        self.source = QComboBox(toolTip="Where the user's private key lives")
        self.source.addItem("Create a signing identity on this PC (key in this PC's profile)", CREATE)
        self.source.addItem("Use the certificate of an identity made on the user's own PC", IMPORT)
        self.passphrase = QLineEdit(echoMode=QLineEdit.EchoMode.Password,
                                    placeholderText="The new user's passphrase (at least 8 characters)")
        self.repeat = QLineEdit(echoMode=QLineEdit.EchoMode.Password, placeholderText="Repeat it")
        self.ca = QLineEdit(placeholderText="Site CA id to sign the certificate (optional)")
        self.cert_file = QLineEdit(placeholderText="The user's .cert.pem")
        browse = QPushButton("Browse…")
        self.admin = QComboBox(toolTip="Admin who authorises adding the user (passphrase asked)")
        for r in gov.list_users(project).iter_rows(named=True):
            if "admin" in gov.user_roles(project, r["user_id"]):
                self.admin.addItem(r["user_id"])
        roles_row = QHBoxLayout()
        for box in self.roles.values():
            roles_row.addWidget(box)
        cert_row = QHBoxLayout()
        cert_row.addWidget(self.cert_file, 1)
        cert_row.addWidget(browse)
        form = QFormLayout()
        form.addRow("User id", self.user_id)
        form.addRow("Name", self.name)
        form.addRow("Roles", roles_row)
        form.addRow("Identity", self.source)
        form.addRow("Passphrase", self.passphrase)
        form.addRow("", self.repeat)
        form.addRow("Site CA", self.ca)
        form.addRow("Certificate", cert_row)
        form.addRow("Authorised by", self.admin)
        self.form = form
        buttons = action_buttons(self, "Add user", self.add)
        layout = QVBoxLayout(self)
        if first:
            layout.addWidget(QLabel("Nobody is registered yet: this first user becomes admin, and from now on "
                                    "releases need the approvals of each risk tier.", wordWrap=True))
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.admin.setEnabled(not first)
        browse.clicked.connect(self._browse)
        self.source.currentIndexChanged.connect(lambda _i: self._source_changed())
        self._source_changed()

    def _source_changed(self) -> None:
        create = self.source.currentData() == CREATE
        for w in (self.passphrase, self.repeat, self.ca):
            w.setEnabled(create)
        self.cert_file.setEnabled(not create)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "User's certificate", "", "Certificates (*.pem *.crt)")
        if path:
            self.cert_file.setText(path)

    def _certificate(self, user_id: str, name: str) -> str:
        if self.source.currentData() == IMPORT:
            path = Path(self.cert_file.text().strip())
            try:
                text = path.read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                raise LineproofError(f"Cannot read the certificate {path}: {exc}.",
                                     "Choose the user's .cert.pem file (PEM text).") from exc
            if "BEGIN CERTIFICATE" not in text:
                raise LineproofError(f"{path.name} holds no PEM certificate.", "Choose the user's .cert.pem file.")
            return text
        if self.passphrase.text() != self.repeat.text():
            raise LineproofError("The two passphrases differ.", "Type the same passphrase twice; nobody was added.")
        ca_id = self.ca.text().strip() or None
        ca_passphrase = self.ask_passphrase(ca_id) if ca_id else None
        if ca_id and ca_passphrase is None:
            raise LineproofError("Cancelled: the site CA's passphrase is needed to sign the certificate.")
        passphrase = self.passphrase.text()
        # RSA key generation: 0.05 s here, seconds on a busy PC (4.3 s measured): off the GUI thread.
        cert = call_off_thread(lambda: identity.create_identity(user_id, name, passphrase, ca_id=ca_id,
                                                                ca_passphrase=ca_passphrase))
        return identity.cert_pem(cert)

    def add(self) -> bool:
        """Check, authorise, make or read the certificate, register; True when the user was added."""
        user_id, name = self.user_id.text().strip(), self.name.text().strip()
        roles = [r for r, box in self.roles.items() if box.isChecked()]
        made = False
        try:
            if not user_id or not name:
                raise LineproofError("A user needs an id and a name.", "Fill in both; nobody was added.")
            if not roles:
                raise LineproofError("Choose at least one role.", "e.g. engineer or validation lead.")
            if user_id in gov.list_users(self.project)["user_id"].to_list():
                raise LineproofError(f"{user_id} is already a user of this project.", "Choose another id.")
            admin = None
            first = not gov.governed(self.project)
            if not first:
                admin = unlock_with_prompt(self.project, self.admin.currentText(), self.ask_passphrase)
                if admin is None:
                    return False
            certificate = self._certificate(user_id, name)
            made = self.source.currentData() != IMPORT
            if first:  # the first user signs their own registration, which starts governance
                secret = self.passphrase.text() if self.source.currentData() != IMPORT else \
                    self.ask_passphrase(user_id)
                if secret is None:
                    return False
                admin = identity.unlock_identity(user_id, secret)
            gov.add_user(self.project, user_id, name, certificate, roles, by=admin)
        except Exception as exc:
            if made:  # the key made for a refused registration is not left in the profile
                identity.discard_identity(user_id)
            show_error(self, exc, "Add user")
            return False
        self.added = user_id
        self.accept()
        return True
