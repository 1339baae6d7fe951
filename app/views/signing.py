"""Asking for a passphrase and unlocking a signing identity: the one way screens get a Signer."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QInputDialog, QLineEdit, QWidget

from app.core.governance import approvals as gov
from app.core.governance.identity import Signer
from app.core.store.project import Project
from app.views.workers import call_off_thread

AskPassphrase = Callable[[str], "str | None"]


def ask_passphrase_dialog(parent: QWidget, user_id: str) -> str | None:
    """Ask for a passphrase without echo; None when cancelled."""
    text, ok = QInputDialog.getText(parent, "Sign", f"Passphrase of {user_id} (asked at every signature):",
                                    QLineEdit.EchoMode.Password)
    return text if ok else None


def unlock_with_prompt(project: Project, user_id: str, ask: AskPassphrase) -> Signer | None:
    """Ask for the passphrase and unlock (lockout rules apply); None when the user cancelled."""
    passphrase = ask(user_id)
    # The key derivation takes 0.05 s here and far more on a busy PC: off the GUI thread.
    return None if passphrase is None else call_off_thread(lambda: gov.unlock(project, user_id, passphrase))
