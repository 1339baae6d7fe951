"""Slices screen: a heatmap of one metric over two dimensions, a drill-down trend, and the worst slices."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
from PySide6.QtCore import QDate, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDoubleSpinBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.core.analysis.alerts import AlertRules
from app.core.analysis.estimate import slice_estimate
from app.core.analysis.overrides import override_trend, with_overrides
from app.core.analysis.records import RecordFilter, period_span
from app.core.analysis.slice_report import write_slices_csv
from app.core.analysis.slices import (
    LOWER_IS_BETTER,
    METRIC_LABELS,
    PERIOD,
    SliceQuery,
    SliceTable,
    SliceTrend,
    compute_slices,
    logged_span,
    logged_versions,
    slice_dimensions,
    slice_trend,
    task_metrics,
)
from app.core.store.project import Project
from app.views.errors import show_error
from app.views.heatmap_widget import Heatmap, Scale
from app.views.screen import Screen
from app.views.table_model import Column, FrameTableModel
from app.views.table_view import DataTable
from app.views.trend_widget import TrendPlot
from app.views.workers import Task

WINDOW_CHOICES = {"week": "week", "month": "month", "day": "day"}
NONE = "(none)"


def _interval_tip(metric: str):
    def tip(r: dict) -> str:
        low, high = r.get(f"{metric}_low"), r.get(f"{metric}_high")
        value = r.get(metric)
        if value is None:
            return r.get("status", "")
        text = f"{METRIC_LABELS.get(metric, metric)} {value:.3f}"
        if low is not None and high is not None:
            text += f", 95% interval [{low:.3f}, {high:.3f}]"
        return text + f"\n{r['labelled']:,} labelled of {r['n']:,} predictions"
    return tip


def _override_tip(r: dict) -> str:
    """Why an override rate matters: its interval, the confident decisions overridden, and who was right."""
    if r.get("override_rate") is None:
        return "No operator decisions logged for this slice."
    text = (f"Operators overrode {r['overrides']:,} of {r['decided']:,} decisions: {r['override_rate']:.1%} "
            f"({r['override_rate_low']:.1%}-{r['override_rate_high']:.1%}); confident decisions overridden "
            f"{(r['confident_rate'] or 0):.1%}")
    if r.get("override_precision") is not None:
        text += (f"\nOperators right in {r['override_precision']:.0%} of {r['labelled_overrides']:,} labelled "
                 f"overrides; the model's precision {('-' if r['model_precision'] is None else format(r['model_precision'], '.0%'))}")
    return text


def _cell_text(value: object) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _axis_text(value: object) -> str:
    return f"{value:%d %b}" if hasattr(value, "strftime") else str(value)


class SlicesView(Screen):
    """Thin over app.core.analysis.slices: builds queries from the controls, shows results from the worker."""

    computed = Signal(object)  # SliceTable, after the heatmap and table are updated
    drilled = Signal(object)  # SliceTrend

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.table: SliceTable | None = None
        self.trend: SliceTrend | None = None
        self._task: Task | None = None
        self._trend_task: Task | None = None
        self._build()

    # ----- layout
    def _build(self) -> None:
        self.model_box = QComboBox(toolTip="Model version whose prediction log is sliced")
        self.rows_box = QComboBox(toolTip="Heatmap rows")
        self.cols_box = QComboBox(toolTip="Heatmap columns: another dimension or a time window")
        self.metric_box = QComboBox(toolTip="Metric shown and used to rank the slices")
        self.support_box = QSpinBox(minimum=1, maximum=100_000, value=30,
                                    toolTip="Slices with fewer labelled rows show 'insufficient data'")
        self.threshold_box = QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.05, decimals=3, value=0.0,
                                            specialValueText="auto", toolTip=(
                                                "Decision threshold on the score. auto: the registered version's "
                                                "threshold, or the decisions the log carries. A log-only model "
                                                "without logged decisions needs one."))
        self.use_dates = QCheckBox("From", toolTip="Limit to a date range")
        self.start_edit = QDateEdit(calendarPopup=True, displayFormat="yyyy-MM-dd")
        self.end_edit = QDateEdit(calendarPopup=True, displayFormat="yyyy-MM-dd")
        self.start_edit.setEnabled(False)
        self.end_edit.setEnabled(False)
        self.export_button = QPushButton("Export CSV…", toolTip="Save the ranked slice table (Ctrl+Shift+E)")
        self.drilled_where: tuple[tuple[str, str], ...] = ()
        self.rows_button = QPushButton("Show rows…", enabled=False, toolTip="The log's rows behind the slice you "
                                                                            "clicked, newest first; all to CSV")
        self.busy = QProgressBar(maximum=1000, maximumWidth=140, textVisible=False)
        self.cancel_button = QPushButton("Cancel")
        self.busy.hide()
        self.cancel_button.hide()
        # Two rows: what is sliced and shown, then which rows count; one row cut the model box at 1366x768.
        for box in (self.model_box, self.rows_box, self.cols_box, self.metric_box):
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        what, which = QHBoxLayout(), QHBoxLayout()
        for row, pairs in ((what, (("Model", self.model_box), ("Metric", self.metric_box), ("Rows", self.rows_box),
                                   ("Columns", self.cols_box))),
                           (which, (("Min. labelled", self.support_box), ("Threshold", self.threshold_box)))):
            for label, widget in pairs:
                row.addWidget(QLabel(label))
                row.addWidget(widget)
        which.addWidget(self.add_follow_box("the slice table's dates"))
        which.addWidget(self.use_dates)
        which.addWidget(self.start_edit)
        which.addWidget(QLabel("to"))
        which.addWidget(self.end_edit)
        what.addStretch(1)
        which.addStretch(1)
        controls = QVBoxLayout()
        controls.setSpacing(4)
        controls.addLayout(what)
        controls.addLayout(which)

        self.heatmap = Heatmap()
        self.heatmap.setToolTip("Grey: too few labelled rows; white: no predictions. Click a cell to drill in.")
        self.trend_plot = TrendPlot()
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.table_model = FrameTableModel([])
        self.table_view = DataTable(self.table_model)
        self.table_view.setToolTip("Worst slices first (by the favourable end of the interval). Ctrl+C copies.")

        heat_box = QGroupBox("Heatmap")
        hl = QVBoxLayout(heat_box)
        status_row = QHBoxLayout()
        status_row.addWidget(self.summary, 1)
        status_row.addWidget(self.busy)
        status_row.addWidget(self.cancel_button)
        hl.addLayout(status_row)
        hl.addWidget(self.heatmap, 1)
        trend_box = QGroupBox("Slice over time")
        QVBoxLayout(trend_box).addWidget(self.trend_plot)
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(heat_box)
        top.addWidget(trend_box)
        top.setSizes([640, 520])
        table_box = QGroupBox("Slices, worst first")
        tl = QVBoxLayout(table_box)
        table_bar = QHBoxLayout()
        table_bar.addWidget(QLabel("Ranked by the favourable end of each interval: a slice is only worse when "
                                   "the evidence says so. Click a row for its trend."), 1)
        table_bar.addWidget(self.rows_button)
        table_bar.addWidget(self.export_button)
        tl.addLayout(table_bar)
        tl.addWidget(self.table_view)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(top)
        body.addWidget(table_box)
        body.setSizes([400, 260])

        self.install(controls, body, empty_message="No project open.\n\nOpen a project (Ctrl+O) to see its slices.")

        for box in (self.model_box, self.rows_box, self.cols_box):
            box.currentIndexChanged.connect(self._controls_changed)
        self.metric_box.currentIndexChanged.connect(self._metric_changed)
        self.support_box.editingFinished.connect(self.recompute)
        self.threshold_box.editingFinished.connect(self.recompute)
        self.use_dates.toggled.connect(self._dates_toggled)
        self.start_edit.dateChanged.connect(lambda _: self.use_dates.isChecked() and self.recompute())
        self.end_edit.dateChanged.connect(lambda _: self.use_dates.isChecked() and self.recompute())
        self.heatmap.cellClicked.connect(self._cell_clicked)
        self.table_view.clicked.connect(self._row_clicked)
        self.export_button.clicked.connect(self.export_csv_dialog)
        self.rows_button.clicked.connect(self.show_rows)
        self.cancel_button.clicked.connect(self.cancel)
        QShortcut(QKeySequence("Ctrl+Shift+E"), self, activated=self.export_csv_dialog, whatsThis="Export the slice table as CSV")

    # ----- project
    def set_project(self, project: Project | None) -> None:
        """Fill the controls from a project (or clear them); running work on the old one is stopped first."""
        self.stop_jobs()  # older drill-downs included: none may outlive the project they read
        self._task = self._trend_task = None  # late results of stopped jobs are ignored
        self.project, self.table, self.trend = project, None, None
        self.drilled_where: tuple[tuple[str, str], ...] = ()
        self.rows_button.setEnabled(False)
        if project is None:
            self.show_empty("No project open.\n\nOpen a project (Ctrl+O) to see its slices.")
            return
        versions = logged_versions(project)
        dims = slice_dimensions(project)
        if not versions and logged_span(project)[0] is not None:
            self.show_empty("The log holds input records only (no model version or score): there is nothing to "
                            "judge yet.\n\nDrift and Alerts work on these inputs. To see a model's slices, import "
                            "its predictions (File > Import predictions…, Ctrl+I), then the labels (Ctrl+L).")
            return
        if not versions or not dims:
            self.show_empty("No prediction log with slice columns yet.\n\n"
                             "File > Import predictions… (Ctrl+I), then File > Import labels… (Ctrl+L).")
            return
        for box in (self.model_box, self.rows_box, self.cols_box):
            box.blockSignals(True)
            box.clear()
        for version, rows in versions:
            self.model_box.addItem(version, version)
            self.model_box.setItemData(self.model_box.count() - 1, f"{rows:,} predictions logged",
                                       Qt.ItemDataRole.ToolTipRole)
        self.rows_box.addItems(dims)
        self.rows_box.setCurrentText("line" if "line" in dims else dims[0])
        for name in WINDOW_CHOICES:
            self.cols_box.addItem(name, f"window:{name}")
        for dim in dims:
            self.cols_box.addItem(dim, f"dim:{dim}")
        self.cols_box.addItem(NONE, "none:")
        for box in (self.model_box, self.rows_box, self.cols_box):
            box.blockSignals(False)
        self._fill_metrics()
        first, last = logged_span(project)
        for edit in (self.start_edit, self.end_edit):
            edit.blockSignals(True)
            edit.setDateRange(QDate(first.year, first.month, first.day), QDate(last.year, last.month, last.day)
                              .addDays(1))
        self.start_edit.setDate(QDate(first.year, first.month, first.day))
        self.end_edit.setDate(QDate(last.year, last.month, last.day).addDays(1))
        for edit in (self.start_edit, self.end_edit):
            edit.blockSignals(False)
        if self.following():
            self._put_range(self.time_range)
        self.own_dates_enabled(not self.following())
        self.show_content()
        if self.isVisible():
            self.recompute()  # otherwise when the screen is first shown: no work for screens nobody looks at

    def showEvent(self, event) -> None:  # Qt API name
        super().showEvent(event)
        if self.project is not None and self.table is None and (self._task is None or not self._task.running):
            self.recompute()

    def _fill_metrics(self) -> None:
        current = self.metric_box.currentData()
        self.metric_box.blockSignals(True)
        self.metric_box.clear()
        for metric in task_metrics(self.project, self.model_box.currentData()):
            self.metric_box.addItem(METRIC_LABELS.get(metric, metric), metric)
        index = self.metric_box.findData(current if current else "recall")
        self.metric_box.setCurrentIndex(max(index, 0))
        self.metric_box.blockSignals(False)

    # ----- queries
    def query(self) -> SliceQuery:
        """The query the controls describe."""
        rows = self.rows_box.currentText()
        kind, _, value = (self.cols_box.currentData() or "none:").partition(":")
        by = (rows,) if kind != "dim" or value == rows else (rows, value)
        start = end = None
        if self.use_dates.isChecked():
            start = datetime.combine(self.start_edit.date().toPython(), datetime.min.time())
            end = datetime.combine(self.end_edit.date().toPython(), datetime.min.time())
        return SliceQuery(self.model_box.currentData(), by, value if kind == "window" else None, start, end,
                          min_support=self.support_box.value(),
                          threshold=self.threshold_box.value() or None)

    def recompute(self) -> Task | None:
        """Compute the slice table for the current controls in the worker."""
        if self.project is None or self.model_box.currentData() is None:
            return None
        self.cancel()
        project, query = self.project, self.query()
        task = self.run_job("Computing slices", lambda progress: with_overrides(
            project, compute_slices(project, query, progress)))
        self._task = task
        self.busy.show()
        self.cancel_button.show()
        task.progress.connect(lambda f, m: self.busy.setValue(int(f * 1000)))
        task.done.connect(lambda result: self._show_table(result) if task is self._task else None)
        task.error.connect(lambda exc: show_error(self, exc, "Slices"))
        task.ended.connect(lambda: self._task_ended(task))
        return task

    def cancel(self) -> None:
        """Stop a running computation (its result is discarded)."""
        for task in (self._task, self._trend_task):
            if task is not None and task.running:
                task.cancel()

    def _task_ended(self, task: Task) -> None:
        if task is self._task:
            self.busy.hide()
            self.cancel_button.hide()

    def _controls_changed(self) -> None:
        if self.sender() is self.model_box:
            self._fill_metrics()
        self.recompute()

    def _metric_changed(self) -> None:
        if self.table is not None:
            self._show_table(self.table)
        if self.trend is not None:
            self.trend_plot.set_trend(self.trend, self.current_metric())

    def _dates_toggled(self, on: bool) -> None:
        self.own_dates_enabled(not self.following())
        self.recompute()

    def own_dates_enabled(self, enabled: bool) -> None:
        """The From box and its days are the screen's own while it does not follow the window's range."""
        self.use_dates.setEnabled(enabled)
        self.start_edit.setEnabled(enabled and self.use_dates.isChecked())
        self.end_edit.setEnabled(enabled and self.use_dates.isChecked())

    def apply_time_range(self, time_range) -> None:
        """The window's range: the whole log, or its days (the 'to' field is the day after, as it counts)."""
        self._put_range(time_range)
        self.own_dates_enabled(False)
        self.table = None
        if self.isVisible():
            self.recompute()  # otherwise when next shown

    def _put_range(self, time_range) -> None:
        for widget in (self.use_dates, self.start_edit, self.end_edit):
            widget.blockSignals(True)
        self.use_dates.setChecked(not time_range.whole_log)
        self.start_edit.setDate(QDate(time_range.start.year, time_range.start.month, time_range.start.day))
        self.end_edit.setDate(QDate(time_range.end.year, time_range.end.month, time_range.end.day).addDays(1))
        for widget in (self.use_dates, self.start_edit, self.end_edit):
            widget.blockSignals(False)

    def current_metric(self) -> str:
        """The chosen metric's key."""
        return self.metric_box.currentData() or "recall"

    # ----- results
    def _show_table(self, table: SliceTable) -> None:
        self.table = table
        metric = self.current_metric()
        if metric not in table.metrics:
            metric = table.metrics[0]
        keys = list(table.query.keys)
        o = table.overall.row(0, named=True)
        value = o.get(metric)
        self.summary.setText(
            f"{table.query.version_id}: overall {METRIC_LABELS.get(metric, metric)} "
            f"{'–' if value is None else f'{value:.3f}'} on {o['labelled']:,} labelled of {o['n']:,} "
            f"({'decisions as logged' if table.logged_decisions else f'threshold {table.threshold:g}'}). {table.slices.height:,} slices; grey = fewer than "
            f"{table.query.min_support} labelled.")
        self._fill_heatmap(table, metric, keys)
        ranked = table.worst(metric)
        columns = [Column("rank", "#"), *[Column(k, k.capitalize()) for k in keys],
                   Column(metric, METRIC_LABELS.get(metric, metric), tooltip=_interval_tip(metric))]
        if f"{metric}_low" in ranked.columns:
            columns += [Column(f"{metric}_low", "low"), Column(f"{metric}_high", "high")]
        columns += [Column("vs_overall", "vs overall", tooltip=lambda r: "Slice minus overall value"),
                    *([Column("override_rate", "Overrides", "percent", tooltip=_override_tip)]
                      if "override_rate" in ranked.columns else []),
                    Column("labelled", "Labelled"), Column("n", "Predictions"),
                    Column("coverage", "Coverage", "percent",
                           tooltip=lambda r: f"{r['labelled']:,} of {r['n']:,} labelled"),
                    Column("label_delay_days", "Label delay (d)", "days",
                           tooltip=lambda r: "Mean days from prediction to label"),
                    Column("recent_coverage", "Recent coverage", "percent",
                           tooltip=lambda r: "Share labelled among the last 14 days' predictions"),
                    Column("status", "Status", free_text=True)]
        self.table_model.set_frame(ranked, columns)
        if self.trend is None and ranked.height and table.query.by:
            # Start where the user would look first: the worst slice.
            self.drill(tuple((k, _cell_text(ranked[k][0])) for k in table.query.by))
        self.computed.emit(table)

    def _fill_heatmap(self, table: SliceTable, metric: str, keys: list[str]) -> None:
        frame = table.slices
        row_key = keys[0]
        col_key = keys[1] if len(keys) > 1 else None
        row_values = frame[row_key].unique().sort().to_list() if frame.height else []
        col_values = (frame[col_key].unique().sort().to_list() if col_key else [None]) if frame.height else []
        rows = [_cell_text(v) for v in row_values]
        cols = [_cell_text(v) for v in col_values] if col_key else [METRIC_LABELS.get(metric, metric)][:len(col_values)]
        values = np.full((len(rows), len(cols)), np.nan)
        status = np.zeros((len(rows), len(cols)), dtype=np.int8)
        tips = [["no predictions" for _ in cols] for _ in rows]
        r_index = {r: i for i, r in enumerate(rows)}
        c_index = {c: i for i, c in enumerate(cols)}
        tip = _interval_tip(metric)
        for rec in frame.iter_rows(named=True):
            i = r_index[_cell_text(rec[row_key])]
            j = c_index[_cell_text(rec[col_key])] if col_key else 0
            head = f"{row_key} {_cell_text(rec[row_key])}" + (f", {col_key} {_cell_text(rec[col_key])}"
                                                              if col_key else "")
            if rec["status"] == "ok" and rec.get(metric) is not None:
                values[i, j] = rec[metric]
                status[i, j] = 2
                tips[i][j] = f"{head}\n{tip(rec)}"
            else:
                status[i, j] = 1
                tips[i][j] = f"{head}\n{rec['status'] if rec['status'] != 'ok' else 'undefined here'}\n" \
                             f"{rec['labelled']:,} labelled of {rec['n']:,} predictions"
        self.heatmap.set_data(values, status, [_axis_text(v) for v in row_values],
                              [_axis_text(v) for v in col_values] if col_key else cols, tips,
                              metric in LOWER_IS_BETTER, scale=self._scale(metric),
                              name=METRIC_LABELS.get(metric, metric))
        self._heat_axes = (row_key, col_key, rows, cols)

    def _scale(self, metric: str) -> Scale | None:
        """Recall has a threshold (the alert rule's minimum): a fixed 0-1 scale with it in the middle. The
        other metrics span the cells shown, as the legend says."""
        if metric != "recall" or self.project is None:
            return None
        floor = AlertRules.from_manifest(self.project.manifest.extra).recall_min
        return Scale(0.0, 1.0, threshold=floor, name="Recall", threshold_text=f"alert < {floor:g}")

    # ----- drill-down
    def _cell_clicked(self, row: int, col: int) -> None:
        row_key, col_key, rows, cols = self._heat_axes
        where = [(row_key, rows[row])]
        if col_key and col_key != PERIOD:
            where.append((col_key, cols[col]))
        self.drill(tuple(where))

    def _row_clicked(self, index) -> None:
        record = self.table_model.row(index.row())
        where = tuple((k, _cell_text(record[k])) for k in self.table.query.by)
        self.drill(where)

    def drill(self, where: tuple[tuple[str, str], ...]) -> Task | None:
        """Show the trend of one slice (dimension, value pairs) in the worker."""
        if self.project is None or self.table is None:
            return None
        project, base = self.project, self.table.query
        window = base.window or "week"
        self.drilled_where = where
        self.rows_button.setEnabled(True)
        def job(progress) -> SliceTrend:
            trend = slice_trend(project, base, where, window, progress)
            dims = tuple((d, v) for d, v in where if d != PERIOD)
            estimated = slice_estimate(project, base.version_id, dims, window)
            return replace(trend, estimate=estimated.rows if estimated is not None else None,
                           overrides=override_trend(project, base.version_id, dims, window))

        task = self.run_job("Slice trend", job)
        self._trend_task = task
        task.done.connect(lambda trend: self._show_trend(trend) if task is self._trend_task else None)
        task.error.connect(lambda exc: show_error(self, exc, "Slice trend"))
        return task

    def record_filter(self) -> RecordFilter | None:
        """The rows behind the slice last clicked: its dimensions, the table's model and dates (one period when the
        table is per period)."""
        if self.table is None or not self.drilled_where:
            return None
        base = self.table.query
        dims = tuple((d, v) for d, v in self.drilled_where if d != PERIOD)
        period = next((v for d, v in self.drilled_where if d == PERIOD), None)
        start, end = period_span(period, base.window) if period and base.window else (base.start, base.end)
        return RecordFilter(dims, start, end, base.version_id)

    def show_rows(self):
        """Open the rows behind the slice last clicked."""
        from app.views.records_dialog import show_records

        return show_records(self.project, self.record_filter(), self)

    def _show_trend(self, trend: SliceTrend) -> None:
        self.trend = trend
        self.trend_plot.set_trend(trend, self.current_metric())
        self.drilled.emit(trend)

    # ----- export
    def export_csv_dialog(self) -> None:
        """Ask for a file and write the ranked table."""
        if self.table is None:
            return
        name = f"slices-{self.table.query.version_id.replace(':', '-')}-{'-'.join(self.table.query.keys)}.csv"
        path = QFileDialog.getSaveFileName(self, "Export slices as CSV", str(Path.home() / name), "CSV (*.csv)")[0]
        if path:
            self.export_csv(path)

    def export_csv(self, path: str | Path) -> Path | None:
        """Write the ranked slice table for the current metric."""
        if self.table is None:
            return None
        try:
            return write_slices_csv(self.table, self.current_metric(), path)
        except OSError as exc:
            show_error(self, exc, "Export CSV")
            return None


def main() -> int:
    """Show this screen alone: python -m app.views.slices_view PROJECT."""
    from app.views.screen import run_alone

    return run_alone(SlicesView)


if __name__ == "__main__":
    raise SystemExit(main())
