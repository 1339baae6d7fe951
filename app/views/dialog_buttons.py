"""The button row every Lineproof dialog ends with: the action named for what it does, and Cancel."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox


def action_buttons(dialog: QDialog, action: str, on_accept=None) -> QDialogButtonBox:
    """OK renamed to `action` (accepting the dialog, or calling `on_accept`) and Cancel (rejecting it)."""
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    buttons.button(QDialogButtonBox.StandardButton.Ok).setText(action)
    buttons.accepted.connect(on_accept or dialog.accept)
    buttons.rejected.connect(dialog.reject)
    return buttons
