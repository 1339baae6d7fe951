"""Input files (CSV, Parquet): recognise, hash, inspect, and expose them to DuckDB with row numbers."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from app.core.errors import Cancelled, IngestError
from app.core.progress import Progress, check_cancelled
from app.core.store.db import one

if TYPE_CHECKING:
    import polars as pl

CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
_CHUNK = 4 << 20


@dataclass(frozen=True)
class SourceFile:
    """A recognised input file."""

    path: Path
    format: str  # "csv" or "parquet"
    size_bytes: int


@dataclass(frozen=True)
class FileInfo:
    """What the import dialog shows about a file before importing."""

    source: SourceFile
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type)
    preview: pl.DataFrame
    row_count: int


def sql_literal(text: str) -> str:
    """A single-quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """A double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def recognise(path: Path | str) -> SourceFile:
    """Decide whether a file is CSV or Parquet, by its bytes as much as by its name."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: no such file.", "Check the path and try again; nothing was imported.")
    size = path.stat().st_size
    if size == 0:
        raise IngestError(f"{path.name} is empty (0 bytes).", "Export the data again; nothing was imported.")
    with path.open("rb") as fh:
        head = fh.read(4096)
        fh.seek(max(0, size - 4))
        tail = fh.read(4)
    if head[:4] == b"PAR1":
        if tail != b"PAR1":
            raise IngestError(f"{path.name} starts like Parquet but its footer is missing (truncated copy?).",
                              "Copy the file again; nothing was imported.")
        return SourceFile(path, "parquet", size)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        raise IngestError(f"{path.name} is named .parquet but is not a Parquet file.",
                          "Export it again as Parquet, or rename it if it is a CSV; nothing was imported.")
    if b"\x00" in head:
        raise IngestError(f"{path.name} is not a CSV or Parquet file (it contains binary data).",
                          "Import CSV (with a header row) or Parquet files; nothing was imported.")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        try:
            head[:-4].decode("utf-8")  # a multi-byte character may be cut at 4096
        except UnicodeDecodeError as exc:
            raise IngestError(f"{path.name} is not UTF-8 text (byte {exc.start}).",
                              "Save the CSV as UTF-8 and import it again; nothing was imported.") from exc
    return SourceFile(path, "csv", size)


def sha256_of(path: Path, on_chunk: Callable[[int], None] | None = None) -> str:
    """sha256 of a file read in 4 MiB chunks; `on_chunk(bytes_done)` may report progress or raise Cancelled."""
    digest = hashlib.sha256()
    done = 0
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if on_chunk is not None:
                on_chunk(done)
    return digest.hexdigest()


