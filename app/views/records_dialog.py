"""The rows behind a number (a slice, a drift cell, an alert): the newest rows on screen, every row to CSV.
Thin over app.core.analysis.records; both reads run in the worker."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.core.analysis.records import RecordFilter, count_records, export_records, read_records
from app.core.store.project import Project
from app.views.errors import show_error
from app.views.table_model import Column, FrameTableModel
from app.views.table_view import DataTable
from app.views.workers import Task, start_task

SHOWN = 1000


def show_records(project: Project | None, record_filter: RecordFilter | None, parent: QWidget | None
                 ) -> RecordsDialog | None:
    """Open the rows behind a number (nothing when no project is open or nothing is selected); returns the dialog."""
    if project is None or record_filter is None:
        return None
    dialog = RecordsDialog(project, record_filter, parent)
    dialog.show()
    return dialog


class RecordsDialog(QDialog):
    """The log's rows for one filter, newest first."""

    def __init__(self, project: Project, record_filter: RecordFilter, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project, self.filter = project, record_filter
        self.setWindowTitle(f"Rows: {record_filter.describe()}")
        self.resize(1180, 560)
        self.summary = QLabel("Reading the rows…", wordWrap=True)
        self.model = FrameTableModel([])
        self.table = DataTable(self.model)
        self.table.setToolTip("The newest rows; right click > Export CSV… saves these, the button below all of them")
        self.export_button = QPushButton("Export all rows as CSV…", enabled=False)
        self.total = 0
        bottom = QHBoxLayout()
        bottom.addWidget(self.summary, 1)
        bottom.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addLayout(bottom)
        self.export_button.clicked.connect(self.export_dialog)
        self.task = self.load()

    def load(self) -> Task:
        """Count and read the newest rows in the worker."""
        project, f = self.project, self.filter
        task = start_task("Reading rows", lambda _p: (count_records(project, f), read_records(project, f, SHOWN)),
                          self)
        task.done.connect(self._show)
        task.error.connect(lambda exc: (self.summary.setText(str(exc)), show_error(self, exc, "Rows")))
        return task

    def _show(self, result) -> None:
        self.total, frame = result
        self.model.set_frame(frame, [Column(c, c, kind="instant" if c in ("ts", "labelled_at") else "auto")
                                     for c in frame.columns])
        shown = min(self.total, SHOWN)
        self.summary.setText(f"{self.total:,} rows for {self.filter.describe()}"
                             + (f"; the newest {shown:,} are shown." if self.total > shown else "."))
        self.export_button.setEnabled(self.total > 0)

    def export_dialog(self, path: str | None = None) -> Task | None:
        """Write every row of the filter to a CSV file in the worker."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export rows", "rows.csv", "CSV files (*.csv)")
        if not path:
            return None
        project, f = self.project, self.filter
        task = start_task("Exporting rows", lambda _p: export_records(project, f, path), self)
        self.export_button.setEnabled(False)
        task.done.connect(lambda n: self.summary.setText(f"{n:,} rows written to {path}."))
        task.error.connect(lambda exc: show_error(self, exc, "Export rows"))
        task.ended.connect(lambda: self.export_button.setEnabled(self.total > 0))
        return task
