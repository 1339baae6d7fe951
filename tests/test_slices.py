"""Slice metrics against scikit-learn and scipy on seeded random data, and the sample's firmware story."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import onnx
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from scipy.stats import binomtest
from sklearn import metrics as skm

from app.core.analysis.slices import SliceError, SliceQuery, compute_slices, firmware_changes, resolve_version
from app.core.models.model_import import import_model
from app.core.models.registry import register_model
from app.core.stats.intervals import wilson, z_value
from app.core.store.ingest import LabelMapping, PredictionMapping, import_labels, import_predictions
from app.core.store.project import Project
from app.sample.plant import FIRMWARE_LINE, FIRMWARE_WEEK, START


def _identity_onnx(path: Path) -> Path:
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _project(tmp_path: Path, task: str, frame: pl.DataFrame, threshold: float = 0.5) -> Project:
    """A project with one registered model of `task` and the frame as its log (label column -> labels)."""
    project = Project.create(tmp_path / f"p-{task}", "slices", slice_dimensions=("line", "shift"))
    register_model(project, "m", "Model", task)
    import_model(project, _identity_onnx(tmp_path / f"{task}.onnx"), "m", "v1", threshold)
    log = frame.drop("label").with_columns(model_version=pl.lit("m:v1"))
    log.write_parquet(tmp_path / f"{task}-log.parquet")
    cols = {"predicted_label": "predicted_label"} if "predicted_label" in log.columns else {}
    import_predictions(project, tmp_path / f"{task}-log.parquet", PredictionMapping(
        slices={"line": "line", "shift": "shift"}, features=(), **cols))
    labels = frame.filter(pl.col("label").is_not_null()).select(
        "record_id", pl.col("label").cast(pl.Float64), (pl.col("ts") + pl.duration(days=9)).alias("labelled_at"))
    if labels.height:
        labels.write_parquet(tmp_path / f"{task}-labels.parquet")
        import_labels(project, tmp_path / f"{task}-labels.parquet", LabelMapping())
    return project


def _frame(rng: np.random.Generator, n: int, labels: np.ndarray, scores: np.ndarray, **extra) -> pl.DataFrame:
    return pl.DataFrame({
        "record_id": [f"r{i}" for i in range(n)],
        "ts": [datetime(2026, 3, 2) + timedelta(hours=int(h)) for h in rng.integers(0, 24 * 60, n)],
        "score": scores, "line": rng.choice(["L1", "L2", "L3", "L4"], n, p=[0.5, 0.3, 0.195, 0.005]),
        "shift": rng.choice(["early", "late"], n), "label": labels, **extra})


@pytest.fixture(scope="module")
def binary_case(tmp_path_factory):
    rng = np.random.default_rng(42)
    n = 3000
    y = (rng.random(n) < 0.3).astype(float)
    scores = np.clip(0.35 * y + rng.random(n) * 0.7, 0, 1).round(3)  # three decimals: AUC bins are exact
    y_masked = np.where(rng.random(n) < 0.8, y, np.nan)  # 20% never labelled
    frame = _frame(rng, n, y_masked, scores).with_columns(pl.col("label").fill_nan(None))
    project = _project(tmp_path_factory.mktemp("bin"), "binary", frame, threshold=0.4)
    yield project, frame
    project.close()


def _sk_binary(frame: pl.DataFrame, threshold: float) -> dict:
    f = frame.filter(pl.col("label").is_not_null())
    y, s = f["label"].to_numpy(), f["score"].to_numpy()
    yhat = (s >= threshold).astype(float)
    tn, fp, fn, tp = skm.confusion_matrix(y, yhat, labels=[0, 1]).ravel()
    return {"accuracy": skm.accuracy_score(y, yhat), "precision": skm.precision_score(y, yhat, zero_division=np.nan),
            "recall": skm.recall_score(y, yhat, zero_division=np.nan), "f1": skm.f1_score(y, yhat, zero_division=np.nan),
            "fpr": fp / (fp + tn) if fp + tn else np.nan,
            "auc": skm.roc_auc_score(y, s) if len(set(y)) == 2 else np.nan,
            "brier": skm.brier_score_loss(y, s) if len(y) else np.nan, "labelled": len(y), "n": frame.height}


def _close(a, b) -> bool:
    if a is None or (isinstance(b, float) and np.isnan(b)):
        return a is None and (b is None or np.isnan(b))
    return abs(a - b) < 1e-9


def test_binary_metrics_match_scikit_learn_overall_and_per_slice(binary_case):
    project, frame = binary_case
    table = compute_slices(project, SliceQuery("m:v1", by=("line", "shift"), min_support=1))
    assert table.threshold == 0.4
    expected = _sk_binary(frame, 0.4)
    for metric in ("accuracy", "precision", "recall", "f1", "fpr", "auc", "brier"):
        assert _close(table.overall[metric][0], expected[metric]), metric
    assert table.overall["n"][0] == 3000 and table.overall["labelled"][0] == expected["labelled"]
    assert table.slices.height == frame.select("line", "shift").unique().height
    for row in table.slices.iter_rows(named=True):
        part = frame.filter((pl.col("line") == row["line"]) & (pl.col("shift") == row["shift"]))
        want = _sk_binary(part, 0.4)
        for metric in ("accuracy", "precision", "recall", "f1", "fpr", "auc", "brier"):
            assert _close(row[metric], want[metric]), (row["line"], row["shift"], metric, row[metric], want[metric])
        assert row["auc_max_error"] is None or row["auc_max_error"] >= 0


def test_wilson_intervals_match_scipy(binary_case):
    project, frame = binary_case
    table = compute_slices(project, SliceQuery("m:v1", by=("line",), min_support=1, confidence=0.9))
    for row in table.slices.iter_rows(named=True):
        ci = binomtest(int(row["tp"]), int(row["tp"] + row["fn"])).proportion_ci(0.9, method="wilson")
        assert abs(row["recall_low"] - ci.low) < 1e-9 and abs(row["recall_high"] - ci.high) < 1e-9
        ci = binomtest(int(row["labelled"]), int(row["n"])).proportion_ci(0.9, method="wilson")
        assert abs(row["coverage_low"] - ci.low) < 1e-9 and abs(row["coverage_high"] - ci.high) < 1e-9


def test_wilson_hand_worked_example():
    # 8 successes in 10 trials, 95%: centre (0.8 + 1.96^2/20) / (1 + 1.96^2/10) = 0.7185...,
    # half-width 1.96 / 1.38415 * sqrt(0.016 + 0.009604) = 0.2266... -> [0.4902, 0.9433]
    frame = pl.DataFrame({"k": [8], "n": [10]})
    low, high = wilson(pl.col("k"), pl.col("n"), z_value(0.95))
    got = frame.select(low.alias("low"), high.alias("high")).row(0)
    assert got == pytest.approx((0.4902, 0.9433), abs=1e-4)


def test_auc_interval_covers_the_bootstrap_spread(binary_case):
    project, frame = binary_case
    table = compute_slices(project, SliceQuery("m:v1", min_support=1))
    f = frame.filter(pl.col("label").is_not_null())
    y, s = f["label"].to_numpy(), f["score"].to_numpy()
    rng = np.random.default_rng(0)
    boots = [skm.roc_auc_score(y[i], s[i]) for i in (rng.integers(0, len(y), len(y)) for _ in range(300))]
    analytic_se = (table.overall["auc_high"][0] - table.overall["auc_low"][0]) / (2 * 1.959964)
    assert 0.7 < analytic_se / np.std(boots) < 1.4


def test_auc_interval_is_hanley_mcneil_with_positives_and_negatives_in_their_places(binary_case):
    """Hand-written Hanley & McNeil (1982): Q1 = A/(2-A) goes with the positives, Q2 = 2A^2/(1+A) with the
    negatives. About 30% positives here, so swapping the two sizes moves the interval."""
    project, frame = binary_case
    table = compute_slices(project, SliceQuery("m:v1", min_support=1))
    f = frame.filter(pl.col("label").is_not_null())
    y, s = f["label"].to_numpy(), f["score"].to_numpy()
    a, n1, n0 = skm.roc_auc_score(y, s), float(y.sum()), float(len(y) - y.sum())
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = np.sqrt((a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0))
    swapped = np.sqrt((a * (1 - a) + (n0 - 1) * (q1 - a * a) + (n1 - 1) * (q2 - a * a)) / (n1 * n0))
    assert abs(se - swapped) > 1e-3  # the case tells the two apart
    z = 1.959963984540054
    assert table.overall["auc"][0] == pytest.approx(a, abs=1e-12)
    assert (table.overall["auc_low"][0], table.overall["auc_high"][0]) == pytest.approx((a - z * se, a + z * se),
                                                                                        abs=1e-9)


def test_auc_with_fine_scores_stays_within_the_reported_bound(tmp_path: Path):
    rng = np.random.default_rng(9)
    n = 2000
    y = (rng.random(n) < 0.4).astype(float)
    scores = np.clip(0.2 * y + rng.random(n) * 0.8, 0, 1)  # full precision: bins are not exact
    project = _project(tmp_path, "binary", _frame(rng, n, y, scores))
    try:
        table = compute_slices(project, SliceQuery("m:v1", min_support=1))
    finally:
        project.close()
    exact = skm.roc_auc_score(y, scores)
    assert abs(table.overall["auc"][0] - exact) <= table.overall["auc_max_error"][0] + 1e-12
    assert table.overall["auc_max_error"][0] < 0.01


def test_small_single_class_and_unlabelled_slices(binary_case, tmp_path: Path):
    project, frame = binary_case
    table = compute_slices(project, SliceQuery("m:v1", by=("line",), min_support=30))
    tiny = table.slices.filter(pl.col("line") == "L4").row(0, named=True)
    assert tiny["labelled"] < 30 and tiny["recall"] is None and tiny["auc"] is None
    assert tiny["status"].startswith("insufficient data") and tiny["n"] > 0
    rng = np.random.default_rng(1)
    n = 200
    y = np.where(np.arange(n) < 100, 0.0, np.nan)  # first half labelled, all negatives; rest unlabelled
    lines = np.where(np.arange(n) < 100, "L1", "L2")
    single = _frame(rng, n, y, rng.random(n).round(3)).with_columns(
        line=pl.Series(lines), label=pl.Series(y).fill_nan(None))
    other = _project(tmp_path, "binary", single)
    try:
        t = compute_slices(other, SliceQuery("m:v1", by=("line",), min_support=1))
    finally:
        other.close()
    l1 = t.slices.filter(pl.col("line") == "L1").row(0, named=True)
    sk = _sk_binary(single.filter(pl.col("line") == "L1"), 0.5)
    assert l1["recall"] is None and l1["auc"] is None  # no positives: undefined, like zero_division=nan
    assert _close(l1["accuracy"], sk["accuracy"]) and _close(l1["fpr"], sk["fpr"])
    l2 = t.slices.filter(pl.col("line") == "L2").row(0, named=True)
    assert (l2["n"], l2["labelled"], l2["coverage"]) == (100, 0, 0.0) and l2["accuracy"] is None
    assert l2["status"] == "insufficient data (0 labelled < 1)"


def test_a_slice_filtered_to_nothing_is_empty_not_an_error(binary_case):
    project, _ = binary_case
    table = compute_slices(project, SliceQuery("m:v1", by=("line",), start=datetime(2030, 1, 1)))
    assert table.slices.height == 0 and table.overall["n"][0] == 0 and table.overall["accuracy"][0] is None


def test_regression_metrics_match_scikit_learn(tmp_path: Path):
    rng = np.random.default_rng(5)
    n = 1500
    truth = rng.normal(10, 3, n)
    pred = truth + rng.normal(0.4, 1.2, n)
    frame = _frame(rng, n, truth, pred)
    project = _project(tmp_path, "regression", frame)
    try:
        table = compute_slices(project, SliceQuery("m:v1", by=("line",), min_support=1))
    finally:
        project.close()
    assert table.overall["mae"][0] == pytest.approx(skm.mean_absolute_error(truth, pred), abs=1e-9)
    assert table.overall["rmse"][0] == pytest.approx(skm.root_mean_squared_error(truth, pred), abs=1e-9)
    assert table.overall["bias"][0] == pytest.approx(np.mean(pred - truth), abs=1e-9)
    for row in table.slices.iter_rows(named=True):
        m = (frame["line"] == row["line"]).to_numpy()
        assert row["mae"] == pytest.approx(skm.mean_absolute_error(truth[m], pred[m]), abs=1e-9)
        err = np.abs(truth[m] - pred[m])
        half = 1.959964 * err.std(ddof=1) / np.sqrt(m.sum())
        assert row["mae_low"] == pytest.approx(max(0.0, err.mean() - half), abs=1e-6)


def test_multiclass_metrics_match_scikit_learn(tmp_path: Path):
    rng = np.random.default_rng(8)
    n = 1200
    y = rng.integers(0, 4, n)
    yhat = np.where(rng.random(n) < 0.7, y, rng.integers(0, 4, n))
    frame = _frame(rng, n, y.astype(float), rng.random(n), predicted_label=yhat.astype(np.int32))
    project = _project(tmp_path, "multiclass", frame)
    try:
        table = compute_slices(project, SliceQuery("m:v1", by=("line",), min_support=1))
    finally:
        project.close()
    assert table.overall["accuracy"][0] == pytest.approx(skm.accuracy_score(y, yhat))
    assert table.overall["macro_f1"][0] == pytest.approx(skm.f1_score(y, yhat, average="macro"))
    for row in table.slices.iter_rows(named=True):
        m = (frame["line"] == row["line"]).to_numpy()
        assert row["macro_f1"] == pytest.approx(skm.f1_score(y[m], yhat[m], average="macro"))


@pytest.mark.slow  # 25 projects built and sliced (15 s); runs in the slow suite
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["A", "B"]), st.integers(0, 1), st.integers(0, 1000)),
                min_size=1, max_size=60))
def test_binary_counts_property(tmp_path_factory, rows):
    tmp = tmp_path_factory.mktemp("prop")
    lines, labels, scores = zip(*rows, strict=True)
    frame = pl.DataFrame({"record_id": [f"r{i}" for i in range(len(rows))],
                          "ts": [datetime(2026, 1, 1)] * len(rows), "score": [s / 1000 for s in scores],
                          "line": list(lines), "shift": ["x"] * len(rows), "label": [float(v) for v in labels]})
    project = _project(tmp, "binary", frame)
    try:
        table = compute_slices(project, SliceQuery("m:v1", by=("line",), min_support=1))
    finally:
        project.close()
    for row in table.slices.iter_rows(named=True):
        want = _sk_binary(frame.filter(pl.col("line") == row["line"]), 0.5)
        for metric in ("accuracy", "recall", "precision", "fpr", "auc", "brier"):
            assert _close(row[metric], want[metric]), metric


def test_bad_queries_are_explained(binary_case):
    project, _ = binary_case
    with pytest.raises(SliceError, match="Unknown slice dimension.*asset"):
        compute_slices(project, SliceQuery("m:v1", by=("asset",)))
    with pytest.raises(SliceError, match="No predictions are logged for m:v9"):
        compute_slices(project, SliceQuery("m:v9"))
    with pytest.raises(SliceError, match="Unknown time window"):
        compute_slices(project, SliceQuery("m:v1", window="fortnight"))
    assert resolve_version(project, "m") == "m:v1" == resolve_version(project, "Model")
    with pytest.raises(SliceError, match="Unknown model"):
        resolve_version(project, "nope")


def test_firmware_line_is_worst_for_recall_after_the_rollout_only(sample_folder: Path):
    rollout_week_start = START + timedelta(weeks=FIRMWARE_WEEK - 1)
    with Project.open(sample_folder, read_only=True) as project:
        after = compute_slices(project, SliceQuery("weld-defect:v1", by=("line",),
                                                   start=rollout_week_start + timedelta(weeks=1)))
        before = compute_slices(project, SliceQuery("weld-defect:v1", by=("line",), end=rollout_week_start))
        events = firmware_changes(project, "weld-defect:v1", (("line", FIRMWARE_LINE),))
    assert after.worst("recall")["line"][0] == FIRMWARE_LINE
    assert before.worst("recall")["line"][0] != FIRMWARE_LINE
    assert events["value"].to_list() == ["5.0.0"]
    assert (events["first_seen"][0] - START).days // 7 + 1 == FIRMWARE_WEEK


def test_without_auc_the_other_metrics_are_unchanged(binary_case):
    project, _ = binary_case
    full = compute_slices(project, SliceQuery("m:v1", by=("line",), min_support=1))
    fast = compute_slices(project, SliceQuery("m:v1", by=("line",), min_support=1, auc=False, latency=False))
    assert fast.slices["auc"].is_null().all()
    for metric in ("accuracy", "precision", "recall", "f1", "fpr", "brier", "recall_high"):
        assert fast.slices[metric].to_list() == pytest.approx(full.slices[metric].to_list(), nan_ok=True)


def test_worst_first_ranks_by_the_favourable_bound_not_the_point_estimate():
    """Hand-made table: L1's recall point (0.50) is the lowest, but with 6 labelled defects its interval reaches
    0.85; L2 (0.60, at most 0.66) is worse beyond doubt. For the false-alarm rate (lower is better) the lower bound
    ranks: L3 (at least 0.20) before L1 (0.30 but possibly 0.05)."""
    from app.core.analysis.slices import SliceTable

    slices = pl.DataFrame({"line": ["L1", "L2", "L3"], "recall": [0.50, 0.60, 0.90], "recall_low": [0.19, 0.54, 0.86],
                           "recall_high": [0.85, 0.66, 0.93], "fpr": [0.30, 0.10, 0.25],
                           "fpr_low": [0.05, 0.08, 0.20], "fpr_high": [0.70, 0.12, 0.30]})
    overall = pl.DataFrame({"recall": [0.70], "fpr": [0.20]})
    table = SliceTable(query=None, task="binary", threshold=0.5, metrics=("recall", "fpr"), overall=overall,
                       slices=slices)
    recall = table.worst("recall")
    assert recall["line"].to_list() == ["L2", "L1", "L3"] and recall["rank"].to_list() == [1, 2, 3]
    assert recall["vs_overall"].to_list() == pytest.approx([-0.10, -0.20, 0.20])
    assert table.worst("fpr")["line"].to_list() == ["L3", "L2", "L1"]
    # Point estimates alone would say L1 first for recall and L1 first for fpr: the bound is what decides.
    assert slices.sort("recall")["line"][0] == "L1" and slices.sort("fpr", descending=True)["line"][0] == "L1"
