"""Release history from before Lineproof: checked completely before a row is stored, dating the delivery metrics
by hand-worked days, never vouching for a release, and any later edit of its rows found by `audit verify`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from app.cli import main
from app.core.analysis.quarterly import quarterly_answers
from app.core.errors import IngestError
from app.core.governance.delivery import delivery_metrics
from app.core.governance.integrity import verify_project
from app.core.governance.release_history import history_events, import_history
from app.core.models.model_import import import_model
from app.core.models.registry import register_model, set_stage
from app.core.store.project import Project
from tests.helpers import tiny_onnx_model

HEADER = "model,version,site,event,at,by,note\n"
GOOD = HEADER + """m,v1,,built,2026-01-05T08:00:00,ana,
m,v1,A,approval_requested,2026-01-10T12:00:00,ana,CR-1
m,v1,A,approved,2026-01-13T00:00:00+02:00,boss,on paper
m,v1,A,production,2026-01-15,ana,
m,v1,B,pilot,2026-02-01 06:30,ana,
"""


@pytest.fixture
def project(tmp_path: Path):
    project = Project.create(tmp_path / "proj", "History test", site="A")
    register_model(project, "m", "a model", "binary", risk_tier="high")
    import_model(project, tiny_onnx_model(tmp_path), "m", "v1", lineage={"author": "ana"})
    yield project
    project.close()


def _write(tmp_path: Path, text: str, name: str = "history.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _state(project: Project) -> tuple:
    with project.reading() as con:
        return tuple(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                     for t in ("audit_log", "release_history", "release_history_imports"))


def test_history_dates_the_delivery_metrics_by_hand_worked_days(project: Project, tmp_path: Path):
    assert import_history(project, _write(tmp_path, GOOD)) == 5
    set_stage(project, "m:v1", "A", "production", "seen by Lineproof today")  # later than the history's date
    delivery = delivery_metrics(project)
    a = next(r for r in delivery["versions"] if r["site"] == "A")
    assert a["imported_at"] == "2026-01-05T08:00:00" and set(a["from_history"]) == {"production", "built"}
    assert a["stages"]["production"] == "2026-01-15T00:00:00"  # the earlier date wins
    assert a["days_to"]["production"] == pytest.approx(9 + 16 / 24)  # 01-05 08:00 -> 01-15 00:00
    # asked 01-10 12:00 UTC, approved 01-13 00:00+02:00 = 01-12 22:00 UTC
    assert a["approval_wait_days"] == pytest.approx(2 + 10 / 24)
    assert a["verified_release"] is False  # an imported date never vouches for Lineproof's own release
    b = next(r for r in delivery["versions"] if r["site"] == "B")
    assert b["days_to"] == {"pilot": pytest.approx(26 + 22.5 / 24)}  # 01-05 08:00 -> 02-01 06:30
    answers = quarterly_answers(project, datetime(2026, 1, 1), datetime(2026, 4, 1),
                                (datetime(2025, 10, 1), datetime(2026, 1, 1)), delivery)
    t = answers["time_to_production"]
    assert (t["releases"], t["median_days"], t["releases_before"]) == (1, pytest.approx(9 + 16 / 24), 0)
    assert t["evidence"][0]["source"] == "history"
    [high] = answers["approval_wait_by_tier"]
    assert (high["tier"], high["requests"], high["sources"]) == ("high", 1, ["history"])
    assert high["mean_days"] == pytest.approx(2 + 10 / 24)
    assert quarterly_answers(project, datetime(2026, 4, 1), datetime(2026, 7, 1),
                             (datetime(2026, 1, 1), datetime(2026, 4, 1)), delivery)["approval_wait_by_tier"] == []
    events = history_events(project)
    assert events.height == 5 and events["file_name"].unique().to_list() == ["history.csv"]


BAD = [
    ("unknown model", HEADER + "x,v1,A,production,2026-01-15,ana,\n", "row 2, column 'model'", "Register the model"),
    ("unknown version", HEADER + "m,v9,A,production,2026-01-15,ana,\n", "row 2, column 'version'", "Import the version"),
    ("bad event", HEADER + "m,v1,A,deployed,2026-01-15,ana,\n", "row 2, column 'event'", "Events:"),
    ("no site", HEADER + "m,v1,,production,2026-01-15,ana,\n", "row 2, column 'site'", "happens on a site"),
    ("bad time", HEADER + "m,v1,A,production,15.01.2026,ana,\n", "row 2, column 'at'", "ISO 8601"),
    ("future", HEADER + "m,v1,A,production,2999-01-01,ana,\n", "row 2, column 'at'", "in the future"),
    ("no actor", HEADER + "m,v1,A,production,2026-01-15,,\n", "row 2, column 'by'", "Name who acted"),
    ("twice", GOOD + "m,v1,A,production,2026-01-16,ana,\n", "rows 5 and 7", "one row per version"),
    ("approved first", HEADER + "m,v1,A,approved,2026-01-09,b,\nm,v1,A,approval_requested,2026-01-10,a,\n",
     "row 2, column 'at'", "before approval was requested"),
    ("before built", HEADER + "m,v1,A,production,2025-12-01,ana,\nm,v1,,built,2026-01-05,ana,\n",
     "row 2, column 'at'", "before the version was built"),
    ("missing column", "model,version,site,event,at\nm,v1,A,production,2026-01-15\n", "no column 'by'", "Columns"),
    ("header only", HEADER, "no rows", "at least one"),
]


@pytest.mark.parametrize(("case", "text", "where", "todo"), BAD, ids=[b[0] for b in BAD])
def test_bad_history_is_refused_naming_the_row_and_nothing_changes(project: Project, tmp_path: Path, case: str,
                                                                   text: str, where: str, todo: str):
    before = _state(project)
    with pytest.raises(IngestError) as err:
        import_history(project, _write(tmp_path, text))
    message = f"{err.value.what} {err.value.todo}"
    assert "history.csv" in message and where in message and todo in message
    assert "nothing was imported" in message.lower()
    assert _state(project) == before


def test_a_parquet_file_is_refused(project: Project, tmp_path: Path):
    import polars as pl
    path = tmp_path / "h.parquet"
    pl.DataFrame({"model": ["m"]}).write_parquet(path)
    with pytest.raises(IngestError, match="not CSV"):
        import_history(project, path)
    assert _state(project)[1:] == (0, 0)


@pytest.mark.parametrize("edit", [
    "UPDATE release_history SET happened_at = happened_at - INTERVAL 30 DAY WHERE event = 'production'",
    "UPDATE release_history SET actor = 'someone-else' WHERE event = 'approved'",
    "DELETE FROM release_history WHERE event = 'approval_requested'",
    "INSERT INTO release_history VALUES (1, 99, 'm:v1', 'C', 'production', '2026-01-02', 'x', '')",
    "UPDATE release_history_imports SET rows_sha256 = 'f' || rows_sha256[2:]",
    "DELETE FROM release_history_imports",
    "DELETE FROM release_history; DELETE FROM release_history_imports",
])
def test_a_row_edit_after_the_import_is_found_by_audit_verify(project: Project, tmp_path: Path, edit: str):
    import_history(project, _write(tmp_path, GOOD))
    assert verify_project(project).ok
    folder = project.folder
    project.close()
    con = duckdb.connect(str(folder / "project.duckdb"))
    con.execute(edit)
    con.close()
    with Project.open(folder) as reopened:
        verdict = verify_project(reopened)
    assert not verdict.ok and any("release history" in p for p in verdict.governance)


def test_cli_imports_and_lists_history(project: Project, tmp_path: Path, capsys):
    folder = project.folder
    project.close()
    assert main(["history", str(folder), str(_write(tmp_path, GOOD))]) == 0
    assert "Imported 5 release event(s)" in capsys.readouterr().out
    assert main(["history", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 5 and out[0].startswith("2026-01-05 08:00  m:v1") and "[history.csv]" in out[0]
    assert main(["history", str(folder), str(_write(tmp_path, HEADER + "m,v1,A,deployed,2026-01-15,a,\n"))]) == 2
    assert "row 2, column 'event'" in capsys.readouterr().err
