"""Dark theme following the OS (#27 item 11): Qt's palette, the style sheet's own colours and pyqtgraph's chart
colours all come from one switch; status-coloured cells keep dark text; the light theme comes back whole."""

from __future__ import annotations

import polars as pl
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from app.views.table_model import Column, FrameTableModel
from app.views.theme import apply_theme, chart_background, dark_requested

pytestmark = pytest.mark.gui


@pytest.fixture
def themed(qapp: QApplication):
    yield qapp
    apply_theme(qapp, dark=False)
    qapp.setProperty("lineproofTheme", None)
    qapp.setStyleSheet("")


def test_the_dark_theme_darkens_widgets_charts_and_keeps_status_cells_readable(themed: QApplication, qtbot):
    from app.views.bench_charts import LatencyHistogram

    assert apply_theme(themed, dark=True)
    window = themed.palette().color(QPalette.ColorRole.Window)
    text = themed.palette().color(QPalette.ColorRole.Text)
    assert window.lightnessF() < 0.2 and text.lightnessF() > 0.8
    assert "QFrame#card { background: #2b2f36" in themed.styleSheet()
    chart = LatencyHistogram()
    qtbot.addWidget(chart)
    assert chart.backgroundBrush().color().lightnessF() < 0.2 and chart_background() != "w"
    model = FrameTableModel([Column("status", "Status", background=lambda r: "#e2efda" if r["status"] == "PASS"
                                    else None)])
    model.set_frame(pl.DataFrame({"status": ["PASS", "other"]}))
    assert model.data(model.index(0, 0), Qt.ItemDataRole.ForegroundRole).lightnessF() < 0.2  # dark on pale green
    assert model.data(model.index(1, 0), Qt.ItemDataRole.ForegroundRole) is None  # the palette's own text
    assert not apply_theme(themed, dark=False)
    assert themed.palette().color(QPalette.ColorRole.Window).lightnessF() > 0.8 and chart_background() == "#ffffff"


def test_the_os_scheme_decides_unless_lineproof_theme_says_otherwise(themed: QApplication, monkeypatch):
    monkeypatch.setenv("LINEPROOF_THEME", "dark")
    assert dark_requested(themed)
    monkeypatch.setenv("LINEPROOF_THEME", "light")
    assert not dark_requested(themed)
    monkeypatch.delenv("LINEPROOF_THEME")
    assert dark_requested(themed) == (themed.styleHints().colorScheme() == Qt.ColorScheme.Dark)
