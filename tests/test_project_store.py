"""Project store: create, open, migrate, refuse what must be refused, and leave the project unchanged."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from app.core.errors import (
    ProjectCorruptError,
    ProjectExistsError,
    ProjectLockedError,
    ProjectNotFoundError,
    ProjectNotWritableError,
    ReadOnlyProjectError,
    SchemaTooNewError,
)
from app.core.store.manifest import read_manifest
from app.core.store.project import Project
from app.core.store.schema import SCHEMA_VERSION
from tests.helpers import project_state, write_csv

FIXTURE_SCHEMA1 = Path(__file__).parent / "fixtures" / "schema1-project"


def test_create_lays_out_the_folder_and_records_the_schema(tmp_path: Path):
    with Project.create(tmp_path / "p", "Body shop", site="Plant 7", slice_dimensions=("line", "shift")):
        pass
    folder = tmp_path / "p"
    assert {p.name for p in folder.iterdir()} >= {"lineproof.toml", "project.duckdb", "artifacts", "packets"}
    assert (folder / "artifacts" / "models").is_dir() and (folder / "artifacts" / "datasets").is_dir()
    manifest = read_manifest(folder)
    assert (manifest.name, manifest.site, manifest.slice_dimensions) == ("Body shop", "Plant 7", ("line", "shift"))
    con = duckdb.connect(str(folder / "project.duckdb"), read_only=True)
    assert con.execute("SELECT max(version) FROM schema_info").fetchall()[0][0] == SCHEMA_VERSION
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"models", "model_versions", "datasets", "predictions", "labels", "audit_log"} <= tables
    assert con.execute("SELECT action FROM audit_log").fetchall() == [("project.create",)]


def test_create_refuses_an_existing_project(empty_project: Project):
    with pytest.raises(ProjectExistsError, match="already holds a Lineproof project"):
        Project.create(empty_project.folder, "again")


def test_open_a_folder_that_is_not_a_project(tmp_path: Path):
    with pytest.raises(ProjectNotFoundError, match="not a Lineproof project"):
        Project.open(tmp_path)


def test_schema1_fixture_is_migrated_with_its_data(tmp_path: Path):
    folder = tmp_path / "old"
    shutil.copytree(FIXTURE_SCHEMA1, folder)
    with Project.open(folder) as project:
        con = project.con
        assert [r[0] for r in con.execute("SELECT version FROM schema_info ORDER BY 1").fetchall()] == \
            list(range(1, SCHEMA_VERSION + 1))
        assert con.execute("SELECT count(*) FROM predictions").fetchall()[0][0] == 3
        assert con.execute("SELECT label FROM labels WHERE record_id = 'r1'").fetchall() == [(0.0,)]
        assert con.execute("SELECT risk_tier FROM models").fetchall() == [("medium",)]
        assert con.execute("SELECT count(*) FROM stage_history").fetchall()[0][0] == 0
        # schema 3 built the coverage summary from the rows already there
        assert con.execute("SELECT line, sum(rows), sum(labelled) FROM coverage_summary GROUP BY 1 ORDER BY 1"
                           ).fetchall() == [("L1", 2, 1), ("L2", 1, 0)]
        assert con.execute("SELECT plant FROM coverage_summary").fetchall() == [(None,), (None,)]
        actions = [r[0] for r in con.execute("SELECT action FROM audit_log ORDER BY seq").fetchall()]
        assert actions == ["project.create", "predictions.import", "project.migrate"]
    assert read_manifest(folder).schema_version == SCHEMA_VERSION


def test_schema1_opened_read_only_is_read_through_an_upgraded_copy(tmp_path: Path):
    folder = tmp_path / "old"
    shutil.copytree(FIXTURE_SCHEMA1, folder)
    before = project_state(folder)
    with Project.open(folder, read_only=True) as project:
        assert project.read_only and project.snapshot_of == folder
        assert project.con.execute("SELECT max(version) FROM schema_info").fetchall()[0][0] == SCHEMA_VERSION
        assert project.con.execute("SELECT count(*) FROM predictions").fetchall()[0][0] == 3
    assert project_state(folder) == before  # the original was neither migrated nor touched


def test_newer_schema_in_the_database_is_refused_unchanged(empty_project: Project):
    folder = empty_project.folder
    empty_project.con.execute("INSERT INTO schema_info VALUES (99, now()::TIMESTAMP, '9.0')")
    empty_project.close()
    before = project_state(folder)
    with pytest.raises(SchemaTooNewError, match="newer Lineproof .schema 99"):
        Project.open(folder)
    assert project_state(folder) == before


def test_newer_schema_in_the_manifest_is_refused(empty_project: Project):
    folder = empty_project.folder
    empty_project.close()
    text = (folder / "lineproof.toml").read_text().replace(f"schema_version = {SCHEMA_VERSION}", "schema_version = 42")
    (folder / "lineproof.toml").write_text(text)
    before = project_state(folder)
    with pytest.raises(SchemaTooNewError, match="Update Lineproof"):
        Project.open(folder)
    assert project_state(folder) == before


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing"])
def test_damaged_database_is_reported_and_left_alone(empty_project: Project, tmp_path: Path, damage: str):
    folder = empty_project.folder
    import_file = write_csv(tmp_path / "x.csv", "record_id,ts,model_version,score", "a,2026-01-01,v1,0.5")
    from app.core.store.ingest import import_predictions
    import_predictions(empty_project, import_file)
    empty_project.close()
    db = folder / "project.duckdb"
    data = db.read_bytes()
    if damage == "truncated":
        db.write_bytes(data[: len(data) // 3])
    elif damage == "garbage":
        db.write_bytes(b"\x00not a database" * 1000)
    else:
        db.unlink()
    before = db.read_bytes() if db.exists() else None
    with pytest.raises(ProjectCorruptError, match="project.duckdb") as info:
        Project.open(folder)
    assert "backup" in str(info.value)
    assert (db.read_bytes() if db.exists() else None) == before
    assert not db.exists() or damage != "missing"


def test_unparseable_manifest_names_the_file(empty_project: Project):
    folder = empty_project.folder
    empty_project.close()
    (folder / "lineproof.toml").write_text("[project\nname = ")
    with pytest.raises(ProjectCorruptError, match="lineproof.toml is not valid TOML"):
        Project.open(folder)


HOLD_SCRIPT = textwrap.dedent("""
    import sys, time
    from app.core.store.project import Project
    p = Project.open(sys.argv[1])
    print("holding", flush=True)
    time.sleep(60)
