"""Models and Benchmarks screens (pytest-qt): edit lineage and card with an audited reason, move stages,
run a benchmark through the worker, compare runs, cancel a run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app.core.store.project import Project
from app.views.bench_view import BenchView
from app.views.models_view import ModelsView

pytestmark = pytest.mark.gui


@pytest.fixture
def open_sample(sample_copy: Path):
    project = Project.open(sample_copy)
    yield project
    project.close()


def test_models_screen_shows_runtimes_and_edits_card_with_audit(qtbot, open_sample: Project):
    view = ModelsView()
    qtbot.addWidget(view)
    view.show()
    view.set_project(open_sample)
    assert view.stack.currentIndex() == 1
    view.select("weld-defect:v2")
    assert view.selected()["version_id"] == "weld-defect:v2"
    text = view.signature.toPlainText()
    assert "OpenVINO: not supported (TreeEnsembleClassifier)" in text and "ONNX Runtime: ok" in text
    assert "FLOAT [" in text and "sha256" in text
    assert view.fields["author"].text() == "ds-team"

    view.fields["author"].setText("m.kowalski")
    view.fields["known_limits"].setPlainText("Not validated on aluminium (P1-L04).")
    assert not view.save_metadata()  # no reason: refused with a dialog, nothing written
    box = view.findChild(QMessageBox, "errorDialog")
    assert box is not None and "needs a reason" in box.text()
    view.reason.setText("author corrected after review")
    assert view.save_metadata()
    with open_sample.reading() as con:
        lineage, card = con.execute("SELECT lineage_json, card_json FROM model_versions "
                                    "WHERE version_id = 'weld-defect:v2'").fetchall()[0]
        action, details = con.execute("SELECT action, details_json FROM audit_log ORDER BY seq DESC LIMIT 1"
                                      ).fetchall()[0]
    assert json.loads(lineage)["author"] == "m.kowalski"
    assert json.loads(card)["known_limits"] == "Not validated on aluminium (P1-L04)."
    changes = json.loads(details)["changes"]
    assert action == "model_version.edit"
    assert changes["lineage.author"] == {"old": "ds-team", "new": "m.kowalski"}
    assert json.loads(details)["reason"] == "author corrected after review"


def test_models_screen_promotes_and_rolls_back(qtbot, open_sample: Project):
    view = ModelsView()
    qtbot.addWidget(view)
    view.set_project(open_sample)
    view.select("weld-defect:v2")
    view.site.setCurrentText("P1")
    view.stage.setCurrentText("production")
    view.stage_reason.setText("pilot passed")
    with qtbot.waitSignal(view.apply_selected_stage().done, timeout=20_000):
        assert not view.apply_stage.isEnabled()  # one change at a time, in the worker
    qtbot.waitUntil(lambda: view.apply_stage.isEnabled(), timeout=5_000)
    stages = {view.versions.row(r)["version_id"]: view.versions.row(r)["stages"]
              for r in range(view.versions.rowCount())}
    assert "P1: production" in stages["weld-defect:v2"] and "P1: pilot" in stages["weld-defect:v1"]
    assert view.history.frame["stage"][0] == "production"
    with qtbot.waitSignal(view.rollback_selected().done, timeout=20_000) as rolled:
        pass
    assert rolled.args == ["weld-defect:v1"]
    qtbot.waitUntil(lambda: view.apply_stage.isEnabled(), timeout=5_000)
    with open_sample.reading() as con:
        now = con.execute("SELECT version_id FROM current_stages WHERE model_id = 'weld-defect' AND site = 'P1' "
                          "AND stage = 'production'").fetchall()
    assert now == [("weld-defect:v1",)]


def test_benchmarks_screen_runs_and_compares(qtbot, open_sample: Project):
    view = BenchView()
    qtbot.addWidget(view)
    view.show()
    view.set_project(open_sample)
    assert view.runs.rowCount() == 0
    view.version.setCurrentText("weld-defect:v1")
    view.batch.setValue(16)
    view.seconds.setValue(0.5)
    view.inputs.setCurrentIndex(view.inputs.findData("holdout-2026H2"))
    for runtime in ("onnxruntime", "openvino"):
        view.runtime.setCurrentText(runtime)
        with qtbot.waitSignal(view.recorded, timeout=60_000) as done:
            task = view.start()
            assert task is not None and not view.run_button.isEnabled()
        assert done.args[0].status == "ok", done.args[0].reason
        qtbot.waitUntil(lambda: view.run_button.isEnabled())
    assert view.runs.rowCount() == 2
    headers = [view.runs.headerData(c, Qt.Orientation.Horizontal) for c in range(view.runs.columnCount())]
    assert "RSS MB" in headers and "Noisy" in headers
    rss = [view.runs.row(r)["peak_rss_mb"] for r in range(2)]
    assert all(value is not None and value > 30 for value in rss)  # the child's own memory: a runtime and a model
    noisy_column = headers.index("Noisy")
    assert {view.runs.data(view.runs.index(r, noisy_column)) for r in range(2)} <= {"yes", "no"}
    view.table.selectAll()
    view.budget.setValue(0.001)  # 1 µs: every run is over it
    runs = view.selected_runs()
    assert len(runs) == 2 and len(view.histogram.curves) == 4  # outline + p99 line per run
    pct = view.percentiles.frame
    values = dict(zip(pct.columns, pct.row(pct["figure"].to_list().index("p50 (ms)")), strict=True))
    # the second run against the first (the baseline): delta and ratio, and the picker names the baseline
    assert values["delta1"] == pytest.approx(values["run1"] - values["run0"])
    assert values["ratio1"] == pytest.approx(values["run1"] / values["run0"])
    assert view.baseline.count() == 2 and view.baseline.currentIndex() == 0
    view.baseline.setCurrentIndex(1)
    view.baseline.activated.emit(1)
    swapped = dict(zip(view.percentiles.frame.columns, view.percentiles.frame.row(2), strict=True))
    assert swapped["ratio0"] == pytest.approx(swapped["run0"] / swapped["run1"]) and "ratio1" not in swapped
    open_sample.close()
    con = duckdb.connect(str(open_sample.db_path), read_only=True)
    stored = dict(con.execute("SELECT run_id, p50_ms FROM bench_runs").fetchall())
    con.close()
    assert sorted([values["run0"], values["run1"]]) == sorted(stored.values())
    assert "p99 over the 0.001 ms budget" in view.verdict.text()


def test_benchmarks_screen_cancel_records_nothing(qtbot, open_sample: Project):
    view = BenchView()
    qtbot.addWidget(view)
    view.set_project(open_sample)
    view.version.setCurrentText("weld-defect:v1")
    view.seconds.setValue(120)
    task = view.start()
    qtbot.waitUntil(lambda: view.progress.value() > 100, timeout=30_000)  # measuring in the child
    with qtbot.waitSignal(task.cancelled, timeout=15_000):
        view.cancel()
    qtbot.waitUntil(lambda: view.run_button.isEnabled())
    assert view.runs.rowCount() == 0
    with open_sample.reading() as con:
        assert con.execute("SELECT count(*) FROM bench_runs").fetchall() == [(0,)]


def test_empty_states(qtbot, empty_project: Project):
    models, bench = ModelsView(), BenchView()
    qtbot.addWidget(models)
    qtbot.addWidget(bench)
    models.set_project(None)
    assert "Open a project" in models.empty.text()
    models.set_project(empty_project)
    bench.set_project(empty_project)
    assert "lineproof import-model" in models.empty.text() and "Import a model first" in bench.empty.text()


def test_a_model_file_is_imported_from_the_models_screen(qtbot, tmp_path: Path):
    from app.views.models_view import ModelsView

    _sigmoid(tmp_path)
    project = Project.create(tmp_path / "p", "gui import")
    view = ModelsView()
    qtbot.addWidget(view)
    view.set_project(project)
    try:
        with qtbot.waitSignal(view.changed, timeout=60_000):
            view.start_import(str(tmp_path / "gate.onnx"), "gate", "v1", 0.4,
                              new_model={"name": "Gate check", "task": "binary", "risk_tier": "low"})
        assert [view.versions.row(r)["version_id"] for r in range(view.versions.rowCount())] == ["gate:v1"]
        row = project.con.execute("SELECT m.name, m.risk_tier, v.threshold FROM model_versions v JOIN models m "
                                  "USING (model_id)").fetchall()
        assert row == [("Gate check", "low", 0.4)]
    finally:
        view.set_project(None)
        project.close()


def test_the_model_cards_features_are_edited_as_a_list(qtbot, tmp_path: Path):
    import json as _json

    from app.core.models.registry import edit_version_metadata
    from app.views.models_view import ModelsView

    project = Project.create(tmp_path / "p", "card features")
    view = ModelsView()
    qtbot.addWidget(view)
    view.set_project(project)
    try:
        with qtbot.waitSignal(view.changed, timeout=60_000):
            view.start_import(str(_sigmoid(tmp_path)), "gate", "v1", 0.5, new_model={"task": "binary"})
        edit_version_metadata(project, "gate:v1", card={"features": "current_a, voltage_v ,wire_feed"},
                              reason="inputs listed for validation")
        stored = _json.loads(project.con.execute("SELECT card_json FROM model_versions").fetchall()[0][0])
        assert stored["features"] == ["current_a", "voltage_v", "wire_feed"]
        view.reload(keep="gate:v1")
        view._shown = None
        view._show_selected()
        assert view.fields["features"].toPlainText() == "current_a, voltage_v, wire_feed"
        assert view.unsaved_changes() == []
    finally:
        view.set_project(None)
        project.close()


def _sigmoid(folder: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(folder / "gate.onnx"))
    return folder / "gate.onnx"


def test_a_stage_change_on_a_changed_model_file_fails_in_the_worker_and_changes_nothing(qtbot, open_sample: Project):
    view = ModelsView()
    qtbot.addWidget(view)
    view.show()
    view.set_project(open_sample)
    view.select("weld-defect:v2")
    with open_sample.reading() as con:
        artifact = open_sample.folder / con.execute("SELECT artifact_path FROM model_versions "
                                                    "WHERE version_id = 'weld-defect:v2'").fetchall()[0][0]
    os.chmod(artifact, 0o644)
    data = bytearray(artifact.read_bytes())
    data[-1] ^= 0x01
    artifact.write_bytes(bytes(data))
    with open_sample.reading() as con:
        before = con.execute("SELECT count(*) FROM stage_history").fetchall()[0][0]
    view.site.setCurrentText("P1")
    view.stage.setCurrentText("production")
    view.stage_reason.setText("pilot passed")
    with qtbot.waitSignal(view.apply_selected_stage().error, timeout=20_000):
        pass
    qtbot.waitUntil(lambda: view.apply_stage.isEnabled(), timeout=5_000)
    box = view.findChild(QMessageBox, "errorDialog")
    assert box is not None and "does not match the sha256 recorded" in box.text()
    with open_sample.reading() as con:
        assert con.execute("SELECT count(*) FROM stage_history").fetchall()[0][0] == before
    assert view.stage_reason.text() == "pilot passed"  # kept for a retry once the file is restored


def test_the_benchmark_form_has_shapes_threads_and_precision_like_the_cli(qtbot, open_sample: Project,
                                                                           monkeypatch):
    from app.views import bench_view

    view = BenchView()
    qtbot.addWidget(view)
    view.set_project(open_sample)
    view.version.setCurrentText("seam-vision:v1")
    view.runtime.setCurrentText("openvino")
    view.shapes.setText("image=2,3,224,224")
    view.threads.setValue(2)
    view.precision.setCurrentIndex(view.precision.findData("f32"))
    config = view.config()
    assert (config.shapes, config.threads, config.precision) == ({"image": [2, 3, 224, 224]}, 2, "f32")
    view.runtime.setCurrentText("onnxruntime")
    assert not view.precision.isEnabled() and view.config().precision == ""
    shown = []
    monkeypatch.setattr(bench_view, "show_error", lambda _w, exc, _t: shown.append(str(exc)))
    view.shapes.setText("image=1,3,two")
    assert view.start() is None and "is not NAME=D1,D2" in shown[0]
    with open_sample.reading() as con:
        assert con.execute("SELECT count(*) FROM bench_runs").fetchall() == [(0,)]


@pytest.mark.slow  # CPU-heavy: runs in the slow suite (make test-slow, CI)
def test_make_variant_from_the_models_screen_registers_the_fp16_copy(qtbot, open_sample: Project):
    pytest.importorskip("openvino")
    view = ModelsView()
    qtbot.addWidget(view)
    view.set_project(open_sample)
    view.select("weld-defect:v1")
    assert view.variant_button.isEnabled()
    task = view.start_variant("weld-defect:v1", "fp16", None)
    with qtbot.waitSignal(task.done, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: view.selected() is not None and view.selected()["version_id"] == "weld-defect:v1-fp16",
                    timeout=10_000)
    with open_sample.reading() as con:
        lineage = json.loads(con.execute("SELECT lineage_json FROM model_versions WHERE version_id = "
                                         "'weld-defect:v1-fp16'").fetchall()[0][0])
    assert lineage["variant_of"] == "weld-defect:v1"
