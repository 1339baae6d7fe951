"""Archives and loose ends a hostile insider (or a damaged copy) brings: a .lpz exported by its own self-made
admin, a signed archive that expands 1000:1, an import into a link, tables dropped from the database, and a
signature asked for a file that is not there. Each is refused with a message naming what and what to do, and
leaves the files as they were."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import zipfile
from pathlib import Path

import duckdb
import pytest

from app.cli import main
from app.core.errors import SchemaDamagedError
from app.core.governance.approvals import add_user, unlock
from app.core.governance.identity import cert_pem, create_identity, create_site_ca
from app.core.governance.portable import MANIFEST, SIGNATURE, BundleError, export_project, import_project
from app.core.store.project import Project
from tests.helpers import pin_self_signed_identities

PASS = "archive-pass-1"


def _governed(folder: Path, home: Path, admin: str, ca: str | None) -> Path:
    """A small project whose first user (`admin`) is issued by the site CA `ca`, or self-made when ca is None;
    exported, signed by that admin. Returns the archive."""
    os.environ["LINEPROOF_HOME"] = str(home)
    if ca:
        create_site_ca(ca, f"{ca} root", PASS)
    cert = create_identity(admin, admin.title(), PASS, ca_id=ca, ca_passphrase=PASS if ca else None)
    with Project.create(folder, f"{admin}'s project", site="P1") as project:
        add_user(project, admin, admin.title(), cert_pem(cert), ["admin", "approver"],
                 by=unlock(project, admin, PASS))
        return export_project(project, folder.parent / f"{admin}.lpz", by=unlock(project, admin, PASS))


@pytest.fixture(scope="module")
def site_template(tmp_path_factory) -> Path:
    """What `site` copies: both exports and both PCs' profiles, built once (three identities, two signed exports)."""
    folder = tmp_path_factory.mktemp("archives-template")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LINEPROOF_HOME", str(folder / "elsewhere"))  # _governed moves it; this puts it back after
        pin_self_signed_identities(mp)  # the forged admin pinned themselves on their own PC
        _governed(folder / "forged-src" / "p", folder / "elsewhere", "mallory", None)
        _governed(folder / "good-src" / "p", folder / "here", "admin", "plant-ca")
    return folder


@pytest.fixture
def site(tmp_path: Path, monkeypatch, site_template: Path) -> dict[str, Path]:
    """This PC trusts the plant CA; `good` is an export by a plant user, `forged` one by a self-made admin made
    on another PC (where that admin pinned themselves)."""
    shutil.copytree(site_template, tmp_path, dirs_exist_ok=True)
    monkeypatch.setenv("LINEPROOF_HOME", str(tmp_path / "here"))  # this PC
    landing = tmp_path / "landing"
    landing.mkdir()
    return {"good": tmp_path / "good-src" / "admin.lpz", "forged": tmp_path / "forged-src" / "mallory.lpz",
            "landing": landing, "home": tmp_path / "here"}


def test_a_self_signed_archive_with_its_own_admin_is_refused(site: dict[str, Path]) -> None:
    with zipfile.ZipFile(site["forged"]) as archive:  # the archive itself is whole and its signature matches
        assert json.loads(archive.read(SIGNATURE))["user_id"] == "mallory"
    with pytest.raises(BundleError, match="signed by mallory, whom this PC does not trust: .* does not chain"):
        import_project(site["forged"], site["landing"] / "p")
    assert list(site["landing"].iterdir()) == []
    assert import_project(site["good"], site["landing"] / "ok").joinpath("project.duckdb").is_file()


def test_a_user_listed_in_the_archive_but_issued_elsewhere_is_not_trusted(site: dict[str, Path], tmp_path: Path,
                                                                          monkeypatch) -> None:
    """Even a CA: the archive's admin is issued by a CA of another site, which this PC never trusted."""
    other = _governed(tmp_path / "other-src" / "p", tmp_path / "other-site", "olaf", "other-ca")
    monkeypatch.setenv("LINEPROOF_HOME", str(site["home"]))
    with pytest.raises(BundleError, match="olaf, whom this PC does not trust"):
        import_project(other, site["landing"] / "p")
    monkeypatch.setenv("LINEPROOF_HOME", str(tmp_path / "bare-pc"))  # a PC with no anchor at all
    with pytest.raises(BundleError, match="no trust anchor configured"):
        import_project(site["good"], site["landing"] / "p")
    assert list(site["landing"].iterdir()) == []


def _zeros_entry(archive: zipfile.ZipFile, name: str, size: int) -> str:
    """Write `size` zero bytes as one deflated entry (about size/1000 packed); returns their sha256."""
    digest, block = hashlib.sha256(), b"\0" * (1 << 20)
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with archive.open(info, "w", force_zip64=True) as out:
        for _ in range(size >> 20):
            out.write(block)
            digest.update(block)
    return digest.hexdigest()


