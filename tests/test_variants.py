"""INT8 (NNCF) and FP16 (OpenVINO) variants: lineage and hashes, the files run in OpenVINO, the side-by-side
comparison's numbers against a direct computation, the diff against the parent, and every refusal leaving the
project as it was."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import openvino as ov
import polars as pl
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.cli import main
from app.core.errors import Cancelled
from app.core.models.integrity import verify_version_files
from app.core.models.model_import import import_model
from app.core.models.registry import register_model
from app.core.models.structure import diff_text, diff_versions
from app.core.models.validation.variants_compare import compare_variants, comparison_text
from app.core.models.variants import VariantError, make_variant
from app.core.progress import TaskProgress
from app.core.store.datasets import register_dataset
from app.core.store.project import Project
from app.core.store.sources import sha256_of
from tests.helpers import project_state, write_csv

nncf = pytest.importorskip("nncf")
FEATURES = ["a", "b", "c", "d"]
RNG = np.random.default_rng(3)


def _mlp(path: Path) -> Path:
    """4 features -> 32 hidden (ReLU) -> defect probability, fixed weights."""
    w1 = RNG.normal(size=(4, 32)).astype(np.float32)
    w2 = RNG.normal(size=(32, 1)).astype(np.float32) / 4
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(np.zeros(32, np.float32), "b1"),
             numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(np.zeros(1, np.float32), "b2")]
    nodes = [helper.make_node("MatMul", ["X", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h"]), helper.make_node("MatMul", ["h", "w2"], ["z0"]),
             helper.make_node("Add", ["z0", "b2"], ["z"]), helper.make_node("Sigmoid", ["z"], ["probability"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["n", 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _dataset(path: Path, rows: int = 3000) -> Path:
    x = RNG.normal(size=(rows, 4)).astype(np.float32)
    label = (x[:, 0] + 0.5 * x[:, 2] + RNG.normal(scale=0.7, size=rows) > 0.3).astype(np.int8)
    pl.DataFrame({**{f: x[:, i] for i, f in enumerate(FEATURES)}, "label": label,
                  "line": RNG.choice(["L1", "L2", "L3"], rows), "record_id": [f"r{i}" for i in range(rows)]}
                 ).write_parquet(path)
    return path


@pytest.fixture
def mlp_project(tmp_path: Path):
    project = Project.create(tmp_path / "proj", "variants")
    register_model(project, "m", "MLP", "binary")
    import_model(project, _mlp(tmp_path / "mlp.onnx"), "m", "v1", card={"features": FEATURES},
                 lineage={"training_dataset": "train-2025"})
    register_dataset(project, "holdout", "held out", "validation", _dataset(tmp_path / "holdout.parquet"))
    yield project
    project.close()


def _ov_scores(project: Project, version_id: str, x: np.ndarray) -> np.ndarray:
    with project.reading() as con:
        rel = con.execute("SELECT artifact_path FROM model_versions WHERE version_id = ?", [version_id]).fetchall()[0][0]
    compiled = ov.Core().compile_model(str(project.folder / rel), "CPU")
    return np.asarray(compiled(x)[0]).reshape(-1)


def _lineage(project: Project, version_id: str) -> dict:
    import json

    with project.reading() as con:
        return json.loads(con.execute("SELECT lineage_json FROM model_versions WHERE version_id = ?",
                                      [version_id]).fetchall()[0][0])


def test_int8_and_fp16_variants_carry_their_lineage_hashes_and_run_in_openvino(mlp_project: Project) -> None:
    int8 = make_variant(mlp_project, "m:v1", "int8", calibration="holdout", samples=200)
    fp16 = make_variant(mlp_project, "m:v1", "fp16")
    assert (int8.version_id, fp16.version_id) == ("m:v1-int8", "m:v1-fp16")
    for v in (int8, fp16):
        assert v.format == "openvino-ir" and verify_version_files(mlp_project, v.version_id) == v.files
    lineage = _lineage(mlp_project, "m:v1-int8")
    assert lineage["variant_of"] == "m:v1" and lineage["training_dataset"] == "train-2025"  # inherited
    assert lineage["method"] == "nncf.quantize (default preset)" and lineage["calibration"] == "dataset holdout"
    assert lineage["calibration_samples"] == "200"
    assert lineage["nncf"] == nncf.__version__ and lineage["openvino"] == ov.__version__
    assert _lineage(mlp_project, "m:v1-fp16")["method"] == "openvino compress_to_fp16"
    x = RNG.normal(size=(500, 4)).astype(np.float32)
    parent = _ov_scores(mlp_project, "m:v1", x)
    assert np.abs(_ov_scores(mlp_project, "m:v1-fp16", x) - parent).max() < 5e-3
    int8_scores = _ov_scores(mlp_project, "m:v1-int8", x)
    # INT8 clips activations to the calibrated ranges. Calibrated on single rows (NNCF averages each item's min and
    # max) the input range was +-1.5 std and 2.6% of decisions flipped; in batches of rows it keeps the tails.
    ir = ov.Core().read_model(str(mlp_project.folder / _artifact(mlp_project, "m:v1-int8")))
    first = next(op for op in ir.get_ordered_ops() if op.get_type_name() == "FakeQuantize")
    low, high = (float(first.input(i).get_source_output().get_node().get_data().min()) for i in (1, 2))
    calibration = pl.read_parquet(mlp_project.folder / _dataset_path(mlp_project)).select(FEATURES).to_numpy()
    assert low <= np.quantile(calibration, 0.001) and high >= np.quantile(calibration, 0.999), (low, high)
    assert np.abs(int8_scores - parent).mean() < 0.01 and np.mean((int8_scores >= .5) == (parent >= .5)) > 0.99
    # The same on every CPU: weights in 7 bits on every layer (CPUs without VNNI add u8 x s8 products in pairs into
    # int16: 2 x 255 x 64 fits, 2 x 255 x 127 saturates), so this PC's INT8 kernels compute what OpenVINO's reference
    # (FP32) execution of the same IR computes. With NNCF's default on an AVX2 PC: mean difference 0.020, 97.0% agreement.
    weights = [np.asarray(op.get_data()) for op in ir.get_ordered_ops()
               if op.get_type_name() == "Constant" and op.get_element_type() == ov.Type.i8]
    assert weights and all(-64 <= w.min() and w.max() <= 64 for w in weights), [(w.min(), w.max()) for w in weights]
    assert lineage["overflow_fix"].startswith("all layers")
    reference = ov.Core().compile_model(ir, "CPU", {"LP_TRANSFORMS_MODE": False})
    assert np.abs(np.asarray(reference(x)[0]).reshape(-1) - int8_scores).max() < 2e-3
    # The INT8 IR holds quantize operations the parent lacks: the diff names them, as OpenVINO counts them.
    ops = Counter(op.get_type_name() for op in ir.get_ordered_ops())
    d = diff_versions(mlp_project, "m:v1", "m:v1-int8")
    assert ("FakeQuantize", 0, ops["FakeQuantize"]) in d.operators and ops["FakeQuantize"] > 0
    assert "format onnx -> openvino" in d.versions


def _artifact(project: Project, version_id: str) -> str:
    with project.reading() as con:
        return con.execute("SELECT artifact_path FROM model_versions WHERE version_id = ?",
                           [version_id]).fetchall()[0][0]


@pytest.mark.slow  # CPU-heavy: runs in the slow suite (make test-slow, CI)
def test_the_side_by_side_numbers_equal_a_direct_computation(mlp_project: Project, tmp_path: Path) -> None:
    from sklearn.metrics import recall_score, roc_auc_score

    make_variant(mlp_project, "m:v1", "int8", calibration="holdout", samples=100)
    c = compare_variants(mlp_project, "m:v1", "holdout", ("line",))
    assert [r.version_id for r in c.rows] == ["m:v1", "m:v1-int8"] and [r.precision for r in c.rows] == ["FP32",
                                                                                                          "INT8"]
    data = pl.read_parquet(tmp_path / "holdout.parquet")
    x = data.select(FEATURES).to_numpy().astype(np.float32)
    import onnxruntime as ort

    # The parent is judged as validation runs it (its ONNX file on ONNX Runtime), the variant on OpenVINO.
    session = ort.InferenceSession(str(mlp_project.folder / _artifact(mlp_project, "m:v1")))
    parent = session.run(None, {"X": x})[0].reshape(-1)
    variant = _ov_scores(mlp_project, "m:v1-int8", x)
    row = c.rows[1]
    assert row.max_abs_diff == pytest.approx(np.abs(variant - parent).max(), abs=1e-6)
    assert row.decision_agreement == pytest.approx(np.mean((variant >= .5) == (parent >= .5)))
    y = data["label"].to_numpy()
    assert row.overall["cand_recall"] == pytest.approx(recall_score(y, variant >= .5))
    assert row.overall["cand_auc"] == pytest.approx(roc_auc_score(y, variant), abs=1e-6)
    for s in row.slices.iter_rows(named=True):
        mask = data["line"].to_numpy() == s["line"]
        assert s["cand_recall"] == pytest.approx(recall_score(y[mask], variant[mask] >= .5))
        assert s["champ_recall"] == pytest.approx(recall_score(y[mask], parent[mask] >= .5), abs=1e-9)
    text = "\n".join(comparison_text(c))
    assert "m:v1-int8" in text and "Per line" in text


def test_an_int8_model_with_8_bit_weights_is_flagged_as_scoring_differently_on_cpus_without_vnni(
        mlp_project: Project, tmp_path: Path) -> None:
    """An INT8 IR quantized elsewhere with NNCF's default (8-bit weights after the first layer) scores differently
    on CPUs without VNNI; the comparison and the diff say so, and name the way out. Lineproof's own variant (7-bit
    weights) is not flagged."""
    import openvino as ov

    make_variant(mlp_project, "m:v1", "int8", calibration="holdout", samples=200)
    holdout = pl.read_parquet(mlp_project.folder / _dataset_path(mlp_project)).select(FEATURES).to_numpy()
    model = ov.Core().read_model(str(mlp_project.folder / _artifact(mlp_project, "m:v1")))
    quantized = nncf.quantize(model, nncf.Dataset([{"X": holdout[:200].astype(np.float32)}]), subset_size=1)
    ov.save_model(quantized, str(tmp_path / "vendor-int8.xml"), compress_to_fp16=False)
    import_model(mlp_project, tmp_path / "vendor-int8.xml", "m", "vendor-int8", lineage={"variant_of": "m:v1"})
    c = compare_variants(mlp_project, "m:v1", "holdout", ("line",))
    notes = {r.version_id: r.cpu_note for r in c.rows}
    assert notes["m:v1"] is None and notes["m:v1-int8"] is None
    assert "without VNNI" in notes["m:vendor-int8"] and "7-bit" in notes["m:vendor-int8"]
    assert [line for line in comparison_text(c) if line.startswith("Note:")] == [f"Note: {notes['m:vendor-int8']}"]
    ours, vendor = diff_versions(mlp_project, "m:v1", "m:v1-int8"), diff_versions(mlp_project, "m:v1", "m:vendor-int8")
    assert "INT8 weights none -> 7-bit" in ours.versions and "INT8 weights none -> 8-bit" in vendor.versions
    assert not any("VNNI" in line for line in diff_text(ours)) and any("VNNI" in line for line in diff_text(vendor))


def test_a_tree_ensemble_is_not_quantizable_and_nothing_is_registered(tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier

    x = RNG.normal(size=(200, 4)).astype(np.float32)
    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(x, x[:, 0] > 0)
    path = tmp_path / "forest.onnx"
    path.write_bytes(to_onnx(forest, x[:1], options={"zipmap": False}, target_opset=17).SerializeToString())
    with Project.create(tmp_path / "p", "trees") as project:
        register_model(project, "t", "forest", "binary")
        import_model(project, path, "t", "v1")
    before = project_state(tmp_path / "p")
    with Project.open(tmp_path / "p") as project, pytest.raises(VariantError, match="not quantizable.*ONNX-ML"):
        make_variant(project, "t:v1", "fp16")
    assert project_state(tmp_path / "p") == before


def test_bad_calibration_and_unloadable_models_are_refused_and_leave_the_project_as_it_was(
        mlp_project: Project, tmp_path: Path) -> None:
    pl.DataFrame({"a": [1.0], "b": [2.0], "label": [1]}).write_parquet(tmp_path / "narrow.parquet")
    register_dataset(mlp_project, "narrow", "two columns", "validation", tmp_path / "narrow.parquet")
    # ONNX Runtime runs a string normaliser; OpenVINO cannot load it.
    graph = helper.make_graph([helper.make_node("StringNormalizer", ["s"], ["t"], case_change_action="LOWER")], "g",
                              [helper.make_tensor_value_info("s", TensorProto.STRING, [1])],
                              [helper.make_tensor_value_info("t", TensorProto.STRING, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "strings.onnx"))
    import_model(mlp_project, tmp_path / "strings.onnx", "m", "strings")
    folder = mlp_project.folder
    mlp_project.close()
    before = project_state(folder)
    cases = [("m:v1", "int8", "narrow", "has no column\\(s\\) c, d"),
             ("m:v1", "int8", None, "needs calibration samples"),
             ("m:v1", "int8", "nowhere", "No dataset 'nowhere'"),
             ("m:v1", "int8", str(tmp_path / "missing.npz"), "does not exist"),
             ("m:strings", "fp16", None, "OpenVINO could not convert m:strings"),
             ("m:v9", "fp16", None, "No model version 'm:v9'")]
    with Project.open(folder) as project:
        for parent, method, calibration, message in cases:
            with pytest.raises(VariantError, match=message):
                make_variant(project, parent, method, calibration)
    assert project_state(folder) == before


def test_cancel_in_the_middle_stops_the_converter_and_registers_nothing(mlp_project: Project) -> None:
    folder = mlp_project.folder
    mlp_project.close()
    before = project_state(folder)
    progress = TaskProgress()
    reported = threading.Event()
    progress._on_report = lambda f, m: reported.set() if "Quantizing" in m else None
    threading.Thread(target=lambda: reported.wait(30) and progress.cancel(), daemon=True).start()
    with Project.open(folder) as project, pytest.raises(Cancelled):
        make_variant(project, "m:v1", "int8", calibration="holdout", samples=200, progress=progress)
    assert project_state(folder) == before


@pytest.mark.slow  # CPU-heavy: runs in the slow suite (make test-slow, CI)
def test_the_cli_makes_a_variant_and_says_where_it_came_from(mlp_project: Project, capsys) -> None:
    folder = mlp_project.folder
    mlp_project.close()
    assert main(["variant", str(folder), "m:v1", "--int8", "--calibration", "log", "-q"]) == 2
    assert "The calibration log has no column(s) a, b, c, d" in capsys.readouterr().err  # no log imported
    assert main(["variant", str(folder), "m:v1", "--fp16", "-q"]) == 0
    out = capsys.readouterr().out
    assert "Registered m:v1-fp16" in out and "openvino compress_to_fp16" in out
    # Once the log holds this version's features, it calibrates: a seeded sample of its rows, the count said.
    rows = [f"r{i},2026-03-01 10:00:00,m:v1,0.5,L1,{x[0]:.4f},{x[1]:.4f},{x[2]:.4f},{x[3]:.4f}"
            for i, x in enumerate(RNG.normal(size=(400, 4)))]
    log = write_csv(folder.parent / "log.csv", "record_id,ts,model_version,score,line,a,b,c,d", *rows)
    assert main(["ingest", str(folder), str(log), "-q"]) == 0
    assert main(["variant", str(folder), "m:v1", "--int8", "--calibration", "log", "--samples", "250", "-q"]) == 0
    out = capsys.readouterr().out
    assert "Registered m:v1-int8" in out and "calibrated on 250 samples from log" in out


@pytest.mark.slow
def test_variants_of_the_sample_cnn_run_in_openvino(tmp_path: Path) -> None:
    from app.sample.models import build_vision_cnn

    images = np.random.default_rng(5).random((16, 3, 224, 224), dtype=np.float32)
    np.savez(tmp_path / "seams.npz", image=images)
    with Project.create(tmp_path / "p", "cnn") as project:
        register_model(project, "seam", "vision", "binary")
        import_model(project, build_vision_cnn(tmp_path), "seam", "v1")
        make_variant(project, "seam:v1", "int8", calibration=str(tmp_path / "seams.npz"), samples=16)
        make_variant(project, "seam:v1", "fp16")
        assert _lineage(project, "seam:v1-int8")["calibration_sha256"] == sha256_of(tmp_path / "seams.npz")
        parent = ov.Core().compile_model(str(project.folder / _artifact(project, "seam:v1")), "CPU")(images[:4])[0]
        for v, tolerance in (("seam:v1-fp16", 1e-2), ("seam:v1-int8", 0.2)):
            out = ov.Core().compile_model(str(project.folder / _artifact(project, v)), "CPU")(images[:4])[0]
            assert out.shape == (4, 2) and np.abs(out - parent).max() < tolerance


@pytest.mark.slow  # CPU-heavy: runs in the slow suite (make test-slow, CI)
def test_a_plan_judges_a_variant_per_slice_against_its_parent_on_openvino(mlp_project: Project) -> None:
    """Validation scores the IR variant on OpenVINO (ONNX Runtime cannot load it) and the parent on ONNX Runtime;
    the per-slice non-regression numbers equal recall computed from those two sets of scores."""
    import onnxruntime as ort

    from app.core.models.validation import parse_plan, run_validation

    make_variant(mlp_project, "m:v1", "int8", calibration="holdout", samples=100)
    plan = parse_plan('[plan]\nname = "int8"\ndataset = "holdout"\nrecord_id = "record_id"\n[data]\n'
                      "no_overlap_with_training = false\n[[non_regression]]\nby = ['line']\nmetric = 'recall'\n"
                      "max_drop = 0.02\nmin_support = 50\n[parity]\nmodels = ['candidate']\n", "plan")
    run = run_validation(mlp_project, plan, "m:v1-int8", "m:v1")
    data = pl.read_parquet(mlp_project.folder / _dataset_path(mlp_project))
    x = data.select(FEATURES).to_numpy().astype(np.float32)
    variant = _ov_scores(mlp_project, "m:v1-int8", x)
    parent = ort.InferenceSession(str(mlp_project.folder / _artifact(mlp_project, "m:v1"))).run(
        None, {"X": x})[0].reshape(-1)
    y = data["label"].to_numpy() == 1
    checks = {c.slice["line"]: c for c in next(c for c in run.criteria if c.kind == "non_regression").checks}
    for line, check in checks.items():
        mask = (data["line"].to_numpy() == line) & y
        gain = np.mean(variant[mask] >= .5) - np.mean(parent[mask] >= .5)
        assert check.value == pytest.approx(gain)
    parity = next(c for c in run.criteria if c.kind == "parity")
    assert parity.status == "SKIPPED" and "OpenVINO IR file" in parity.checks[0].evidence


def _dataset_path(project: Project) -> str:
    with project.reading() as con:
        return con.execute("SELECT artifact_path FROM datasets WHERE dataset_id = 'holdout'").fetchall()[0][0]


@pytest.mark.gui
@pytest.mark.slow  # CPU-heavy: runs in the slow suite (make test-slow, CI)
def test_the_side_by_side_view_shows_the_parent_its_variants_and_their_gains_per_slice(qtbot, mlp_project):
    from app.views.variants_dialog import VariantsDialog

    make_variant(mlp_project, "m:v1", "int8", calibration="holdout", samples=100)
    expected = compare_variants(mlp_project, "m:v1", "holdout", ("line",))
    dialog = VariantsDialog(mlp_project, "m:v1", [("holdout", "held out")])
    qtbot.addWidget(dialog)
    assert dialog.by.currentData() == "line"
    dialog.bench.setChecked(False)
    with qtbot.waitSignal(dialog.start().done, timeout=60_000):
        pass
    assert [dialog.overall.row(i)["version_id"] for i in range(dialog.overall.rowCount())] == ["m:v1", "m:v1-int8"]
    assert dialog.overall.row(1)["decision_agreement"] == pytest.approx(expected.rows[1].decision_agreement)
    assert dialog.slices.rowCount() == 3  # L1, L2, L3 for the one variant
    first = dialog.slices.row(0)
    assert first["diff_recall"] == pytest.approx(expected.rows[1].slices.row(0, named=True)["diff_recall"])


@pytest.mark.slow  # CPU-heavy: runs in the slow suite (make test-slow, CI)
def test_without_nncf_int8_is_refused_saying_what_to_install_and_fp16_still_works(mlp_project: Project,
                                                                                  monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nncf" else real(name, *a))
    with pytest.raises(VariantError, match="(?s)INT8 quantization needs NNCF.*lineproof\\[variants\\]"):
        make_variant(mlp_project, "m:v1", "int8", calibration="holdout")
    assert make_variant(mlp_project, "m:v1", "fp16").version_id == "m:v1-fp16"


def _sample_variant_run(sample_copy: Path, samples: int):
    """The sample's INT8 variant of v1 calibrated on `samples` rows of v1's training pull, judged by the sample's
    variant plan (without its latency budget) against its parent; with the variant's and the parent's scores on the
    held-out set."""
    import onnxruntime as ort

    from app.core.models.validation import parse_plan, run_validation
    from app.sample.plant import FEATURES as SAMPLE_FEATURES
    from app.sample.release_plan import VARIANT_PLAN

    project = Project.open(sample_copy)
    try:
        make_variant(project, "weld-defect:v1", "int8", calibration="train-v1", samples=samples)
        text = VARIANT_PLAN[:VARIANT_PLAN.index("[latency]")] + VARIANT_PLAN[VARIANT_PLAN.index("[data]"):]
        run = run_validation(project, parse_plan(text, "variant"), "weld-defect:v1-int8", "weld-defect:v1")
        with project.reading() as con:
            rel = con.execute("SELECT artifact_path FROM datasets WHERE dataset_id = 'holdout-2026H2'").fetchall()
        held_out = pl.read_parquet(project.folder / rel[0][0])
        x = held_out.select(SAMPLE_FEATURES).to_numpy().astype(np.float32)
        variant = _ov_scores(project, "weld-defect:v1-int8", x).reshape(len(x), 2)[:, 1]  # (no defect, defect)
        session = ort.InferenceSession(str(project.folder / _artifact(project, "weld-defect:v1")))
        parent = session.run(None, {session.get_inputs()[0].name: x})[0][:, 1]
    finally:
        project.close()
    return run, held_out, variant, parent


@pytest.mark.slow  # an INT8 build and a validation of the sample (about 10 s)
def test_the_sample_int8_variant_on_300_rows_cannot_show_non_regression_on_two_lines(sample_copy: Path) -> None:
    """The sample's story: calibrated on NNCF's default 300 rows, the INT8 variant keeps recall and AUC on ten
    lines; on P1-L02 and P2-L01 it loses about 2% of the defects, beyond the 2 points allowed, and the intervals
    cannot settle it: INCONCLUSIVE there, and the run with it. Each line's figure equals recall from the variant's
    OpenVINO scores minus the parent's ONNX Runtime scores. (7-bit weights: the same on every CPU.)"""
    run, held_out, variant, parent = _sample_variant_run(sample_copy, 300)
    recall = next(c for c in run.criteria if c.kind == "non_regression" and c.title.startswith("recall"))
    statuses = {c.slice["line"]: c.status for c in recall.checks}
    assert len(statuses) == 12 and {line for line, s in statuses.items() if s != "PASS"} == {"P1-L02", "P2-L01"}
    assert statuses["P2-L01"] == statuses["P1-L02"] == "INCONCLUSIVE" and run.verdict == "INCONCLUSIVE"
    auc = next(c for c in run.criteria if c.kind == "non_regression" and c.title.startswith("ROC AUC"))
    assert auc.status == "PASS"
    defects = held_out["label"].to_numpy() == 1
    lines = held_out["line"].to_numpy()
    for check in recall.checks:
        mask = defects & (lines == check.slice["line"])
        assert check.value == pytest.approx(np.mean(variant[mask] >= 0.2) - np.mean(parent[mask] >= 0.2))