""")


@pytest.fixture
def held_project(empty_project: Project):
    """The empty project held open for writing by a second process."""
    folder = empty_project.folder
    empty_project.close()
    proc = subprocess.Popen([sys.executable, "-c", HOLD_SCRIPT, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    yield folder, proc
    proc.kill()
    proc.wait()


def test_second_writer_gets_a_clear_error_naming_the_holder(held_project):
    folder, proc = held_project
    with pytest.raises(ProjectLockedError) as info:
        Project.open(folder)
    assert info.value.holder_pid == proc.pid
    assert f"PID {proc.pid}" in str(info.value)
    assert "read-only" in str(info.value)


def test_locked_project_can_be_opened_as_a_read_only_snapshot(held_project):
    folder, _ = held_project
    with Project.open_snapshot(folder) as snap:
        assert snap.read_only and snap.snapshot_of == folder
        assert snap.con.execute("SELECT count(*) FROM audit_log").fetchall()[0][0] == 1
        with pytest.raises(ReadOnlyProjectError):
            snap.require_writable()
        snap_dir = snap.folder
    assert not snap_dir.exists()


def test_read_only_project_refuses_imports(empty_project: Project, tmp_path: Path):
    from app.core.store.ingest import import_predictions

    folder = empty_project.folder
    empty_project.close()
    before = project_state(folder)
    with Project.open(folder, read_only=True) as project, pytest.raises(ReadOnlyProjectError, match="read-only"):
        import_predictions(project, write_csv(tmp_path / "x.csv", "record_id,ts,model_version,score",
                                              "a,2026-01-01,v1,0.5"))
    assert project_state(folder) == before


NOT_WRITABLE_SCRIPT = textwrap.dedent("""
    import os, sys
    from app.core.errors import ProjectNotWritableError
    from app.core.store.project import Project
    if os.getuid() == 0:
        os.setgid(65534); os.setuid(65534)   # root ignores permission bits: test as 'nobody'
    try:
        Project.open(sys.argv[1])
    except ProjectNotWritableError as exc:
        print("REFUSED:", exc)
    else:
        print("OPENED")
""")


def test_project_folder_not_writable_is_refused_unchanged(tmp_path_factory):
    base = Path(os.environ.get("TMPDIR", "/tmp")) / f"lineproof-ro-{os.getpid()}-{time.time_ns()}"
    base.mkdir(mode=0o755)
    try:
        with Project.create(base / "p", "ro") as project:
            folder = project.folder
        before = project_state(folder)
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        out = subprocess.run([sys.executable, "-c", NOT_WRITABLE_SCRIPT, str(folder)], capture_output=True,
                             text=True, cwd=Path(__file__).parents[1], env={**os.environ, "HOME": "/tmp"})
        assert "REFUSED:" in out.stdout, out.stdout + out.stderr
        assert "not writable" in out.stdout and "read-only" in out.stdout
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        assert project_state(folder) == before
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_not_writable_error_type_is_raised_in_process(tmp_path: Path, monkeypatch):
    with Project.create(tmp_path / "p", "x") as project:
        folder = project.folder

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("app.core.store.project.tempfile.mkstemp", deny)
    with pytest.raises(ProjectNotWritableError, match="Permission denied"):
        Project.open(folder)
