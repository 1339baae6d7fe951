"""Tricky inputs an outside evaluation found stored wrongly, refused misleadingly or crashing: empty scores, the usual
missing-value spellings, non-binary decisions, model outputs in an inputs-only file, label corrections out of order,
duplicated labels, ragged CSV rows, a zeroed Parquet file, unsliced drift with a categorical feature and alerts on a
log sliced by something other than `line`."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from app.cli import main
from app.core.store.ingest import PredictionMapping, import_labels, import_predictions
from app.core.store.project import Project
from tests.helpers import write_csv
from tests.test_ingest import expect_refused

HEAD = "record_id,ts,model_version,score,line,temp,mat"


def test_an_empty_score_is_refused_with_its_row_never_counted(empty_project: Project, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "log.csv", HEAD, "r1,2026-01-01 00:00,m:v1,0.9,L1,1.5,steel",
                    "r2,2026-01-01 01:00,m:v1,,L1,2.5,alu")
    expect_refused(empty_project, src, "row 2 (line 3 of the file)", "column 'score' (score) is empty",
                   "the field is empty")
    frame = pl.DataFrame({"record_id": ["p1", "p2"], "ts": [datetime(2026, 1, 1)] * 2, "model_version": ["m:v1"] * 2,
                          "score": [0.4, None], "line": ["L1", "L1"]})
    frame.write_parquet(tmp_path / "log.parquet")
    expect_refused(empty_project.folder, tmp_path / "log.parquet", "row 2", "column 'score' (score) is empty")


@pytest.mark.parametrize("missing", ["n/a", "NA", "-", "NULL", "", "N/A", "?"])
def test_missing_value_spellings_do_not_turn_a_numeric_feature_into_a_category(empty_project: Project,
                                                                               tmp_path: Path, missing: str) -> None:
    src = write_csv(tmp_path / "log.csv", HEAD, "r1,2026-01-01 00:00,m:v1,0.9,L1,1.5,steel",
                    f"r2,2026-01-01 01:00,m:v1,0.2,L1,{missing},alu", "r3,2026-01-01 02:00,m:v1,0.3,L2,3.25,alu")
    import_predictions(empty_project, src)
    types = dict(empty_project.con.execute("SELECT name, dtype FROM log_columns").fetchall())
    assert types["temp"] == "DOUBLE" and types["mat"] == "VARCHAR"
    values = empty_project.con.execute("SELECT temp FROM predictions ORDER BY record_id").fetchall()
    assert [v[0] for v in values] == [1.5, None, 3.25]


def test_parquet_text_columns_holding_numbers_become_numeric(empty_project: Project, tmp_path: Path) -> None:
    frame = pl.DataFrame({"record_id": ["a", "b", "c"], "ts": [datetime(2026, 1, 1)] * 3,
                          "model_version": ["m:v1"] * 3, "score": [0.1, 0.2, 0.3], "line": ["L1"] * 3,
                          "temp": ["1.5", "n/a", "2.75"], "mat": ["x", "y", "n/a"]})
    frame.write_parquet(tmp_path / "log.parquet")
    import_predictions(empty_project, tmp_path / "log.parquet")
    types = dict(empty_project.con.execute("SELECT name, dtype FROM log_columns").fetchall())
    assert types["temp"] == "DOUBLE" and types["mat"] == "VARCHAR"
    assert [r[0] for r in empty_project.con.execute("SELECT temp FROM predictions ORDER BY record_id").fetchall()] \
        == [1.5, None, 2.75]


def test_decimal_commas_are_still_refused_beside_missing_values(empty_project: Project, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "log.csv", "record_id,ts,model_version,score,line,temp",
                    "r1,2026-01-01 00:00,m:v1,0.9,L1,\"1,5\"", "r2,2026-01-01 01:00,m:v1,0.2,L1,n/a")
    expect_refused(empty_project, src, "decimal comma", "'temp'")


def test_a_binary_decision_other_than_0_or_1_is_refused(empty_project: Project, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "log.csv", "record_id,ts,model_version,score,pred,line",
                    "r1,2026-01-01 00:00,m:v1,0.9,1,L1", "r2,2026-01-01 01:00,m:v1,0.2,2,L1")
    expect_refused(empty_project, src, "row 2", "column 'pred' (predicted label) is not 0 or 1", "value '2'")


def test_a_model_output_in_an_inputs_only_file_is_refused(empty_project: Project, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "inputs.csv", "record_id,ts,pred,line,temp", "x1,2026-01-01 00:00,1,L1,1.5")
    mapping = PredictionMapping(model_version=None, score=None, slices={"line": "line"})
    expect_refused(empty_project, src, "imported as inputs only", "'pred' hold a model's output", mapping=mapping)
    listed = PredictionMapping(model_version=None, score=None, slices={"line": "line"}, features=("temp",))
    with Project.open(empty_project.folder) as project:
        assert import_predictions(project, src, listed).rows == 1


def _log(project: Project, tmp_path: Path, n: int = 4) -> None:
    rows = [f"r{i},2026-01-01 0{i}:00,m:v1,0.{i + 1},L1,1.{i},steel" for i in range(n)]
    import_predictions(project, write_csv(tmp_path / "log.csv", HEAD, *rows))


def test_the_newest_label_wins_whatever_the_import_order(empty_project: Project, tmp_path: Path) -> None:
    _log(empty_project, tmp_path)
    newer = write_csv(tmp_path / "newer.csv", "record_id,label,labelled_at", "r0,1,2026-02-10", "r1,0,2026-02-10")
    older = write_csv(tmp_path / "older.csv", "record_id,label,labelled_at", "r0,0,2026-02-01", "r1,1,2026-02-20",
                      "r2,1,2026-02-01")
    import_labels(empty_project, newer)
    result = import_labels(empty_project, older)
    assert (result.replaced, result.older_than_stored, result.rows) == (1, 1, 2)
    # The oracle: for each record, the label with the latest labelled_at over both files.
    both = pl.concat([pl.read_csv(newer), pl.read_csv(older)]).sort("labelled_at").group_by("record_id").last()
    expected = dict(zip(both["record_id"], both["label"].cast(pl.Float64), strict=True))
    got = dict(empty_project.con.execute("SELECT record_id, label FROM labels").fetchall())
    assert got == expected


def test_a_record_labelled_twice_in_one_file_names_both_rows(empty_project: Project, tmp_path: Path) -> None:
    _log(empty_project, tmp_path)
    src = write_csv(tmp_path / "labels.csv", "record_id,label", "r0,1", "r1,0", "r0,0")
    expect_refused(empty_project, src, "record id 'r0' is labelled 2 times, in row 1 (line 2 of the file) and "
                                       "row 3 (line 4 of the file)", labels=True)


@pytest.mark.parametrize(("extra", "words"), [(",surplus", "7 fields, but the header has 6"),
                                              ("", "5 fields, but the header has 6")])
def test_a_ragged_csv_row_is_named_with_its_field_count(empty_project: Project, tmp_path: Path, extra: str,
                                                        words: str) -> None:
    head = "record_id,ts,model_version,score,line,temp"
    short = "r2,2026-01-01 01:00,m:v1,0.2,L1" + (",2.5" + extra if extra else "")
    src = write_csv(tmp_path / "log.csv", head, "r1,2026-01-01 00:00,m:v1,0.9,L1,1.5", short,
                    "r3,2026-01-01 02:00,m:v1,0.3,L2,3.5")
    expect_refused(empty_project, src, "log.csv, line 3:", words)


def test_a_zeroed_parquet_file_is_a_clean_error(empty_project: Project, tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"record_id": [f"r{i}" for i in range(5000)], "ts": [datetime(2026, 1, 1)] * 5000,
                          "model_version": ["m:v1"] * 5000, "score": rng.random(5000), "temp": rng.normal(size=5000)})
    frame.write_parquet(tmp_path / "log.parquet")
    data = bytearray((tmp_path / "log.parquet").read_bytes())
    data[200:8000] = bytes(7800)
    (tmp_path / "bad.parquet").write_bytes(bytes(data))
    folder = empty_project.folder
    empty_project.close()
    assert main(["ingest", str(folder), str(tmp_path / "bad.parquet"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "bad.parquet" in err and "Traceback" not in err


@pytest.fixture
def asset_project(tmp_path: Path) -> Project:
    """A log sliced by asset and shift only (no line), a numeric and a categorical feature; A2's temperature
    shifts in April."""
    rng = np.random.default_rng(11)
    n = 6000
    ts = [datetime(2026, 3, 1) + timedelta(hours=int(h)) for h in rng.integers(0, 24 * 60, n)]
    asset = rng.choice(["A1", "A2", "A3"], n)
    april = np.array([t.month == 4 for t in ts])
    frame = pl.DataFrame({"record_id": [f"s{i}" for i in range(n)], "ts": ts, "model_version": "m:v1",
                          "score": rng.random(n), "asset": asset, "shift": rng.choice(["early", "late"], n),
                          "temp": rng.normal(50, 5, n) + np.where((asset == "A2") & april, 8.0, 0.0),
                          "mat": np.where(april & (rng.random(n) < 0.3), "alu", rng.choice(["steel", "alu"], n))})
    frame.write_parquet(tmp_path / "log.parquet")
    project = Project.create(tmp_path / "proj", "assets", site="P1", slice_dimensions=("asset", "shift"))
    import_predictions(project, tmp_path / "log.parquet")
    yield project
    project.close()


MARCH, APRIL = (datetime(2026, 3, 1), datetime(2026, 4, 1)), (datetime(2026, 4, 1), datetime(2026, 5, 1))


def test_unsliced_drift_of_a_categorical_feature_matches_scipy(asset_project: Project) -> None:
    from app.core.analysis.drift import DriftQuery, compute_drift

    rows = compute_drift(asset_project, DriftQuery(MARCH, APRIL, by=())).rows
    mat = rows.filter(pl.col("feature") == "mat").to_dicts()[0]
    counts = asset_project.con.execute(
        "SELECT mat, count(*) FILTER (WHERE ts < '2026-04-01'), count(*) FILTER (WHERE ts >= '2026-04-01') "
        "FROM predictions GROUP BY 1 ORDER BY 1").fetchall()
    table = np.array([[r[1] for r in counts], [r[2] for r in counts]])
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    assert mat["chi2"] == pytest.approx(chi2, rel=1e-12) and mat["chi2_p"] == pytest.approx(p, rel=1e-9)


def test_alerts_follow_the_projects_slice_dimensions(asset_project: Project) -> None:
    from app.core.analysis.alerts import alert_dimension, evaluate_alerts

    assert alert_dimension(asset_project) == "asset"
    evaluate_alerts(asset_project, MARCH, APRIL)
    alerts = asset_project.con.execute("SELECT rule, scope, subject FROM alerts WHERE rule = 'drift'").fetchall()
    assert ("drift", "asset=A2", "temp") in alerts
    assert not any(scope in ("asset=A1", "asset=A3") and subject == "temp" for _, scope, subject in alerts)


def test_a_mapping_typo_is_answered_from_the_header_before_any_row_is_read(empty_project: Project, tmp_path: Path,
                                                                          monkeypatch) -> None:
    from app.core.errors import IngestError
    from app.core.store import ingest

    src = write_csv(tmp_path / "log.csv", HEAD, *[f"r{i},2026-01-01 00:00,m:v1,0.5,L1,1.5,steel" for i in range(50)])

    def never(*_args, **_kwargs):
        raise AssertionError("the file was read although the mapping was wrong")

    monkeypatch.setattr(ingest, "BackgroundDigest", never)
    monkeypatch.setattr(ingest, "stage", never)
    with pytest.raises(IngestError, match="has no column 'scor' \\(score\\)"):
        import_predictions(empty_project, src, PredictionMapping(score="scor", slices={"line": "line"}))
    with pytest.raises(IngestError, match="has no column 'verdict' \\(label\\)"):
        from app.core.store.ingest import LabelMapping

        import_labels(empty_project, src, LabelMapping(label="verdict"))


def test_a_time_in_a_daylight_saving_change_is_stored_and_said(empty_project: Project, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "log.csv", "record_id,ts,model_version,score,line",
                    "r1,2026-10-25 02:30:00 Europe/Berlin,m:v1,0.9,L1", "r2,2026-03-29 02:30:00 Europe/Berlin,m:v1,0.3,L1",
                    "r3,2026-06-01 10:00:00 Europe/Berlin,m:v1,0.2,L2")
    result = import_predictions(empty_project, src)
    stored = dict(empty_project.con.execute("SELECT record_id, ts FROM predictions").fetchall())
    # Hand-worked: 02:30 on 25 Oct happens at +02 (00:30 UTC) and +01 (01:30 UTC); the later one is kept.
    # 02:30 on 29 Mar never happens (clocks jump 02:00 -> 03:00): read as 03:30 CEST = 01:30 UTC.
    assert stored == {"r1": datetime(2026, 10, 25, 1, 30), "r2": datetime(2026, 3, 29, 1, 30),
                      "r3": datetime(2026, 6, 1, 8, 0)}
    assert len(result.notes) == 2
    assert "repeats and were stored as the later of the two instants, e.g. row 1" in result.notes[0]
    assert "skips (they never happened)" in result.notes[1] and "row 2" in result.notes[1]
    details = empty_project.con.execute("SELECT details_json FROM audit_log WHERE action = 'predictions.import'"
                                        ).fetchall()[0][0]
    assert "daylight-saving" in details


@pytest.mark.parametrize("where", [1, 29_999])
def test_a_missing_spelling_inside_or_past_the_sniffers_sample_reads_as_missing(empty_project: Project,
                                                                                 tmp_path: Path, where: int) -> None:
    """DuckDB types a CSV from a sample of its rows; an 'n/a' in the sample or far past it gives the same columns."""
    n = 30_000
    rng = np.random.default_rng(3)
    temp = rng.normal(300, 5, n).round(3).astype(str)
    mat = rng.choice(["steel", "alu"], n)
    temp[where], mat[where] = "n/a", "NA"
    frame = pl.DataFrame({"record_id": [f"r{i:05d}" for i in range(n)], "ts": ["2026-01-01 00:00:00"] * n,
                          "model_version": ["m:v1"] * n, "score": rng.random(n).round(4), "line": ["L1"] * n,
                          "temp": temp, "mat": mat})
    frame.write_csv(tmp_path / "log.csv")
    import_predictions(empty_project, tmp_path / "log.csv")
    types = dict(empty_project.con.execute("SELECT name, dtype FROM log_columns").fetchall())
    assert types["temp"] == "DOUBLE" and types["mat"] == "VARCHAR"
    stored = empty_project.con.sql("SELECT temp, mat FROM predictions ORDER BY record_id").pl()
    assert stored["temp"].null_count() == 1 and stored["temp"][where] is None
    assert stored["mat"].null_count() == 1 and stored["mat"][where] is None
    expected = np.delete(temp, where).astype(float)
    assert np.array_equal(stored["temp"].drop_nulls().to_numpy(), expected)
