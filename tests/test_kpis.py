"""Business KPIs from CSV: dates and ISO weeks, replacement of earlier values, refusals that name the row and the
column (nothing stored), and the KPI next to the model in the sample's operating review."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from app.cli import main
from app.core.analysis import operating_review as ops
from app.core.analysis.kpis import import_kpis
from app.core.errors import IngestError
from app.core.store.project import Project


def _csv(path: Path, *rows: str, header: str = "line,week,kpi,value") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _stored(project: Project) -> list[tuple]:
    with project.reading() as con:
        return con.execute("SELECT line, week::VARCHAR, kpi, value FROM kpis ORDER BY 1, 2, 3").fetchall()


def test_dates_and_iso_weeks_are_stored_per_monday_and_replaced_later(empty_project: Project, tmp_path: Path):
    first = _csv(tmp_path / "a.csv", "L1,2026-09-09,scrap_pct,1.5", "L1,2026-W38,scrap_pct,2.0", "L2,2026-W38-1,rework,7")
    assert import_kpis(empty_project, first) == 3
    assert _stored(empty_project) == [("L1", "2026-09-07", "scrap_pct", 1.5), ("L1", "2026-09-14", "scrap_pct", 2.0),
                                      ("L2", "2026-09-14", "rework", 7.0)]
    import_kpis(empty_project, _csv(tmp_path / "b.csv", "L1,2026-09-07,scrap_pct,1.25"))
    assert _stored(empty_project)[0] == ("L1", "2026-09-07", "scrap_pct", 1.25)
    with empty_project.reading() as con:
        assert con.execute("SELECT count(*) FROM audit_log WHERE action = 'kpis.import'").fetchall()[0][0] == 2


@pytest.mark.parametrize(("rows", "header", "message"), [
    (["L1,2026-09-07,1"], "line,week,value", "no column 'kpi'"),
    (["L1,2026-09-07,scrap,1", "L1,2026-09-14,scrap,1,5"], "line,week,kpi,value", "cannot be read as CSV"),
    (["L1,2026-09-07,scrap,1", "L2,2026-09-07,scrap,high"], "line,week,kpi,value", "row 3, column 'value'"),
    (["L1,next week,scrap,1"], "line,week,kpi,value", "row 2, column 'week'"),
    (["L1,2026-09-07,scrap,1", "L1,2026-09-09,scrap,2"], "line,week,kpi,value", "appears twice"),
    ([",2026-09-07,scrap,1"], "line,week,kpi,value", "row 2, column 'line'"),
])
def test_bad_files_name_the_row_and_column_and_store_nothing(empty_project: Project, tmp_path: Path, rows, header,
                                                             message):
    with pytest.raises(IngestError, match=message) as info:
        import_kpis(empty_project, _csv(tmp_path / "bad.csv", *rows, header=header))
    assert "bad.csv" in str(info.value)
    assert _stored(empty_project) == []


def test_the_sample_review_puts_escapes_next_to_recall(sample_folder: Path, capsys):
    with Project.open_snapshot(sample_folder) as project:
        review = ops.build_review(project, ops.month("2026-09"))
        with project.reading() as con:
            weekly = con.sql("SELECT week, value FROM kpis WHERE line = 'P2-L02' AND kpi = 'escapes_per_1000'").pl()
    outcome = next(o for o in review["outcomes"] if o["line"] == "P2-L02")
    now = weekly.filter((pl.col("week") >= pl.date(2026, 9, 1)) & (pl.col("week") < pl.date(2026, 10, 1)))
    before = weekly.filter((pl.col("week") >= pl.date(2026, 8, 1)) & (pl.col("week") < pl.date(2026, 9, 1)))
    assert outcome["now"] == pytest.approx(now["value"].mean()) and outcome["before"] == pytest.approx(
        before["value"].mean())
    assert outcome["now"] > outcome["before"] and outcome["recall_now"] < outcome["recall_before"]
    assert main(["kpis", str(sample_folder), str(sample_folder / "nope.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
