"""Alerts screen: evaluate the rules, acknowledge alerts as real or false alarms, see alert precision per line."""

from __future__ import annotations

import json
from datetime import date, datetime

from PySide6.QtCore import QDate, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDateEdit,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.core.analysis.alerts import acknowledge, alert_precision, evaluate_alerts, list_alerts
from app.core.analysis.slices import logged_span
from app.core.analysis.time_range import drift_windows
from app.core.models.impact import measure_impact
from app.core.store.project import Project
from app.views.errors import show_error
from app.views.screen import Screen
from app.views.table_model import Column, FrameTableModel
from app.views.table_view import DataTable
from app.views.workers import Task

ALERT_COLUMNS = [Column("alert_id", "#"), Column("state", "State"), Column("severity", "Severity"),
                 Column("rule", "Rule"), Column("line", "Line"), Column("subject", "Subject", free_text=True),
                 Column("message", "What happened", tooltip=lambda r: r["message"], free_text=True),
                 Column("window_end", "Until", "date",
                        tooltip=lambda r: f"Raised on the current window ending {r['window_end']}")]
PRECISION_COLUMNS = [Column("line", "Line"), Column("raised", "Raised"), Column("open", "Open"),
                     Column("real", "Real"), Column("false_alarms", "False alarms"),
                     Column("precision", "Precision", "percent",
                            tooltip=lambda r: "Real alerts / acknowledged alerts: the false-alert burden")]


def _qdate(value: date) -> QDate:
    return QDate(value.year, value.month, value.day)


def _dt(edit: QDateEdit) -> datetime:
    return datetime.combine(edit.date().toPython(), datetime.min.time())


