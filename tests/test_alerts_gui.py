"""Alerts screen: evaluate through the worker, acknowledge a selected alert, precision updates (pytest-qt)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel

from app.core.store.project import Project
from app.sample.plant import FIRMWARE_WEEK, START
from app.views.alerts_view import AlertsView

pytestmark = pytest.mark.gui


def test_evaluate_and_acknowledge(qtbot, sample_copy: Path):
    project = Project.open(sample_copy)
    view = AlertsView()
    qtbot.addWidget(view)
    view.show()
    try:
        view.set_project(project)
        rollout = START + timedelta(weeks=FIRMWARE_WEEK - 1)
        view.ref_to.setDate(view.ref_from.date().addDays((rollout - START).days - 7))
        view.cur_from.setDate(view.ref_from.date().addDays((rollout - START).days + 7))
        errors: list = []
        with qtbot.waitSignal(view.refreshed, timeout=120_000):
            task = view.evaluate()
            task.error.connect(errors.append)
            task.error.connect(lambda _: view.refreshed.emit())
        assert errors == []
        assert view.alerts_model.rowCount() > 0
        first = view.alerts_model.row(0)
        assert first["severity"] == "high"  # the most severe come first
        index = view.alerts_model.index(0, 0)
        view.alerts_table.selectionModel().select(
            index, QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)
        view._selected(index)
        assert first["message"] in view.evidence.toPlainText()
        view.comment.setText("known: maintenance")
        assert view.acknowledge_selected("false")
        view.open_only.setChecked(False)
        acked = [view.alerts_model.row(i) for i in range(view.alerts_model.rowCount())
                 if view.alerts_model.row(i)["alert_id"] == first["alert_id"]][0]
        assert acked["state"] == "false" and acked["ack_comment"] == "known: maintenance"
        precision = view.precision_model.frame
        assert precision["false_alarms"].sum() == 1
    finally:
        view.set_project(None)
        project.close()
