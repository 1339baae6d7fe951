"""A Lineproof project on disk: manifest, DuckDB store, artifacts; opening, locking, migrating."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from app import __version__
from app.core.errors import (
    ProjectCorruptError,
    ProjectExistsError,
    ProjectLockedError,
    ProjectNotFoundError,
    ProjectNotWritableError,
    ReadOnlyProjectError,
    SchemaDamagedError,
    SchemaTooNewError,
    SettingsError,
)
from app.core.store.audit import append_audit, current_actor
from app.core.store.db import one
from app.core.store.manifest import (
    DEFAULT_SLICE_DIMENSIONS,
    MANIFEST_NAME,
    Manifest,
    read_manifest,
    write_manifest,
)
from app.core.store.schema import SCHEMA_VERSION, migrate, schema_damage, stored_version

DB_NAME = "project.duckdb"
HOLDER_NAME = ".lineproof-holder.json"
WRITE_WAIT_S = 120


DEFAULT_MEMORY_LIMIT = "320MB"


def memory_limit() -> str:
    """DuckDB's memory limit for a project: LINEPROOF_MEMORY_LIMIT (e.g. "4GB" on a workstation) or the default."""
    return os.environ.get("LINEPROOF_MEMORY_LIMIT", "").strip() or DEFAULT_MEMORY_LIMIT


