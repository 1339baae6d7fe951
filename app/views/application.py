"""The QApplication: name, icon, theme. Apart from the main window so a screen run alone (python -m
app.views.slices_view PROJECT) needs no main window, and the views import no circle."""

from __future__ import annotations

import sys

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from app.views.resources import resource_path


def make_app(argv: list[str] | None = None) -> QApplication:
    """The QApplication with Lineproof's name, icon and style."""
    app = QApplication.instance() or QApplication(argv or sys.argv)
    app.setApplicationName("Lineproof")
    app.setOrganizationName("Lineproof")
    app.setWindowIcon(QIcon(str(resource_path("icons", "lineproof.svg"))))
    from app.views.theme import apply_theme

    apply_theme(app)  # light or dark as the OS says; style sheet and chart colours with it
    return app
