"""Every chart saves as PNG (#27 item 6): each pyqtgraph plot in every screen offers "Save chart as PNG…" in place
of pyqtgraph's Export dialog (its SVG exporter crashes), and the file is a real PNG of the chart."""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
import pytest
from PySide6.QtCore import QSettings
from PySide6.QtGui import QImage

from app.views.bench_charts import LatencyHistogram
from app.views.chart_export import EXPORT_WIDTH, save_chart_png
from app.views.main_window import MainWindow
from app.views.screen_stack import NAMES

pytestmark = pytest.mark.gui


def test_every_chart_in_every_screen_saves_as_png_and_only_that(qtbot, tmp_path: Path):
    window = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    for name in NAMES:
        window.screens.screen(name)
    plots = [w for screen in window.screens.built() for w in screen.findChildren(pg.PlotWidget)]
    assert len(plots) >= 8  # overview, drift (3), benchmarks (2), validation (2)
    for plot in plots:
        assert [a.text() for a in plot.scene().contextMenu] == ["Save chart as PNG…"], type(plot).__name__


def test_a_saved_chart_is_a_png_of_the_requested_width(qtbot, tmp_path: Path):
    chart = LatencyHistogram()
    qtbot.addWidget(chart)
    chart.resize(600, 300)
    chart.show_runs([("run 1", [1.0, 1.2, 1.1, 3.5, 1.05] * 40, 3.4)])
    path = save_chart_png(chart, tmp_path / "latency")
    assert path.name == "latency.png"
    image = QImage(str(path))
    assert not image.isNull() and image.width() == EXPORT_WIDTH and image.height() > 400
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
