"""Importing prediction logs and labels: values land exactly, and every bad input is refused unchanged."""

from __future__ import annotations

import math
import threading
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from app.core.errors import IngestError
from app.core.store.ingest import LabelMapping, PredictionMapping, import_labels, import_predictions
from app.core.store.project import Project
from tests.helpers import project_state, write_csv

HEADER = "record_id,ts,model_version,score,plant,line,current_a,material"


def good_rows(n: int = 5, start: int = 0) -> list[str]:
    return [f"r{i},2026-03-0{1 + i % 9} 0{i % 10}:15:00,weld:v1,{(i % 10) / 10:.1f},P1,L{i % 3},{200 + i}.5,steel"
            for i in range(start, start + n)]


def reopen(project: Project) -> Project:
    folder = project.folder
    project.close()
    return Project.open(folder)


def test_csv_import_lands_every_value(empty_project: Project, tmp_path: Path):
    src = write_csv(tmp_path / "log.csv", HEADER, *good_rows(6))
    result = import_predictions(empty_project, src)
    assert result.rows == 6
    assert set(result.new_columns) == {"plant", "line", "current_a", "material"}
    expected = pl.read_csv(src, try_parse_dates=True).sort("record_id")
    got = empty_project.con.sql("SELECT record_id, ts, version_id, score, plant, line, current_a, material "
                                "FROM predictions ORDER BY record_id").pl()
    assert got["record_id"].to_list() == expected["record_id"].to_list()
    assert got["ts"].to_list() == expected["ts"].to_list()
    assert got["score"].to_list() == expected["score"].to_list()
    assert got["current_a"].to_list() == expected["current_a"].to_list()
    assert got["material"].to_list() == ["steel"] * 6
    types = dict(empty_project.con.execute("SELECT name, dtype FROM log_columns").fetchall())
    assert types == {"plant": "VARCHAR", "line": "VARCHAR", "current_a": "DOUBLE", "material": "VARCHAR"}
    audit = empty_project.con.execute("SELECT action, target FROM audit_log ORDER BY seq").fetchall()
    assert audit[-1] == ("predictions.import", "log.csv")


def test_parquet_import_with_a_column_mapping(empty_project: Project, tmp_path: Path):
    rng = np.random.default_rng(3)
    frame = pl.DataFrame({
        "PartSerial": [f"S{i:05d}" for i in range(1000)],
        "Produced": pl.datetime_range(pl.datetime(2026, 1, 1), pl.datetime(2026, 1, 1) + pl.duration(minutes=999),
                                      "1m", eager=True),
        "Model": ["weld:v2"] * 1000, "Proba": rng.random(1000), "Cell": rng.choice(["A", "B"], 1000),
        "temp": rng.normal(180, 20, 1000)})
    src = tmp_path / "log.parquet"
    frame.write_parquet(src)
    mapping = PredictionMapping(record_id="PartSerial", timestamp="Produced", model_version="Model", score="Proba",
                                slices={"line": "Cell"})
    assert import_predictions(empty_project, src, mapping).rows == 1000
    got = empty_project.con.sql("SELECT record_id, score, line, temp FROM predictions ORDER BY record_id").pl()
    assert got["score"].to_list() == frame["Proba"].to_list()
    assert got["line"].to_list() == frame["Cell"].to_list()
    assert np.allclose(got["temp"].to_numpy(), frame["temp"].to_numpy())


def expect_refused(project: Project | Path, src: Path, *patterns: str, mapping=None, labels: bool = False,
                   **kw) -> str:
    """Assert the import fails with a message containing `patterns` and leaves the project byte-identical."""
    if isinstance(project, Project):
        folder = project.folder
        project.close()
    else:
        folder = project
    before = project_state(folder)
    project = Project.open(folder)
    try:
        with pytest.raises(IngestError) as info:
            if labels:
                import_labels(project, src, mapping, **kw)
            else:
                import_predictions(project, src, mapping, **kw)
    finally:
        project.close()
    assert project_state(folder) == before, "a refused import changed the project"
    message = str(info.value)
    for pattern in patterns:
        assert pattern in message, message
    assert "nothing was imported" in message.lower() or "Nothing was imported" in message
    return message


def test_missing_column_is_named(empty_project: Project, tmp_path: Path):
    src = write_csv(tmp_path / "log.csv", "record_id,ts,model_version,plant", "a,2026-01-01,v1,P1")
    expect_refused(empty_project, src, "log.csv has no column 'score' (score)", "Its columns are: record_id")


def test_wrong_type_names_row_and_column(empty_project: Project, tmp_path: Path):
    rows = good_rows(5)
    rows[3] = rows[3].replace(",203.5,", ",2O3.5,")  # letter O typed for a zero, data row 4
    src = write_csv(tmp_path / "log.csv", HEADER, *rows)
    import_predictions(empty_project, write_csv(tmp_path / "first.csv", HEADER, *good_rows(2, start=100)))
    expect_refused(empty_project, src, "row 4 (line 5 of the file)", "'current_a'", "'2O3.5'")


