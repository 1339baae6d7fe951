"""Table formats a lake keeps its logs in: plain (hive-partitioned) Parquet, Delta and Iceberg.

A Delta or Iceberg table is read at one snapshot: that snapshot's own data files (older versions' files stay in
the folder and must not be read) and its id, recorded so that a later write or a rollback is seen. Features a
plain Parquet read of the data files would get wrong (deletion vectors, delete files, renamed columns) are
refused rather than read wrongly.
"""

from __future__ import annotations

import re
from pathlib import Path

from app.core.errors import LineproofError

FORMATS = ("parquet", "delta", "iceberg")


class TableError(LineproofError):
    """A table cannot be read in place as asked."""


def table_format(source: str) -> str:
    """parquet, delta (a folder with _delta_log) or iceberg (a folder with metadata/*.metadata.json, or such a
    metadata file itself, which pins that version)."""
    path = Path(source).expanduser()
    if (path / "_delta_log").is_dir():
        return "delta"
    if path.name.endswith(".metadata.json") or (path / "metadata").is_dir() and any(
            (path / "metadata").glob("*.metadata.json")):
        return "iceberg"
    return "parquet"


def snapshot(source: str, fmt: str) -> tuple[str, list[str]]:
    """(snapshot id, data files) of a Delta or Iceberg table's current snapshot."""
    return _delta(source) if fmt == "delta" else _iceberg(source)


def table_root(source: str, fmt: str) -> str:
    """The table's folder (partition folders are read below it)."""
    path = Path(source).expanduser()
    return str(path.parent.parent if fmt == "iceberg" and path.name.endswith(".metadata.json") else path)


def _delta(source: str) -> tuple[str, list[str]]:
    try:
        from deltalake import DeltaTable
    except ImportError as exc:
        raise TableError(f"{source} is a Delta table, and the Delta reader is not installed.",
                         "Install it: pip install 'lineproof[lake]' (deltalake); nothing was attached.") from exc
    try:
        table = DeltaTable(str(Path(source).expanduser()))
    except Exception as exc:  # deltalake raises its own error types per failure
        raise TableError(f"{source} cannot be read as a Delta table ({str(exc).splitlines()[0]}).",
                         "Check the path and that the table's _delta_log is complete.") from exc
    unsupported = set(table.protocol().reader_features or ()) & {"deletionVectors", "columnMapping"}
    if unsupported:
        raise TableError(f"{source} uses Delta reader feature(s) {', '.join(sorted(unsupported))}.",
                         "Those tables are not read in place yet: OPTIMIZE/PURGE them, or import a copy.")
    return str(table.version()), sorted(table.file_uris())


def _newest_metadata(source: str) -> Path:
    """The metadata file a path names, else the table's newest (version-hint.text, or the highest sequence)."""
    path = Path(source).expanduser()
    if path.name.endswith(".metadata.json"):
        return path
    folder = path / "metadata"
    hint = folder / "version-hint.text"
    if hint.is_file() and (folder / f"v{hint.read_text().strip()}.metadata.json").is_file():
        return folder / f"v{hint.read_text().strip()}.metadata.json"

    def sequence(p: Path) -> int:
        match = re.match(r"v?(\d+)", p.name)
        return int(match.group(1)) if match else -1
    return max(folder.glob("*.metadata.json"), key=lambda p: (sequence(p), p.stat().st_mtime_ns))


def _iceberg(source: str) -> tuple[str, list[str]]:
    try:
        from pyiceberg.table import StaticTable
    except ImportError as exc:
        raise TableError(f"{source} is an Iceberg table, and the Iceberg reader is not installed.",
                         "Install it: pip install 'lineproof[lake]' (pyiceberg); nothing was attached.") from exc
    metadata = _newest_metadata(source)
    try:
        table = StaticTable.from_metadata(str(metadata))
        current = table.current_snapshot()
        tasks = list(table.scan().plan_files()) if current else []
    except Exception as exc:  # pyiceberg raises its own error types per failure
        raise TableError(f"{source} cannot be read as an Iceberg table ({str(exc).splitlines()[0]}).",
                         f"Check {metadata.name} and the manifests it names.") from exc
    if current is None:
        raise TableError(f"The Iceberg table {source} has no snapshot (no data yet).", "Attach it once it holds data.")
    if any(t.delete_files for t in tasks):
        raise TableError(f"The Iceberg table {source} has row-level delete files in its snapshot.",
                         "Those are not applied by a Parquet read: compact the table (rewrite data files), or "
                         "import a copy; nothing was attached.")
    if len(table.schemas()) > 1:
        raise TableError(f"The Iceberg table {source} changed its schema since it was created.",
                         "Older data files may carry old column names, which a read by name would miss; rewrite the "
                         "table, or import a copy; nothing was attached.")
    return str(current.snapshot_id), sorted(t.file.file_path.removeprefix("file://") for t in tasks)
