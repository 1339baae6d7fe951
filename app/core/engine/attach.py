"""Attached logs: a prediction log registered where it lives (hive-partitioned Parquet), never copied.

Attaching checks the source as ingest checks a file (columns, types, UTC times, score kinds, decisions, unique
record ids) in one pass over it, and records its file list with sizes and modification times. Every later use
lists the files again: a file added, removed, grown or rewritten since is reported and the analysis refused
until the log is checked again (`attach-log --recheck`), so a validation or a review never silently reads other
data than the attachment recorded.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from app.core.engine.tables import TableError, snapshot, table_format, table_root
from app.core.errors import LineproofError
from app.core.store.audit import current_actor
from app.core.store.db import one
from app.core.store.ingest import PredictionMapping, guess_prediction_mapping
from app.core.store.project import Project, write_memory
from app.core.store.sources import sql_ident, sql_literal

GLOB_CHARS = set("*?[")
NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
           "FLOAT", "DOUBLE", "DECIMAL")
TIMES = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE")


class AttachError(LineproofError):
    """An attached log cannot be registered or used as asked."""


class SourceChanged(AttachError):
    """The files behind an attached log are not those it was attached with."""


@dataclass(frozen=True)
class FileEntry:
    """One file of the source as it was seen: path, size and modification time (ns)."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class AttachedLog:
    """A registered log: where it lives, how its columns map to roles, and the files it was checked with."""

    name: str
    source: str
    root: str
    files: tuple[FileEntry, ...]
    labels_source: str | None
    label_files: tuple[FileEntry, ...]
    roles: dict[str, str | None]  # record_id, timestamp, model_version, score, predicted_label -> column
    slices: dict[str, str]  # dimension -> column
    features: tuple[str, ...]
    score_kind: str
    rows: int
    partitions: tuple[str, ...] = field(default_factory=tuple)
    snapshot: str | None = None  # a Delta table's version or an Iceberg table's snapshot id when attached
    format: str = "parquet"  # parquet, delta or iceberg (app.core.engine.tables)

    @property
    def digest(self) -> str:
        """sha256 over the file lists (names, sizes, modification times) of the log and its labels."""
        listed: list[Any] = [asdict(f) for f in (*self.files, *self.label_files)]
        if self.snapshot is not None:
            listed.append({"snapshot": self.snapshot, "format": self.format})
        return hashlib.sha256(json.dumps(listed, sort_keys=True).encode()).hexdigest()


def _root_of(source: str) -> str:
    """The folder above the first glob character (the base of hive partitions)."""
    parts = Path(source).parts
    fixed = []
    for part in parts:
        if GLOB_CHARS & set(part):
            break
        fixed.append(part)
    root = Path(*fixed) if fixed else Path(".")
    return str(root if root.is_dir() or not fixed else root.parent)


def list_files(source: str) -> tuple[str, tuple[FileEntry, ...]]:
    """(root, files) of a folder (every .parquet below it; a Delta or Iceberg table's current snapshot) or a glob,
    sorted; refuses a source with none."""
    root, files, _, _ = source_listing(source)
    return root, files


def source_listing(source: str) -> tuple[str, tuple[FileEntry, ...], str, str | None]:
    """(root, files, format, snapshot id): a table's files and id from one read of its snapshot."""
    path = Path(source).expanduser()
    fmt, snapshot_id = table_format(source), None
    if fmt != "parquet":
        snapshot_id, names = snapshot(source, fmt)
        root = table_root(source, fmt)
    elif path.is_dir():
        root, names = str(path), sorted(str(p) for p in path.rglob("*.parquet"))
    elif GLOB_CHARS & set(source):
        root, names = _root_of(str(path)), sorted(glob.glob(str(path), recursive=True))
    elif path.is_file():
        root, names = str(path.parent), [str(path)]
    else:
        raise AttachError(f"{source} does not exist.", "Give a folder of Parquet files, a glob such as "
                                                       "'lake/plant=*/line=*/*.parquet', or one Parquet file.")
    if not names:
        raise AttachError(f"{source} holds no Parquet files.", "Check the path and the glob; nothing was attached.")
    entries = []
    for name in names:
        try:
            st = os.stat(name)
        except OSError as exc:  # listed by the table's snapshot, gone from the disk
            raise AttachError(f"{source} lists {name}, which cannot be read ({exc.strerror}).",
                              "The table's files are incomplete; repair or restore it, nothing was attached.") from exc
        entries.append(FileEntry(str(Path(name).resolve()), st.st_size, st.st_mtime_ns))
    return str(Path(root).resolve()), tuple(entries), fmt, snapshot_id


