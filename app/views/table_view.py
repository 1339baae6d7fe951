"""A QTableView with the behaviour users expect: sortable, Ctrl+C copies as TSV, columns fit the table."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QFileDialog, QHeaderView, QMessageBox, QTableView, QToolTip

from app.views.table_model import FrameTableModel

FREE_TEXT_MIN = 100  # pixels a free-text column keeps when it gives way: a dozen characters to recognise it


def _common_cap(widths: list[int], floors: list[int], excess: int) -> int:
    """The largest width cap on the free-text columns that saves `excess` pixels (0 if even the floors do not)."""
    def saved(cap: int) -> int:
        return sum(w - max(f, min(w, cap)) for w, f in zip(widths, floors, strict=True))

    lo, hi = 0, max(widths)
    while lo < hi:  # largest cap with saved(cap) >= excess; saved() falls as the cap rises
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if saved(mid) >= excess else (lo, mid - 1)
    return lo


class DataTable(QTableView):
    """Read-only table over a FrameTableModel."""

    def __init__(self, model: FrameTableModel, parent=None, wrap: bool = False) -> None:
        """`wrap`: free-text cells wrap onto more lines instead of being cut (short tables of sentences)."""
        super().__init__(parent)
        self._natural: list[int] = []  # content widths after the last reset, before free-text columns give way
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
        if wrap:
            self.setWordWrap(True)
            self.setTextElideMode(Qt.TextElideMode.ElideNone)
            self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.horizontalHeader().setStretchLastSection(True)
        # Column widths from the visible rows plus 150 more, not 1,000: each row asked is a Python data() call
        # per column on the GUI thread (the slice table's first show spent 160 ms there).
        self.horizontalHeader().setResizeContentsPrecision(150)
        self.model().modelReset.connect(self._after_reset)
        self._after_reset()  # a table that stays empty still gets columns as wide as their headers
        # Every table exports what it shows (right click): the evidence behind a number leaves with its values.
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        copy = QAction("Copy rows (Ctrl+C)", self, toolTip="The selected rows, or all, as tab-separated text")
        copy.triggered.connect(self.copy_selection)
        export = QAction("Export CSV…", self, toolTip="Every row of this table with full values, as CSV")
        export.triggered.connect(lambda: self.export_csv_dialog())
        self.addActions([copy, export])

    def _after_reset(self) -> None:
        if self.model().columnCount() > 0 and self.horizontalHeader().sortIndicatorSection() >= \
                self.model().columnCount():
            self.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        header = self.horizontalHeader()
        # What resizeColumnsToContents would give, read before any stretching (a stretched last section's width
        # is the room left over, not what its text needs).
        self._natural = [max(self.sizeHintForColumn(c), header.sectionSizeHint(c))
                         for c in range(self.model().columnCount())]
        for c, width in enumerate(self._natural):
            self.setColumnWidth(c, width)
        self.fit_columns()

    def fit_columns(self) -> None:
        """Every column at its content width; when that is wider than the table, free-text columns give way."""
        model = self.model()
        if not self._natural or len(self._natural) != model.columnCount():
            return
        widths = list(self._natural)
        room = self.viewport().width() - 2
        free = [c for c, col in enumerate(model.columns) if col.free_text] if hasattr(model, "columns") else []
        excess = sum(widths) - room
        if excess > 0 and free:
            floors = {c: min(widths[c], max(FREE_TEXT_MIN, self._header_width(c))) for c in free}
            cap = _common_cap([widths[c] for c in free], [floors[c] for c in free], excess)
            for c in free:
                widths[c] = max(floors[c], min(widths[c], cap))
        for c, w in enumerate(widths):
            if w != self.columnWidth(c):
                self.setColumnWidth(c, w)

    def _header_width(self, column: int) -> int:
        title = str(self.model().headerData(column, Qt.Orientation.Horizontal) or "")
        return max((self.fontMetrics().horizontalAdvance(t) for t in title.splitlines()), default=0) + 24

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width():
            self.fit_columns()

    def viewportEvent(self, event) -> bool:
        # A cell Qt had to elide shows its whole text on hover, even where the model gives no tooltip.
        if event.type() == QEvent.Type.ToolTip:
            index = self.indexAt(event.pos())
            if index.isValid() and index.data(Qt.ItemDataRole.ToolTipRole) is None:
                text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
                if self.fontMetrics().horizontalAdvance(text) + 8 > self.visualRect(index).width():
                    QToolTip.showText(event.globalPos(), text, self.viewport(), self.visualRect(index))
                    return True
        return super().viewportEvent(event)

    def keyPressEvent(self, event) -> None:
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy_selection()
            return
        super().keyPressEvent(event)

    def export_csv(self, path: Path | str) -> Path:
        """Write the table (shown columns, full values, current order) to a CSV file."""
        path = Path(path)
        self.model().shown_frame().write_csv(path)
        return path

    def export_csv_dialog(self, path: str | None = None) -> Path | None:
        """Ask where (unless given) and export; a write error is shown, not raised."""
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Export table as CSV", str(Path.home() / "table.csv"),
                                                  "CSV (*.csv)")
        if not path:
            return None
        try:
            return self.export_csv(path)
        except OSError as exc:
            QMessageBox.warning(self, "Export CSV", f"{path} could not be written: {exc.strerror}.\n\n"
                                                    "Choose another folder.")
            return None

    def copy_selection(self) -> str:
        """Copy the selected rows (or all) to the clipboard; returns the text."""
        rows = sorted({i.row() for i in self.selectionModel().selectedIndexes()}) or None
        text = self.model().as_tsv(rows)
        QGuiApplication.clipboard().setText(text)
        return text
