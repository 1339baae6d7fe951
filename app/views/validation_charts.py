"""Validation charts: candidate vs champion per slice with intervals, and ONNX Runtime vs OpenVINO scores."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg

from app.views.chart_export import enable_png_export
from app.views.theme import chart_background

CANDIDATE, CHAMPION, FAILED = "#c55a11", "#1f4e79", "#c00000"
LEGEND = (f"<span style='color:{CANDIDATE}'>&#9679; candidate</span> &nbsp; "
          f"<span style='color:{CHAMPION}'>&#9679; champion</span> &nbsp; bars: confidence interval &nbsp; "
          f"<span style='color:{FAILED}'>&#9650; criterion failed on this slice</span>")
MAX_POINTS = 60_000  # the parity scatter shows an even sample beyond this; the numbers use every row


class SliceComparison(pg.PlotWidget):
    """One metric per slice: candidate and champion side by side, each with its confidence interval."""

    def __init__(self) -> None:
        super().__init__(background=chart_background())
        enable_png_export(self, "slice-comparison")
        self.setToolTip("Candidate (orange) and champion (blue) per slice with their confidence intervals; "
                        "slices where a criterion failed are marked red below the axis")
        self.showGrid(y=True, alpha=0.25)
        self.getAxis("left").enableAutoSIPrefix(False)
        self.items: list[Any] = []

    def show_metric(self, rows: list[dict[str, Any]], keys: list[str], metric: str, label: str,
                    failed: set[str], bound: float | None = None) -> None:
        """Draw `metric` for each row (a slice); `failed` holds the labels of failing slices."""
        for item in self.items:
            self.removeItem(item)
        self.items = []
        names = [", ".join(str(r[k]) for k in keys) for r in rows]
        x = np.arange(len(rows), dtype=float)
        for offset, role, colour in ((-0.15, "cand", CANDIDATE), (0.15, "champ", CHAMPION)):
            values = np.array([np.nan if r.get(f"{role}_{metric}") is None else r[f"{role}_{metric}"] for r in rows])
            if np.isnan(values).all():
                continue
            low = np.array([np.nan if r.get(f"{role}_{metric}_low") is None else r[f"{role}_{metric}_low"]
                            for r in rows])
            high = np.array([np.nan if r.get(f"{role}_{metric}_high") is None else r[f"{role}_{metric}_high"]
                             for r in rows])
            has = ~np.isnan(low) & ~np.isnan(values)
            if has.any():
                bars = pg.ErrorBarItem(x=x[has] + offset, y=values[has], top=(high - values)[has],
                                       bottom=(values - low)[has], beam=0.12, pen=pg.mkPen(colour, width=1.5))
                self.addItem(bars)
                self.items.append(bars)
            dots = pg.ScatterPlotItem(x=x + offset, y=values, size=9, brush=pg.mkBrush(colour), pen=None)
            self.addItem(dots)
            self.items.append(dots)
        bad = [i for i, n in enumerate(names) if n in failed]
        if bad:
            lows = [r.get(f"cand_{metric}_low") or r.get(f"cand_{metric}") or 0 for r in rows]
            floor = min(v for v in lows if v is not None) if lows else 0
            marks = pg.ScatterPlotItem(x=np.array(bad, dtype=float), y=np.full(len(bad), floor - 0.01), symbol="t1",
                                       size=12, brush=pg.mkBrush(FAILED), pen=None)
            self.addItem(marks)
            self.items.append(marks)
        if bound is not None:
            line = pg.InfiniteLine(pos=bound, angle=0, pen=pg.mkPen(FAILED, style=pg.QtCore.Qt.PenStyle.DashLine),
                                   label=f"required {bound:g}", labelOpts={"position": 0.05, "color": FAILED})
            self.addItem(line)
            self.items.append(line)
        self.setLabel("left", label)
        self.getAxis("bottom").setTicks([[(i, n) for i, n in enumerate(names)]])
        self.enableAutoRange()


class ParityPlot(pg.PlotWidget):
    """ONNX Runtime score against OpenVINO score for every row of the held-out set, and the diagonal."""

    def __init__(self) -> None:
        super().__init__(background=chart_background())
        enable_png_export(self, "runtime-parity")
        self.setLabel("bottom", "score in ONNX Runtime")
        self.setLabel("left", "score in OpenVINO")
        self.setToolTip("Each dot is one held-out row; on the diagonal both runtimes agree. Decisions differ "
                        "only for dots that cross the decision threshold (dashed)")
        for axis in ("left", "bottom"):
            self.getAxis(axis).enableAutoSIPrefix(False)
        self.items: list[Any] = []

    def show_scores(self, ort: np.ndarray, ov: np.ndarray, threshold: float) -> None:
        """Draw the scatter (an even sample of at most MAX_POINTS rows) with the diagonal and the threshold."""
        self.clear_plot()
        step = max(1, len(ort) // MAX_POINTS)
        dots = pg.ScatterPlotItem(x=ort[::step], y=ov[::step], size=3, pen=None, brush=pg.mkBrush(31, 78, 121, 90))
        diagonal = pg.PlotCurveItem([0, 1], [0, 1], pen=pg.mkPen("#888", width=1))
        dashed = pg.mkPen(FAILED, style=pg.QtCore.Qt.PenStyle.DashLine)
        self.items = [dots, diagonal, pg.InfiniteLine(pos=threshold, angle=90, pen=dashed),
                      pg.InfiniteLine(pos=threshold, angle=0, pen=dashed)]
        for item in self.items:
            self.addItem(item)
        self.setXRange(0, 1, padding=0.02)
        self.setYRange(0, 1, padding=0.02)

    def clear_plot(self) -> None:
        """Remove the scatter."""
        for item in self.items:
            self.removeItem(item)
        self.items = []
