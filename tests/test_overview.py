"""The overview's numbers against an independent computation (polars over the same rows)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from app.core.analysis.overview import build_overview, overview_json, overview_text
from app.core.store.ingest import import_labels, import_predictions
from app.core.store.project import Project
from tests.helpers import write_csv


def test_overview_counts_coverage_and_freshness(empty_project: Project, tmp_path: Path):
    base = datetime(2026, 4, 1, 6, 0)
    rows = []
    for i in range(60):
        line = ["L1", "L2", "L3"][i % 3]
        plant = "P1" if line != "L3" else "P2"
        ts = base + timedelta(hours=i * 5 if line != "L2" else i)  # L2 stops reporting early
        rows.append(f"r{i},{ts:%Y-%m-%d %H:%M:%S},weld:v1,{(i % 7) / 7:.3f},{plant},{line}")
    log = write_csv(tmp_path / "log.csv", "record_id,ts,model_version,score,plant,line", *rows)
    labelled = [f"r{i},{i % 2}" for i in range(0, 60, 4)]
    import_predictions(empty_project, log)
    import_labels(empty_project, write_csv(tmp_path / "labels.csv", "record_id,label", *labelled))

    ov = build_overview(empty_project)

    frame = pl.read_csv(log, try_parse_dates=True)
    ids = {r.split(",")[0] for r in labelled}
    expected = (frame.with_columns(lab=pl.col("record_id").is_in(list(ids)))
                .group_by("plant", "line").agg(rows=pl.len(), labelled=pl.col("lab").sum(),
                                               last=pl.col("ts").max()).sort("plant", "line"))
    newest = frame["ts"].max()
    assert ov.prediction_rows == 60 and ov.label_rows == len(ids)
    assert ov.lines["rows"].to_list() == expected["rows"].to_list()
    assert ov.lines["labelled"].to_list() == expected["labelled"].to_list()
    assert ov.lines["coverage"].to_list() == (expected["labelled"] / expected["rows"]).to_list()
    assert ov.lines["last_record"].to_list() == expected["last"].to_list()
    hours = [(newest - t).total_seconds() / 3600 for t in expected["last"]]
    assert ov.lines["hours_behind"].to_list() == hours
    assert ov.label_coverage == len(ids) / 60
    assert ov.weekly["rows"].sum() == 60 and ov.weekly["labelled"].sum() == len(ids)
    assert (ov.first_ts, ov.last_ts) == (frame["ts"].min(), newest)
    assert "L2" in overview_text(ov) and overview_json(ov)["lines"][1]["line"] == "L2"


def test_overview_of_an_empty_project(empty_project: Project):
    ov = build_overview(empty_project)
    assert (ov.prediction_rows, ov.label_rows, ov.lines.height, ov.models.height) == (0, 0, 0, 0)
    assert "no data yet" in overview_text(ov)


def test_summary_stays_equal_to_a_full_join_across_imports_and_corrections(empty_project: Project, tmp_path: Path):
    head = "record_id,ts,model_version,score,plant,line"
    import_predictions(empty_project, write_csv(tmp_path / "a.csv", head, *[
        f"a{i},2026-05-0{1 + i % 7} 10:00,m:v1,0.5,P1,L{i % 2}" for i in range(20)]))
    import_labels(empty_project, write_csv(tmp_path / "l1.csv", "record_id,label", "a1,1", "a2,0", "a3,1"))
    import_predictions(empty_project, write_csv(tmp_path / "b.csv", head, *[
        f"b{i},2026-05-1{i % 9} 10:00,m:v2,0.5,P2,L{i % 3}" for i in range(15)]))
    import_labels(empty_project, write_csv(tmp_path / "l2.csv", "record_id,label", "a1,0", "b4,1", "zz,1"),
                  skip_unknown=True)  # a1 corrected, b4 new, zz unknown
    ov = build_overview(empty_project)
    truth = empty_project.con.sql("""
        SELECT p.plant, p.line, count(*) AS rows, count(l.record_id) AS labelled, max(p.ts) AS last_record
        FROM predictions p LEFT JOIN labels l USING (record_id) GROUP BY ALL ORDER BY ALL""").pl()
    assert ov.lines.select("plant", "line", "rows", "labelled", "last_record").equals(truth)
    assert (ov.prediction_rows, ov.labelled_rows, ov.label_rows) == (35, 4, 4)
    per_version = dict(ov.models.select("version_id", "predictions").iter_rows()) if ov.models.height else {}
    assert per_version == {}  # no registered versions; the log's versions appear once registered
