"""Show core errors as dialogs: the message for user errors, details for anything unexpected."""

from __future__ import annotations

import traceback

from PySide6.QtWidgets import QMessageBox, QWidget

from app.core.errors import LineproofError


def show_error(parent: QWidget | None, exc: BaseException, title: str = "Lineproof") -> QMessageBox:
    """Open a non-blocking message box for an exception and return it."""
    box = QMessageBox(parent)
    box.setWindowTitle(title)
    if isinstance(exc, LineproofError):
        box.setIcon(QMessageBox.Icon.Warning)
        box.setText(exc.what)
        box.setInformativeText(exc.todo)
    else:
        box.setIcon(QMessageBox.Icon.Critical)
        box.setText(f"Something went wrong: {type(exc).__name__}: {exc}")
        box.setInformativeText("Nothing was changed. Please report this with the details below.")
        box.setDetailedText("".join(traceback.format_exception(exc)))
    box.setObjectName("errorDialog")
    box.open()
    return box


def ask_discard_dialog(parent: QWidget | None, lost: list[str]) -> bool:
    """Ask whether unsaved edits may be dropped; True to discard them."""
    box = QMessageBox(parent)
    box.setWindowTitle("Unsaved changes")
    box.setIcon(QMessageBox.Icon.Question)
    box.setText("These changes are not saved:")
    box.setInformativeText("\n".join(f"• {item}" for item in lost) + "\n\nDiscard them?")
    box.setStandardButtons(QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    return box.exec() == QMessageBox.StandardButton.Discard
