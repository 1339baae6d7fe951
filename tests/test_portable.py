"""Project archives: a round trip keeps every row, file and the audit chain; damaged or hostile archives
(truncated, a flipped byte, zip slip, a link, a zip bomb) are refused with a clear message and write nothing."""

from __future__ import annotations

import hashlib
import json
import stat
import zipfile
from pathlib import Path

import pytest

from app.cli import main
from app.core.governance.portable import MANIFEST, BundleError, export_project, import_project
from app.core.store.audit import verify_audit
from app.core.store.project import Project

TABLES = ("predictions", "labels", "model_versions", "datasets", "audit_log", "validation_plans")


def _counts(project: Project) -> dict[str, int]:
    with project.reading() as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in TABLES}


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((folder / "artifacts").rglob("*")) if p.is_file()}


@pytest.fixture
def archive(sample_copy: Path, tmp_path: Path) -> Path:
    with Project.open(sample_copy) as project:
        return export_project(project, tmp_path / "weld.lpz")


def test_round_trip_keeps_rows_files_and_the_audit_chain(sample_copy: Path, archive: Path, tmp_path: Path):
    dest = import_project(archive, tmp_path / "arrived" / "weld")
    with Project.open(sample_copy, read_only=True) as original, Project.open(dest) as copy:
        assert _counts(copy) == _counts(original)
        with copy.reading() as con, original.reading() as con_original:
            verdict = verify_audit(con)
            assert verdict.ok and verdict.head_hash == verify_audit(con_original).head_hash
            assert con.execute("SELECT action FROM audit_log ORDER BY seq DESC LIMIT 1").fetchall()[0][0] == \
                "project.export"
    assert _hashes(dest) == _hashes(sample_copy)
    manifest = json.loads(zipfile.ZipFile(archive).read(MANIFEST))
    assert {e["path"] for e in manifest["files"]} >= {"lineproof.toml", "project.duckdb"}
    # The exporting process held the project open: its holder file (this PC's PID) stays out of the copy.
    assert ".lineproof-holder.json" not in {e["path"] for e in manifest["files"]}
    assert ".lineproof-holder.json" not in zipfile.ZipFile(archive).namelist()


def _rewrite(archive: Path, out: Path, change) -> Path:
    """Copy an archive entry by entry, letting `change(name, data)` return (name, data, info-tweak) or None."""
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            result = change(info.filename, data)
            if result is None:
                dst.writestr(info, data)
            else:
                for name, new_data, attr in result:
                    item = zipfile.ZipInfo(name)
                    item.compress_type = zipfile.ZIP_DEFLATED
                    if attr is not None:
                        item.external_attr = attr
                    dst.writestr(item, new_data)
    return out


def _add_to_manifest(data: bytes, path: str, content: bytes) -> bytes:
    manifest = json.loads(data)
    manifest["files"].append({"path": path, "size": len(content), "sha256": hashlib.sha256(content).hexdigest()})
    return json.dumps(manifest).encode()


def _hostile(kind: str, archive: Path, tmp_path: Path) -> Path:
    out = tmp_path / f"{kind}.lpz"
    if kind == "truncated":
        out.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
        return out
    if kind == "flipped":
        def flip(name, data):
            if name == "lineproof.toml":
                return [(name, bytes([data[0] ^ 1]) + data[1:], None)]
            return None
        return _rewrite(archive, out, flip)
    extra = {"zip-slip": ("../../evil.sh", b"echo owned", None),
             "symlink": ("artifacts/link", b"/etc/passwd", (stat.S_IFLNK | 0o777) << 16),
             "bomb": ("artifacts/zeros.bin", b"\0" * (64 << 20), None)}[kind]

    def add(name, data):
        if name == MANIFEST:
            return [(name, _add_to_manifest(data, extra[0], extra[1]), None), extra]
        return None
    return _rewrite(archive, out, add)


@pytest.mark.parametrize(("kind", "message"), [
    ("truncated", "damaged or truncated"),
    ("flipped", "lineproof.toml in flipped.lpz does not match its sha256"),
    ("zip-slip", "points outside the project folder"),
    ("symlink", "contains a link"),
    ("bomb", "zip bomb"),
])
def test_damaged_or_hostile_archives_are_refused_and_write_nothing(archive: Path, tmp_path: Path, kind: str,
                                                                    message: str):
    bad = _hostile(kind, archive, tmp_path)
    landing = tmp_path / "landing"
    landing.mkdir()
    with pytest.raises(BundleError, match=message):
        import_project(bad, landing / "weld")
    assert list(landing.iterdir()) == []  # no project, no half-written staging folder
    assert not (tmp_path.parent / "evil.sh").exists()


def test_a_directory_link_entry_is_refused(archive: Path, tmp_path: Path):
    """A link whose name looks like a folder (ends in /) is a link all the same: unpacked first, it would let
    later entries land wherever it points."""
    def add(name, data):
        if name == MANIFEST:
            return [(name, data, None), ("artifacts/outside/", b"/tmp", (stat.S_IFLNK | 0o777) << 16)]
        return None
    bad = _rewrite(archive, tmp_path / "dirlink.lpz", add)
    landing = tmp_path / "landing"
    landing.mkdir()
    with pytest.raises(BundleError, match=r"contains a link \(artifacts/outside/\)"):
        import_project(bad, landing / "weld")
    assert list(landing.iterdir()) == []