def _describe(con: duckdb.DuckDBPyConnection, files: tuple[FileEntry, ...], name: str,
              hive: bool = True) -> dict[str, str]:
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {_reader(files, hive)}").fetchall()
    except duckdb.Error as exc:
        raise AttachError(f"{name} cannot be read as Parquet ({str(exc).splitlines()[0]}).",
                          "A file may be damaged or its columns differ from the others; nothing was attached.") from exc
    return {r[0]: r[1] for r in rows}


def _reader(files: tuple[FileEntry, ...], hive: bool = True) -> str:
    """DuckDB: the files as one relation; partition folders become columns unless the files carry them
    (Iceberg writes its partition columns into the data files)."""
    names = ", ".join(sql_literal(f.path) for f in files)
    return f"read_parquet([{names}], hive_partitioning = {'true' if hive else 'false'})"


def _partitions(root: str, files: tuple[FileEntry, ...]) -> tuple[str, ...]:
    """Hive partition keys (key=value folders between the root and the files), in folder order."""
    keys: list[str] = []
    for part in Path(files[0].path).relative_to(root).parts[:-1]:
        if "=" in part:
            keys.append(part.split("=", 1)[0])
    return tuple(keys)


def _mapping(columns: list[str], roles: dict[str, str], slices: dict[str, str], partitions: tuple[str, ...],
             dimensions: tuple[str, ...]) -> PredictionMapping:
    guess = guess_prediction_mapping(columns, dimensions)
    known = {"record_id", "timestamp", "model_version", "score", "predicted_label"}
    unknown = set(roles) - known
    if unknown:
        raise AttachError(f"Unknown role(s) {sorted(unknown)} in --map.", f"Roles: {', '.join(sorted(known))}.")
    picked = {**{k: getattr(guess, k) for k in known}, **roles}
    used = {v for v in picked.values() if v}
    dims = {**guess.slices, **{p: p for p in partitions if p not in used}, **slices}
    return PredictionMapping(record_id=picked["record_id"], timestamp=picked["timestamp"],
                             model_version=picked["model_version"], score=picked["score"],
                             predicted_label=picked["predicted_label"], slices=dims)


def _check_columns(name: str, types: dict[str, str], mapping: PredictionMapping) -> None:
    for role, column in mapping.roles().items():
        if column not in types:
            raise AttachError(f"{name} has no column {column!r} for {role}.",
                              f"Map it with --map {role}=COLUMN (columns: {', '.join(types)}); nothing was attached.")
    for dim, column in mapping.slices.items():
        if column not in types:
            raise AttachError(f"{name} has no column {column!r} for the slice dimension {dim}.",
                              f"Columns: {', '.join(types)}.")
    score_type = types[mapping.score].split("(")[0]
    if score_type not in NUMERIC:
        raise AttachError(f"{name}, column {mapping.score!r}: the score is {types[mapping.score]}, not a number "
                          "(a decimal comma, or text written by a spreadsheet?).",
                          "Write scores as Parquet numbers (a double) with a decimal point; nothing was attached.")
    ts_type = types[mapping.timestamp]
    if ts_type not in TIMES:
        raise AttachError(f"{name}, column {mapping.timestamp!r}: the time is {ts_type}, not a timestamp.",
                          "Write times as Parquet timestamps in UTC (or with a zone); nothing was attached.")
    if mapping.predicted_label and types[mapping.predicted_label].split("(")[0] not in NUMERIC + ("BOOLEAN",):
        raise AttachError(f"{name}, column {mapping.predicted_label!r}: decisions are "
                          f"{types[mapping.predicted_label]}, not 0/1.", "Write decisions as 0 (pass) and 1 (defect).")


