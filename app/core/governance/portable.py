"""Portable projects: one .lpz archive (zip) with a manifest of every file's size and sha256, and an import that
checks all of it before anything is used.

The import never trusts the archive: names that escape the destination, links, device files, entries the
manifest does not list, sizes above the declared ones (zip bombs) and hash mismatches are refused, and the
project only appears under its final name once every file was written and checked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from app.core.errors import LineproofError
from app.core.progress import NullProgress, Progress, check_cancelled
from app.core.store.project import HOLDER_NAME, Project

FORMAT = "lineproof-project-bundle/1"
MANIFEST = "MANIFEST.json"
SIGNATURE = "MANIFEST.sig.json"  # who exported: their certificate and signature over the manifest bytes
SKIP_DIRS = {".staging", ".lineproof-lock"}
CHUNK = 1 << 20
MAX_RATIO = 200  # an entry that expands more than this is "bomb-like"...
BOMB_FLOOR = 32 << 20  # ...and an unsigned archive whose bomb-like entries expand to more than this, in all, is refused
DISK_MARGIN = 256 << 20  # free space the import leaves on the destination drive


class BundleError(LineproofError):
    """An archive cannot be written or imported; nothing was changed."""


def _files(folder: Path) -> list[Path]:
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        # The holder file says which process on this PC has the project open: in a copy it would name a
        # process that does not exist there.
        if rel.parts[0] in SKIP_DIRS or path.name.endswith((".partial", ".wal", ".lock")) or \
                rel.as_posix() == HOLDER_NAME:
            continue
        if path.is_symlink():
            raise BundleError(f"{rel} in the project is a link.", "Replace it with the file itself; nothing was written.")
        if path.is_file():
            out.append(path)
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def export_project(project: Project, out: Path | str, progress: Progress | None = None, by: Any = None) -> Path:
    """Write the project (database checkpointed first) and its artifacts to one archive with a manifest; from a
    governed project the exporting user (`by`, an unlocked Signer) signs the manifest."""
    from app.core.governance.approvals import governed

    progress = progress or NullProgress()
    out = Path(out)
    if by is None and governed(project):
        raise BundleError("Exporting a project with users is a signed change.",
                          "Say who exports (--as USER, or choose the user in the dialog); nothing was written.")
    if out.exists():
        raise BundleError(f"{out} exists already.", "Choose a new file name; nothing was written.")
    folder = project.folder
    with project.write_lock():  # no change may land between the checkpoint and the copy
        files = _files(folder)
        total = sum(f.stat().st_size for f in files) or 1
        if not project.read_only:
            # Audited before the copy, so the archive carries its own export entry and the same chain head.
            with project.change("project.export", out.name, {"files": len(files), "bytes": total}):
                pass
            if by is not None:
                from app.core.governance.receipts import sign_head

                sign_head(project, by)  # the archive carries a signed head: a copy's log can be checked against it
            project.checkpoint()  # the .wal is not exported: everything must be in the main file
            files = _files(folder)
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.stem}-", suffix=".partial", dir=out.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            entries = _write_archive(tmp, project, files, by, set(), progress)
            stored = _bomb_like_names(tmp)
            if stored:  # data that compresses like a zip bomb is stored as is, so every import accepts it
                entries = _write_archive(tmp, project, files, by, stored, progress)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, out)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if not project.read_only:
                with project.change("project.export.failed", out.name, {"why": str(exc)[:200] or type(exc).__name__}):
                    pass
            raise
    progress.report(1.0, f"Exported {len(entries)} files to {out.name}")
    return out


def _write_archive(tmp: Path, project: Project, files: list[Path], by: Any, stored: set[str],
                   progress: Progress) -> list[dict[str, Any]]:
    """Write the files, the manifest and (from a governed project) its signature; `stored` entries uncompressed."""
    from app import __version__

    folder = project.folder
    total = sum(f.stat().st_size for f in files) or 1
    entries: list[dict[str, Any]] = []
    done = 0
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in files:
            check_cancelled(progress)
            rel = path.relative_to(folder).as_posix()
            entries.append({"path": rel, "size": path.stat().st_size, "sha256": _sha256(path)})
            archive.write(path, rel, compress_type=zipfile.ZIP_STORED if rel in stored else None)
            done += path.stat().st_size
            progress.report(0.95 * done / total, f"Packing {rel}")
        manifest = {"format": FORMAT, "project": project.display_name, "created_at":
                    datetime.now(UTC).isoformat(timespec="seconds"), "app_version": __version__,
                    "files": entries, "total_size": sum(e["size"] for e in entries)}
        manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
        archive.writestr(MANIFEST, manifest_bytes)
        if by is not None:
            from app.core.governance.identity import cert_pem

            archive.writestr(SIGNATURE, json.dumps({
                "user_id": by.user_id, "cert_pem": cert_pem(by.cert),
                "signature": base64.b64encode(by.sign(manifest_bytes)).decode("ascii")}, indent=1))
    return entries


def _bomb_like(infos: list[zipfile.ZipInfo]) -> tuple[list[zipfile.ZipInfo], int, int]:
    """Entries that expand more than MAX_RATIO times, what they expand to, and their packed size."""
    bomb_like = [i for i in infos if i.file_size > MAX_RATIO * max(i.compress_size, 1)]
    return bomb_like, sum(i.file_size for i in bomb_like), sum(i.compress_size for i in bomb_like) or 1


def _bomb_like_names(path: Path) -> set[str]:
    """The entries of a written archive that its import would count as bomb-like, when they are too many."""
    with zipfile.ZipFile(path) as archive:
        bomb_like, swollen, _ = _bomb_like(archive.infolist())
    return {i.filename for i in bomb_like} if swollen > BOMB_FLOOR else set()


def _safe_name(name: str, archive: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if not name or name.startswith(("/", "\\")) or "\\" in name or ":" in path.parts[0] or ".." in path.parts:
        raise BundleError(f"{archive} contains the entry {name!r}, which points outside the project folder.",
                          "The archive is unsafe (zip slip); nothing was written. Ask for a new export.")
    return path


def _check_entry(info: zipfile.ZipInfo, archive: str) -> None:
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)  # 0 when the archiver recorded permissions only
    if kind == stat.S_IFLNK:
        raise BundleError(f"{archive} contains a link ({info.filename}).",
                          "Projects never contain links; nothing was written. Ask for a new export.")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise BundleError(f"{archive} contains a special file ({info.filename}, mode {oct(mode)}).",
                          "Only plain files are accepted; nothing was written.")


def read_manifest(archive_path: Path | str) -> dict[str, Any]:
    """The archive's manifest after the structural checks (names, links, sizes, bombs), before extraction."""
    archive_path = Path(archive_path)
    name = archive_path.name
    try:
        archive = zipfile.ZipFile(archive_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"{name} is not a complete project archive ({exc}).",
                          "It is damaged or truncated: copy it again; nothing was written.") from exc
    with archive:
        try:
            manifest = json.loads(archive.read(MANIFEST))
        except KeyError as exc:
            raise BundleError(f"{name} has no {MANIFEST}.", "It is not a Lineproof project archive.") from exc
        except (zipfile.BadZipFile, ValueError, OSError) as exc:
            raise BundleError(f"{name}'s manifest cannot be read ({exc}).", "Copy the archive again.") from exc
        if manifest.get("format") != FORMAT:
            raise BundleError(f"{name} is a {manifest.get('format')!r} archive.", f"Expected {FORMAT}.")
        manifest["signed_by"], manifest["signer_cert_pem"] = _check_signature(archive, name)
        declared = {e["path"]: e for e in manifest["files"]}
        infos = [i for i in archive.infolist() if i.filename not in (MANIFEST, SIGNATURE)]
        for info in infos:
            _safe_name(info.filename, name)
            _check_entry(info, name)
            if info.is_dir():
                continue
            entry = declared.get(info.filename)
            if entry is None:
                raise BundleError(f"{name} contains {info.filename}, which its manifest does not list.",
                                  "The archive was changed after export; nothing was written.")
            if info.file_size != entry["size"]:
                raise BundleError(f"{info.filename} in {name} is {info.file_size:,} bytes, the manifest says "
                                  f"{entry['size']:,}.", "The archive was changed after export; nothing was written.")
        missing = sorted(set(declared) - {i.filename for i in infos})
        if missing:
            raise BundleError(f"{name} lacks {len(missing)} file(s) its manifest lists, e.g. {missing[0]}.",
                              "It is incomplete: copy it again; nothing was written.")
        for path in declared:
            _safe_name(path, name)
        expanded = sum(i.file_size for i in infos)
        # Counted over all entries: a thousand small bomb-like files are as bad as one big one.
        bomb_like, swollen, packed = _bomb_like(infos)
        # Every archive, signed or not: a signature says who exported, not that the bytes are harmless, and
        # Lineproof's own export stores such data uncompressed.
        if swollen > BOMB_FLOOR:
            raise BundleError(f"{name} has {len(bomb_like):,} entries that would expand {swollen / packed:,.0f}x, "
                              f"to {swollen / 2**20:,.0f} MiB from {packed / 2**10:,.0f} KiB (a zip bomb?).",
                              "Refused; nothing was written. Lineproof's own exports never compress like this: "
                              "ask for a new export.")
        manifest["expanded_size"] = expanded
    return manifest


