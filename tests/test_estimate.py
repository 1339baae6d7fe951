"""Label-free estimation (CBPE) against NannyML's own numbers, its band against the realized metric, bad input."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.analysis.estimate import EstimateError, EstimateQuery, compute_estimates
from app.core.stats.isotonic import expected_calibration_error, fit_isotonic
from app.core.store.ingest import LabelMapping, PredictionMapping, import_labels, import_predictions
from app.core.store.project import Project
from app.sample.plant import FIRMWARE_LINE, FIRMWARE_WEEK, START

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "cbpe"))
from case import REFERENCE_WEEKS, fingerprint, generate  # noqa: E402

NANNYML = Path(__file__).parent / "fixtures" / "cbpe" / "nannyml-0.13.1.json"
REF_START = datetime(2026, 3, 2)
REF_END = REF_START + timedelta(days=7 * REFERENCE_WEEKS)
OURS = {"roc_auc": "auc", "f1": "f1", "precision": "precision", "recall": "recall", "accuracy": "accuracy"}


def _project(folder: Path, columns: dict[str, np.ndarray], dimensions=("line",), score_kind=None) -> Project:
    """A project whose log (model m:v1, unregistered) and labels are the given columns."""
    columns = {**columns, "ts": columns["ts"].astype("datetime64[us]")}
    frame = pl.DataFrame({k: v for k, v in columns.items() if k != "label"}).with_columns(
        model_version=pl.lit("m:v1"))
    folder.mkdir(parents=True)
    frame.write_parquet(folder / "log.parquet")
    labels = pl.DataFrame({"record_id": columns["record_id"], "label": columns["label"],
                           "ts": columns["ts"]}).filter(pl.col("label").is_not_nan()).select(
        "record_id", "label", (pl.col("ts") + pl.duration(days=10)).alias("labelled_at"))
    labels.write_parquet(folder / "labels.parquet")
    project = Project.create(folder / "p", "estimate", slice_dimensions=dimensions)
    import_predictions(project, folder / "log.parquet", PredictionMapping(
        slices={d: d for d in dimensions}, features=(), predicted_label="predicted_label", score_kind=score_kind))
    import_labels(project, folder / "labels.parquet", LabelMapping())
    return project


@pytest.fixture(scope="module")
def nannyml_case(tmp_path_factory):
    columns = generate()
    reference = json.loads(NANNYML.read_text())
    assert fingerprint(columns) == reference["fingerprint"], (
        "the seeded case no longer produces the rows NannyML saw (numpy changed its stream?): rerun "
        "tests/fixtures/cbpe/nannyml_reference.py in the NannyML venv")
    project = _project(tmp_path_factory.mktemp("cbpe") / "case", columns)
    table = compute_estimates(project, EstimateQuery("m:v1", (REF_START, REF_END), by=("line",)))
    folder = project.folder
    project.close()
    yield table, reference, folder


def test_estimates_equal_nannyml_cbpe_per_line_and_week(nannyml_case):
    table, reference, _ = nannyml_case
    compared = 0
    for line, expected in reference["lines"].items():
        calibration = next(c for c in table.calibration if c.key == (line,))
        assert calibration.calibrated == expected["needs_calibration"], line
        ours = table.rows.filter(pl.col("line") == line).sort("period")
        assert [str(d) for d in ours["period"]] == [c["start"] for c in expected["chunks"]]
        for row, chunk in zip(ours.iter_rows(named=True), expected["chunks"], strict=True):
            assert row["n"] == chunk["rows"]
            assert row["in_reference"] == (chunk["period"] == "reference")
            for theirs, mine in OURS.items():
                for ours_key, their_key in ((mine, "value"), (f"{mine}_realized", "realized"),
                                            (f"{mine}_lower", "lower_confidence_boundary"),
                                            (f"{mine}_upper", "upper_confidence_boundary")):
                    want = chunk[theirs][their_key]
                    if want is None:
                        assert row[ours_key] is None, (line, row["period"], ours_key)
                    else:
                        assert row[ours_key] == pytest.approx(want, abs=1e-6), (line, row["period"], ours_key)
                        compared += 1
            spec = chunk["specificity"]  # the false-alarm rate is 1 - specificity, its band mirrored
            assert row["fpr"] == pytest.approx(1 - spec["value"], abs=1e-6)
            assert row["fpr_lower"] == pytest.approx(1 - spec["upper_confidence_boundary"], abs=1e-6)
            assert row["fpr_upper"] == pytest.approx(1 - spec["lower_confidence_boundary"], abs=1e-6)
            if spec["realized"] is not None:
                assert row["fpr_realized"] == pytest.approx(1 - spec["realized"], abs=1e-6)
    assert compared > 500


def test_under_covariate_shift_the_estimate_tracks_the_realized_metric_within_its_band(nannyml_case):
    table, _, _ = nannyml_case
    labelled = table.rows.filter(~pl.col("in_reference") & (pl.col("labelled") > 0))
    assert labelled.height == 12  # weeks 5-8 on three lines
    for m in ("auc", "f1", "precision", "recall", "accuracy", "fpr"):
        inside = labelled.filter(pl.col(f"{m}_realized").is_between(pl.col(f"{m}_lower"), pl.col(f"{m}_upper")))
        assert inside.height == labelled.height, m
    assert not table.rows["gap_flagged"].any()
    # the unlabelled weeks still get an estimate, and recall visibly moves with the drifted input
    unlabelled = table.rows.filter(pl.col("labelled") == 0)
    assert unlabelled.height == 12 and unlabelled["recall"].null_count() == 0
    first, last = (table.rows.filter(pl.col("line") == "C").sort("period")["recall"][i] for i in (0, -1))
    assert last > first + 0.1


def test_a_gap_is_flagged_when_the_scores_stop_meaning_what_they_did(tmp_path: Path):
    columns = generate(seed=7)
    late = (columns["ts"] >= np.datetime64("2026-04-13")) & (columns["line"] == "B")
    # a sensor fault: from week 7 line B's defects look like good parts to the model (labels flip to 1 at
    # random, the scores do not follow), so its realized recall falls away from the estimate
    flip = late & (np.random.default_rng(1).random(len(late)) < 0.35) & ~np.isnan(columns["label"])
    columns["label"] = np.where(flip, 1.0, columns["label"])
    project = _project(tmp_path / "gap", columns)
    try:
        table = compute_estimates(project, EstimateQuery("m:v1", (REF_START, REF_END), by=("line",)))
    finally:
        project.close()
    flagged = table.flagged()
    assert set(flagged["line"]) == {"B"}
    assert {str(d) for d in flagged["period"]} == {"2026-04-13", "2026-04-20"}
    assert all("auc" in m for m in flagged["gap_metrics"])
    assert (flagged["recall_realized"] < flagged["recall"] - 0.1).all()


def _small(tmp_path: Path, score_kind=None, **change) -> Project:
    columns = generate()
    keep = columns["line"] == "A"
    columns = {k: v[keep] for k, v in columns.items()}
    columns.update(change)
    return _project(tmp_path / "small", columns, score_kind=score_kind)


def test_scores_that_are_not_probabilities_are_refused(tmp_path: Path):
    columns = generate()
    # a margin logged as a plain value (imported with --score-kind value): ingest keeps it, estimation cannot use it
    project = _small(tmp_path, "value", score=np.log(columns["score"][columns["line"] == "A"] / 0.5))
    try:
        before = project.cursor().execute("SELECT count(*) FROM predictions").fetchall()
        with pytest.raises(EstimateError, match=r"needs probabilities.*outside \[0, 1\]"):
            compute_estimates(project, EstimateQuery("m:v1", (REF_START, REF_END)))
        assert project.cursor().execute("SELECT count(*) FROM predictions").fetchall() == before
    finally:
        project.close()


def test_a_reference_without_labels_and_a_thin_slice_say_what_estimation_needs(tmp_path: Path):
    project = _small(tmp_path)
    try:
        with pytest.raises(EstimateError, match="(?s)no labelled predictions.*choose a window whose labels have arrived"):
            compute_estimates(project, EstimateQuery("m:v1", (datetime(2026, 5, 11), datetime(2026, 5, 25))))
        table = compute_estimates(project, EstimateQuery("m:v1", (REF_START, REF_START + timedelta(hours=20)),
                                                         by=("line",)))
        assert table.rows["status"].str.contains("estimation needs at least 200").all()
        assert table.rows["recall"].null_count() == table.rows.height  # nothing shown as if it were measured
        assert table.rows["recall_realized"].null_count() < table.rows.height  # measured values stay
        few = compute_estimates(project, EstimateQuery("m:v1", (REF_START, REF_END), window="day", min_rows=300))
        assert few.rows["status"].str.starts_with("too few rows").all()
        assert few.rows["auc"].null_count() == few.rows.height
    finally:
        project.close()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(1, 4), st.booleans()), min_size=1, max_size=60))
def test_isotonic_fit_equals_scikit_learn_on_grouped_points(points):
    from sklearn.isotonic import IsotonicRegression

    scores = np.array([p[0] / 30 for p in points])
    rows = np.array([p[1] for p in points])
    positives = np.array([p[1] if p[2] else 0 for p in points])
    # the same rows one by one, as scikit-learn sees them
    x = np.repeat(scores, rows)
    y = np.repeat(positives / rows, rows)
    reference = IsotonicRegression(out_of_bounds="clip").fit(x, y)
    probe = np.linspace(-0.1, 1.1, 97)
    assert np.allclose(fit_isotonic(scores, rows, positives)(probe), reference.predict(probe), atol=1e-12)


def test_expected_calibration_error_hand_worked():
    # 4 rows in 2 equal-count bins: p (0.1, 0.2 | 0.7, 0.9), labels (0, 1 | 1, 1)
    # bin 1: |0.15 - 0.5| = 0.35, bin 2: |0.8 - 1.0| = 0.2 -> ECE = 0.5 * 0.35 + 0.5 * 0.2 = 0.275
    p = np.array([0.7, 0.1, 0.9, 0.2])
    assert expected_calibration_error(p, np.ones(4), np.array([1, 0, 1, 1]), bins=2) == pytest.approx(0.275)
    # the same rows as two weighted points straddling the bin edge split in proportion
    assert expected_calibration_error(np.array([0.2, 0.8]), np.array([3, 1]), np.array([1, 1]), bins=2) == \
        pytest.approx(0.5 * abs(0.2 - 1 / 3) + 0.5 * abs(0.5 - 0.5 * (1 / 3) - 0.5 * 1))


def test_the_sample_story_from_the_command_line(sample_folder: Path):
    """`lineproof estimate` as a user runs it: the firmware line's gap is flagged once its labels arrive."""
    import subprocess

    run = subprocess.run([sys.executable, "-m", "app", "estimate", str(sample_folder), "--model", "weld-defect:v1",
                          "--by", "line", "--window", "month", "--reference", "2026-05-04..2026-07-27",
                          "--format", "csv", "-q"],
                         capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1])
    assert run.returncode == 0, run.stderr
    rows = pl.read_csv(run.stdout.encode(), try_parse_dates=True)
    assert {"recall", "recall_lower", "recall_upper", "recall_realized", "auc_realized"} <= set(rows.columns)
    month_after = (START + timedelta(weeks=FIRMWARE_WEEK)).date().replace(day=1)  # the rollout's month
    flagged = rows.filter(pl.col("gap_flagged"))
    assert flagged.select("line", "period").rows() == [(FIRMWARE_LINE, month_after)]
    # the model still believes it finds the defects it no longer finds
    assert flagged["recall_realized"][0] < flagged["recall_lower"][0]
    waiting = rows.filter((pl.col("labelled") < 0.6 * pl.col("n")) & (pl.col("n") >= 300))
    assert waiting.height >= 12 and waiting["recall"].null_count() == 0  # months still waiting for labels
    shown = subprocess.run([sys.executable, "-m", "app", "estimate", str(sample_folder), "--model", "weld-defect:v1",
                            "--reference", "2026-10-26..2026-11-02", "-q"], capture_output=True, text=True,
                           timeout=300, cwd=Path(__file__).parents[1])
    assert shown.returncode == 2 and "has no labelled predictions" in shown.stderr and not shown.stdout