class BackgroundDigest:
    """sha256 of an input file, computed on a thread while DuckDB reads the same file: hashlib releases the GIL, and
    a CSV scan leaves about half a core idle on two cores, so the hash costs almost no wall time (it was 7% of a
    10M-row import when it ran first). `result()` waits for it; `stop()` abandons it (an import that failed)."""

    def __init__(self, source: SourceFile, progress: Progress) -> None:
        self._source, self._progress = source, progress
        self._stop = threading.Event()
        self._sha: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="lineproof-digest", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        def on_chunk(_done: int) -> None:
            if self._stop.is_set():
                raise Cancelled()
            check_cancelled(self._progress)
        try:
            self._sha = sha256_of(self._source.path, on_chunk)
        except BaseException as exc:  # re-raised in the caller's thread by result()
            self._error = exc

    def result(self) -> str:
        """The file's sha256 (waits for the thread); its error, if reading failed or the user cancelled."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._sha is not None
        return self._sha

    def stop(self) -> None:
        """Abandon the hash and wait for the thread to let go of the file."""
        self._stop.set()
        self._thread.join()


_GLOB_CHARS = set("*?[]{}")
_link_dir: Path | None = None


def literal_path(path: Path) -> Path:
    """A path DuckDB reads as exactly this file: a name with glob characters (log[1].csv, a*b.parquet) would be a
    pattern to read_csv/read_parquet, so it is read through a link with a plain name in a private folder."""
    global _link_dir
    if not _GLOB_CHARS & set(str(path)):
        return path
    if _link_dir is None:
        import atexit
        import shutil
        import tempfile

        _link_dir = Path(tempfile.mkdtemp(prefix="lineproof-read-"))
        atexit.register(shutil.rmtree, _link_dir, True)
    link = _link_dir / (hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24] + path.suffix.lower())
    if not link.exists():
        link.symlink_to(path.resolve())
    return link


def scan_sql(source: SourceFile) -> str:
    """A SQL table expression over the file with a 1-based `_row` column.

    CSV is read as text so that a wrong value is reported with its row instead of failing the read.
    """
    lit = sql_literal(str(literal_path(source.path)))
    if source.format == "parquet":
        return f"(SELECT file_row_number + 1 AS _row, * EXCLUDE (file_row_number) " \
               f"FROM read_parquet({lit}, file_row_number = true))"
    return f"(SELECT * FROM read_csv({lit}, header = true, all_varchar = true, " \
           f"auto_detect = true, strict_mode = true))"


def stage(con: duckdb.DuckDBPyConnection, source: SourceFile, name: str) -> str:
    """Make the file queryable as `name` with `_row`; CSV is staged in a temp table (keeps row order)."""
    try:
        if source.format == "parquet":
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {scan_sql(source)}")
        else:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name}_raw AS SELECT * FROM {scan_sql(source)}")
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT rowid + 1 AS _row, * FROM {name}_raw")
        con.execute(f"SELECT * FROM {name} LIMIT 0")
    except duckdb.InterruptException:
        raise
    except duckdb.Error as exc:
        if source.format == "csv":
            _refuse_ragged_rows(con, source)
        raise IngestError(f"{source.path.name} cannot be read as {source.format.upper()}: "
                          f"{str(exc).splitlines()[0]}",
                          "Fix the file (the message names the line where possible); nothing was imported.") from exc
    if source.format == "csv" and len(staged_columns(con, name)) == 1:  # one column: the sniffer may have given up
        _refuse_ragged_rows(con, source)
    return name


def _header_delimiter(source: SourceFile) -> str:
    with open(source.path, encoding="utf-8", errors="replace") as f:
        header = f.readline()
    return max((",", ";", "\t", "|"), key=header.count)


def _refuse_ragged_rows(con: duckdb.DuckDBPyConnection, source: SourceFile) -> None:
    """A row with more or fewer fields than the header makes DuckDB's sniffer give up on the whole file (one column,
    or no dialect): find the first such line and name it with both counts."""
    delim = _header_delimiter(source)
    lit, d = sql_literal(str(literal_path(source.path))), sql_literal(delim)
    # Quoted sections are dropped before counting, so a quoted delimiter is not a field boundary.
    fields = f"len(regexp_replace(l, '\"[^\"]*\"', '', 'g')) - len(replace(regexp_replace(l, '\"[^\"]*\"', '', " \
             f"'g'), {d}, '')) + 1"
    lines = f"read_csv({lit}, header = false, columns = {{'l': 'VARCHAR'}}, delim = '\x1f', quote = '', " \
            f"escape = '', auto_detect = false)"
    try:
        row = con.execute(f"WITH t AS (SELECT row_number() OVER () AS n, {fields} AS k FROM {lines} "
                          f"WHERE trim(l) <> '') SELECT n, k, (SELECT k FROM t WHERE n = 1) FROM t "
                          f"WHERE k <> (SELECT k FROM t WHERE n = 1) ORDER BY n LIMIT 1").fetchone()
    except duckdb.Error:
        return
    if row is None or row[2] < 2:
        return
    line, found, header = row
    more = "a value holding the delimiter must be quoted" if found > header else "a field is missing"
    raise IngestError(f"{source.path.name}, line {line}: {found} fields, but the header has {header} "
                      f"(separated by {delim!r}): {more}.",
                      f"Fix line {line} (and any like it) and import again; nothing was imported.")


def unstage(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop what stage() created."""
    con.execute(f"DROP VIEW IF EXISTS {name}")
    con.execute(f"DROP TABLE IF EXISTS {name}_raw")


def staged_columns(con: duckdb.DuckDBPyConnection, name: str) -> list[tuple[str, str]]:
    """(name, type) of the staged file's columns, without `_row`."""
    rows = con.execute(f"DESCRIBE SELECT * FROM {name}").fetchall()
    return [(r[0], r[1]) for r in rows if r[0] != "_row"]


