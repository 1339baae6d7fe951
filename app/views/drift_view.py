"""Drift screen: a feature x slice matrix coloured by drift score; click a cell for the reference and current
distributions and the score over time with firmware events."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime

import numpy as np
import polars as pl
import pyqtgraph as pg
from PySide6.QtCore import QDate, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.core.analysis.drift import (
    DriftQuery,
    DriftTable,
    compute_drift,
    drift_over_time,
    feature_histogram,
)
from app.core.analysis.events import detect_version_changes, list_events
from app.core.analysis.slices import logged_span, project_has_events, slice_dimensions
from app.core.analysis.time_range import drift_windows
from app.core.analysis.triage import with_triage
from app.core.models.impact import measure_impact
from app.core.store.project import Project
from app.views.chart_export import enable_png_export
from app.views.errors import show_error
from app.views.heatmap_widget import Heatmap, Scale
from app.views.screen import Screen
from app.views.table_model import Column, FrameTableModel
from app.views.table_view import DataTable
from app.views.theme import chart_background
from app.views.workers import Task

MAX_IMPACT_CELLS = 10  # local cells whose impact the screen measures (the strongest ten)
SCORES = {"psi": "PSI", "wasserstein_norm": "Wasserstein / std", "js": "Jensen-Shannon", "ks_d": "KS statistic"}


def drift_scale(score: str, thresholds) -> Scale | None:
    """A fixed colour scale with the drift threshold in the middle (yellow): 0 stable, twice it and above red.
    The KS statistic has no threshold of its own here (its test is judged by p-value): None, the cells' span."""
    threshold, text = {"psi": (thresholds.psi_significant, f"{thresholds.psi_significant:g} significant"),
                       "wasserstein_norm": (thresholds.wasserstein, f"{thresholds.wasserstein:g} drifted"),
                       "js": (thresholds.jensen_shannon, f"{thresholds.jensen_shannon:g} drifted")}.get(score,
                                                                                                     (None, ""))
    if threshold is None:
        return None
    return Scale(0.0, 2 * threshold, lower_is_better=True, threshold=threshold, name=SCORES[score],
                 threshold_text=text)


@dataclass(frozen=True)
class CellDetail:
    """What the drill-down shows for one (feature, slice) cell."""

    feature: str
    where: tuple[tuple[str, str], ...]
    histogram: pl.DataFrame
    over_time: pl.DataFrame
    events: pl.DataFrame


def _exactness(table: DriftTable) -> str:
    """How exact the numeric statistics are, for the summary line."""
    bounds = table.largest_bounds()
    if bounds is None:
        return ""
    return (f" Large windows: numeric statistics from bounded summaries, KS within +-{bounds[0]:.4f} and W/std "
            f"within +-{bounds[1]:.4f}.")


def _with_impact(project: Project, table: DriftTable, progress) -> DriftTable:
    """Each local cell's share of decisions that flip when its input is restored (a few cells: re-scoring each
    costs well under a second)."""
    rows = table.rows
    if not rows.height or "triage" not in rows.columns or len(table.query.by) != 1 or table.query.reference_dataset:
        return table
    dim = table.query.by[0]
    local = rows.filter(pl.col("triage") == "local").head(MAX_IMPACT_CELLS)
    flips = []
    for i, r in enumerate(local.iter_rows(named=True)):
        progress.report(0.9 + 0.1 * i / max(local.height, 1), f"Impact of {r['feature']} on {r[dim]}")
        impact = measure_impact(project, {dim: str(r[dim])}, r["feature"], table.query.reference, table.query.current)
        flips.append({dim: r[dim], "feature": r["feature"], "flip_share": impact.flip_share})
    if not flips:
        return replace(table, rows=rows.with_columns(pl.lit(None, pl.Float64).alias("flip_share")))
    joined = rows.join(pl.DataFrame(flips, schema={dim: rows.schema[dim], "feature": pl.Utf8,
                                                   "flip_share": pl.Float64}), on=[dim, "feature"], how="left")
    return replace(table, rows=joined)


def _qdate(value: date) -> QDate:
    return QDate(value.year, value.month, value.day)


def _dt(edit: QDateEdit) -> datetime:
    return datetime.combine(edit.date().toPython(), datetime.min.time())


