"""Drift screen on the sample: the matrix, a drill-down into the firmware sensor (pytest-qt, offscreen)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from app.core.store.project import Project
from app.sample.plant import FIRMWARE_LINE
from app.views.drift_view import DriftView

pytestmark = pytest.mark.gui


def test_drift_matrix_and_cell_detail(qtbot, sample_folder: Path):
    project = Project.open(sample_folder, read_only=True)
    view = DriftView()
    qtbot.addWidget(view)
    view.resize(1366, 720)
    view.show()
    try:
        with qtbot.waitSignal(view.computed, timeout=120_000) as computed, \
                qtbot.waitSignal(view.drilled, timeout=120_000) as drilled:
            view.set_project(project)
        table = computed.args[0]
        features, slices, dim = view._axes
        assert dim == "line" and len(slices) == 12 and "contact_tip_temp_c" in features
        row, col = features.index("contact_tip_temp_c"), slices.index(FIRMWARE_LINE)
        matrix = view.heatmap.values[row]
        assert np.nanargmax(matrix) == col  # the sensor's strongest drift is on the firmware line
        assert "DRIFTED" in view.heatmap.tooltips[row][col]
        detail = drilled.args[0]  # the screen opens on the strongest drifted cell
        assert detail.feature == "contact_tip_temp_c" and detail.where == (("line", FIRMWARE_LINE),)
        assert detail.histogram["ref"].sum() == pytest.approx(1.0) and detail.histogram["cur"].sum() == pytest.approx(1.0)
        assert detail.over_time["psi"].drop_nulls().max() > table.thresholds.psi_significant
        assert len(view.event_lines) == 1 and view.table_model.rowCount() >= 1
        # the table leads with the local drift, its likely cause and the decisions it flips
        first = view.table_model.row(0)
        assert (first["line"], first["feature"], first["triage"]) == (FIRMWARE_LINE, "contact_tip_temp_c", "local")
        assert "firmware 4.2.1 -> 5.0.0" in first["cause"] and "same shape" in first["cause"]
        assert first["flip_share"] > 0.02
        assert table.rows.filter(pl.col("triage") == "plant-wide")["flip_share"].null_count() == \
            table.rows.filter(pl.col("triage") == "plant-wide").height
        # The cell's rows: its slice in the current window, as a direct count finds them.
        rows = view.show_rows()
        qtbot.addWidget(rows)
        qtbot.waitUntil(lambda: rows.total > 0, timeout=30_000)
        q = view._detail_query
        with project.reading() as con:
            assert rows.total == con.execute("SELECT count(*) FROM predictions WHERE line = ? AND ts >= ? AND ts < ?",
                                             [FIRMWARE_LINE, *q.current]).fetchall()[0][0]
        with qtbot.waitSignal(view.drilled, timeout=60_000) as other:
            view._cell_clicked(features.index("current_a"), 0)
        assert other.args[0].feature == "current_a"
        # New windows: the same cell's detail follows them (it used to keep the old windows' histogram).
        first = detail.over_time.height
        with qtbot.waitSignal(view.drilled, timeout=120_000) as followed:
            view.cur_from.setDate(view.cur_from.date().addDays(-28))
        assert followed.args[0].feature == "current_a" and view._detail_query == view.query()
        assert followed.args[0].over_time.height >= first - 1
        # Cancel stops what is running and leaves the screen usable.
        view.recompute()
        assert view.cancel_button.isVisible()
        view.cancel()
        qtbot.waitUntil(lambda: not view.jobs, timeout=30_000)
        assert not view.cancel_button.isVisible()
    finally:
        view.set_project(None)
        project.close()