def sniff_columns(con: duckdb.DuckDBPyConnection, source: SourceFile) -> list[str] | None:
    """A file's column names from its header alone (DuckDB sniffs a sample; Parquet reads its footer), or None
    when the sniffer cannot tell (a ragged CSV row leaves one column): staging then says why."""
    try:
        names = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {scan_sql(source)}").fetchall() if r[0] != "_row"]
    except duckdb.Error:
        return None
    if len(names) == 1 and any(d in names[0] for d in ",;\t|"):
        return None
    return names


def header_columns(cur: duckdb.DuckDBPyConnection, path: Path | str) -> list[str]:
    """A file's column names from its header alone (no row is parsed beyond DuckDB's sniffing sample), so that a
    mapping can be guessed before the one pass that imports the file (closes `cur`)."""
    try:
        source = recognise(path)
        names = sniff_columns(cur, source)
        if names is None:  # unsniffable or ragged: staging explains why
            stage(cur, source, "_header")
            names = [c for c, _ in staged_columns(cur, "_header")]
            unstage(cur, "_header")
        return names
    finally:
        cur.close()


def inspect_file(cur: duckdb.DuckDBPyConnection, path: Path | str, preview_rows: int = 20) -> FileInfo:
    """Columns, types, a preview and the row count of a file, for the mapping dialog (closes `cur`)."""
    try:
        source = recognise(path)
        name = stage(cur, source, "_inspect")
        columns = staged_columns(cur, name)
        if source.format == "csv":
            columns = _csv_types(cur, name, columns)
        preview = cur.sql(f"SELECT * EXCLUDE (_row) FROM {name} ORDER BY _row LIMIT {int(preview_rows)}").pl()
        count = one(cur, f"SELECT count(*) FROM {name}")[0]
        unstage(cur, name)
    except duckdb.InterruptException:
        raise
    except duckdb.Error as exc:  # a damaged page deep in the file shows only when it is read
        raise IngestError(f"{Path(path).name} cannot be read: {str(exc).splitlines()[0]}",
                          "The file is damaged (a partial copy, or zeroed bytes?): export or copy it again; nothing "
                          "was imported.") from exc
    finally:
        cur.close()
    if count == 0:
        raise IngestError(f"{source.path.name} has a header but no data rows.",
                          "Export the data again; nothing was imported.")
    return FileInfo(source, tuple(columns), preview, int(count))


def _csv_types(con: duckdb.DuckDBPyConnection, name: str, columns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Guess numeric CSV columns (all non-empty values cast to DOUBLE) in one scan."""
    if not columns:
        return columns
    parts = ", ".join(
        f"bool_and(TRY_CAST({sql_ident(c)} AS DOUBLE) IS NOT NULL OR {sql_ident(c)} IS NULL)" for c, _ in columns)
    flags = one(con, f"SELECT {parts} FROM {name}")
    return [(c, "DOUBLE" if flag else "VARCHAR") for (c, _), flag in zip(columns, flags, strict=True)]


NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "FLOAT", "DOUBLE", "REAL")


def is_numeric_type(dtype: str) -> bool:
    """True for DuckDB numeric types (DECIMAL included)."""
    return dtype.upper() in NUMERIC_TYPES or dtype.upper().startswith("DECIMAL")


def read_text_csv(path: Path | str, columns: tuple[str, ...], what: str) -> pl.DataFrame:
    """A small CSV (KPIs, release history) as text columns, every needed column present, with its file row
    number (`row`, 2 for the first data row as a spreadsheet counts); errors name the file and say what to do."""
    source = recognise(path)
    name = source.path.name
    if source.format != "csv":
        raise IngestError(f"{name} is not CSV.", f"Export the {what} as CSV with columns {', '.join(columns)}.")
    import polars as pl  # only the small governance files read here need it, not an import's start

    try:
        frame = pl.read_csv(source.path, infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        raise IngestError(f"{name} cannot be read as CSV ({exc}).", "Check the delimiter and quoting.") from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise IngestError(f"{name} has no column {missing[0]!r}.",
                          f"Columns needed: {', '.join(columns)} (found: {', '.join(frame.columns)}); nothing was "
                          "imported.")
    return frame.with_row_index("row", offset=2)
