"""A slice's metric over time with its interval band, the overall trend, and firmware events."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from app.core.analysis.slices import METRIC_LABELS, SliceTrend
from app.views.chart_export import enable_png_export
from app.views.theme import chart_background


def _epoch(frame, column: str = "period") -> np.ndarray:
    return np.array([np.datetime64(d, "s").astype("int64") for d in frame[column].to_list()], dtype=float)


class TrendPlot(QWidget):
    """Created once; set_trend() updates the curves with setData."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("Click a cell or a row to see that slice over time.")
        self.title.setWordWrap(True)
        self.plot = pg.PlotWidget(background=chart_background(), axisItems={"bottom": pg.DateAxisItem()})
        enable_png_export(self.plot, "trend")
        self.plot.showGrid(x=False, y=True, alpha=0.3)
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        # bottom left: the curves sit high on the left, events top right; a light backing keeps it readable over them
        self.plot.addLegend(offset=(10, -10), brush=pg.mkBrush(255, 255, 255, 210))
        self.low = pg.PlotCurveItem(pen=pg.mkPen(46, 117, 182, 90))
        self.high = pg.PlotCurveItem(pen=pg.mkPen(46, 117, 182, 90))
        self.band = pg.FillBetweenItem(self.low, self.high, brush=pg.mkBrush(46, 117, 182, 60))
        self.overall = pg.PlotDataItem(pen=pg.mkPen("#888", width=2, style=Qt.PenStyle.DashLine), name="overall")
        self.curve = pg.PlotDataItem(pen=pg.mkPen("#1f4e79", width=2), symbol="o", symbolSize=5,
                                     symbolBrush="#1f4e79", name="this slice (measured)", connect="finite")
        # Estimated (before the labels arrive): orange, dashed, hollow markers, its own lighter band.
        self.est_low = pg.PlotCurveItem(pen=pg.mkPen(214, 120, 30, 70))
        self.est_high = pg.PlotCurveItem(pen=pg.mkPen(214, 120, 30, 70))
        self.est_band = pg.FillBetweenItem(self.est_low, self.est_high, brush=pg.mkBrush(214, 120, 30, 40))
        self.estimated = pg.PlotDataItem(pen=pg.mkPen("#d6781e", width=2, style=Qt.PenStyle.DashLine), symbol="t",
                                         symbolSize=6, symbolBrush=None, symbolPen="#d6781e",
                                         name="estimated from confidence", connect="finite")
        for item in (self.est_low, self.est_high, self.est_band, self.low, self.high, self.band, self.overall,
                     self.estimated, self.curve):
            self.plot.addItem(item)
        # Operator overrides on their own axis (right): a rate of a few percent beside a metric near 0.7.
        self.override_box = pg.ViewBox()
        self.plot.scene().addItem(self.override_box)
        self.plot.getAxis("right").linkToView(self.override_box)
        self.plot.getAxis("right").enableAutoSIPrefix(False)
        self.override_box.setXLink(self.plot.getPlotItem().vb)
        self.override_curve = pg.PlotDataItem(pen=pg.mkPen("#7a3e9d", width=1.5, style=Qt.PenStyle.DotLine),
                                              symbol="s", symbolSize=4, symbolBrush="#7a3e9d", connect="finite")
        self.override_box.addItem(self.override_curve)
        self.plot.getPlotItem().vb.sigResized.connect(
            lambda: self.override_box.setGeometry(self.plot.getPlotItem().vb.sceneBoundingRect()))
        self.plot.getPlotItem().legend.addItem(self.override_curve, "operator overrides (right axis)")
        self.events: list[pg.InfiniteLine] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.plot, 1)
        self.plot.hide()  # until there is a slice to show

    def set_trend(self, trend: SliceTrend, metric: str) -> None:
        """Show a computed trend for `metric`."""
        self.plot.show()
        label = METRIC_LABELS.get(metric, metric)
        name = ", ".join(f"{d} {v}" for d, v in trend.where) or "all"
        self.title.setText(f"<b>{name}</b>: {label} per {trend.slice.query.window} with "
                           f"{trend.slice.query.confidence:.0%} interval; grey dashed: all slices"
                           + ("; orange dashed: estimated from the model's confidence (band +-3 sampling errors), "
                              "also where no labels have arrived" if trend.estimate is not None and
                              metric in trend.estimate.columns else ""))
        mine, overall = trend.slice.slices, trend.overall.slices
        if mine.height:
            x = _epoch(mine)
            y = mine[metric].cast(float).fill_null(np.nan).to_numpy()
            low_col, high_col = f"{metric}_low", f"{metric}_high"
            low = mine[low_col].cast(float).fill_null(np.nan).to_numpy() if low_col in mine.columns else y
            high = mine[high_col].cast(float).fill_null(np.nan).to_numpy() if high_col in mine.columns else y
            self.curve.setData(x, y)
            ok = np.isfinite(low) & np.isfinite(high)
            self.low.setData(x[ok], low[ok])
            self.high.setData(x[ok], high[ok])
        else:
            for item in (self.curve, self.low, self.high):
                item.setData([], [])
        if overall.height:
            self.overall.setData(_epoch(overall), overall[metric].cast(float).fill_null(np.nan).to_numpy())
        estimate = trend.estimate
        shown = estimate is not None and estimate.height and metric in estimate.columns
        if shown:
            x = _epoch(estimate)
            y, low, high = (estimate[c].cast(float).fill_null(np.nan).to_numpy()
                            for c in (metric, f"{metric}_lower", f"{metric}_upper"))
            self.estimated.setData(x, y)
            ok = np.isfinite(low) & np.isfinite(high)
            self.est_low.setData(x[ok], low[ok])
            self.est_high.setData(x[ok], high[ok])
            flagged = estimate.filter(estimate["gap_flagged"])
            if flagged.height:
                self.title.setText(self.title.text() + f"; <span style='color:#c00000'>the measured value left the "
                                   f"estimate's band in {flagged.height} window(s) from {flagged['period'][0]}: the "
                                   "model's confidence no longer matches the labels</span>")
        else:
            for item in (self.estimated, self.est_low, self.est_high):
                item.setData([], [])
        self._set_overrides(trend.overrides)
        for line in self.events:
            self.plot.removeItem(line)
        self.events = []
        for i, event in enumerate(trend.events.iter_rows(named=True)):
            line = pg.InfiniteLine(pos=float(np.datetime64(event["first_seen"], "s").astype("int64")), angle=90,
                                   pen=pg.mkPen("#c00000", width=1.5, style=Qt.PenStyle.DotLine),
                                   label=event.get("label") or str(event["value"]),
                                   labelOpts={"position": 0.92 - 0.08 * (i % 3), "color": "#c00000"})
            self.plot.addItem(line)
            self.events.append(line)
        self.plot.setLabel("left", label)
        frames = [f for f in (mine, overall, estimate if shown else None) if f is not None and f.height]
        xs = [_epoch(f) for f in frames]
        if xs:
            x = np.concatenate(xs)
            pad = max((x.max() - x.min()) * 0.03, 86400.0)
            self.plot.setXRange(x.min() - pad, x.max() + pad, padding=0)
        ys = [f[c].cast(float).drop_nulls().to_numpy() for f in frames for c in
              (metric, f"{metric}_low", f"{metric}_high", f"{metric}_lower", f"{metric}_upper") if c in f.columns]
        ys = np.concatenate(ys) if ys else np.zeros(0)
        ys = ys[np.isfinite(ys)]
        if ys.size:
            span = max(ys.max() - ys.min(), 0.02)
            self.plot.setYRange(ys.min() - 0.08 * span, ys.max() + 0.12 * span, padding=0)

    def _set_overrides(self, overrides) -> None:
        """The slice's override rate per window on the right axis, or nothing where none were logged."""
        shown = overrides is not None and overrides.height > 0
        self.plot.showAxis("right", shown)
        self.override_curve.setVisible(shown)
        if not shown:
            self.override_curve.setData([], [])
            return
        rate = overrides["override_rate"].cast(float).fill_null(np.nan).to_numpy()
        self.override_curve.setData(_epoch(overrides), rate)
        self.plot.getAxis("right").setLabel("override rate")
        top = float(np.nanmax(rate)) if np.isfinite(rate).any() else 0.1
        self.override_box.setYRange(0.0, max(top * 1.25, 0.02), padding=0)