def test_bounded_mode_stays_within_its_bounds_and_auto_picks_it_for_large_logs(nannyml_case, monkeypatch):
    import app.core.analysis.estimate as estimate

    table, _, folder = nannyml_case
    project = Project.open(folder, read_only=True)
    try:
        monkeypatch.setattr(estimate, "EXACT_MAX_ROWS", 1000)
        bounded = compute_estimates(project, EstimateQuery("m:v1", (REF_START, REF_END), by=("line",)))
    finally:
        project.close()
    assert bounded.bounded and not table.bounded and "score bins" in " ".join(bounded.notes)
    exact, rows = table.rows.sort("line", "period"), bounded.rows.sort("line", "period")
    # counted metrics do not depend on the bins; the realized ROC AUC moves by at most its tie bound
    assert (exact["recall_realized"] - rows["recall_realized"]).abs().max() < 1e-12
    assert ((exact["auc_realized"] - rows["auc_realized"]).abs() <= rows["auc_realized_max_error"] + 1e-12).all()
    # estimates: the binned map and a calibration fitted on 3-decimal reference scores stay close to exact
    for m in ("auc", "recall", "precision", "f1", "accuracy", "fpr"):
        assert (exact[m] - rows[m]).abs().max() < 0.01, m
    assert rows["count_max_error"].max() > 0 and exact["count_max_error"].max() == 0


