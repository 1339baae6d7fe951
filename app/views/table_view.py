"""A QTableView with the behaviour users expect: sortable, Ctrl+C copies the selection as TSV."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView

from app.views.table_model import FrameTableModel


class DataTable(QTableView):
    """Read-only table over a FrameTableModel."""

    def __init__(self, model: FrameTableModel, parent=None) -> None:
        super().__init__(parent)
        self.setModel(model)
        # No sort column until the user clicks a header: rows keep the order core chose.
        # (Qt crashes on setSortIndicator for a header without sections; those have nothing to sort.)
        if model.columnCount() > 0:
            self.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.setSortingEnabled(True)
        self.setAlternatingRowColors(True)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(24)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.horizontalHeader().setStretchLastSection(True)
        self.model().modelReset.connect(self._after_reset)

    def _after_reset(self) -> None:
        if self.model().columnCount() > 0 and self.horizontalHeader().sortIndicatorSection() >= \
                self.model().columnCount():
            self.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.resizeColumnsToContents()

    def keyPressEvent(self, event) -> None:
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy_selection()
            return
        super().keyPressEvent(event)

    def copy_selection(self) -> str:
        """Copy the selected rows (or all) to the clipboard; returns the text."""
        rows = sorted({i.row() for i in self.selectionModel().selectedIndexes()}) or None
        text = self.model().as_tsv(rows)
        QGuiApplication.clipboard().setText(text)
        return text
