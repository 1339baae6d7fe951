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
