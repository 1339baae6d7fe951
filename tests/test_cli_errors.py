"""Commands that used to crash with a traceback answer with a clear error (exit 2) or a result."""

from __future__ import annotations

from pathlib import Path

from app.cli import main


def test_freshness_per_line_lists_lines(sample_folder: Path, capsys):
    assert main(["freshness", str(sample_folder), "--per", "line", "--expected-hours", "1"]) == 0
    out = capsys.readouterr().out
    assert "silent" in out and "Traceback" not in out


def test_freshness_per_an_unknown_column_names_the_known_ones(sample_folder: Path, capsys):
    assert main(["freshness", str(sample_folder), "--per", "robot"]) == 2
    err = capsys.readouterr().err
    assert "--per 'robot': the log has no such slice column" in err and "asset" in err


def test_drift_without_slicing_works(sample_folder: Path, capsys):
    assert main(["drift", str(sample_folder), "--reference", "2026-05-04..2026-06-01", "--current",
                 "2026-08-01..2026-09-01", "--by", "", "-q"]) == 0
    assert "voltage_v" in capsys.readouterr().out


def test_a_corrupt_parquet_file_is_a_clear_error(sample_copy: Path, tmp_path: Path, capsys):
    bad = tmp_path / "cut.parquet"
    bad.write_bytes(b"PAR1" + b"\x15\x00" * 40 + b"PAR1")
    assert main(["ingest", str(sample_copy), str(bad), "-q"]) == 2
    err = capsys.readouterr().err
    assert "cut.parquet cannot be read as PARQUET" in err and "nothing was imported" in err
    assert "Traceback" not in err


def test_the_sample_command_in_an_installation_without_its_recipe_says_what_to_do(tmp_path, monkeypatch, capsys):
    """The offline bundle leaves scikit-learn out: `lineproof sample` explains instead of a ModuleNotFoundError."""
    import importlib.util

    from app.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    assert main(["sample", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "cannot build the sample project (it lacks sklearn" in err and "import-project" in err
    assert "Traceback" not in err and not (tmp_path / "s").exists()