def _check_rows(con: duckdb.DuckDBPyConnection, reader: str, name: str, mapping: PredictionMapping,
                score_kind: str) -> int:
    """One pass: empty ids or times, NaN or out-of-range scores, decisions other than 0/1, repeated ids."""
    rid, ts, score = (sql_ident(c) for c in (mapping.record_id, mapping.timestamp, mapping.score))
    pred = sql_ident(mapping.predicted_label) if mapping.predicted_label else "NULL"
    bad_score = "isnan(s) OR isinf(s)" + (" OR s < 0 OR s > 1" if score_kind == "probability" else "")
    with write_memory(con):  # the exact distinct count spills under the reading limit
        n, no_id, no_ts, scores, decisions, distinct = one(con, f"""
            SELECT count(*), count(*) FILTER (WHERE r IS NULL OR r = ''), count(*) FILTER (WHERE t IS NULL),
                   count(*) FILTER (WHERE s IS NULL OR {bad_score}),
                   count(*) FILTER (WHERE d IS NOT NULL AND d NOT IN (0, 1)), count(DISTINCT r)
            FROM (SELECT CAST({rid} AS VARCHAR) AS r, {ts} AS t, CAST({score} AS DOUBLE) AS s,
                         CAST({pred} AS DOUBLE) AS d FROM {reader})""")
    for count, column, what in ((no_id, mapping.record_id, "empty record ids"), (no_ts, mapping.timestamp,
                                                                                  "empty times"),
                                (scores, mapping.score, f"scores that are empty, NaN or not a {score_kind}"),
                                (decisions, mapping.predicted_label, "decisions other than 0 or 1")):
        if count:
            raise AttachError(f"{name}, column {column!r}: {count:,} row(s) with {what}.",
                              "Fix the rows at the source, or map another column; nothing was attached.")
    if distinct != n:
        raise AttachError(f"{name}, column {mapping.record_id!r}: {n - distinct:,} record id(s) appear more than "
                          "once.", "Each prediction needs its own record id; nothing was attached.")
    if n == 0:
        raise AttachError(f"{name} holds no rows.", "Attach a log with predictions; nothing was attached.")
    return n


def _label_files(labels: str | None) -> tuple[str | None, tuple[FileEntry, ...]]:
    if labels is None:
        return None, ()
    return list_files(labels)


def attach_log(project: Project, source: str, name: str, roles: dict[str, str] | None = None,
               slices: dict[str, str] | None = None, features: tuple[str, ...] | None = None,
               labels: str | None = None, score_kind: str = "probability", replace: bool = False) -> AttachedLog:
    """Check and register `source` as the attached log `name` (no row is copied); returns what was recorded."""
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise AttachError(f"{name!r} is not a usable name.", "Use letters, digits, - and _ (e.g. plant-lake).")
    if score_kind not in ("probability", "value"):
        raise AttachError(f"Score kind {score_kind!r} is not supported for attached logs.",
                          "Use probability (0..1) or value (a regression output).")
    with project.reading() as con:
        existing = one(con, "SELECT 1 FROM attached_logs WHERE name = ?", [name])
    if existing and not replace:
        raise AttachError(f"A log named {name!r} is already attached.",
                          f"Choose another name, or check it again with --recheck {name}.")
    root, files, fmt, snapshot_id = source_listing(source)
    hive = fmt != "iceberg"
    labels_root, label_files = _label_files(labels)
    con = project.cursor()
    try:
        types = _describe(con, files, source, hive)
        partitions = _partitions(root, files)
        mapping = _mapping(list(types), roles or {}, slices or {}, partitions, project.manifest.slice_dimensions)
        _check_columns(source, types, mapping)
        used = set(mapping.roles().values()) | set(mapping.slices.values())
        feats = tuple(features) if features else tuple(c for c, t in types.items()
                                                       if c not in used and t.split("(")[0] in NUMERIC)
        missing = [f for f in feats if f not in types]
        if missing:
            raise AttachError(f"{source} has no feature column {missing[0]!r}.", f"Columns: {', '.join(types)}.")
        rows = _check_rows(con, _reader(files, hive), source, mapping, score_kind)
        if label_files:
            _check_labels(con, label_files, labels or "")
    finally:
        con.close()
    log = AttachedLog(name, source, root, files, labels, label_files,
                      {k: v for k, v in mapping.roles().items()} | {"predicted_label": mapping.predicted_label},
                      dict(mapping.slices), feats, score_kind, rows, partitions, snapshot_id, fmt)
    record = {"root": root, "roles": log.roles, "slices": log.slices, "features": list(feats),
              "score_kind": score_kind, "partitions": list(partitions), "labels_root": labels_root,
              "snapshot": snapshot_id, "format": fmt}
    listed = {"files": [asdict(f) for f in files], "label_files": [asdict(f) for f in label_files]}
    action = "log.recheck" if existing else "log.attach"
    with project.change(action, name, {"source": source, "files": len(files), "bytes": sum(f.size for f in files),
                                       "rows": rows, "files_sha256": log.digest, "labels": labels,
                                       "snapshot": snapshot_id, "format": fmt}) as w:
        w.execute("DELETE FROM attached_logs WHERE name = ?", [name])
        w.execute("INSERT INTO attached_logs VALUES (?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP, ?)",
                  [name, source, labels, json.dumps(record), json.dumps(listed), log.digest, rows, current_actor()])
    return log