def _check_signature(archive: zipfile.ZipFile, name: str) -> tuple[str | None, str]:
    """(the exporting user's id, their certificate) when the manifest carries a valid signature, (None, '')
    when it carries none; a signature that does not match is refused."""
    from cryptography import x509

    from app.core.governance.identity import check_validity, verify_signature

    try:
        signed = json.loads(archive.read(SIGNATURE))
    except KeyError:
        return None, ""
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise BundleError(f"{name}'s manifest signature cannot be read ({exc}).", "Copy the archive again.") from exc
    try:
        cert = x509.load_pem_x509_certificate(signed["cert_pem"].encode("ascii"))
        good = verify_signature(signed["cert_pem"], archive.read(MANIFEST), base64.b64decode(signed["signature"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise BundleError(f"{name}'s manifest signature is malformed ({exc}).", "Ask for a new export.") from exc
    if not good:
        raise BundleError(f"{name}'s manifest does not match the signature of {signed.get('user_id')}.",
                          "The archive was changed after export; nothing was written.")
    check_validity(cert, str(signed.get("user_id")), at=datetime.fromisoformat(
        json.loads(archive.read(MANIFEST))["created_at"]))
    return str(signed["user_id"]), signed["cert_pem"]


def _check_exporter(staging: Path, manifest: dict[str, Any], name: str, cert: Any) -> None:
    """A project with users was exported by one of them whose identity chains to this PC's trust anchor and who
    is a user by the project's signed record; users listed inside the archive are never trusted by themselves."""
    import duckdb

    from app.core.governance import ledger, trust

    signer = manifest.get("signed_by")
    con = duckdb.connect(str(staging / "project.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        has_users = "users" in tables and con.execute("SELECT count(*) FROM users").fetchall()[0][0]
        state = ledger.replay(con) if has_users and "statements" in tables else None
        registered = con.execute("SELECT cert_pem FROM users WHERE user_id = ?", [signer]).fetchall() \
            if has_users and signer else []
    except duckdb.Error as exc:
        raise BundleError(f"The project database in {name} cannot be read ({str(exc).splitlines()[0]}).",
                          "The archive is damaged; nothing was written. Ask for a new export.") from exc
    finally:
        con.close()
    if not has_users:
        return
    if signer is None:
        raise BundleError(f"{name} holds a project with users but its manifest is not signed.",
                          "Exports of governed projects are signed by the exporting user; ask for a new export. "
                          "Nothing was written.")
    if state is not None:
        user = state.users.get(signer)
        known = user is not None and user.active and user.cert_sha256 == trust.der_sha256(cert)
    else:  # a project from before signed statements: its users table is all there is to compare with
        known = bool(registered) and registered[0][0].strip() == manifest["signer_cert_pem"].strip()
    if not known:
        raise BundleError(f"{name} was signed by {signer}, who is not a user of the project inside by its signed "
                          "record.", "Ask a user of that project for a new export; nothing was written.")


def _trusted_exporter(manifest: dict[str, Any], name: str) -> Any:
    """The exporter's certificate, when it chains to this PC's trust anchor; refused otherwise."""
    from cryptography import x509

    from app.core.governance import trust
    from app.core.governance.revocation import revocation_of

    cert = x509.load_pem_x509_certificate(manifest["signer_cert_pem"].encode("ascii"))
    problem = trust.chain_problem(cert)
    if problem:
        raise BundleError(f"{name} was signed by {manifest['signed_by']}, whom this PC does not trust: {problem}.",
                          "Only exports signed by an identity of your site are imported. If the archive is from "
                          "your site, add its CA first (lineproof trust add SITE-CA.pem, or --trust). Nothing was "
                          "written.")
    revoked, _ = revocation_of(cert)
    if revoked is not None and revoked.revoked_at <= datetime.fromisoformat(manifest["created_at"]):
        raise BundleError(f"{name} was signed by {manifest['signed_by']} on {manifest['created_at']}, after their "
                          f"certificate was revoked ({revoked.revoked_at:%Y-%m-%d %H:%M} UTC, {revoked.reason}).",
                          "Ask a user with a valid key for a new export; nothing was written.")
    return cert


def _size(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def _check_destination(dest: Path) -> Path:
    """The folder the import may create: not a link, not an existing project; returns its nearest existing
    parent (where the free space is measured)."""
    if dest.is_symlink():
        raise BundleError(f"{dest} is a link (to {os.readlink(dest)}).",
                          "Import into a new, real folder: a link could send the project somewhere else. Nothing "
                          "was written.")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BundleError(f"{dest} exists already.", "Import into a new folder; an existing project is never "
                                                     "overwritten.")
    parent = dest.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise BundleError(f"{parent} is not a folder.", "Import into a folder you can write; nothing was written.")
    return parent


def import_project(archive_path: Path | str, dest: Path | str, progress: Progress | None = None) -> Path:
    """Check and unpack an archive into a new folder `dest`; the folder appears only when everything checked out."""
    progress = progress or NullProgress()
    archive_path, dest = Path(archive_path), Path(dest)
    existing = _check_destination(dest)
    manifest = read_manifest(archive_path)
    # An untrusted signer is refused before anything is unpacked.
    cert = _trusted_exporter(manifest, archive_path.name) if manifest["signed_by"] is not None else None
    free = shutil.disk_usage(existing).free  # before any byte (or folder) is written
    if manifest["expanded_size"] + DISK_MARGIN > free:
        raise BundleError(f"{archive_path.name} expands to {_size(manifest['expanded_size'])}; "
                          f"{existing} has {_size(free)} free (and the import leaves {_size(DISK_MARGIN)}).",
                          "Free some space or import onto another drive; nothing was written.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-importing-", dir=dest.parent))
    try:
        total = manifest["total_size"] or 1
        done = 0
        with zipfile.ZipFile(archive_path) as archive:
            for entry in manifest["files"]:
                check_cancelled(progress)
                target = staging / _safe_name(entry["path"], archive_path.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                digest, written = hashlib.sha256(), 0
                try:
                    with archive.open(entry["path"]) as src, open(target, "wb") as out:
                        while block := src.read(CHUNK):
                            written += len(block)
                            if written > entry["size"]:  # never trust the header: stop at the declared size
                                raise BundleError(f"{entry['path']} in {archive_path.name} is larger than declared.",
                                                  "Refused (a zip bomb?); nothing was written.")
                            digest.update(block)
                            out.write(block)
                except (zipfile.BadZipFile, EOFError, OSError) as exc:
                    raise BundleError(f"{entry['path']} in {archive_path.name} cannot be read ({exc}).",
                                      "The archive is damaged or truncated: copy it again; nothing was written.") \
                        from exc
                if digest.hexdigest() != entry["sha256"]:
                    raise BundleError(f"{entry['path']} in {archive_path.name} does not match its sha256 in the "
                                      "manifest.", "The file was changed or damaged; nothing was written.")
                done += written
                progress.report(0.9 * done / total, f"Checking {entry['path']}")
        if not (staging / "lineproof.toml").is_file():
            raise BundleError(f"{archive_path.name} holds no lineproof.toml.", "It is not a Lineproof project.")
        _check_exporter(staging, manifest, archive_path.name, cert)
        check_cancelled(progress)
        _check_destination(dest)  # again: the folder may have changed while the archive was checked
        try:
            if dest.exists():
                dest.rmdir()
            staging.rename(dest)
        except OSError as exc:
            raise BundleError(f"Cannot create {dest}: {exc.strerror or exc}.",
                              "Import into a new folder you can write; nothing was written.") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress.report(1.0, f"Imported {len(manifest['files'])} files into {dest}")
    return dest
