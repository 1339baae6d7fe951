"""DuckDB's memory per project process is bounded (its block cache grew with every row read: 1.2 GB for a
10M-row drift matrix), overridable for a workstation, and a bad override is a clear error that opens nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from app.core.errors import SettingsError
from app.core.store.project import DEFAULT_MEMORY_LIMIT, Project


def _limit_bytes(project: Project) -> int:
    with project.reading() as con:
        text = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    number, unit = text.split()
    return int(float(number) * {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "KB": 1e3, "MB": 1e6, "GB": 1e9}[unit])


def test_a_project_bounds_duckdb_memory_and_spills_outside_its_folder(empty_project: Project) -> None:
    assert DEFAULT_MEMORY_LIMIT == "320MB"
    assert 300e6 <= _limit_bytes(empty_project) <= 330e6
    with empty_project.reading() as con:
        temp = con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]
    assert not Path(temp).resolve().is_relative_to(empty_project.folder.resolve())


def test_the_limit_can_be_raised_for_a_workstation(empty_project: Project, monkeypatch) -> None:
    folder = empty_project.folder
    empty_project.close()
    monkeypatch.setenv("LINEPROOF_MEMORY_LIMIT", "2GB")
    with Project.open(folder, read_only=True) as project:
        assert 1.8e9 <= _limit_bytes(project) <= 2.1e9


def test_a_bad_limit_is_named_and_opens_nothing(empty_project: Project, monkeypatch, capsys) -> None:
    folder = empty_project.folder
    empty_project.close()
    before = sorted(p.name for p in folder.iterdir())
    monkeypatch.setenv("LINEPROOF_MEMORY_LIMIT", "lots")
    with pytest.raises(SettingsError, match="LINEPROOF_MEMORY_LIMIT='lots' is not a memory size"):
        Project.open(folder)
    assert main(["info", str(folder)]) != 0
    assert "such as 512MB or 4GB" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == before


def test_an_import_lifts_the_limit_for_its_span_only(empty_project: Project, tmp_path: Path) -> None:
    """Under the reading limit a 10M-row import spilled its checks to disk (2.4x a bare CTAS); during an import
    DuckDB's own default applies, and the reading limit is back after it, also after a refused file."""
    from app.core.store.ingest import import_predictions
    from tests.helpers import write_csv

    good = write_csv(tmp_path / "good.csv", "record_id,ts,model_version,score,line",
                     "r1,2026-01-01 00:00,m:v1,0.5,L1", "r2,2026-01-01 01:00,m:v1,0.7,L1")
    import_predictions(empty_project, good)
    assert 300e6 <= _limit_bytes(empty_project) <= 330e6
    bad = write_csv(tmp_path / "bad.csv", "record_id,ts,model_version,score,line", "r9,2026-01-01 00:00,m:v1,,L1")
    with pytest.raises(Exception, match="empty"):
        import_predictions(empty_project, bad)
    assert 300e6 <= _limit_bytes(empty_project) <= 330e6


def test_the_write_span_uses_duckdb_default(empty_project: Project) -> None:
    from app.core.store.project import write_memory

    with empty_project.reading() as con, write_memory(con):
        inside = _limit_bytes(empty_project)
    assert inside > 1e9  # DuckDB's default: 80% of this PC's memory
    assert 300e6 <= _limit_bytes(empty_project) <= 330e6