def _check_labels(con: duckdb.DuckDBPyConnection, files: tuple[FileEntry, ...], name: str) -> None:
    types = _describe(con, files, name)
    for column in ("record_id", "label", "labelled_at"):
        if column not in types:
            raise AttachError(f"{name} has no column {column!r}.",
                              "Labels need record_id, label (0/1 or a value) and labelled_at; nothing was attached.")
    if types["labelled_at"] not in TIMES:
        raise AttachError(f"{name}, column 'labelled_at' is {types['labelled_at']}, not a timestamp.",
                          "Write label times as Parquet timestamps; nothing was attached.")
    dupes = one(con, f"SELECT count(*) - count(DISTINCT record_id) FROM {_reader(files)}")[0]
    if dupes:
        raise AttachError(f"{name}: {dupes:,} record id(s) are labelled more than once.",
                          "Keep one label per record; nothing was attached.")


def attached_logs(project: Project) -> list[dict[str, Any]]:
    """Every attached log: name, source, files, rows, when and by whom."""
    with project.reading() as con:
        rows = con.execute("SELECT name, source, labels_source, files_json, rows, attached_at, attached_by, "
                           "files_sha256 FROM attached_logs ORDER BY name").fetchall()
    return [{"name": n, "source": s, "labels": lab, "files": len(json.loads(f)["files"]),
             "bytes": sum(x["size"] for x in json.loads(f)["files"]), "rows": r, "attached_at": at, "by": by,
             "files_sha256": sha} for n, s, lab, f, r, at, by, sha in rows]


def load_log(project: Project, name: str, check: bool = True) -> AttachedLog:
    """The attached log `name`, its files listed again and compared with the record unless `check` is False."""
    with project.reading() as con:
        row = one(con, "SELECT source, labels_source, mapping_json, files_json, rows FROM attached_logs "
                       "WHERE name = ?", [name])
        names = [r[0] for r in con.execute("SELECT name FROM attached_logs ORDER BY 1").fetchall()]
    if row is None:
        raise AttachError(f"No log named {name!r} is attached.",
                          f"Attached: {', '.join(names) or 'none'} (lineproof attach-log PROJECT SOURCE --as NAME).")
    source, labels, record_text, listed_text, rows = row
    record, listed = json.loads(record_text), json.loads(listed_text)
    log = AttachedLog(name, source, record["root"], tuple(FileEntry(**f) for f in listed["files"]), labels,
                      tuple(FileEntry(**f) for f in listed["label_files"]), record["roles"], record["slices"],
                      tuple(record["features"]), record["score_kind"], rows, tuple(record["partitions"]),
                      record.get("snapshot"), record.get("format", "parquet"))
    if check:
        check_unchanged(log)
    return log


