"""Light or dark, as the operating system says (LINEPROOF_THEME=light|dark overrides it): Qt's palette for the
widgets, a few style-sheet colours, and pyqtgraph's background and foreground taken from that palette. Cells with a
status colour keep dark text, so a pale green PASS stays readable on a dark screen too."""

from __future__ import annotations

import os

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from app.views.resources import resource_path

# Dark colours close to the light theme's blues, contrast >= 4.5:1 for text.
DARK = {"window": "#202328", "base": "#17191d", "alternate": "#23272d", "text": "#e6e9ee", "button": "#2b2f36",
        "highlight": "#2e75b6", "link": "#8cc4ff", "disabled": "#7d848e"}


def dark_requested(app: QApplication) -> bool:
    """True when LINEPROOF_THEME says dark, or it is unset and the OS uses a dark colour scheme."""
    chosen = os.environ.get("LINEPROOF_THEME", "").strip().lower()
    if chosen in ("light", "dark"):
        return chosen == "dark"
    return app.styleHints().colorScheme() == Qt.ColorScheme.Dark


def _dark_palette() -> QPalette:
    p = QPalette()
    roles = QPalette.ColorRole
    for role, key in ((roles.Window, "window"), (roles.Base, "base"), (roles.AlternateBase, "alternate"),
                      (roles.Button, "button"), (roles.Highlight, "highlight"), (roles.Link, "link"),
                      (roles.ToolTipBase, "button")):
        p.setColor(role, QColor(DARK[key]))
    for role in (roles.WindowText, roles.Text, roles.ButtonText, roles.ToolTipText, roles.BrightText,
                 roles.HighlightedText, roles.PlaceholderText):
        p.setColor(role, QColor(DARK["text"]))
    for role in (roles.WindowText, roles.Text, roles.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(DARK["disabled"]))
    return p


def apply_theme(app: QApplication, dark: bool | None = None) -> bool:
    """Style the application light or dark (None: as dark_requested says); returns True when dark."""
    dark = dark_requested(app) if dark is None else dark
    if dark:
        app.setStyle("Fusion")  # the platform styles ignore a dark palette in places
        app.setPalette(_dark_palette())
    elif app.property("lineproofTheme") == "dark":  # back from dark; otherwise the OS palette stays as it is
        app.setPalette(app.style().standardPalette())
    sheets = ["style.qss", *(["style-dark.qss"] if dark else [])]
    app.setStyleSheet("\n".join(resource_path(s).read_text(encoding="utf-8") for s in sheets
                                if resource_path(s).exists()))
    palette = app.palette()
    pg.setConfigOptions(background=palette.color(QPalette.ColorRole.Base).name(),
                        foreground=palette.color(QPalette.ColorRole.Text).name(), antialias=True)
    app.setProperty("lineproofTheme", "dark" if dark else "light")
    return dark


def chart_background() -> str:
    """The background charts use: the theme's base colour, white where no theme was applied (a bare QApplication)."""
    app = QApplication.instance()
    themed = app is not None and app.property("lineproofTheme") in ("light", "dark")
    return pg.getConfigOption("background") if themed else "w"


def themed(light: str, dark: str) -> str:
    """A chart colour for the theme in use: `dark` where the dark theme was applied, else `light`."""
    app = QApplication.instance()
    return dark if app is not None and app.property("lineproofTheme") == "dark" else light
