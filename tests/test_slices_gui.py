"""Slices screen on the sample: heatmap, drill-down into a slice, CSV export (pytest-qt, offscreen)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PySide6.QtCore import QSettings, Qt

from app.core.store.project import Project
from app.sample.plant import FIRMWARE_LINE
from app.views.main_window import MainWindow
from app.views.slices_view import SlicesView

pytestmark = pytest.mark.gui


@pytest.fixture
def view(qtbot, sample_folder: Path):
    project = Project.open(sample_folder, read_only=True)
    widget = SlicesView()
    qtbot.addWidget(widget)
    widget.resize(1366, 720)
    widget.show()
    yield widget, project
    widget.set_project(None)
    project.close()


def test_heatmap_drill_down_and_csv_export(qtbot, view, tmp_path: Path):
    widget, project = view
    with qtbot.waitSignal(widget.computed, timeout=60_000) as computed:
        widget.set_project(project)
    table = computed.args[0]
    assert table.query.by == ("line",) and table.query.window == "week"
    heat = widget.heatmap.values
    assert heat.shape == (12, table.slices["period"].n_unique())
    # the firmware line's row is the worst colour after the rollout
    row = widget._heat_axes[2].index(FIRMWARE_LINE)
    late = heat[:, -6:-2]
    assert np.nanargmin(np.nanmean(late, axis=1)) == row
    assert "labelled" in widget.heatmap.tooltips[row][-3]
    # click a cell: the trend of that line arrives with its firmware event
    with qtbot.waitSignal(widget.drilled, timeout=60_000) as drilled:
        widget._cell_clicked(row, heat.shape[1] - 4)
    trend = drilled.args[0]
    assert trend.where == (("line", FIRMWARE_LINE),)
    assert trend.events["value"].to_list() == ["5.0.0"]
    assert len(widget.trend_plot.events) == 1 and widget.trend_plot.plot.isVisible()
    # the estimate is drawn beside the measured recall, and the gap after the firmware update is named
    est_x, est_y = widget.trend_plot.estimated.getData()
    assert len(est_x) == trend.estimate.height and np.allclose(est_y, trend.estimate["recall"].to_numpy(), equal_nan=True)
    # operator overrides on their own axis, one point per week; the table has an Overrides column
    ovr_x, ovr_y = widget.trend_plot.override_curve.getData()
    assert widget.trend_plot.override_curve.isVisible() and len(ovr_x) == trend.overrides.height
    assert np.allclose(ovr_y, trend.overrides["override_rate"].to_numpy())
    headers = [widget.table_model.headerData(i, Qt.Orientation.Horizontal) for i in
               range(widget.table_model.columnCount())]
    assert "Overrides" in headers
    tip = widget.table_model.data(widget.table_model.index(0, headers.index("Overrides")), Qt.ItemDataRole.ToolTipRole)
    assert tip.startswith("Operators overrode") and "right in" in tip
    # export what the table shows, worst first
    out = widget.export_csv(tmp_path / "slices.csv")
    exported = pl.read_csv(out)
    assert exported.height == widget.table_model.rowCount() == table.slices.height
    assert exported["rank"].to_list()[:3] == [1, 2, 3]
    assert exported["line"][0] == FIRMWARE_LINE


def test_changing_controls_recomputes_in_the_worker(qtbot, view):
    widget, project = view
    with qtbot.waitSignal(widget.computed, timeout=60_000):
        widget.set_project(project)
    with qtbot.waitSignal(widget.computed, timeout=60_000) as computed:
        widget.cols_box.setCurrentIndex(widget.cols_box.findData("dim:shift"))
    assert computed.args[0].query.by == ("line", "shift") and computed.args[0].query.window is None
    assert widget.heatmap.values.shape == (12, 3)
    widget.metric_box.setCurrentIndex(widget.metric_box.findData("fpr"))
    assert "fpr" in [c.key for c in widget.table_model.columns]
    assert widget.table_model.frame["fpr_low"].is_not_null().any()


def test_slices_screen_in_the_main_window(qtbot, tmp_path: Path, sample_copy: Path):
    window = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.show()
    window.open_project(sample_copy)
    assert window.slices.table is None  # nothing computed for a screen nobody looks at
    with qtbot.waitSignal(window.slices.computed, timeout=60_000):
        window.nav.setCurrentRow(1)
    assert window.screens.currentWidget() is window.slices
    window.close_project()
    assert window.slices.stack.currentIndex() == 0  # empty state once the project is closed
