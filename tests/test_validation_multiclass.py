"""#26 item 5: multiclass and image models are validated like binary ones: a folder of images with labels.csv (or
an .npz of tensors) is a dataset, the model card's preprocess turns images into inputs, and accuracy, macro F1 and
each class's recall come with intervals, overall and per slice, checked here against scikit-learn and a
hand-computed Wilson interval on the model's own ONNX Runtime outputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import polars as pl
import pytest
from onnx import TensorProto, helper, numpy_helper
from sklearn.metrics import accuracy_score, f1_score, recall_score

from app.core.models.model_import import import_model
from app.core.models.registry import register_model
from app.core.models.validation import PlanError, ValidationError, parse_plan, run_validation
from app.core.store.datasets import DatasetError, register_dataset
from app.core.store.project import Project
from app.core.store.tensor_datasets import Preprocess, TensorDatasetError, resize_bilinear

CLASSES = ["ok", "porosity", "spatter"]
SIZE = 8
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _cnn(path: Path, seed: int) -> Path:
    """image [N, 3, 8, 8] -> mean per channel -> Gemm -> softmax over three classes (weights from a seed)."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((3, 3)).astype(np.float32) * 4, "w")
    b = numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["image"], ["gap"]), helper.make_node("Flatten", ["gap"], ["flat"]),
         helper.make_node("Gemm", ["flat", "w", "b"], ["logits"], transB=1),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        "seam_classes", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _images(folder: Path, n: int = 240, seed: int = 3) -> pl.DataFrame:
    """PNG files of random colour patches, labels.csv with a line column (labels partly wrong on purpose)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    pixels = rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)
    rows = []
    for i in range(n):
        Image.fromarray(pixels[i]).save(folder / f"seam-{i:04d}.png")
        dominant = int(pixels[i].reshape(-1, 3).mean(axis=0).argmax())
        label = dominant if rng.random() < 0.7 else int(rng.integers(0, 3))
        rows.append({"file": f"seam-{i:04d}.png", "label": CLASSES[label], "line": f"L{i % 3 + 1}"})
    table = pl.DataFrame(rows)
    table.write_csv(folder / "labels.csv")
    return table


def _state(project: Project) -> tuple:
    """What a refused input must leave as it was: datasets, runs, the audit trail and the files."""
    con = project.con
    counts = tuple(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                   for t in ("datasets", "validation_runs", "audit_log"))
    files = sorted(str(p.relative_to(project.folder)) for p in (project.folder / "artifacts").rglob("*"))
    return counts, files


def _card() -> dict:
    return {"classes": CLASSES, "preprocess": {"resize": [SIZE, SIZE], "mean": list(MEAN), "std": list(STD),
                                               "layout": "NCHW"}}


@pytest.fixture
def vision(empty_project: Project, tmp_path: Path):
    project = empty_project
    register_model(project, "seam-cls", "Seam classes", "multiclass")
    import_model(project, _cnn(tmp_path / "v1.onnx", 1), "seam-cls", "v1", card=_card())
    import_model(project, _cnn(tmp_path / "v2.onnx", 2), "seam-cls", "v2", card=_card())
    table = _images(tmp_path / "images")
    register_dataset(project, "held-out-images", "Held-out seam images", "validation", tmp_path / "images")
    return project, table, tmp_path


def _expected(path: Path, folder: Path, table: pl.DataFrame) -> np.ndarray:
    """Predicted classes, computed apart: PIL reads the files, numpy normalises, ONNX Runtime runs."""
    import onnxruntime as ort
    from PIL import Image

    x = np.stack([np.asarray(Image.open(folder / f).convert("RGB")) for f in table["file"]]).astype(np.float32)
    x = ((x / 255.0 - np.array(MEAN, np.float32)) / np.array(STD, np.float32)).transpose(0, 3, 1, 2)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": np.ascontiguousarray(x, dtype=np.float32)})[0].argmax(axis=1)


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


PLAN = '''[plan]
name = "Seam classes"
[[overall]]
metric = "accuracy"
min = 0.2
[[overall]]
metric = "macro_f1"
min = 0.1
[[per_slice]]
by = ["line"]
metric = "recall:porosity"
min = 0.05
min_support = 5
[[non_regression]]
metric = "accuracy"
max_drop = 0.5
[[non_regression]]
by = ["line"]
metric = "recall:spatter"
max_drop = 0.9
min_support = 5
[parity]
max_abs_diff = 0.001
min_agreement = 0.99
'''


def test_an_image_model_is_validated_per_class_and_slice_as_scikit_learn_counts(vision):
    project, table, tmp = vision
    run = run_validation(project, parse_plan(PLAN), "seam-cls:v2", "seam-cls:v1", "held-out-images")
    y = np.array([CLASSES.index(v) for v in table["label"]])
    cand = _expected(tmp / "v2.onnx", tmp / "images", table)
    champ = _expected(tmp / "v1.onnx", tmp / "images", table)
    overall = run.result["slices"]["overall"][0]
    assert overall["cand_accuracy"] == pytest.approx(accuracy_score(y, cand), abs=1e-12)
    assert overall["champ_accuracy"] == pytest.approx(accuracy_score(y, champ), abs=1e-12)
    assert overall["cand_macro_f1"] == pytest.approx(f1_score(y, cand, average="macro"), abs=1e-12)
    low, high = _wilson(int((cand == y).sum()), len(y))
    assert (overall["cand_accuracy_low"], overall["cand_accuracy_high"]) == (pytest.approx(low, abs=1e-9),
                                                                             pytest.approx(high, abs=1e-9))
    recalls = recall_score(y, cand, average=None, labels=[0, 1, 2])
    for k, name in enumerate(CLASSES):
        assert overall[f"cand_recall:{name}"] == pytest.approx(recalls[k], abs=1e-12)
    lines = {r["line"]: r for r in run.result["slices"]["line"]}
    for line in ("L1", "L2", "L3"):
        rows = (table["line"] == line).to_numpy()
        assert lines[line]["cand_recall:porosity"] == pytest.approx(
            recall_score(y[rows], cand[rows], labels=[1], average=None)[0], abs=1e-12)
        assert lines[line]["cand_macro_f1"] == pytest.approx(f1_score(y[rows], cand[rows], average="macro"),
                                                             abs=1e-12)
        assert lines[line]["diff_recall:spatter"] == pytest.approx(
            recall_score(y[rows], cand[rows], labels=[2], average=None)[0]
            - recall_score(y[rows], champ[rows], labels=[2], average=None)[0], abs=1e-12)
    by_kind = {c.kind: c for c in run.criteria}
    # Images cannot be matched with training rows: "not applicable" (SKIPPED, saying why), never INCONCLUSIVE.
    assert by_kind["data"].status == "SKIPPED" and "not applicable" in by_kind["data"].checks[0].evidence.lower()
    assert by_kind["parity"].status == "PASS"  # ONNX Runtime and OpenVINO on the same preprocessed images
    assert "recall of class porosity" in next(c.title for c in run.criteria if c.kind == "per_slice")
    # One number per row for the parity plot: OpenVINO's probability of the class ONNX Runtime chose.
    rows = pl.read_parquet(run.scores_path)
    assert rows["candidate_openvino"].dtype == pl.Float64 and rows["p_cand"].to_list() == cand.tolist()
    assert (rows["candidate_onnxruntime"] - rows["candidate_openvino"]).abs().max() < 1e-3
    assert run.verdict in ("PASS", "INCONCLUSIVE", "FAIL")


@pytest.mark.slow  # scores images with both runtimes: the slow suite
def test_a_parity_only_plan_on_images_is_not_inconclusive(vision):
    project, _table, _tmp = vision
    run = run_validation(project, parse_plan("[parity]\nmax_abs_diff = 0.001\nmin_agreement = 0.99\n"),
                         "seam-cls:v1", None, "held-out-images")
    assert run.verdict == "PASS", [(c.title, c.status) for c in run.criteria]


@pytest.mark.slow  # scores images with both runtimes: the slow suite
def test_an_npz_of_tensors_is_a_dataset_and_bad_ones_are_refused(vision):
    project, table, tmp = vision
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 3, SIZE, SIZE)).astype(np.float32)  # already the model's input: no preprocess
    labels = np.array(CLASSES * 20)
    np.savez(tmp / "tensors.npz", image=x, label=labels, line=np.array(["L1", "L2"] * 30))
    register_dataset(project, "tensors", "Tensors", "validation", tmp / "tensors.npz")
    plan = parse_plan('[[overall]]\nmetric = "accuracy"\nmin = 0.0\n[data]\nno_overlap_with_training = false\n')
    run = run_validation(project, plan, "seam-cls:v1", None, "tensors")
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp / "v1.onnx"), providers=["CPUExecutionProvider"])
    predicted = session.run(None, {"image": x})[0].argmax(axis=1)
    y = np.array([CLASSES.index(v) for v in labels])
    assert run.result["slices"]["overall"][0]["cand_accuracy"] == pytest.approx(accuracy_score(y, predicted))

    before = _state(project)
    np.savez(tmp / "no-label.npz", image=x)
    np.savez(tmp / "uneven.npz", image=x, label=labels[:10])
    np.savez(tmp / "flat.npz", value=np.arange(60.0), label=labels)
    (tmp / "broken.npz").write_bytes(b"not a zip")
    for bad, said in (("no-label.npz", "no 'label'"), ("uneven.npz", "has 60 rows"), ("flat.npz", "no input tensor"),
                      ("broken.npz", "not a readable .npz")):
        with pytest.raises((TensorDatasetError, DatasetError), match=said):
            register_dataset(project, "bad", "Bad", "validation", tmp / bad)
    (tmp / "odd").mkdir()
    _images(tmp / "odd2", n=3)
    from PIL import Image

    Image.new("RGB", (5, 5)).save(tmp / "odd2" / "seam-0001.png")  # another size than the first image
    with pytest.raises(TensorDatasetError, match="row 3: seam-0001.png is 5x5"):
        register_dataset(project, "bad", "Bad", "validation", tmp / "odd2")
    with pytest.raises(TensorDatasetError, match="no labels CSV"):
        register_dataset(project, "bad", "Bad", "validation", tmp / "odd")
    assert _state(project) == before  # nothing registered, nothing left behind


@pytest.mark.slow  # scores images with both runtimes: the slow suite
def test_plans_and_labels_that_do_not_fit_the_task_are_refused_before_scoring(vision, tmp_path: Path):
    project, _table, tmp = vision
    for plan, said in (('[[overall]]\nmetric = "recall"\nmin = 0.5\n', "'recall', but seam-cls:v1 is a multiclass"),
                       ('[[overall]]\nmetric = "recall:crack"\nmin = 0.5\n', "no class 'crack'"),
                       ('[[overall]]\nmetric = "fpr"\nmax = 0.1\n', "multiclass model")):
        with pytest.raises(PlanError, match=said):
            run_validation(project, parse_plan(plan), "seam-cls:v1", None, "held-out-images")
    np.savez(tmp / "wrong-labels.npz", image=np.zeros((4, 3, SIZE, SIZE), np.float32),
             label=np.array(["ok", "crack", "ok", "ok"]))
    register_dataset(project, "wrong", "Wrong labels", "validation", tmp / "wrong-labels.npz")
    before = _state(project)
    with pytest.raises(ValidationError, match="'crack'"):
        run_validation(project, parse_plan('[[overall]]\nmetric = "accuracy"\nmin = 0.5\n[data]\n'
                                           'no_overlap_with_training = false\n'), "seam-cls:v1", None, "wrong")
    after = _state(project)
    # No run and no file; the trail says the run started and was abandoned, as for any refused run.
    assert after[0][:2] == before[0][:2] and after[1] == before[1]


def test_resize_and_normalise_as_worked_by_hand():
    row = np.array([[[0], [100]]], dtype=np.float32)[None]  # one image, 1x2 pixels, one channel
    out = resize_bilinear(row, (1, 4))[0, 0, :, 0]
    # Pixel centres: output x=0..3 maps to source 0.5*2/4-0.5 = -0.25 (clipped to 0), 0.25, 0.75, 1.25 (clipped)
    assert out.tolist() == pytest.approx([0.0, 25.0, 75.0, 100.0])
    same = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    assert np.array_equal(resize_bilinear(same.astype(np.float32), (4, 4)), same.astype(np.float32))
    p = Preprocess(None, 1 / 255, (0.5,) * 3, (0.25,) * 3, "NCHW")
    x = p.apply(np.full((1, 2, 2, 3), 255, np.uint8))
    assert x.shape == (1, 3, 2, 2) and np.allclose(x, 2.0)  # (1 - 0.5) / 0.25
    with pytest.raises(TensorDatasetError, match="layout"):
        Preprocess.from_card({"preprocess": {"layout": "CHW"}}, "m:v1")


def test_classes_and_preprocess_are_card_fields_set_as_text(empty_project: Project, tmp_path: Path):
    from app.core.models.registry import RegistryError, card_text, edit_version_metadata, list_versions

    project = empty_project
    register_model(project, "seam-cls", "Seam classes", "multiclass")
    import_model(project, _cnn(tmp_path / "v1.onnx", 1), "seam-cls", "v1")
    edit_version_metadata(project, "seam-cls:v1", card={
        "classes": "ok, porosity, spatter", "preprocess": '{"resize": [8, 8], "layout": "NCHW"}'}, reason="vision")
    import json

    card = json.loads(list_versions(project)["card_json"][0])
    assert card["classes"] == CLASSES and card["preprocess"] == {"layout": "NCHW", "resize": [8, 8]}
    assert card_text(card["preprocess"]) == '{"layout": "NCHW", "resize": [8, 8]}'
    for bad, said in (("{resize: 8}", "not JSON"), ('{"layout": "CHW"}', "layout"), ('{"zoom": 2}', "unknown key")):
        with pytest.raises(RegistryError, match=said):
            edit_version_metadata(project, "seam-cls:v1", card={"preprocess": bad}, reason="typo")
    assert json.loads(list_versions(project)["card_json"][0]) == card  # a refused edit changes nothing


@pytest.mark.slow  # scores images with both runtimes: the slow suite
def test_the_packet_of_a_multiclass_run_shows_accuracy_and_class_recalls(vision, tmp_path: Path):
    import shutil
    import subprocess

    from app.core.packet import gather
    from app.core.packet.evidence import evidence_bytes, evidence_sha256
    from app.core.packet.render import render

    project, _table, _tmp = vision
    run = run_validation(project, parse_plan(PLAN), "seam-cls:v2", "seam-cls:v1", "held-out-images")
    evidence = gather(project, run.run_id, None)
    pdf = tmp_path / "packet.pdf"
    pdf.write_bytes(render(evidence, evidence_sha256(evidence_bytes(evidence))))
    if shutil.which("pdftotext") is None:
        pytest.skip("poppler's pdftotext is not installed")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    overall = run.result["slices"]["overall"][0]
    assert "recall of class porosity" in text and "recall spatter" in text and "accuracy by line" in text
    assert f"{overall['cand_accuracy']:.3f} [{overall['cand_accuracy_low']:.3f}," in text
    assert "SKIPPED" in text and "image tensors" in text


@pytest.mark.slow  # scores images with both runtimes: the slow suite
def test_a_tensor_dataset_is_refused_where_rows_of_features_are_needed(vision):
    from app.core.analysis.drift import DriftError, DriftQuery
    from app.core.models.bench import BenchConfig, run_benchmark
    from app.core.models.bench.config import BenchError

    project, _table, _tmp = vision
    with pytest.raises(BenchError, match="holds image tensors"):
        run_benchmark(project, "seam-cls:v1", BenchConfig(dataset_id="held-out-images", iterations=5))
    from datetime import datetime

    from app.core.analysis.drift import _resolve_reference

    query = DriftQuery((datetime(2026, 1, 1), datetime(2026, 2, 1)), (datetime(2026, 2, 1), datetime(2026, 3, 1)),
                       reference_dataset="held-out-images")
    with pytest.raises(DriftError, match="holds image tensors"):
        _resolve_reference(project, query, [("current_a", "numeric")])


@pytest.mark.slow
def test_an_int8_variant_calibrates_on_the_registered_images_and_is_validated(vision):
    pytest.importorskip("nncf")
    from app.core.models.variants import make_variant

    project, table, _tmp = vision
    made = make_variant(project, "seam-cls:v1", "int8", calibration="held-out-images", samples=50)
    import json

    lineage = json.loads(project.con.execute("SELECT lineage_json FROM model_versions WHERE version_id = ?",
                                             [made.version_id]).fetchall()[0][0])
    assert lineage["calibration"] == "dataset held-out-images" and lineage["calibration_samples"] == "50"
    plan = parse_plan('[[non_regression]]\nmetric = "accuracy"\nmax_drop = 0.2\n[data]\n'
                      'no_overlap_with_training = false\n')
    run = run_validation(project, plan, made.version_id, "seam-cls:v1", "held-out-images")
    overall = run.result["slices"]["overall"][0]
    assert overall["cand_accuracy"] is not None and abs(overall["diff_accuracy"]) <= 0.2


@pytest.mark.slow  # scores images with both runtimes: the slow suite
def test_the_validation_screen_offers_multiclass_versions_and_image_datasets(qtbot, vision):
    from app.views.validation_view import ValidationView

    project, _table, _tmp = vision
    view = ValidationView()
    qtbot.addWidget(view)
    view.set_project(project)
    candidates = [view.candidate.itemData(i) for i in range(view.candidate.count())]
    assert candidates == ["seam-cls:v1", "seam-cls:v2"]
    assert view.dataset.findData("held-out-images") >= 0


def test_a_scikit_learn_multiclass_export_with_zipmap_validates_on_table_rows(empty_project: Project, tmp_path: Path):
    """A case beyond the issue's list: skl2onnx ends a classifier in ZipMap (a dictionary per row) and names its
    classes only there; integer labels in a Parquet dataset; the numbers equal scikit-learn's own predictions."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)
    model = LogisticRegression(max_iter=500).fit(x[:2000], y[:2000])
    (tmp_path / "grade.onnx").write_bytes(to_onnx(model, x[:1]).SerializeToString())
    project = empty_project
    register_model(project, "grade", "Seam grade", "multiclass")
    import_model(project, tmp_path / "grade.onnx", "grade", "v1", card={"features": ["a", "b", "c"]})
    pl.DataFrame({"record_id": [f"r{i}" for i in range(1000)], "a": x[2000:, 0], "b": x[2000:, 1],
                  "c": x[2000:, 2], "label": y[2000:], "shift": ["A", "B"] * 500}).write_parquet(tmp_path / "h.parquet")
    register_dataset(project, "holdout", "Held-out grades", "validation", tmp_path / "h.parquet")
    plan = parse_plan('[[overall]]\nmetric = "accuracy"\nmin = 0.5\n[[per_slice]]\nby = ["shift"]\n'
                      'metric = "recall:2"\nmin = 0.1\n[data]\nno_overlap_with_training = false\n')
    run = run_validation(project, plan, "grade:v1", None, "holdout")
    predicted, truth = model.predict(x[2000:]), y[2000:]
    overall = run.result["slices"]["overall"][0]
    assert overall["cand_accuracy"] == pytest.approx(accuracy_score(truth, predicted), abs=1e-12)
    assert overall["cand_macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"), abs=1e-12)
    shifts = {r["shift"]: r for r in run.result["slices"]["shift"]}
    rows = np.array(["A", "B"] * 500) == "B"
    assert shifts["B"]["cand_recall:2"] == pytest.approx(
        recall_score(truth[rows], predicted[rows], labels=[2], average=None)[0], abs=1e-12)