def check_unchanged(log: AttachedLog) -> None:
    """Refuse a log whose files differ from those recorded: added, removed, or changed in size or time; for a
    Delta or Iceberg table, also another snapshot (written to, or rolled back)."""
    if log.snapshot is not None:
        try:
            version = snapshot(log.source, log.format)[0] if table_format(log.source) == log.format else "gone"
        except TableError as exc:
            version = f"unreadable ({exc.what})"
        if version != log.snapshot:
            kind = "Delta table" if log.format == "delta" else "Iceberg table"
            what = "version" if log.format == "delta" else "snapshot"
            raise SourceChanged(f"The attached {kind} {log.name!r} is at {what} {version}, not the {what} "
                                f"{log.snapshot} it was checked at (written to, or rolled back).",
                                f"Nothing was computed. Check it again with: lineproof attach-log PROJECT --recheck "
                                f"{log.name} (the new version is then recorded and audited).")
    for what, source, recorded in (("log", log.source, log.files), ("labels", log.labels_source, log.label_files)):
        if source is None:
            continue
        try:
            _, now = list_files(source)
        except (AttachError, TableError):
            now = ()
        before = {f.path: f for f in recorded}
        after = {f.path: f for f in now}
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
        if added or removed or changed:
            parts = [f"{len(x)} {w} (e.g. {Path(x[0]).relative_to(log.root) if x[0].startswith(log.root) else x[0]})"
                     for x, w in ((added, "added"), (removed, "removed or moved"), (changed, "rewritten"))
                     if x]
            raise SourceChanged(f"The attached {what} {log.name!r} changed since it was checked: {'; '.join(parts)}.",
                                f"Nothing was computed. Check it again with: lineproof attach-log PROJECT --recheck "
                                f"{log.name} (the new file list is then recorded and audited).")


def base_view_sql(log: AttachedLog) -> str:
    """The log's rows under the project's column names (engine-neutral, DuckDB dialect): what `predictions p
    LEFT JOIN labels l` is for the project's own log; reads the relations _log_raw and _labels_raw."""
    r = log.roles
    cols = [f"CAST({sql_ident(r['record_id'])} AS VARCHAR) AS record_id",
            f"CAST({sql_ident(r['timestamp'])} AS TIMESTAMP) AS ts",
            f"CAST({sql_ident(r['model_version'])} AS VARCHAR) AS version_id",
            f"CAST({sql_ident(r['score'])} AS DOUBLE) AS score",
            (f"CAST({sql_ident(r['predicted_label'])} AS INTEGER)" if r.get("predicted_label")
             else "CAST(NULL AS INTEGER)") + " AS predicted_label"]
    cols += [f"CAST({sql_ident(c)} AS VARCHAR) AS {sql_ident(d)}" for d, c in log.slices.items()]
    cols += [f"CAST({sql_ident(f)} AS DOUBLE) AS {sql_ident(f)}" for f in log.features]
    return f"SELECT {', '.join(cols)} FROM _log_raw"


# A log without labels anywhere: the labels relation with no rows (engine-neutral, transpiled for Spark).
NO_LABELS_SQL = ("SELECT CAST(NULL AS VARCHAR) AS record_id, CAST(NULL AS DOUBLE) AS label, "
                 "CAST(NULL AS TIMESTAMP) AS labelled_at WHERE false")


def labels_view_sql() -> str:
    """The labels under the project's column names (engine-neutral)."""
    return ("SELECT CAST(record_id AS VARCHAR) AS record_id, CAST(label AS DOUBLE) AS label, "
            "CAST(labelled_at AS TIMESTAMP) AS labelled_at FROM _labels_raw")


def duckdb_views(con: duckdb.DuckDBPyConnection, log: AttachedLog, project_labels: bool) -> None:
    """Temp views on this cursor: _log_raw/_labels_raw over the files, _log and _labels under project names."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW _log_raw AS SELECT * FROM {_reader(log.files, log.format != 'iceberg')}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW _log AS {base_view_sql(log)}")
    if log.label_files:
        con.execute(f"CREATE OR REPLACE TEMP VIEW _labels_raw AS SELECT * FROM {_reader(log.label_files)}")
        con.execute(f"CREATE OR REPLACE TEMP VIEW _labels AS {labels_view_sql()}")
    elif project_labels:
        con.execute("CREATE OR REPLACE TEMP VIEW _labels AS SELECT record_id, label, labelled_at FROM labels")
    else:
        con.execute(f"CREATE OR REPLACE TEMP VIEW _labels AS {NO_LABELS_SQL}")

