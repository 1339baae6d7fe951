"""Help > Help for this screen (F1), Keyboard shortcuts, About: thin dialogs over app.views.help_text."""

from __future__ import annotations

import platform

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import qVersion
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app import __version__
from app.views.help_text import library_rows


def _table(headers: list[str], rows: list[tuple[str, ...]]) -> QTableWidget:
    table = QTableWidget(len(rows), len(headers))
    table.setHorizontalHeaderLabels(headers)
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            item = QTableWidgetItem(value)
            item.setToolTip(value)
            table.setItem(r, c, item)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.horizontalHeader().setStretchLastSection(True)
    table.resizeColumnsToContents()
    return table


def _closing(dialog: QDialog, layout: QVBoxLayout) -> None:
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    layout.addWidget(buttons)


class HelpDialog(QDialog):
    """The manual's part for one screen, and the glossary; searchable with the browser's own Ctrl+F-free scroll."""

    def __init__(self, title: str, markdown: str, parent: QWidget | None = None) -> None:
        super().__init__(parent, windowTitle=title)
        layout = QVBoxLayout(self)
        self.browser = QTextBrowser(openExternalLinks=False)
        self.browser.setMarkdown(markdown)
        layout.addWidget(self.browser)
        _closing(self, layout)
        self.resize(820, 600)  # fits a 1366x768 screen with the window's frame


class ShortcutsDialog(QDialog):
    """Every keyboard shortcut of the menus and the screens."""

    def __init__(self, rows: list[tuple[str, str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent, windowTitle="Keyboard shortcuts")
        layout = QVBoxLayout(self)
        self.table = _table(["Keys", "What it does", "Where"], rows)
        layout.addWidget(self.table)
        _closing(self, layout)
        self.resize(640, 560)


class AboutDialog(QDialog):
    """Version, platform, and the bundled libraries with their licences; About Qt beside."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, windowTitle="About Lineproof")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(
            f"<b>Lineproof {__version__}</b><br>Slice performance, drift, estimation, benchmarks, validation, "
            "approvals and signed packets for models on the production line. Works offline.<br>"
            f"Python {platform.python_version()}, Qt {qVersion()} (PySide6 {pyside_version}), "
            f"{platform.system()} {platform.machine()}", wordWrap=True))
        layout.addWidget(QLabel("Bundled libraries and their licences:"))
        self.table = _table(["Library", "Version", "Licence"], library_rows())
        layout.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        about_qt = buttons.addButton("About &Qt", QDialogButtonBox.ButtonRole.HelpRole)
        about_qt.clicked.connect(lambda: QApplication.aboutQt())
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(560, 520)
