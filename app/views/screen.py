"""What every screen shares: its content, or a centred empty-state message that says what to do next."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QLayout, QStackedLayout, QVBoxLayout, QWidget


class Screen(QWidget):
    """Base of the screens: `install()` lays out the content; `show_empty()` / `show_content()` switch."""

    def install(self, *parts: QLayout | QWidget, empty_message: str) -> None:
        """Stack the parts (the last one stretches) above an empty state shown first."""
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(12, 10, 12, 8)
        for i, part in enumerate(parts):
            if isinstance(part, QLayout):
                layout.addLayout(part)
            else:
                layout.addWidget(part, 1 if i == len(parts) - 1 else 0)
        self.empty = QLabel(objectName="emptyState", alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.stack = QStackedLayout(self)
        self.stack.addWidget(self.empty)
        self.stack.addWidget(content)
        self.show_empty(empty_message)

    def show_empty(self, message: str) -> None:
        """Show a message instead of the content."""
        self.empty.setText(message)
        self.stack.setCurrentIndex(0)

    def show_content(self) -> None:
        """Show the content."""
        self.stack.setCurrentIndex(1)