@pytest.mark.slow
def test_the_sample_int8_variant_on_1000_rows_holds_on_every_line(sample_copy: Path) -> None:
    """The story's next step: calibrated on 1,000 rows the same variant passes the plan on all twelve lines."""
    run, *_ = _sample_variant_run(sample_copy, 1000)
    recall = next(c for c in run.criteria if c.kind == "non_regression" and c.title.startswith("recall"))
    assert len(recall.checks) == 12 and all(c.status == "PASS" for c in recall.checks)
    assert run.verdict == "PASS", [c.title for c in run.criteria if c.status != "PASS"]


@pytest.mark.gui
def test_choosing_a_variant_on_the_validation_screen_makes_its_parent_the_champion(qtbot, mlp_project) -> None:
    from app.views.validation_view import ValidationView

    make_variant(mlp_project, "m:v1", "fp16")
    view = ValidationView()
    qtbot.addWidget(view)
    view.set_project(mlp_project)
    view.champion.setCurrentIndex(0)  # "(none: first release)"
    view.candidate.setCurrentIndex(view.candidate.findData("m:v1-fp16"))
    assert view.champion.currentData() == "m:v1"
    view.champion.setCurrentIndex(0)
    view.candidate.setCurrentIndex(view.candidate.findData("m:v1"))  # not a variant: the choice stays the user's
    assert view.champion.currentData() == ""
