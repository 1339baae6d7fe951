"""Every table exports what it shows: right click > Export CSV writes the shown columns with full values."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import polars as pl  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from app.views.table_model import Column, FrameTableModel  # noqa: E402
from app.views.table_view import DataTable  # noqa: E402


def test_export_csv_writes_the_shown_columns_with_full_values(qtbot, tmp_path: Path):
    model = FrameTableModel([Column("line", "Line"), Column("recall", "Recall"), Column("delta1", "Δ"),
                             Column("delta2", "Δ"), Column("sites", "Sites")])
    frame = pl.DataFrame({"line": ["P1-L01", "P2-L02"], "recall": [0.123456789012, None], "hidden": [1, 2],
                          "delta1": [0.5, -0.25], "delta2": [1.0, 2.0], "sites": [["P1", "P2"], []]})
    model.set_frame(frame)
    table = DataTable(model)
    qtbot.addWidget(table)
    model.sort(0, Qt.SortOrder.DescendingOrder)  # the file keeps the order on screen
    out = table.export_csv(tmp_path / "t.csv")
    back = pl.read_csv(out)
    assert back.columns == ["Line", "Recall", "Δ", "Δ delta2", "Sites"]  # 'hidden' is not shown
    assert back["Line"].to_list() == ["P2-L02", "P1-L01"]
    assert back["Recall"].to_list()[1] == 0.123456789012  # not the screen's three decimals
    assert back["Sites"].to_list() == ["[]", '["P1", "P2"]']
    assert [a.text() for a in table.actions()] == ["Copy rows (Ctrl+C)", "Export CSV…"]
    assert table.contextMenuPolicy() == Qt.ContextMenuPolicy.ActionsContextMenu


def test_a_file_that_cannot_be_written_is_said_not_raised(qtbot, tmp_path: Path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    said = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a: said.append(a[2]))
    model = FrameTableModel([Column("x", "X")])
    model.set_frame(pl.DataFrame({"x": [1]}))
    table = DataTable(model)
    qtbot.addWidget(table)
    assert table.export_csv_dialog(str(tmp_path / "missing-folder" / "t.csv")) is None
    assert said and "could not be written" in said[0]