class DriftView(Screen):
    """Thin over app.core.analysis.drift; all work runs in the shared worker."""

    FOLLOWS_WHOLE_LOG = False  # the whole log is no window: then its own default dates, editable

    computed = Signal(object)  # DriftTable
    drilled = Signal(object)  # CellDetail

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.table: DriftTable | None = None
        self._task: Task | None = None
        self._detail_task: Task | None = None
        self._cell: tuple[str, tuple[tuple[str, str], ...]] | None = None  # the cell shown in the detail
        self._detail_query: DriftQuery | None = None
        self._build()

    def _build(self) -> None:
        self.ref_from, self.ref_to, self.cur_from, self.cur_to = (
            QDateEdit(calendarPopup=True, displayFormat="yyyy-MM-dd") for _ in range(4))
        self.by_box = QComboBox(toolTip="Matrix columns: one per value of this dimension")
        self.score_box = QComboBox(toolTip="Drift score that colours the matrix")
        for key, label in SCORES.items():
            self.score_box.addItem(label, key)
        self.busy = QProgressBar(maximum=1000, maximumWidth=140, textVisible=False)
        self.busy.hide()
        self.cancel_button = QPushButton("Cancel", toolTip="Stop the drift computation and the cell detail (Esc)")
        self.cancel_button.hide()
        controls = QHBoxLayout()
        for label, widgets in (("Reference", (self.ref_from, QLabel("to"), self.ref_to)),
                               ("Current", (self.cur_from, QLabel("to"), self.cur_to,
                                            self.add_follow_box("the current window"))),
                               ("Per", (self.by_box,)), ("Score", (self.score_box,))):
            controls.addWidget(QLabel(label))
            for w in widgets:
                controls.addWidget(w)
        controls.addStretch(1)

        self.summary = QLabel(wordWrap=True)
        self.heatmap = Heatmap()
        self.heatmap.setToolTip("Green: stable; red: drifted; grey: too few rows. Click a cell for details.")
        self.hist = pg.PlotWidget(background=chart_background())
        enable_png_export(self.hist, "drift-histogram")
        self.hist.addLegend(offset=(-10, 10))
        self.hist.getAxis("left").enableAutoSIPrefix(False)
        self.ref_bars = pg.BarGraphItem(x=[], height=[], width=1, brush=pg.mkBrush(31, 78, 121, 110), name="reference")
        self.cur_bars = pg.BarGraphItem(x=[], height=[], width=1, brush=pg.mkBrush(192, 0, 0, 110), name="current")
        self.hist.addItem(self.ref_bars)
        self.hist.addItem(self.cur_bars)
        self.trend = pg.PlotWidget(background=chart_background(), axisItems={"bottom": pg.DateAxisItem()})
        enable_png_export(self.trend, "drift-over-time")
        self.trend.getAxis("left").enableAutoSIPrefix(False)
        self.trend_curve = pg.PlotDataItem(pen=pg.mkPen("#1f4e79", width=2), symbol="o", symbolSize=5,
                                           connect="finite")
        self.trend.addItem(self.trend_curve)
        self.threshold_line = pg.InfiniteLine(angle=0, pen=pg.mkPen("#888", style=Qt.PenStyle.DashLine))
        self.trend.addItem(self.threshold_line)
        self.event_lines: list[pg.InfiniteLine] = []
        self.detail_title = QLabel("Click a cell to compare its distributions and follow its drift over time.",
                                   wordWrap=True)
        self.table_model = FrameTableModel([])
        self.table_view = DataTable(self.table_model)

        left = QGroupBox("Features x slices")
        ll = QVBoxLayout(left)
        status_row = QHBoxLayout()  # progress beside the summary it replaces: the controls row fits 1366 px
        status_row.addWidget(self.summary, 1)
        status_row.addWidget(self.busy)
        status_row.addWidget(self.cancel_button)
        ll.addLayout(status_row)
        ll.addWidget(self.heatmap, 1)
        right = QGroupBox("Cell")
        rl = QVBoxLayout(right)
        self.rows_button = QPushButton("Show rows…", enabled=False, toolTip="The log's rows of this cell's slice in "
                                                                            "the current window, newest first")
        title_row = QHBoxLayout()
        title_row.addWidget(self.detail_title, 1)
        title_row.addWidget(self.rows_button, 0, Qt.AlignmentFlag.AlignTop)
        rl.addLayout(title_row)
        rl.addWidget(self.hist, 1)
        rl.addWidget(self.trend, 1)
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(left)
        top.addWidget(right)
        top.setSizes([640, 520])
        bottom = QGroupBox("Drifted cells, strongest first")
        QVBoxLayout(bottom).addWidget(self.table_view)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(top)
        body.addWidget(bottom)
        body.setSizes([460, 200])
        self.install(controls, body, empty_message="No project open.\n\nOpen a project (Ctrl+O) to see its input drift.")
        self.hist.hide()
        self.trend.hide()
        for edit in (self.ref_from, self.ref_to, self.cur_from, self.cur_to):
            edit.dateChanged.connect(lambda _: self.recompute())
        self.by_box.currentIndexChanged.connect(lambda _: self.recompute())
        self.score_box.currentIndexChanged.connect(lambda _: self.table and self._show(self.table))
        self.heatmap.cellClicked.connect(self._cell_clicked)
        self.table_view.clicked.connect(self._row_clicked)
        self.cancel_button.clicked.connect(self.cancel)
        self.rows_button.clicked.connect(self.show_rows)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=self.cancel, whatsThis="Cancel the drift computation")

    def cancel(self) -> None:
        """Stop the matrix and the cell detail still being computed."""
        for task in list(self.jobs):
            task.cancel()

    def _track(self, task: Task) -> Task:
        """Show Cancel while any of this screen's jobs runs."""
        self.cancel_button.show()
        task.ended.connect(lambda: self.cancel_button.setVisible(any(j is not task for j in self.jobs)))
        return task

    def set_project(self, project: Project | None) -> None:
        """Default windows: the first 12 weeks as reference, the last 6 weeks as current."""
        self.stop_jobs()  # older drill-downs included: none may outlive the project they read
        self._task = None  # late results of stopped jobs are ignored
        self.project, self.table, self._detail_task = project, None, None
        self._cell = self._detail_query = None
        self.rows_button.setEnabled(False)
        if project is None:
            self.show_empty("No project open.\n\nOpen a project (Ctrl+O) to see its input drift.")
            return
        first, last = logged_span(project)
        dims = slice_dimensions(project)
        if first is None or not dims:
            self.show_empty("No prediction log yet.\n\nFile > Import predictions… (Ctrl+I).")
            return
        widgets = (self.ref_from, self.ref_to, self.cur_from, self.cur_to, self.by_box)
        for w in widgets:
            w.blockSignals(True)
        self.span = (first.date(), last.date())
        reference, current = drift_windows(self.time_range if self.following() else None, *self.span)
        for edit, day in zip((self.ref_from, self.ref_to, self.cur_from, self.cur_to), (*reference, *current),
                             strict=True):
            edit.setDate(_qdate(day))
        self.own_dates_enabled(not self.following())
        self.by_box.clear()
        self.by_box.addItems(dims)
        self.by_box.setCurrentText("line" if "line" in dims else dims[0])
        for w in widgets:
            w.blockSignals(False)
        self.show_content()
        if self.isVisible():
            self.recompute()

    def apply_time_range(self, time_range) -> None:
        """The window's range becomes the current window; the reference ends where it starts."""
        if not hasattr(self, "span"):
            return
        edits = (self.ref_from, self.ref_to, self.cur_from, self.cur_to)
        for edit, day in zip(edits, [d for w in drift_windows(time_range, *self.span) for d in w], strict=True):
            edit.blockSignals(True)
            edit.setDate(_qdate(day))
            edit.blockSignals(False)
        self.own_dates_enabled(not self.following())
        self.table = None
        if self.isVisible():
            self.recompute()  # otherwise when next shown

    def own_dates_enabled(self, enabled: bool) -> None:
        """The current window's days are the screen's own while it does not follow the window's range."""
        self.cur_from.setEnabled(enabled)
        self.cur_to.setEnabled(enabled)

    def showEvent(self, event) -> None:  # Qt API name
        super().showEvent(event)
        if self.project is not None and self.table is None and (self._task is None or not self._task.running):
            self.recompute()

    def query(self) -> DriftQuery:
        """The query the controls describe."""
        return DriftQuery((_dt(self.ref_from), _dt(self.ref_to)), (_dt(self.cur_from), _dt(self.cur_to)),
                          by=(self.by_box.currentText(),))

    def recompute(self) -> Task | None:
        """Compute the matrix in the worker."""
        if self.project is None or not self.by_box.currentText():
            return None
        if self._task is not None and self._task.running:
            self._task.cancel()
        project, query = self.project, self.query()
        task = self._track(self.run_job("Computing drift", lambda progress: _with_impact(project, with_triage(
            project, compute_drift(project, query, progress)), progress)))
        self._task = task
        self.busy.show()
        task.progress.connect(lambda f, m: self.busy.setValue(int(f * 1000)))
        task.done.connect(lambda table: self._show(table) if task is self._task else None)
        task.error.connect(lambda exc: show_error(self, exc, "Drift"))
        task.ended.connect(lambda: self.busy.hide() if task is self._task else None)
        return task

    def _show(self, table: DriftTable) -> None:
        self.table = table
        score = self.score_box.currentData()
        rows, dim = table.rows, table.query.by[0]
        features = sorted(rows["feature"].unique().to_list()) if rows.height else []
        slices = sorted(rows[dim].unique().to_list()) if rows.height else []
        values = np.full((len(features), len(slices)), np.nan)
        status = np.zeros_like(values, dtype=np.int8)
        tips = [["no rows" for _ in slices] for _ in features]
        fi, si = {f: i for i, f in enumerate(features)}, {s: j for j, s in enumerate(slices)}
        for r in rows.iter_rows(named=True):
            i, j = fi[r["feature"]], si[r[dim]]
            head = f"{r['feature']} on {dim} {r[dim]}"
            if r["status"].startswith("insufficient") or r[score] is None:
                status[i, j] = 1
                tips[i][j] = f"{head}\n{r['status']}"
                continue
            values[i, j], status[i, j] = r[score], 2
            bound = {"ks_d": r.get("ks_d_bound"), "wasserstein_norm": r.get("wasserstein_norm_bound")}.get(score)
            within = f" +- {bound:.4f} (bounded summary)" if table.bounded and bound else ""
            tips[i][j] = (f"{head}\n{SCORES[score]} {r[score]:.3f}{within}; PSI {r['psi']:.3f}\n"
                          f"{'DRIFTED' if r['drifted'] else 'stable'} by {r['method']}"
                          + (f" - {r['triage']}: {r['cause']}" if r.get("triage") else "") + "\n"
                          f"{r['n_ref']:,} reference, {r['n_cur']:,} current rows; "
                          f"missing {r['missing_cur'] or 0:.1%}")
        levels = (0.0, max(float(np.nanmax(values)) if np.isfinite(values).any() else 1.0, 0.25))
        self.heatmap.set_data(values, status, features, slices, tips, lower_is_better=True, levels=levels,
                              scale=drift_scale(score, table.thresholds), name=SCORES[score])
        self._axes = (features, slices, dim)
        drifted = rows.filter(pl.col("drifted").fill_null(False)) if rows.height else rows
        self.summary.setText(f"{drifted.height} of {rows.height} cells drifted (normalised Wasserstein > "
                             f"{table.thresholds.wasserstein:g} for numbers, Jensen-Shannon > "
                             f"{table.thresholds.jensen_shannon:g} for categories)." + _exactness(table))
        # KS p and the deciding method are in each cell's tooltip: the triage and its cause need the width
        columns = [Column(dim, dim.capitalize()), Column("feature", "Feature"), Column("triage", "Triage"),
                   Column("cause", "Likely cause", free_text=True),
                   Column("flip_share", "Flips", "percent", tooltip=lambda r: (
                       "Share of this slice's current decisions that flip when the feature is put back to its "
                       "reference distribution (50,000 rows re-scored)") if r.get("flip_share") is not None
                       else "Measured for local drift only"),
                   Column("psi", "PSI"), Column("wasserstein_norm", "W/std"),
                   Column("js", "JS"), Column("ks_d", "KS D"), Column("missing_cur", "Missing", "percent"),
                   Column("out_of_range", "Out of range", "percent"), Column("n_cur", "Current rows")]
        # local drift first (each one a line's own problem), the plant-wide cells after it; strongest first within
        ranked = drifted.sort([pl.col("triage") != "local", pl.col("psi")], descending=[False, True],
                              nulls_last=True) if drifted.height and "triage" in drifted.columns else drifted
        self.table_model.set_frame(ranked, columns)
        cell = self._cell if self._cell and self._cell[1][0][0] == dim else None
        if cell is not None and self._detail_query != table.query:
            self.drill(*cell)  # the same cell, for the windows now chosen
        elif cell is None and ranked.height:
            self.drill(ranked["feature"][0], ((dim, str(ranked[dim][0])),))  # start at the strongest drift
        self.computed.emit(table)

    def _row_clicked(self, index) -> None:
        record = self.table_model.row(index.row())
        dim = self.table.query.by[0]
        self.drill(record["feature"], ((dim, str(record[dim])),))

    def show_rows(self):
        """Open the log's rows of the clicked cell's slice in the current window."""
        from app.core.analysis.records import RecordFilter
        from app.views.records_dialog import show_records

        if self._cell is None or self._detail_query is None:
            return None
        q = self._detail_query
        return show_records(self.project, RecordFilter(self._cell[1], q.current[0], q.current[1], q.version_id), self)

    def _cell_clicked(self, row: int, col: int) -> None:
        features, slices, dim = self._axes
        self.drill(features[row], ((dim, str(slices[col])),))

    def drill(self, feature: str, where: tuple[tuple[str, str], ...]) -> Task | None:
        """Distributions and drift over time for one cell, in the worker."""
        if self.project is None or self.table is None:
            return None
        project, q = self.project, self.table.query
        if self._detail_task is not None and self._detail_task.running:
            self._detail_task.cancel()
        self._cell, self._detail_query = (feature, where), q
        self.rows_button.setEnabled(True)

        def job(progress) -> CellDetail:
            hist = feature_histogram(project, feature, where, q.reference, q.current)
            trend = drift_over_time(project, feature, where, q.reference, (q.reference[1], q.current[1]))
            events = detect_version_changes(project).with_columns(
                pl.format("firmware {}", pl.col("new_value")).alias("label"))
            for d, v in where:
                if d in ("line", "asset"):
                    events = events.filter(pl.col("line" if d == "line" else "scope") == v)
            events = events.sort("ts").unique(subset=["new_value"], keep="first", maintain_order=True)
            line = dict(where).get("line")
            if project_has_events(project):
                manual = list_events(project, line).filter(pl.col("source") == "manual")
                if manual.height:
                    events = pl.concat([events.select("ts", "label"),
                                        manual.select("ts", pl.col("description").alias("label"))])
            return CellDetail(feature, where, hist, trend, events.select("ts", "label"))

        task = self._track(self.run_job("Cell detail", job))
        self._detail_task = task
        task.done.connect(lambda d: self._show_detail(d) if task is self._detail_task else None)
        task.error.connect(lambda exc: show_error(self, exc, "Drift detail"))
        return task

    def _show_detail(self, detail: CellDetail) -> None:
        self.hist.show()
        self.trend.show()
        name = ", ".join(f"{d} {v}" for d, v in detail.where)
        self.detail_title.setText(f"<b>{detail.feature}</b> on {name}: reference (blue) vs current (red) "
                                  "shares; below, PSI of each week against the reference, with firmware changes")
        h = detail.histogram
        if h.height:
            centres = ((h["left"] + h["right"]) / 2).to_numpy()
            width = float((h["right"] - h["left"])[0])
            self.ref_bars.setOpts(x=centres, height=h["ref"].to_numpy(), width=width)
            self.cur_bars.setOpts(x=centres, height=h["cur"].to_numpy(), width=width * 0.6)
            self.hist.autoRange()
        t = detail.over_time
        x = t["period"].cast(pl.Datetime("us")).dt.epoch("s").to_numpy().astype(float)
        self.trend_curve.setData(x, t["psi"].fill_null(np.nan).to_numpy())
        self.threshold_line.setValue(self.table.thresholds.psi_significant if self.table else 0.2)
        for line in self.event_lines:
            self.trend.removeItem(line)
        self.event_lines = []
        for i, r in enumerate(detail.events.sort("ts").iter_rows(named=True)):
            line = pg.InfiniteLine(pos=float(np.datetime64(r["ts"], "s").astype("int64")), angle=90,
                                   pen=pg.mkPen("#c00000", style=Qt.PenStyle.DotLine), label=r["label"],
                                   labelOpts={"position": 0.9 - 0.08 * (i % 3), "color": "#c00000"})
            self.trend.addItem(line)
            self.event_lines.append(line)
        self.trend.setLabel("left", "PSI")
        self.trend.autoRange()
        if len(x) and x.max() - x.min() < 7 * 86400:  # one week alone: a readable date axis, not seconds
            self.trend.setXRange(x.min() - 4 * 86400, x.max() + 4 * 86400, padding=0)
        self.drilled.emit(detail)


def main() -> int:
    """Show this screen alone: python -m app.views.drift_view PROJECT."""
    from app.views.screen import run_alone

    return run_alone(DriftView)


if __name__ == "__main__":
    raise SystemExit(main())
