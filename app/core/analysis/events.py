"""Events on the timeline: firmware (or any version-like column) changes detected from the log, and manual
events users add (tooling change, supplier change). Stored in the project; every change is audited."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from app.core.errors import LineproofError
from app.core.store.audit import current_actor
from app.core.store.db import one
from app.core.store.project import Project
from app.core.store.sources import sql_ident


class EventError(LineproofError):
    """An event cannot be recorded as asked."""


def _slice_columns(project: Project, log: str | None) -> set[str]:
    if log:
        from app.core.engine.attach import load_log
        return set(load_log(project, log, check=False).slices)
    with project.reading() as con:
        return {r[0] for r in con.execute("SELECT name FROM log_columns WHERE role = 'slice'").fetchall()}


def version_like_columns(project: Project, log: str | None = None) -> list[str]:
    """Slice columns whose changes are events: [slices] version_like in the manifest, default firmware."""
    configured = project.manifest.extra.get("slices_version_like")  # set by read_manifest if present
    wanted = configured or ["firmware"]
    present = _slice_columns(project, log)
    return [c for c in wanted if c in present]


def detect_version_changes(project: Project, column: str = "firmware", per: str = "asset", log: str | None = None,
                           engine: str | None = None) -> pl.DataFrame:
    """Per `per` (asset), when each value of `column` first appears after the first one: one row per change
    (in the project's own log, or an attached one where it lives)."""
    present = _slice_columns(project, log)
    if column not in present or per not in present:
        return pl.DataFrame(schema={"scope": pl.Utf8, "line": pl.Utf8, "old_value": pl.Utf8,
                                    "new_value": pl.Utf8, "ts": pl.Datetime("us")})
    # min, not any_value: the same line on every engine and every run
    line = 'min("line")' if "line" in present else "NULL"
    sql = f"""SELECT {sql_ident(per)} AS scope, CAST({line} AS VARCHAR) AS line,
                     {sql_ident(column)} AS value, min(ts) AS ts
              FROM {{rows}} WHERE {sql_ident(column)} IS NOT NULL GROUP BY 1, 3"""
    if log:
        from app.core.analysis.attached import summary_frame
        firsts = summary_frame(project, log, engine, sql.format(rows="_log"))
    else:
        with project.reading() as con:
            firsts = con.sql(sql.format(rows="predictions")).pl()
    ordered = firsts.sort("scope", "ts").with_columns(pl.col("value").shift(1).over("scope").alias("old_value"))
    return ordered.filter(pl.col("old_value").is_not_null()).select(
        "scope", "line", "old_value", pl.col("value").alias("new_value"), "ts")


def record_detected_events(project: Project) -> int:
    """Store version changes not stored yet; returns how many were added."""
    added = 0
    for column in version_like_columns(project):
        changes = detect_version_changes(project, column)
        if not changes.height:
            continue
        with project.reading() as con:
            known = {(r[0], r[1], r[2]) for r in con.execute(
                "SELECT scope, new_value, ts FROM events WHERE source = 'detected' AND dimension = ?",
                [column]).fetchall()}
        new = [r for r in changes.iter_rows(named=True) if (r["scope"], r["new_value"], r["ts"]) not in known]
        if not new:
            continue
        with project.change("events.detect", column, {"column": column, "added": len(new)}) as con:
            next_id = one(con, "SELECT coalesce(max(event_id), 0) + 1 FROM events")[0]
            rows = [(next_id + i, r["ts"], column, "detected", column, r["scope"], r["line"], r["old_value"],
                     r["new_value"], f"{column} {r['old_value']} -> {r['new_value']} on {r['scope']}",
                     current_actor(), datetime.now()) for i, r in enumerate(new)]
            con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        added += len(new)
    return added


def add_event(project: Project, ts: datetime, description: str, kind: str = "manual",
              dimension: str | None = None, scope: str | None = None) -> int:
    """Record a manual event (e.g. a tooling change on a line); returns its id."""
    if not description.strip():
        raise EventError("An event needs a description.", "Say what happened, e.g. 'new wire supplier'.")
    line = scope if dimension == "line" else None
    with project.change("event.add", description, {"ts": ts, "kind": kind, "dimension": dimension,
                                                   "scope": scope}) as con:
        event_id = one(con, "SELECT coalesce(max(event_id), 0) + 1 FROM events")[0]
        con.execute("INSERT INTO events VALUES (?, ?, ?, 'manual', ?, ?, ?, NULL, NULL, ?, ?, now()::TIMESTAMP)",
                    [event_id, ts, kind, dimension, scope, line, description, current_actor()])
    return int(event_id)


def list_events(project: Project, line: str | None = None) -> pl.DataFrame:
    """Events, oldest first; with `line`, those on that line or project-wide."""
    with project.reading() as con:
        if line is None:
            return con.sql("SELECT * FROM events ORDER BY ts, event_id").pl()
        return con.sql("SELECT * FROM events WHERE line = $l OR line IS NULL ORDER BY ts, event_id",
                       params={"l": line}).pl()
