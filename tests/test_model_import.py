"""Safe model import: every malicious or broken model is refused with a clear message and nothing written."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.core.models.model_import import ModelImportError, import_model
from app.core.models.registry import register_model
from app.core.store.project import Project


def _model(with_weights: bool = True) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
                              [w] if with_weights else [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _external(folder: Path, location: str) -> Path:
    """A model whose weights are external data at `location` (relative to the model's folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    model = _model()
    onnx.external_data_helper.convert_model_to_external_data(model, all_tensors_to_one_file=True,
                                                             location="weights.bin", size_threshold=0)
    onnx.save(model, str(folder / "model.onnx"))
    loaded = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    for entry in loaded.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    onnx.save(loaded, str(folder / "model.onnx"))
    return folder / "model.onnx"


@pytest.fixture
def project(tmp_path: Path):
    p = Project.create(tmp_path / "proj", "models")
    register_model(p, "weld", "Weld", "binary")
    yield p
    p.close()


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def refused(project: Project, path: Path, *patterns: str) -> None:
    folder = project.folder
    before = project_state_open(project), _tree(folder / "artifacts")
    with pytest.raises(ModelImportError) as info:
        import_model(project, path, "weld", "v9")
    assert (project_state_open(project), _tree(folder / "artifacts")) == before
    for pattern in patterns:
        assert pattern in str(info.value), str(info.value)
    assert "nothing was imported" in str(info.value).lower()


def project_state_open(project: Project) -> tuple:
    con = project.con
    return tuple(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                 for t in ("model_versions", "audit_log"))


def test_a_good_onnx_model_is_copied_read_only_and_recorded(project: Project, tmp_path: Path):
    src = tmp_path / "good" / "model.onnx"
    src.parent.mkdir()
    onnx.save(_model(), str(src))
    result = import_model(project, src, "weld", "v1", threshold=0.3)
    assert result.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    copy = project.folder / "artifacts" / "models" / result.sha256 / "model.onnx"
    assert copy.read_bytes() == src.read_bytes()
    assert oct(copy.stat().st_mode & 0o777) == "0o444"
    assert result.runtimes == {"onnxruntime": "ok", "openvino": "ok"}
    row = project.con.execute("SELECT format, threshold, inputs_json FROM model_versions").fetchall()[0]
    assert row[0] == "onnx" and row[1] == 0.3 and '"batch"' in row[2]


def test_the_same_file_under_another_name_points_at_a_file_that_exists(project: Project, tmp_path: Path):
    first, second = tmp_path / "a" / "model.onnx", tmp_path / "b" / "renamed.onnx"
    for path in (first, second):
        path.parent.mkdir()
        onnx.save(_model(), str(path))
    a, b = import_model(project, first, "weld", "v1"), import_model(project, second, "weld", "v2")
    assert a.sha256 == b.sha256
    for (rel,) in project.con.execute("SELECT artifact_path FROM model_versions ORDER BY 1").fetchall():
        assert hashlib.sha256((project.folder / rel).read_bytes()).hexdigest() == a.sha256


def test_external_data_is_checked_and_copied_with_the_model(project: Project, tmp_path: Path):
    src = _external(tmp_path / "ext", "weights.bin")
    result = import_model(project, src, "weld", "v1")
    assert set(result.files) == {"model.onnx", "weights.bin"}
    assert (project.folder / "artifacts" / "models" / result.sha256 / "weights.bin").exists()


def test_external_data_escaping_the_folder_is_refused(project: Project, tmp_path: Path):
    (tmp_path / "secret.bin").write_bytes(b"\0" * 48)
    refused(project, _external(tmp_path / "a", "../secret.bin"), "points outside the model's folder")
    refused(project, _external(tmp_path / "b", str(tmp_path / "secret.bin")), "absolute path")


def test_links_are_refused(project: Project, tmp_path: Path):
    real = tmp_path / "real.onnx"
    onnx.save(_model(), str(real))
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "sym.onnx").symlink_to(real)
    refused(project, tmp_path / "links" / "sym.onnx", "symbolic link")
    os.link(real, tmp_path / "links" / "hard.onnx")
    refused(project, tmp_path / "links" / "hard.onnx", "hard link")
    ext = _external(tmp_path / "c", "weights.bin")
    (tmp_path / "c" / "weights.bin").unlink()
    (tmp_path / "c" / "weights.bin").symlink_to(tmp_path / "secret-elsewhere.bin")
    (tmp_path / "secret-elsewhere.bin").write_bytes(b"\0" * 48)
    refused(project, ext, "symbolic link")