def test_bad_timestamp_names_row(empty_project: Project, tmp_path: Path):
    rows = good_rows(3)
    rows[1] = "r1,2026-13-45 10:00:00,weld:v1,0.5,P1,L1,200,steel"
    expect_refused(empty_project, write_csv(tmp_path / "log.csv", HEADER, *rows), "row 2", "'ts' (timestamp)")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_nan_and_inf_scores_are_refused(empty_project: Project, tmp_path: Path, value: str):
    rows = good_rows(4)
    rows[2] = f"r2,2026-03-03 02:15:00,weld:v1,{value},P1,L2,202.5,steel"
    expect_refused(empty_project, write_csv(tmp_path / "log.csv", HEADER, *rows), "row 3", "NaN or infinite")


def test_nan_score_in_parquet_is_refused(empty_project: Project, tmp_path: Path):
    src = tmp_path / "log.parquet"
    pl.DataFrame({"record_id": ["a", "b"], "ts": [datetime(2026, 1, 1), datetime(2026, 1, 2)],
                  "model_version": ["v", "v"], "score": [0.2, math.nan]}).write_parquet(src)
    expect_refused(empty_project, src, "log.parquet, row 2", "NaN or infinite")


def test_empty_files_are_refused(empty_project: Project, tmp_path: Path):
    (tmp_path / "zero.csv").write_bytes(b"")
    expect_refused(empty_project, tmp_path / "zero.csv", "zero.csv is empty")
    expect_refused(empty_project.folder, write_csv(tmp_path / "header.csv", HEADER),
                   "header.csv has a header but no data rows")


def test_files_that_are_not_csv_or_parquet_are_refused(empty_project: Project, tmp_path: Path):
    png = tmp_path / "photo.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    expect_refused(empty_project, png, "photo.csv is not a CSV or Parquet file")
    fake = tmp_path / "log.parquet"
    fake.write_text("record_id,ts\n")
    expect_refused(empty_project.folder, fake, "log.parquet is named .parquet but is not a Parquet")
    good = tmp_path / "ok.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(good)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(good.read_bytes()[:-20])
    expect_refused(empty_project.folder, cut, "footer is missing")


def test_reimport_of_the_same_file_is_detected(empty_project: Project, tmp_path: Path):
    src = write_csv(tmp_path / "log.csv", HEADER, *good_rows(5))
    import_predictions(empty_project, src)
    copy = tmp_path / "renamed-copy.csv"
    copy.write_bytes(src.read_bytes())
    expect_refused(empty_project, copy, "renamed-copy.csv was already imported (import #1")


def test_a_reimport_is_refused_on_every_path_even_though_the_hash_runs_beside_the_read(empty_project: Project,
                                                                                       tmp_path: Path):
    # The hash is now taken while the rows go in: the refusal comes after the insert and must roll it back, on the
    # one-pass CSV path, on the exact path (a number column with 'n/a'), for Parquet and for labels.
    exact_rows = good_rows(4)
    exact_rows[2] = exact_rows[2].replace(",202.5,", ",n/a,")
    files = [write_csv(tmp_path / "fast.csv", HEADER, *good_rows(5)),
             write_csv(tmp_path / "exact.csv", HEADER, *[r.replace("r", "x", 1) for r in exact_rows])]
    pl.read_csv(files[0]).with_columns(pl.col("record_id") + "p").write_parquet(tmp_path / "log.parquet")
    files.append(tmp_path / "log.parquet")
    labels = write_csv(tmp_path / "labels.csv", "record_id,label", "r0,1", "r1,0")
    for src in files:
        import_predictions(empty_project, src)
    import_labels(empty_project, labels)
    empty_project.close()
    for src in [*files, labels]:
        copy = tmp_path / f"again-{src.name}"
        copy.write_bytes(src.read_bytes())
        expect_refused(empty_project.folder, copy, f"again-{src.name} was already imported", labels=src == labels)


def test_cancel_stops_the_hash_beside_the_read(empty_project: Project, tmp_path: Path):
    from app.core.errors import Cancelled
    from app.core.progress import TaskProgress

    src = write_csv(tmp_path / "log.csv", HEADER, *good_rows(5))
    progress = TaskProgress()
    progress.cancel()
    empty_project.close()
    before = project_state(empty_project.folder)
    with Project.open(empty_project.folder) as project, pytest.raises(Cancelled):
        import_predictions(project, src, progress=progress)
    assert project_state(empty_project.folder) == before
    assert not [t for t in threading.enumerate() if t.name == "lineproof-digest"], "the hash thread outlived the import"


def test_duplicate_and_overlapping_record_ids_are_refused(empty_project: Project, tmp_path: Path):
    rows = good_rows(3) + [good_rows(1)[0].replace(",0.0,", ",0.9,")]
    expect_refused(empty_project, write_csv(tmp_path / "dup.csv", HEADER, *rows), "record id 'r0' appears 2 times")
    with Project.open(empty_project.folder) as project:
        import_predictions(project, write_csv(tmp_path / "a.csv", HEADER, *good_rows(3)))
    expect_refused(empty_project.folder, write_csv(tmp_path / "b.csv", HEADER, *good_rows(3, start=2)),
                   "record id 'r2' is already in the project")


