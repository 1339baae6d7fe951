"""Validation screen (pytest-qt): defaults from the stages, plan checked as typed, a run through the worker with
its verdict, failing line, per-slice chart and parity plot; a refused plan; Cancel; empty states."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from app.core.store.project import Project
from app.views.validation_view import EMPTY, NO_DATASET, ValidationView

pytestmark = pytest.mark.gui


@pytest.fixture
def open_sample(sample_copy: Path):
    project = Project.open(sample_copy)
    yield project
    project.close()


def _runs(project: Project) -> int:
    with project.reading() as con:
        return con.execute("SELECT count(*) FROM validation_runs").fetchone()[0]


def test_validation_screen_runs_the_sample_release_plan(qtbot, open_sample: Project):
    view = ValidationView()
    qtbot.addWidget(view)
    view.resize(1366, 720)
    view.show()
    view.set_project(open_sample)
    assert view.stack.currentIndex() == 1
    assert (view.candidate.currentData(), view.champion.currentData()) == ("weld-defect:v2", "weld-defect:v1")
    assert view.dataset.currentData() == "holdout-2026H2"
    assert "No validation run yet" in view.banner.text()
    qtbot.waitUntil(lambda: "is valid" in view.plan_status.text(), timeout=3000)
    # A recorded latency budget only: keeps the test from benchmarking.
    view.editor.setPlainText(view.editor.toPlainText().replace('source = "run"', 'source = "recorded"'))

    with qtbot.waitSignal(view.recorded, timeout=120_000) as blocker:
        assert view.start() is not None
        assert not view.run_button.isEnabled() and view.cancel_button.isVisible()
    run = blocker.args[0]
    qtbot.waitUntil(lambda: view.task is None, timeout=5000)
    assert run.verdict == "FAIL" and _runs(open_sample) == 1
    assert view.banner.text().startswith("<b>FAIL</b>") and "on every line" in view.banner.text()
    assert view.plan.currentText() == "weld-defect release (rev 2)"  # the edited text became revision 2

    selected = view.criteria.row(view.criteria_table.selectionModel().selectedRows()[0].row())
    assert selected["status"] == "FAIL" and "on every line" in selected["title"]
    first_check = view.checks.row(0)
    assert (first_check["status"], first_check["where"]) == ("FAIL", "line P1-L04")
    assert first_check["champion"] > first_check["candidate"] or "false-alarm" in first_check["evidence"]

    view.tabs.setCurrentIndex(1)
    assert view.grouping.currentData() == "line"
    assert len(view.comparison.items) >= 4  # candidate, champion (points and interval bars) and the failed mark

    view.tabs.setCurrentIndex(2)
    roles = [view.parity_model.itemData(i) for i in range(view.parity_model.count())]
    assert roles == ["candidate", "champion"]
    view.parity_model.setCurrentIndex(0)
    assert "Not compared" in view.parity_note.text() and "TreeEnsembleClassifier" in view.parity_note.text()
    view.parity_model.setCurrentIndex(1)
    assert "decisions agree on 100.0000%" in view.parity_note.text() and view.parity.items


def test_a_broken_plan_is_named_in_the_editor_and_refused(qtbot, open_sample: Project):
    view = ValidationView()
    qtbot.addWidget(view)
    view.set_project(open_sample)
    view.editor.setPlainText(view.editor.toPlainText().replace('metric = "recall"', 'metric = "recal"', 1))
    assert not view.check_plan()
    assert "metric 'recal'" in view.plan_status.text()
    assert view.start() is None
    box = view.findChild(QMessageBox, "errorDialog")
    assert box is not None and "recal" in box.text()
    assert view.tabs.currentIndex() == 3 and _runs(open_sample) == 0


def test_cancel_stores_nothing_and_the_trail_says_so(qtbot, open_sample: Project):
    view = ValidationView()
    qtbot.addWidget(view)
    view.set_project(open_sample)
    task = view.start()
    assert task is not None
    view.cancel()
    qtbot.waitUntil(lambda: view.task is None, timeout=60_000)
    assert _runs(open_sample) == 0 and not view.cancel_button.isVisible()
    with open_sample.reading() as con:
        actions = [r[0] for r in con.execute("SELECT action FROM audit_log WHERE action LIKE 'validation.%' "
                                             "ORDER BY seq").fetchall()]
    assert actions[-2:] == ["validation.start", "validation.abandoned"]


def test_empty_states_say_what_to_do(qtbot, empty_project: Project):
    view = ValidationView()
    qtbot.addWidget(view)
    view.set_project(None)
    assert view.empty.text() == EMPTY
    view.set_project(empty_project)
    assert "Import the candidate" in view.empty.text()
    from app.core.models.registry import register_model
    from tests.test_validation_run import _score_model

    register_model(empty_project, "m", "scorer", "binary")
    from app.core.models.model_import import import_model

    import_model(empty_project, _score_model(empty_project.folder / "m.onnx"), "m", "v1", card={"features": ["a"]})
    view.set_project(empty_project)
    assert view.empty.text() == NO_DATASET


def test_an_edited_plan_is_never_replaced_silently(qtbot, open_sample: Project, monkeypatch):
    from app.core.models.validation import EXAMPLE_PLAN

    view = ValidationView()
    qtbot.addWidget(view)
    view.set_project(open_sample)
    stored = view.editor.toPlainText()
    edited = stored.replace("min = 0.", "min = 0.0", 1) + "\n# tightened for the audit\n"
    view.editor.setPlainText(edited)
    assert view.check_plan() and "Edited, not saved" in view.plan_status.text()
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[1]) or QMessageBox.StandardButton.Cancel)
    view.example_button.click()
    view._pick_stored_plan()
    assert view.editor.toPlainText() == edited and len(asked) == 2  # asked twice, kept twice
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Discard)
    view.example_button.click()
    assert view.editor.toPlainText() == EXAMPLE_PLAN
    view._pick_stored_plan()
    assert view.editor.toPlainText() == stored and "Edited" not in (view.check_plan() and view.plan_status.text())


def test_review_text_typed_for_one_project_is_not_kept_for_the_next(qtbot, open_sample: Project):
    from app.views.reviews_view import ReviewsView

    view = ReviewsView()
    qtbot.addWidget(view)
    view.set_project(open_sample)
    view.decision.setText("re-validate v1 on P2-L02")
    view.actions.setPlainText("anna: plan by Friday")
    assert view.unsaved_changes() == ["the review decision and actions being typed (Reviews)"]
    view.set_project(None)
    view.set_project(open_sample)
    assert view.decision.text() == "" and view.actions.toPlainText() == "" and view.unsaved_changes() == []


def test_what_changed_inside_shows_the_diff_of_champion_and_candidate(qtbot, open_sample: Project):
    from app.core.models.structure import diff_text, diff_versions

    view = ValidationView()
    qtbot.addWidget(view)
    view.set_project(open_sample)
    view.tabs.setCurrentWidget(view.model_diff)
    expected = "\n".join(diff_text(diff_versions(open_sample, "weld-defect:v1", "weld-defect:v2")))
    qtbot.waitUntil(lambda: view.model_diff.toPlainText() == expected, timeout=20_000)
    assert "weld-defect:v1 -> weld-defect:v2" in expected and "Tree ensemble" in expected
    view.champion.setCurrentIndex(0)  # "(none: first release)"
    assert "Choose a champion" in view.model_diff.toPlainText()
