"""Benchmark charts: latency histogram with a budget line, and throughput bars across runs."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt

from app.core.models.bench.store import latency_histogram
from app.views.chart_export import enable_png_export
from app.views.theme import chart_background

COLOURS = ["#1f4e79", "#c55a11", "#548235", "#7030a0", "#bf9000", "#2e75b6"]


class LatencyHistogram(pg.PlotWidget):
    """Latency distribution of one or more runs (outlines), the p99 of each, and the latency budget."""

    def __init__(self) -> None:
        super().__init__(background=chart_background())
        enable_png_export(self, "latency-histogram")
        self.setLabel("bottom", "latency (ms)")
        self.setLabel("left", "inferences")
        self.setToolTip("Latency per inference up to the 99.9th percentile; dashed: p99 of each run; red: budget")
        self.addLegend(offset=(-10, 10))
        self.budget_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#c00000", width=2),
                                           label="budget {value:.3g} ms", labelOpts={"position": 0.9})
        self.budget_line.hide()
        self.addItem(self.budget_line)
        self.curves: list[pg.PlotDataItem] = []

    def show_runs(self, runs: list[tuple[str, list[float], float | None]]) -> None:
        """Draw (label, latencies, p99) per run."""
        for item in self.curves:
            self.removeItem(item)
        self.curves = []
        for i, (label, latencies, p99) in enumerate(runs):
            edges, counts, _beyond = latency_histogram(latencies)
            if not counts:
                continue
            colour = COLOURS[i % len(COLOURS)]
            curve = pg.PlotDataItem(edges, counts, stepMode="center", fillLevel=0,
                                    brush=pg.mkBrush(colour + "40"), pen=pg.mkPen(colour, width=1.5), name=label)
            self.addItem(curve)
            self.curves.append(curve)
            if p99 is not None:
                line = pg.InfiniteLine(pos=p99, angle=90, pen=pg.mkPen(colour, style=Qt.PenStyle.DashLine))
                self.addItem(line)
                self.curves.append(line)

    def set_budget(self, budget_ms: float) -> None:
        """Show the latency budget line (0 hides it)."""
        self.budget_line.setVisible(budget_ms > 0)
        if budget_ms > 0:
            self.budget_line.setValue(budget_ms)


class ThroughputBars(pg.PlotWidget):
    """Throughput of the selected runs side by side."""

    def __init__(self) -> None:
        super().__init__(background=chart_background())
        enable_png_export(self, "throughput")
        self.setLabel("left", "inferences x batch / s")
        self.setToolTip("Throughput of each selected run (higher is better)")
        self.bars: pg.BarGraphItem | None = None

    def show_runs(self, runs: list[tuple[str, float]]) -> None:
        """Draw (label, throughput) bars."""
        if self.bars is not None:
            self.removeItem(self.bars)
            self.bars = None
        if not runs:
            return
        xs = list(range(len(runs)))
        self.bars = pg.BarGraphItem(x=xs, height=[t for _, t in runs], width=0.6,
                                    brushes=[pg.mkBrush(COLOURS[i % len(COLOURS)]) for i in xs])
        self.addItem(self.bars)
        self.getAxis("bottom").setTicks([[(i, label) for i, (label, _) in enumerate(runs)]])