class AlertsView(Screen):
    """Thin over app.core.analysis.alerts."""

    FOLLOWS_WHOLE_LOG = False  # the whole log is no window: then its own default dates, editable

    refreshed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self._task: Task | None = None
        self.selected_alert: dict | None = None
        self.ref_from, self.ref_to, self.cur_from, self.cur_to = (
            QDateEdit(calendarPopup=True, displayFormat="yyyy-MM-dd") for _ in range(4))
        self.evaluate_button = QPushButton("Evaluate rules", toolTip="Run the alert rules over the current window")
        self.open_only = QCheckBox("Open only", checked=True)
        bar = QHBoxLayout()
        for label, widgets in (("Drift reference", (self.ref_from, QLabel("to"), self.ref_to)),
                               ("Current", (self.cur_from, QLabel("to"), self.cur_to,
                                            self.add_follow_box("the current window")))):
            bar.addWidget(QLabel(label))
            for w in widgets:
                bar.addWidget(w)
        bar.addWidget(self.evaluate_button)
        bar.addStretch(1)
        bar.addWidget(self.open_only)

        self.alerts_model = FrameTableModel(ALERT_COLUMNS)
        self.alerts_table = DataTable(self.alerts_model)
        self.evidence = QPlainTextEdit(readOnly=True, placeholderText="Select an alert to see its evidence.")
        self.comment = QLineEdit(placeholderText="Why real, or why a false alarm",
                                 toolTip="Comment stored with the acknowledgement (why real, why a false alarm)")
        self.real_button = QPushButton("Real problem")
        self.false_button = QPushButton("False alarm")
        self.rows_button = QPushButton("Show rows…", enabled=False, toolTip="The log's rows the selected alert "
                                                                            "was raised on (its scope and window)")
        ack = QHBoxLayout()
        ack.addWidget(self.rows_button)
        ack.addWidget(self.comment, 1)
        ack.addWidget(self.real_button)
        ack.addWidget(self.false_button)
        detail = QGroupBox("Evidence and acknowledgement")
        dl = QVBoxLayout(detail)
        dl.addWidget(self.evidence, 1)
        dl.addLayout(ack)
        self.precision_model = FrameTableModel(PRECISION_COLUMNS)
        precision = QGroupBox("Alert precision per slice")
        QVBoxLayout(precision).addWidget(DataTable(self.precision_model))
        # The alerts get the whole width (their subject and text were cut side by side at 1366 px); the evidence
        # and the precision per slice share the lower half.
        lower = QSplitter(Qt.Orientation.Horizontal)
        lower.addWidget(detail)
        lower.addWidget(precision)
        lower.setSizes([640, 540])
        alerts_box = QGroupBox("Alerts")
        QVBoxLayout(alerts_box).addWidget(self.alerts_table)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(alerts_box)
        body.addWidget(lower)
        body.setSizes([330, 300])
        self.install(bar, body, empty_message="No project open.\n\nOpen a project (Ctrl+O) to see its alerts.")

        self.evaluate_button.clicked.connect(self.evaluate)
        self.open_only.toggled.connect(lambda _: self.reload())
        self.real_button.clicked.connect(lambda: self.acknowledge_selected("real"))
        self.false_button.clicked.connect(lambda: self.acknowledge_selected("false"))
        self.alerts_table.clicked.connect(self._selected)
        self.rows_button.clicked.connect(self.show_rows)

    def set_project(self, project: Project | None) -> None:
        """Show a project's alerts (or the empty state)."""
        self.stop_jobs()
        self.project = project
        if project is None:
            self.show_empty("No project open.\n\nOpen a project (Ctrl+O) to see its alerts.")
            return
        first, last = logged_span(project)
        if first is not None:
            self.span = (first.date(), last.date())
            reference, current = drift_windows(self.time_range if self.following() else None, *self.span)
            for edit, day in zip((self.ref_from, self.ref_to, self.cur_from, self.cur_to), (*reference, *current),
                                 strict=True):
                edit.setDate(_qdate(day))
        self.own_dates_enabled(not self.following())
        writable = not project.read_only
        for button in (self.evaluate_button, self.real_button, self.false_button):
            button.setEnabled(writable)
            button.setToolTip("" if writable else "The project is open read-only")
        self.show_content()
        self.reload()

    def apply_time_range(self, time_range) -> None:
        """The window's range becomes the window that Evaluate rules judges."""
        if getattr(self, "span", None) is None:
            return
        windows = drift_windows(time_range, *self.span)
        for edit, day in zip((self.ref_from, self.ref_to, self.cur_from, self.cur_to), (*windows[0], *windows[1]),
                             strict=True):
            edit.setDate(_qdate(day))
        self.own_dates_enabled(not self.following())

    def own_dates_enabled(self, enabled: bool) -> None:
        """The current window's days are the screen's own while it does not follow the window's range."""
        self.cur_from.setEnabled(enabled)
        self.cur_to.setEnabled(enabled)

    def reload(self) -> None:
        """Re-read alerts and precision (small queries)."""
        if self.project is None:
            return
        alerts = list_alerts(self.project, "open" if self.open_only.isChecked() else None)
        self.alerts_model.set_frame(alerts)
        self.precision_model.set_frame(alert_precision(self.project))
        self.evidence.clear()
        self.selected_alert = None
        self.rows_button.setEnabled(False)
        self.refreshed.emit()

    def evaluate(self) -> Task | None:
        """Evaluate the rules in the worker."""
        if self.project is None:
            return None
        project = self.project
        reference, current = (_dt(self.ref_from), _dt(self.ref_to)), (_dt(self.cur_from), _dt(self.cur_to))
        task = self.run_job("Evaluating alert rules",
                          lambda progress: evaluate_alerts(project, reference, current, progress=progress,
                                                           impact=measure_impact))
        self._task = task
        self.evaluate_button.setEnabled(False)
        task.done.connect(lambda n: self.reload())
        task.error.connect(lambda exc: show_error(self, exc, "Alerts"))
        task.ended.connect(lambda: self.evaluate_button.setEnabled(not project.read_only))
        return task

    def _selected(self, index) -> None:
        record = self.alerts_model.row(index.row())
        evidence = json.dumps(json.loads(record["evidence_json"]), indent=2)
        ack = f"\n\nAcknowledged {record['state']} by {record['acked_by']}: {record['ack_comment']}" \
            if record["state"] != "open" else ""
        self.evidence.setPlainText(f"{record['message']}\n\n{evidence}{ack}")
        self.selected_alert = record
        self.rows_button.setEnabled(True)

    def show_rows(self):
        """Open the rows behind the selected alert."""
        from app.core.analysis.records import alert_filter
        from app.views.records_dialog import show_records

        record = self.selected_alert
        if record is None:
            return None
        return show_records(self.project, alert_filter(record["scope"], record["window_start"], record["window_end"]),
                            self)

    def acknowledge_selected(self, verdict: str) -> bool:
        """Acknowledge the selected alert with the comment typed; returns whether one was selected."""
        rows = sorted({i.row() for i in self.alerts_table.selectionModel().selectedIndexes()})
        if self.project is None or not rows:
            return False
        try:
            for row in rows:
                acknowledge(self.project, int(self.alerts_model.row(row)["alert_id"]), verdict, self.comment.text())
        except Exception as exc:  # a core error becomes a dialog, never a crash
            show_error(self, exc, "Acknowledge")
            return False
        self.comment.clear()
        self.reload()
        return True