def test_mlflow_folders(project: Project, tmp_path: Path):
    good = tmp_path / "mlflow-good"
    good.mkdir()
    onnx.save(_model(), str(good / "model.onnx"))
    (good / "MLmodel").write_text("flavors:\n  onnx:\n    data: model.onnx\n    onnx_version: 1.17\n"
                                  "  python_function:\n    loader_module: mlflow.onnx\n")
    assert import_model(project, good, "weld", "v1").format == "onnx"
    escape = tmp_path / "mlflow-escape"
    escape.mkdir()
    onnx.save(_model(), str(tmp_path / "outside.onnx"))
    (escape / "MLmodel").write_text("flavors:\n  onnx:\n    data: ../outside.onnx\n")
    refused(project, escape, "points outside the model's folder")
    pickled = tmp_path / "mlflow-sklearn"
    pickled.mkdir()
    (pickled / "model.pkl").write_bytes(b"\x80\x04K\x01.")
    (pickled / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
                                     "  sklearn:\n    pickled_model: model.pkl\n")
    refused(project, pickled, "without an ONNX flavor", "never unpickles")


def test_broken_files_are_refused(project: Project, tmp_path: Path):
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(b"\x80\x04K\x01.")
    refused(project, pkl, "pickled model")
    good = tmp_path / "full.onnx"
    onnx.save(_model(), str(good))
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    refused(project, cut, "not a readable ONNX model")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    refused(project, empty, "empty (0 bytes)")
    ir = tmp_path / "ir" / "model.xml"
    ir.parent.mkdir()
    ir.write_text("<net name='x' version='11'></net>")
    refused(project, ir, "without its weights file model.bin")


def test_the_sample_tree_model_imports_and_openvino_names_the_operator(project: Project, sample_folder: Path,
                                                                        tmp_path: Path):
    tree = next((sample_folder / "artifacts" / "models").rglob("weld_defect_v2_gbt.onnx"))
    src = tmp_path / "tree.onnx"
    shutil.copyfile(tree, src)
    result = import_model(project, src, "weld", "v2")
    assert result.runtimes["onnxruntime"] == "ok"
    assert result.runtimes["openvino"] == "not supported (TreeEnsembleClassifier)"


def test_promotion_and_rollback_keep_one_production_version(sample_copy: Path):
    from app.core.models.registry import RegistryError, current_production, rollback, set_stage

    with Project.open(sample_copy) as project:
        set_stage(project, "weld-defect:v2", "P1", "production", "pilot passed")
        assert current_production(project, "weld-defect", "P1") == "weld-defect:v2"
        assert rollback(project, "weld-defect", "P1", "recall dropped on P1-L04") == "weld-defect:v1"
        stages = dict(project.con.execute("SELECT version_id, stage FROM current_stages WHERE site = 'P1' "
                                          "AND model_id = 'weld-defect'").fetchall())
        production = project.con.execute("SELECT count(*) FROM current_stages WHERE stage = 'production' "
                                         "GROUP BY model_id, site ORDER BY 1 DESC LIMIT 1").fetchall()[0][0]
        history = project.con.execute("SELECT version_id, stage, reason FROM stage_history WHERE site = 'P1' "
                                      "AND version_id LIKE 'weld-defect:%' ORDER BY change_id").fetchall()
        with pytest.raises(RegistryError, match="no production version"):
            rollback(project, "seam-vision", "P1")
        audit = [r[0] for r in project.con.execute("SELECT action FROM audit_log ORDER BY seq").fetchall()]
    assert stages == {"weld-defect:v1": "production", "weld-defect:v2": "pilot"}
    assert production == 1
    assert history[-1] == ("weld-defect:v1", "production", "recall dropped on P1-L04 (from weld-defect:v2)")
    assert audit[-2:] == ["stage.set", "stage.rollback"]