def test_the_packet_carries_production_estimates_per_line(sample_folder: Path):
    """The validation packet's evidence: the production model's recall estimated per line over the last weeks,
    with the labelled rows counted independently."""
    import duckdb

    from app.core.packet.evidence import RECENT_DAYS, _recent_estimates

    with Project.open(sample_folder, read_only=True) as project:
        evidence = _recent_estimates(project, "weld-defect:v1")
        missing = _recent_estimates(project, "seam-vision:v1")
    assert evidence["computed"] and not missing["computed"] and "no prediction log" in missing["reason"]
    rows = {r["line"]: r for r in evidence["rows"]}
    con = duckdb.connect(str(sample_folder / "project.duckdb"), read_only=True)
    counted = dict(con.execute(f"""SELECT p.line, count(l.label) FROM predictions p LEFT JOIN labels l USING (record_id)
                                  WHERE p.ts >= (SELECT max(ts) FROM predictions) - INTERVAL {RECENT_DAYS} DAY
                                  GROUP BY 1""").fetchall())
    con.close()
    assert {line: r["labelled"] for line, r in rows.items()} == counted
    assert all(r["recall"] is not None and r["recall_lower"] <= r["recall"] <= r["recall_upper"] for r in rows.values())


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_a_model_that_is_not_a_binary_classifier_is_refused(tmp_path: Path, task: str):
    import onnx
    from onnx import TensorProto, helper

    from app.core.models.model_import import import_model

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    columns = generate()
    keep = columns["line"] == "C"
    frame = pl.DataFrame({"record_id": columns["record_id"][keep], "ts": columns["ts"][keep].astype("datetime64[us]"),
                          "score": columns["score"][keep] * (3 if task == "multiclass" else 40.0),
                          "model_version": "m:v1"})
    frame.write_parquet(tmp_path / "log.parquet")
    with Project.create(tmp_path / "p", "tasks") as project:
        import_model(project, tmp_path / "m.onnx", "m", "v1", new_model={"name": "m", "task": task})
        import_predictions(project, tmp_path / "log.parquet", PredictionMapping(
            features=(), score_kind="value"))
        with pytest.raises(EstimateError, match=f"needs a binary classifier; m:v1 is a {task} model"):
            compute_estimates(project, EstimateQuery("m:v1", (REF_START, REF_END)))