@contextmanager
def write_memory(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """DuckDB's own default memory limit for the span of an import: under the reading limit a 10M-row import spilled
    its uniqueness check and took twice as long. The reading limit is set again after, whatever happened."""
    con.execute("RESET memory_limit")
    try:
        yield
    finally:
        try:
            _set_memory_limit(con)
        except duckdb.Error:
            pass


def _set_memory_limit(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"SET memory_limit = '{memory_limit().replace(chr(39), '')}'")


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("SET enable_progress_bar = false")
    # DuckDB keeps every block it reads cached up to 80% of the PC's memory, so a drift matrix over 10M rows held
    # over 1 GB: a bounded cache keeps a shop-floor PC responsive, and heavier steps spill to the temp folder
    # (outside the project folder, which must hold only the project).
    try:
        _set_memory_limit(con)
    except duckdb.Error as exc:
        con.close()
        raise SettingsError(f"LINEPROOF_MEMORY_LIMIT={memory_limit()!r} is not a memory size.",
                            "Give a size such as 512MB or 4GB, or unset it for the default "
                            f"({DEFAULT_MEMORY_LIMIT}).") from exc
    temp = str(Path(tempfile.gettempdir()) / f"lineproof-duckdb-{os.getpid()}").replace("'", "")
    con.execute(f"SET temp_directory = '{temp}'")
    # GLOBAL: every cursor (a connection of its own) reads and writes UTC too, whatever this PC's zone is.
    con.execute("SET GLOBAL TimeZone = 'UTC'")
    return con


def _check_writable(folder: Path) -> None:
    # os.access lies for root and on network shares: try the real thing.
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ProjectNotWritableError(
            f"The project folder {folder} is not writable by {current_actor()} ({exc.strerror}).",
            "Ask for write access to the folder, or open the project read-only.",
        ) from exc


def _holder_text(folder: Path, pid: int | None) -> str:
    try:
        info = json.loads((folder / HOLDER_NAME).read_text(encoding="utf-8"))
        if pid is None or info.get("pid") == pid:
            return f"{info.get('user')} on {info.get('host')} (PID {info.get('pid')}, since {info.get('since')})"
    except (OSError, ValueError):
        pass
    return f"process {pid}" if pid else "another process"


class Project:
    """An open project: use as a context manager, or call close()."""

    def __init__(self, folder: Path, manifest: Manifest, con: duckdb.DuckDBPyConnection,
                 read_only: bool, snapshot_of: Path | None = None) -> None:
        self.folder = folder
        self.manifest = manifest
        self.con = con
        self.read_only = read_only
        self.snapshot_of = snapshot_of
        self._owns_holder = False
        self.closed = False
        self._cursor_lock = threading.Lock()
        # One change at a time in this process: the audit chain needs each entry to see the one before.
        self._write_lock = threading.RLock()

    # ----- paths
    @property
    def db_path(self) -> Path:
        """The DuckDB file of this project."""
        return self.folder / DB_NAME

    @property
    def models_dir(self) -> Path:
        """Content-addressed model artifacts."""
        return self.folder / "artifacts" / "models"

    @property
    def datasets_dir(self) -> Path:
        """Immutable dataset artifacts."""
        return self.folder / "artifacts" / "datasets"

    @property
    def display_name(self) -> str:
        """Name for titles and status bars."""
        return self.manifest.name

    # ----- lifecycle
    @classmethod
    def create(cls, folder: Path | str, name: str, site: str = "",
               slice_dimensions: tuple[str, ...] = DEFAULT_SLICE_DIMENSIONS, description: str = "") -> Project:
        """Create a new project folder (refuses to touch an existing project)."""
        folder = Path(folder).resolve()
        if (folder / MANIFEST_NAME).exists() or (folder / DB_NAME).exists():
            raise ProjectExistsError(f"{folder} already holds a Lineproof project.",
                                     "Open it instead, or choose an empty folder.")
        if folder.exists() and any(folder.iterdir()):
            raise ProjectExistsError(f"{folder} is not empty.", "Choose a new or empty folder for the project.")
        folder.mkdir(parents=True, exist_ok=True)
        _check_writable(folder)
        for sub in ("artifacts/models", "artifacts/datasets", "packets"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        manifest = Manifest(name=name, site=site, schema_version=SCHEMA_VERSION,
                            slice_dimensions=tuple(slice_dimensions), description=description)
        con = _connect(folder / DB_NAME, read_only=False)
        migrate(con, SCHEMA_VERSION, __version__)
        con.execute("BEGIN TRANSACTION")
        append_audit(con, "project.create", name, {"site": site, "slice_dimensions": list(slice_dimensions)})
        con.execute("COMMIT")
        write_manifest(folder, manifest)
        project = cls(folder, manifest, con, read_only=False)
        project._write_holder()
        return project

    @classmethod
    def open(cls, folder: Path | str, read_only: bool = False) -> Project:
        """Open an existing project; migrates an older schema when opened for writing."""
        folder = Path(folder).resolve()
        if not (folder / MANIFEST_NAME).is_file():
            raise ProjectNotFoundError(f"{folder} is not a Lineproof project (no {MANIFEST_NAME}).",
                                       "Choose the project folder, or create one with `lineproof init`.")
        manifest = read_manifest(folder)
        if manifest.schema_version > SCHEMA_VERSION:
            raise _too_new(folder, manifest.schema_version)
        db = folder / DB_NAME
        if not db.is_file():
            raise ProjectCorruptError(f"{db} is missing.", "Restore project.duckdb from a backup.")
        if not read_only:
            _check_writable(folder)
        con = cls._connect_checked(folder, read_only)
        return cls._finish_open(folder, manifest, con, read_only, snapshot_of=None)

    @classmethod
    def open_snapshot(cls, folder: Path | str) -> Project:
        """Open a read-only copy of a project another process is writing (the platform forbids sharing)."""
        folder = Path(folder).resolve()
        manifest = read_manifest(folder)
        snap = Path(tempfile.mkdtemp(prefix="lineproof-snapshot-"))
        for name in (MANIFEST_NAME, DB_NAME, DB_NAME + ".wal"):
            if (folder / name).exists():
                shutil.copy2(folder / name, snap / name)
        for sub in ("artifacts", "packets"):
            if (folder / sub).is_dir():
                (snap / sub).symlink_to(folder / sub)  # large and immutable: link, never copy
        try:
            con = cls._connect_checked(snap, read_only=True)
            version = stored_version(con)
            if 0 < version < SCHEMA_VERSION:
                # An older project seen read-only: upgrade the private copy, never the original.
                con.close()
                con = cls._connect_checked(snap, read_only=False)
                migrate(con, SCHEMA_VERSION, __version__)
            if 0 < version < SCHEMA_VERSION:
                manifest = manifest.with_schema(SCHEMA_VERSION)
            project = cls._finish_open(snap, manifest, con, True, snapshot_of=folder)
        except BaseException:
            shutil.rmtree(snap, ignore_errors=True)
            raise
        return project

    @classmethod
    def _connect_checked(cls, folder: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
        db = folder / DB_NAME
        try:
            con = _connect(db, read_only)
            stored_version(con)
            _check_storage(con, db)
            return con
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" in text.lower():
                match = re.search(r"PID (\d+)", text)
                pid = int(match.group(1)) if match else None
                raise ProjectLockedError(
                    f"The project {folder.name} is open for writing by {_holder_text(folder, pid)}.",
                    "Close it there, or open a read-only snapshot (File > Open read-only, `--read-only`).",
                    holder_pid=pid,
                ) from exc
            raise _corrupt(db, exc) from exc
        except duckdb.Error as exc:
            raise _corrupt(db, exc) from exc

    @classmethod
    def _finish_open(cls, folder: Path, manifest: Manifest, con: duckdb.DuckDBPyConnection,
                     read_only: bool, snapshot_of: Path | None) -> Project:
        try:
            version = stored_version(con)
        except duckdb.Error as exc:
            con.close()
            raise _corrupt(folder / DB_NAME, exc) from exc
        if version > SCHEMA_VERSION:
            con.close()
            raise _too_new(folder, version)
        if version == 0:
            con.close()
            raise ProjectCorruptError(f"{folder / DB_NAME} holds no Lineproof tables.",
                                      "Restore project.duckdb from a backup.")
        if version < SCHEMA_VERSION:
            if read_only:
                con.close()
                if snapshot_of is None:
                    return cls.open_snapshot(folder)  # an upgraded private copy; the original stays as it is
                raise _needs_upgrade(folder, version)
            try:
                migrate(con, SCHEMA_VERSION, __version__)
                con.execute("BEGIN TRANSACTION")
                append_audit(con, "project.migrate", manifest.name, {"from": version, "to": SCHEMA_VERSION})
                con.execute("COMMIT")
            except duckdb.Error as exc:
                con.close()
                raise _corrupt(folder / DB_NAME, exc) from exc
            manifest = manifest.with_schema(SCHEMA_VERSION)
            write_manifest(folder, manifest)
        damage = schema_damage(con)
        if damage:  # every query would meet it later as a bare catalog error, or read a forged view
            con.close()
            raise SchemaDamagedError(
                f"{(snapshot_of or folder) / DB_NAME} was changed outside Lineproof: {'; '.join(damage)}.",
                "Nothing was changed. Treat the project as tampered with: restore project.duckdb from a backup "
                "or an exported bundle, and compare with `lineproof audit verify` on the restored copy.")
        project = cls(folder, manifest, con, read_only, snapshot_of)
        if not read_only:
            project._write_holder()
        return project

    def _write_holder(self) -> None:
        info = {"pid": os.getpid(), "user": current_actor(), "host": socket.gethostname(),
                "since": datetime.now().isoformat(timespec="seconds")}
        (self.folder / HOLDER_NAME).write_text(json.dumps(info), encoding="utf-8")
        self._owns_holder = True

    def close(self) -> None:
        """Checkpoint and release the database (and the snapshot copy, if any); safe to call twice."""
        if self.closed:
            return
        self.closed = True
        try:
            if not self.read_only:
                self.con.execute("CHECKPOINT")
        except duckdb.Error:
            pass
        self.con.close()
        if self._owns_holder:
            (self.folder / HOLDER_NAME).unlink(missing_ok=True)
            self._owns_holder = False
        if self.snapshot_of is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- access
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection for one thread (DuckDB connections are not shared across threads); close it after."""
        with self._cursor_lock:
            return self.con.cursor()

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived cursor for a query from any thread (workers and the GUI thread alike)."""
        con = self.cursor()
        try:
            yield con
        finally:
            con.close()

    def require_writable(self) -> None:
        """Raise unless changes are allowed."""
        if self.read_only:
            raise ReadOnlyProjectError(
                f"{self.display_name} is open read-only; nothing was changed.",
                "Close other Lineproof windows on this project and open it for writing.")

    def checkpoint(self, wait_s: float = WRITE_WAIT_S) -> None:
        """Write everything into the main file (no .wal left), waiting for other cursors' short write transactions
        (the window's background work on opening a project) rather than aborting them as FORCE CHECKPOINT would."""
        deadline = time.monotonic() + wait_s
        with self.reading() as con:
            while True:
                try:
                    con.execute("CHECKPOINT")
                    return
                except duckdb.TransactionException:
                    if time.monotonic() > deadline:
                        raise ProjectLockedError(
                            f"{self.display_name} could not be written to its main file: an analysis kept a "
                            f"transaction open for over {wait_s:g} s.",
                            "Wait until the running computation ends (or cancel it) and try again.") from None
                    time.sleep(0.05)

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """Hold off every change in this process (e.g. while the project's files are copied)."""
        if not self._write_lock.acquire(timeout=WRITE_WAIT_S):
            raise ProjectLockedError(f"Another change to {self.display_name} has been writing for over "
                                     f"{WRITE_WAIT_S} s.", "Try again when it has finished; nothing was changed.")
        try:
            yield
        finally:
            self._write_lock.release()

    @contextmanager
    def change(self, action: str, target: str, details: dict[str, Any] | None = None,
               con: duckdb.DuckDBPyConnection | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A transaction whose audit entry commits with it; any exception rolls both back.

        Without `con` it runs on a private cursor, so it is safe from a worker thread.
        """
        self.require_writable()
        if not self._write_lock.acquire(timeout=WRITE_WAIT_S):
            raise ProjectLockedError(
                f"Another change to {self.display_name} has been writing for over {WRITE_WAIT_S} s (an import?).",
                "Try again when it has finished; nothing was changed.")
        own = con is None
        try:
            con = self.cursor() if own else con
        except BaseException:
            self._write_lock.release()
            raise
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
                append_audit(con, action, target, details)
                con.execute("COMMIT")
            except BaseException:
                try:
                    con.execute("ROLLBACK")
                except duckdb.Error:
                    pass
                raise
            try:
                con.execute("CHECKPOINT")  # keeps the main file current for read-only snapshots
            except duckdb.Error:
                pass
        finally:
            if own:
                con.close()
            self._write_lock.release()


_HEADER_BYTES = 3 * 4096  # DuckDB's file header plus its two database headers


def _check_storage(con: duckdb.DuckDBPyConnection, db: Path) -> None:
    """Refuse a truncated file: every data block the catalog points to must lie inside the file.

    DuckDB opens a truncated file happily and fails only when a query reaches a missing block.
    """
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND NOT temporary"
    ).fetchall()]
    if not tables:
        return
    union = " UNION ALL ".join(
        f"SELECT max(block_id) AS b FROM pragma_storage_info('{t}') WHERE persistent" for t in tables)
    max_block = one(con, f"SELECT max(b) FROM ({union})")[0]
    block_size = one(con, "SELECT block_size FROM pragma_database_size() WHERE database_name = current_database()")[0]
    if max_block is not None and db.stat().st_size < _HEADER_BYTES + (int(max_block) + 1) * int(block_size):
        raise duckdb.IOException(
            f"file is {db.stat().st_size:,} bytes but its data reaches byte "
            f"{_HEADER_BYTES + (int(max_block) + 1) * int(block_size):,} (truncated copy?)")


def _corrupt(db: Path, exc: Exception) -> ProjectCorruptError:
    return ProjectCorruptError(
        f"{db} is damaged or not a Lineproof database ({str(exc).splitlines()[0]}).",
        "Nothing was changed. Restore project.duckdb from a backup or from an exported project bundle.")


def _too_new(folder: Path, version: int) -> SchemaTooNewError:
    return SchemaTooNewError(
        f"{folder.name} was written by a newer Lineproof (schema {version}; this is {__version__}, "
        f"schema {SCHEMA_VERSION}).", "Update Lineproof to open it; nothing was changed.")


def _needs_upgrade(folder: Path, version: int) -> ReadOnlyProjectError:
    """The error for an old schema opened read-only (migration needs write access)."""
    return ReadOnlyProjectError(
        f"{folder.name} uses schema {version} and must be upgraded to {SCHEMA_VERSION} before use.",
        "Open it once for writing to upgrade it (a backup copy first is wise).")