@pytest.mark.parametrize("polars_max_rows", [0, 20_000_000], ids=["duckdb-count", "polars-count"])
def test_duplicate_ids_are_found_whichever_engine_counts_them(empty_project: Project, tmp_path: Path, monkeypatch,
                                                               polars_max_rows: int):
    from app.core.store import ingest

    monkeypatch.setattr(ingest, "_POLARS_DISTINCT_MAX_ROWS", polars_max_rows)
    rows = good_rows(50)
    rows[37] = rows[37].replace("r37,", "r12,", 1)
    expect_refused(empty_project, write_csv(tmp_path / "dup.csv", HEADER, *rows), "record id 'r12' appears 2 times")
    with Project.open(empty_project.folder) as project:
        assert import_predictions(project, write_csv(tmp_path / "ok.csv", HEADER, *good_rows(50))).rows == 50


def test_a_feature_keeps_its_type_across_imports(empty_project: Project, tmp_path: Path):
    import_predictions(empty_project, write_csv(tmp_path / "a.csv", HEADER, *good_rows(2)))
    rows = good_rows(2, start=10)
    rows[1] = rows[1].replace(",211.5,", ",high,")
    expect_refused(empty_project, write_csv(tmp_path / "b.csv", HEADER, *rows),
                   "row 2", "'current_a' is not a number")


# ----- labels

@pytest.fixture
def with_predictions(empty_project: Project, tmp_path: Path) -> Project:
    import_predictions(empty_project, write_csv(tmp_path / "log.csv", HEADER, *good_rows(8)))
    return empty_project


def test_late_labels_join_their_predictions(with_predictions: Project, tmp_path: Path):
    src = write_csv(tmp_path / "labels.csv", "record_id,label,labelled_at",
                    "r1,1,2026-03-20 08:00:00", "r5,0,2026-03-28 08:00:00")
    result = import_labels(with_predictions, src)
    assert (result.rows, result.unknown_ids) == (2, 0)
    joined = with_predictions.con.execute(
        "SELECT p.record_id, l.label, l.labelled_at - p.ts > INTERVAL 7 DAY FROM predictions p "
        "JOIN labels l USING (record_id) ORDER BY 1").fetchall()
    assert joined == [("r1", 1.0, True), ("r5", 0.0, True)]


def test_labels_for_unknown_ids_are_refused_with_examples(with_predictions: Project, tmp_path: Path):
    src = write_csv(tmp_path / "labels.csv", "record_id,label", "r1,1", "x9,0", "x10,1")
    expect_refused(with_predictions, src, "2 of 3 labels name record ids that are not in the project",
                   "x9, x10", "--skip-unknown", labels=True)


def test_skip_unknown_imports_the_known_and_reports_the_rest(with_predictions: Project, tmp_path: Path):
    src = write_csv(tmp_path / "labels.csv", "record_id,label", "r1,1", "x9,0", "r2,0")
    result = import_labels(with_predictions, src, skip_unknown=True)
    assert (result.rows, result.unknown_ids, result.unknown_examples) == (2, 1, ("x9",))
    assert with_predictions.con.execute("SELECT count(*) FROM labels").fetchall()[0][0] == 2
    details = with_predictions.con.execute("SELECT details_json FROM audit_log ORDER BY seq DESC LIMIT 1"
                                           ).fetchall()[0][0]
    assert '"unknown": 1' in details


def test_a_later_label_corrects_the_earlier_one(with_predictions: Project, tmp_path: Path):
    import_labels(with_predictions, write_csv(tmp_path / "l1.csv", "record_id,label", "r1,1", "r2,0"))
    result = import_labels(with_predictions, write_csv(tmp_path / "l2.csv", "record_id,label", "r1,0"))
    assert result.replaced == 1
    rows = with_predictions.con.execute("SELECT record_id, label FROM labels ORDER BY 1").fetchall()
    assert rows == [("r1", 0.0), ("r2", 0.0)]


def test_bad_label_values_are_refused(with_predictions: Project, tmp_path: Path):
    src = write_csv(tmp_path / "labels.csv", "record_id,label", "r1,1", "r2,defect")
    expect_refused(with_predictions, src, "row 2", "'label' (label) is not a finite number", labels=True)


def test_label_mapping_with_other_column_names(with_predictions: Project, tmp_path: Path):
    src = write_csv(tmp_path / "labels.csv", "Serial;Verdict".replace(";", ","), "r3,1")
    expect_refused(with_predictions, src, "no column 'record_id'", labels=True)
    project = Project.open(with_predictions.folder)
    try:
        result = import_labels(project, src, LabelMapping(record_id="Serial", label="Verdict", labelled_at=None))
        assert result.rows == 1
    finally:
        project.close()


def test_independent_reader_sees_the_committed_import(with_predictions: Project):
    folder = with_predictions.folder
    with_predictions.close()
    con = duckdb.connect(str(folder / "project.duckdb"), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT record_id) FROM predictions").fetchall() == [(8, 8)]
    con.close()