def test_exporting_a_project_with_a_linked_folder_is_refused(sample_copy: Path, tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "weights.bin").write_bytes(b"not in the project")
    (sample_copy / "artifacts" / "linked").symlink_to(elsewhere, target_is_directory=True)
    with Project.open(sample_copy) as project:
        before = _counts(project)
        with pytest.raises(BundleError, match="artifacts/linked in the project is a link"):
            export_project(project, tmp_path / "out.lpz")
        assert _counts(project) == before  # not even an audit entry
    assert not (tmp_path / "out.lpz").exists()


def test_an_existing_project_is_never_overwritten(archive: Path, sample_copy: Path, tmp_path: Path, capsys):
    before = _hashes(sample_copy)
    with pytest.raises(BundleError, match="exists already"):
        import_project(archive, sample_copy)
    assert _hashes(sample_copy) == before
    assert main(["import-project", str(archive), str(sample_copy)]) == 2
    assert "never overwritten" in capsys.readouterr().err


def test_cli_export_and_import(sample_copy: Path, tmp_path: Path, capsys):
    out = tmp_path / "cli.lpz"
    assert main(["export-project", str(sample_copy), "--out", str(out), "-q"]) == 0
    assert main(["import-project", str(out), str(tmp_path / "back"), "-q"]) == 0
    assert "Imported" in capsys.readouterr().out
    assert main(["export-project", str(sample_copy), "--out", str(out), "-q"]) == 2  # never overwrites the archive


def test_many_small_files_that_expand_enormously_in_all_are_refused(archive: Path, tmp_path: Path):
    """No single file is big (each 96 KiB of zeros), but 800 of them expand ~75 MiB from a few hundred KiB."""
    zeros = b"\0" * (96 << 10)
    extra = [(f"artifacts/pad/{i:04d}.bin", zeros, None) for i in range(800)]

    def add(name, data):
        if name == MANIFEST:
            for path, content, _ in extra:
                data = _add_to_manifest(data, path, content)
            return [(name, data, None), *extra]
        return None
    bad = _rewrite(archive, tmp_path / "many.lpz", add)
    landing = tmp_path / "landing"
    landing.mkdir()
    with pytest.raises(BundleError, match=r"800 entries that would expand [\d,]+x.*zip bomb"):
        import_project(bad, landing / "weld")
    assert list(landing.iterdir()) == []


@pytest.fixture
def governed_copy(sample_copy: Path, tmp_path: Path, monkeypatch) -> Path:
    """The sample with one registered user (who becomes admin) and a large all-zero model file."""
    from app.core.governance.approvals import add_user
    from app.core.governance.identity import cert_pem, create_identity, unlock_identity

    monkeypatch.setenv("LINEPROOF_HOME", str(tmp_path / "profile"))
    with Project.open(sample_copy) as project:
        add_user(project, "ines", "Ines Export", cert_pem(create_identity("ines", "Ines Export", "pass-word-1")),
                 ["engineer"], by=unlock_identity("ines", "pass-word-1"))
    (sample_copy / "artifacts" / "models" / "zeros-weights.bin").write_bytes(b"\0" * (80 << 20))
    return sample_copy


def test_a_governed_project_exports_a_signed_manifest_that_import_checks(governed_copy: Path, tmp_path: Path):
    from app.core.governance.approvals import unlock
    from app.core.governance.portable import SIGNATURE

    with Project.open(governed_copy) as project:
        with pytest.raises(BundleError, match="Exporting a project with users is a signed change"):
            export_project(project, tmp_path / "unsigned.lpz")
        out = export_project(project, tmp_path / "signed.lpz", by=unlock(project, "ines", "pass-word-1"))
    # 80 MiB of zeros compress ~1000:1, yet the signed export imports whole.
    landing = tmp_path / "landing"
    landing.mkdir()
    imported = import_project(out, landing / "ok")
    assert (imported / "artifacts" / "models" / "zeros-weights.bin").stat().st_size == 80 << 20

    def edit_manifest(name, data):
        if name == MANIFEST:
            manifest = json.loads(data)
            manifest["project"] = "renamed after export"
            return [(name, json.dumps(manifest).encode(), None)]
        return None

    def drop_signature(name, data):
        return [] if name == SIGNATURE else None

    for bad, message in ((_rewrite(out, tmp_path / "edited.lpz", edit_manifest),
                          "manifest does not match the signature of ines"),
                         (_rewrite(out, tmp_path / "stripped.lpz", drop_signature),
                          "would expand|holds a project with users but its manifest is not signed")):
        target = tmp_path / f"landing-{bad.stem}"
        target.mkdir()
        with pytest.raises(BundleError, match=message):
            import_project(bad, target / "weld")
        assert list(target.iterdir()) == []


def test_export_waits_for_an_analysis_write_transaction_instead_of_failing(empty_project: Project, tmp_path: Path):
    """Another cursor's write transaction (the window's background work on opening a project): CHECKPOINT refuses
    while it is open. The export waits for it; a transaction that never ends is a clear error."""
    import threading

    from app.core.errors import ProjectLockedError

    other = empty_project.cursor()
    other.execute("BEGIN TRANSACTION")
    other.execute("CREATE TABLE _background_write AS SELECT 1 AS x")
    with pytest.raises(ProjectLockedError, match="kept a transaction open"):
        empty_project.checkpoint(wait_s=0.3)
    threading.Timer(0.5, lambda: other.execute("ROLLBACK")).start()
    out = export_project(empty_project, tmp_path / "waited.lpz")
    other.close()
    dest = import_project(out, tmp_path / "arrived")
    with Project.open(dest, read_only=True) as copy, copy.reading() as con:
        actions = [r[0] for r in con.execute("SELECT action FROM audit_log ORDER BY seq").fetchall()]
    assert actions[-1] == "project.export"