@pytest.mark.slow  # writes 1 GiB on purpose; test_portable's bombs run by default (make test-slow, CI)
def test_a_signed_archive_of_one_mib_that_expands_to_one_gib_is_refused(site: dict[str, Path],
                                                                        tmp_path: Path) -> None:
    """Signed by a trusted user with a matching manifest: a signature says who, not that the bytes are harmless."""
    bomb = tmp_path / "bomb.lpz"
    with zipfile.ZipFile(site["good"]) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED,
                                                              compresslevel=9) as out:
        for info in src.infolist():
            if info.filename not in (MANIFEST, SIGNATURE):
                out.writestr(info, src.read(info))
        sha = _zeros_entry(out, "artifacts/weights.bin", 1 << 30)
        manifest = json.loads(src.read(MANIFEST))
        manifest["files"].append({"path": "artifacts/weights.bin", "size": 1 << 30, "sha256": sha})
        manifest["total_size"] += 1 << 30
        body = json.dumps(manifest, indent=1, sort_keys=True).encode()
        out.writestr(MANIFEST, body)
        admin = unlock_archive_signer(site)
        out.writestr(SIGNATURE, json.dumps({"user_id": "admin", "cert_pem": cert_pem(admin.cert),
                                            "signature": base64.b64encode(admin.sign(body)).decode()}))
    assert bomb.stat().st_size < 2 << 20
    with pytest.raises(BundleError, match=r"1 entries that would expand [\d,]+x, to 1,024 MiB .*zip bomb"):
        import_project(bomb, site["landing"] / "p")
    assert list(site["landing"].iterdir()) == []


def unlock_archive_signer(site: dict[str, Path]):
    from app.core.governance.identity import unlock_identity

    os.environ["LINEPROOF_HOME"] = str(site["home"])
    return unlock_identity("admin", PASS)


def test_free_space_is_checked_before_anything_is_written(site: dict[str, Path], monkeypatch) -> None:
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage(1 << 30, 1 << 30, 1 << 20))
    dest = site["landing"] / "new" / "deeper" / "p"
    with pytest.raises(BundleError, match=r"(?s)expands to [\d.]+ MiB; .* has 1.0 MiB free.*Free some space"):
        import_project(site["good"], dest)
    assert not (site["landing"] / "new").exists()  # not even the parent folders


@pytest.mark.parametrize("target", ["empty folder", "nowhere"])
def test_an_import_into_a_link_is_refused(site: dict[str, Path], tmp_path: Path, target: str, capsys) -> None:
    pointed = tmp_path / "pointed"
    if target == "empty folder":
        pointed.mkdir()
    link = site["landing"] / "p"
    link.symlink_to(pointed)
    assert main(["import-project", str(site["good"]), str(link), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{link} is a link (to {pointed})" in err and "Traceback" not in err
    assert link.is_symlink() and (list(pointed.iterdir()) == [] if target == "empty folder" else not pointed.exists())
    assert sorted(p.name for p in site["landing"].iterdir()) == ["p"]


@pytest.mark.parametrize(("damage", "named"), [
    ("DROP TABLE audit_head", "table audit_head is missing"),
    ("DROP TABLE audit_receipts", "table audit_receipts is missing"),
    ("DROP TABLE statements", "table statements is missing"),
    ("ALTER TABLE users DROP COLUMN cert_pem", "table users lacks the column(s) cert_pem"),
    ("CREATE OR REPLACE VIEW current_stages AS SELECT 'x:v1' AS version_id, 'P1' AS site, 'production' AS stage",
     "view current_stages was redefined"),
])
def test_a_database_with_dropped_or_redefined_tables_is_named_never_a_traceback(site: dict[str, Path], damage: str,
                                                                                named: str, capsys) -> None:
    folder = import_project(site["good"], site["landing"] / "p")
    con = duckdb.connect(str(folder / "project.duckdb"))
    con.execute(damage)
    con.close()
    before = (folder / "project.duckdb").read_bytes()
    with pytest.raises(SchemaDamagedError, match=re.escape(named)):
        Project.open(folder)
    assert main(["audit", "verify", str(folder)]) == 1
    out = capsys.readouterr()
    assert f"AUDIT TRAIL BROKEN: {folder / 'project.duckdb'} was changed outside Lineproof: {named}" in out.out
    assert main(["info", str(folder)]) == 2 and named in capsys.readouterr().err
    assert (folder / "project.duckdb").read_bytes() == before


def test_signing_a_missing_or_foreign_file_names_it(site: dict[str, Path], tmp_path: Path, capsys) -> None:
    folder = import_project(site["good"], site["landing"] / "p")
    os.environ["LINEPROOF_PASSPHRASE"] = PASS
    try:
        for path, words in ((tmp_path / "absent.pdf", "Cannot read the packet"),
                            (site["good"], "is not a PDF"),
                            (tmp_path, "Cannot read the packet")):
            assert main(["sign", str(path), "--project", str(folder), "--as", "admin:approved by"]) == 2
            err = capsys.readouterr().err
            assert words in err and str(path.name) in err and "Traceback" not in err
    finally:
        os.environ.pop("LINEPROOF_PASSPHRASE", None)


def test_an_export_signed_after_the_exporters_certificate_was_revoked_is_refused(site: dict[str, Path]) -> None:
    import datetime as dt

    from app.core.governance.identity import profile_certificate
    from app.core.governance.revocation import issue_crl

    admin = profile_certificate("admin")
    issue_crl("plant-ca", PASS, [(admin, "superseded", dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5))])
    assert import_project(site["good"], site["landing"] / "before").is_dir()  # exported before the revocation
    issue_crl("plant-ca", PASS, [(admin, "keyCompromise", dt.datetime.now(dt.UTC) - dt.timedelta(days=1))])
    with pytest.raises(BundleError, match="after their certificate was revoked .*keyCompromise"):
        import_project(site["good"], site["landing"] / "after")
    assert not (site["landing"] / "after").exists()
