"""Commands that used to crash with a traceback answer with a clear error (exit 2) or a result."""

from __future__ import annotations

from pathlib import Path

import duckdb

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


def test_options_an_existing_model_would_ignore_are_refused_and_the_shape_typo_named(sample_copy: Path, capsys):
    """`import-model --risk-tier` on an existing model used to be silently ignored, and `bench --shape typo=...`
    failed later without naming the input; both are refused at once, nothing recorded."""
    import duckdb

    artifact = next((sample_copy / "artifacts" / "models").rglob("weld_defect_v1_mlp.onnx"))
    assert main(["import-model", str(sample_copy), str(artifact), "--model", "weld-defect", "--version", "v9",
                 "--risk-tier", "low"]) == 2
    err = capsys.readouterr().err
    assert "already exists, so --risk-tier low (it is high) would be ignored" in err and "lineproof tier" in err
    assert main(["bench", str(sample_copy), "--model", "weld-defect:v1", "--shape", "typo=1x3", "-q"]) == 2
    assert "has no input 'typo'" in capsys.readouterr().err
    con = duckdb.connect(str(sample_copy / "project.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM model_versions WHERE version_id = 'weld-defect:v9'").fetchall() == [(0,)]
    assert con.execute("SELECT count(*) FROM bench_runs").fetchall() == [(0,)]
    con.close()


def test_the_dataset_command_the_validation_screen_names_exists(sample_copy: Path, tmp_path: Path, capsys):
    import duckdb
    import polars as pl

    pl.DataFrame({"current_a": [220.0, 230.0], "label": [0, 1]}).write_parquet(tmp_path / "extra.parquet")
    assert main(["dataset", str(sample_copy), str(tmp_path / "extra.parquet"), "--id", "extra", "--kind",
                 "validation"]) == 0
    assert "Registered dataset extra (validation)" in capsys.readouterr().out
    con = duckdb.connect(str(sample_copy / "project.duckdb"), read_only=True)
    assert con.execute("SELECT kind, row_count FROM datasets WHERE dataset_id = 'extra'").fetchall() == [("validation", 2)]
    con.close()
    from app.views.validation_view import NO_DATASET

    assert "lineproof dataset PROJECT FILE.parquet --id holdout --kind validation" in NO_DATASET


def test_the_sample_command_unpacks_the_sample_an_installation_ships_prebuilt(tmp_path, monkeypatch, capsys):
    """The offline bundle ships the sample built (no trainers in it): `lineproof sample` unpacks it, hashes checked."""
    import importlib.util

    from app.cli import main
    from tests.helpers import prebuilt_sample_archive

    monkeypatch.setenv("LINEPROOF_SAMPLE_ARCHIVE", str(prebuilt_sample_archive(tmp_path)))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    assert main(["sample", str(tmp_path / "s"), "-q"]) == 0
    assert "Unpacked the prebuilt sample project" in capsys.readouterr().out
    con = duckdb.connect(str(tmp_path / "s" / "project.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM predictions").fetchall()[0][0] == 30
    con.close()
    assert main(["sample", str(tmp_path / "s"), "-q"]) == 2  # never over an existing folder
    assert "Traceback" not in capsys.readouterr().err