def _external_with(folder: Path, weights: np.ndarray) -> Path:
    """model.onnx + weights.bin with the given 3x4 weights (the graph file is the same for any weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    model = _model()
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(weights.astype(np.float32), "w"))
    onnx.external_data_helper.convert_model_to_external_data(model, all_tensors_to_one_file=True,
                                                             location="weights.bin", size_threshold=0)
    onnx.save(model, str(folder / "model.onnx"))
    return folder / "model.onnx"


def test_the_same_graph_with_other_weights_is_stored_apart_and_runs_its_own_weights(project: Project,
                                                                                   tmp_path: Path):
    import onnxruntime as ort

    a = _external_with(tmp_path / "a", np.ones((3, 4)))
    b = _external_with(tmp_path / "b", np.full((3, 4), 2.0))
    assert a.read_bytes() == b.read_bytes()  # identical graph files: only the weights differ
    v1, v2 = import_model(project, a, "weld", "v1"), import_model(project, b, "weld", "v2")
    assert v1.sha256 != v2.sha256
    x = np.ones((1, 3), dtype=np.float32)
    outputs = []
    for version in ("weld:v1", "weld:v2"):
        rel = project.con.execute("SELECT artifact_path FROM model_versions WHERE version_id = ?",
                                  [version]).fetchall()[0][0]
        session = ort.InferenceSession(str(project.folder / rel), providers=["CPUExecutionProvider"])
        outputs.append(session.run(None, {"x": x})[0])
    assert np.allclose(outputs[0], 3.0) and np.allclose(outputs[1], 6.0)


def test_a_changed_weights_file_is_refused_before_any_use(project: Project, tmp_path: Path):
    from app.core.models.bench import BenchConfig, run_benchmark
    from app.core.models.integrity import ModelIntegrityError
    from app.core.models.registry import set_stage

    result = import_model(project, _external_with(tmp_path / "a", np.ones((3, 4))), "weld", "v1")
    weights = project.folder / "artifacts" / "models" / result.sha256 / "weights.bin"
    os.chmod(weights, 0o644)
    data = bytearray(weights.read_bytes())
    data[0] ^= 0x01
    weights.write_bytes(bytes(data))
    audit_before = project.con.execute("SELECT count(*) FROM audit_log").fetchall()[0][0]
    with pytest.raises(ModelIntegrityError, match="weights.bin of weld:v1 does not match the sha256 recorded"):
        run_benchmark(project, "weld:v1", BenchConfig(iterations=5))
    with pytest.raises(ModelIntegrityError, match="weights.bin of weld:v1 does not match"):
        set_stage(project, "weld:v1", "P1", "pilot")
    assert project.con.execute("SELECT count(*) FROM audit_log").fetchall()[0][0] == audit_before
    assert project.con.execute("SELECT count(*) FROM bench_runs").fetchall()[0][0] == 0


def test_external_data_used_only_inside_a_subgraph_is_copied(project: Project, tmp_path: Path):
    folder = tmp_path / "sub"
    folder.mkdir()
    values = np.arange(4, dtype=np.float32)
    (folder / "branch.bin").write_bytes(values.tobytes())
    tensor = onnx.TensorProto(name="c", data_type=TensorProto.FLOAT, dims=[4])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "branch.bin"), ("offset", "0"), ("length", str(values.nbytes))):
        tensor.external_data.add(key=key, value=value)
    then_graph = helper.make_graph([helper.make_node("Constant", [], ["t"], value=tensor)], "then", [],
                                   [helper.make_tensor_value_info("t", TensorProto.FLOAT, [4])])
    else_graph = helper.make_graph([helper.make_node("Constant", [], ["e"], value=numpy_helper.from_array(
        np.zeros(4, dtype=np.float32), "z"))], "else", [], [helper.make_tensor_value_info("e", TensorProto.FLOAT, [4])])
    graph = helper.make_graph([helper.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=else_graph)],
                              "g", [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(folder / "model.onnx"))
    result = import_model(project, folder / "model.onnx", "weld", "v1")
    assert set(result.files) == {"model.onnx", "branch.bin"}
    stored = project.folder / "artifacts" / "models" / result.sha256
    assert (stored / "branch.bin").read_bytes() == values.tobytes()


def test_a_model_that_explodes_when_loaded_is_stopped_in_a_child_and_leaves_nothing(project: Project,
                                                                                    tmp_path: Path):
    """181 bytes that make OpenVINO fold a 12000 x 12000 constant: the probe process is stopped at the limit."""
    from app.core.models.runtime_probe import RuntimeCheckError

    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [12000, 12000])
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"],
                              value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
             helper.make_node("ReduceSum", ["big"], ["s"], keepdims=0), helper.make_node("Add", ["x", "s"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "bomb.onnx"
    onnx.save(model, str(path))
    before = project_state_open(project), _tree(project.folder / "artifacts")
    models_before = project.con.execute("SELECT count(*) FROM models").fetchall()[0][0]
    with pytest.raises(RuntimeCheckError, match="used more than 300 MB of memory and was stopped"):
        import_model(project, path, "newmodel", "v1", new_model={"name": "New", "task": "binary"},
                     check_limits={"memory_mb": 300})
    assert (project_state_open(project), _tree(project.folder / "artifacts")) == before
    assert project.con.execute("SELECT count(*) FROM models").fetchall()[0][0] == models_before


def test_a_refused_file_registers_no_new_model(project: Project, tmp_path: Path, capsys):
    from app.cli import main

    bad = tmp_path / "cut.onnx"
    bad.write_bytes(b"\x08\x07\x12\x05cut o")  # an ONNX file cut short
    folder = project.folder
    before = project_state_open(project)
    project.close()
    assert main(["import-model", str(folder), str(bad), "--model", "fresh", "--version", "v1", "--name", "Fresh"]) == 2
    assert "nothing was imported" in capsys.readouterr().err.lower()
    with Project.open(folder) as again:
        assert again.con.execute("SELECT count(*) FROM models WHERE model_id = 'fresh'").fetchall()[0][0] == 0
        assert project_state_open(again) == before


def test_initializers_listed_as_inputs_in_an_old_ir_are_constants_not_inputs(project: Project, tmp_path: Path):
    """IR < 4 files list every weight as a graph input as well (a real file was recorded with 282 inputs and then
    fed random weights); the recorded inputs are the ones to feed."""
    import json

    import onnxruntime as ort

    w = numpy_helper.from_array(np.array([[2.0], [-1.0]], dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "old",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2]),
                               helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    model.ir_version = 3
    onnx.save(model, str(tmp_path / "old.onnx"))
    register_model(project, "old", "Old IR", "regression")
    result = import_model(project, tmp_path / "old.onnx", "old", "v1")
    inputs, path = project.con.execute("SELECT inputs_json, artifact_path FROM model_versions WHERE version_id = ?",
                                       [result.version_id]).fetchall()[0]
    assert [i["name"] for i in json.loads(inputs)] == ["x"] and result.runtimes["onnxruntime"].startswith("ok")
    session = ort.InferenceSession(str(project.folder / path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"x": np.array([[1.0, 1.0]], dtype=np.float32)})[0]
    assert out.tolist() == [[1.0]]  # the stored weights, not fed ones


def test_a_runtime_error_keeps_its_cause_not_the_source_location():
    """OpenVINO prefixes its reason with where in its own sources it failed; the first of those lines used to be
    all a user saw ("Exception from src/inference/src/cpp/core.cpp:132:")."""
    from app.core.errors import runtime_cause
    from app.core.models.validation.scoring import openvino_refusal

    message = ("Exception from src/inference/src/cpp/core.cpp:132:\n"
               "Exception from src/frontends/onnx/frontend/src/frontend.cpp:124:\n"
               "Check 'unknown_operators.empty()' failed at src/frontends/onnx/frontend/src/core/graph.cpp:287:\n"
               "Loop body has a dynamic trip count that this plugin cannot compile\n")
    assert runtime_cause(message) == "Loop body has a dynamic trip count that this plugin cannot compile"
    assert openvino_refusal(message).endswith("Loop body has a dynamic trip count that this plugin cannot compile")
    assert runtime_cause("one line") == "one line" and runtime_cause("Exception from a.cpp:1:") == \
        "Exception from a.cpp:1:"  # nothing better to say: the location is still something


def _probe_child(monkeypatch, code: str) -> None:
    """Make the import's probe process run `code` instead of loading a model (it prints the runtimes' answers)."""
    import sys

    from app.core.models import runtime_probe

    monkeypatch.setattr(runtime_probe, "probe_command", lambda: [sys.executable, "-c", code])


@pytest.mark.slow  # it loads every core for a few seconds on purpose
def test_the_import_checks_limit_counts_processor_time_so_its_verdict_does_not_depend_on_load(
        monkeypatch, tmp_path: Path):
    """A check that needs 1.6 processor-seconds under a 2-second limit passes even when busy processes make it take
    longer than 2 s by the clock; one that keeps working is stopped as not checked; one that only waits
    is stopped by the clock after 4 times the limit."""
    import subprocess
    import sys
    import time

    from app.core.models.runtime_probe import RuntimeCheckError, check_runtimes_isolated

    work = ("import time, json, sys; sys.stdin.read(); t = time.process_time()\n"
            "while time.process_time() - t < 1.6: pass\nprint(json.dumps({'onnxruntime': 'ok'}))")
    _probe_child(monkeypatch, work)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * (os.cpu_count() or 2))]
    try:
        started = time.monotonic()
        assert check_runtimes_isolated(tmp_path / "m.onnx", timeout_s=2) == {"onnxruntime": "ok"}
        assert time.monotonic() - started > 2.0, "the load did not slow the check down: the test shows nothing"
    finally:
        for b in burners:
            b.kill()
    _probe_child(monkeypatch, "import sys; sys.stdin.read()\nwhile True: pass")
    with pytest.raises(RuntimeCheckError, match="more than 1 s of processor time.*not checked"):
        check_runtimes_isolated(tmp_path / "m.onnx", timeout_s=1)
    _probe_child(monkeypatch, "import sys, time; sys.stdin.read(); time.sleep(60)")
    with pytest.raises(RuntimeCheckError, match="did not finish within 2 s.*not checked"):
        check_runtimes_isolated(tmp_path / "m.onnx", timeout_s=0.5)
