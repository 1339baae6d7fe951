"""Release history kept before Lineproof (a plant's change-management records), imported as dated facts.

A plant that adopts Lineproof has released models before: when each version was built, when approval was asked
and given, when it reached each stage on each site. Those dates answer the quarterly questions (time to
production, approval wait per tier) for periods Lineproof did not witness. They are kept apart from Lineproof's
own stage history: an imported date shortens or dates a delivery metric, never makes a release verified (only
Lineproof's signed approvals do), and `audit verify` checks the stored rows against the digest their import
recorded, so an edited row is found.

CSV columns: model, version, site, event, at, by, and optionally note. Events: `built` (site may be empty),
`approval_requested`, `approved`, and the stages candidate, shadow, pilot, production, retired.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from app.core.errors import IngestError
from app.core.store.audit import current_actor
from app.core.store.db import one
from app.core.store.project import Project
from app.core.store.schema import STAGES
from app.core.store.sources import read_text_csv, sha256_of

COLUMNS = ("model", "version", "site", "event", "at", "by")
EVENTS = ("built", "approval_requested", "approved", *STAGES)
# Within one version and site, a later event of this order may not come before an earlier one.
SEQUENCE = ("approval_requested", "approved")


def _bad(name: str, rows: pl.DataFrame, column: str, what: str, todo: str) -> IngestError:
    first = rows.row(0, named=True)
    return IngestError(f"{name}, row {first['row']}, column {column!r}: {first.get(column)!r} {what} "
                       f"({rows.height} row(s) like this).", f"{todo} Nothing was imported.")


def read_history(project: Project, path: Path | str) -> pl.DataFrame:
    """The file's rows checked completely: (row, version_id, site, event, at UTC, actor, note)."""
    name = Path(path).name
    frame = read_text_csv(path, COLUMNS, "release history")
    if frame.height == 0:
        raise IngestError(f"{name} has a header but no rows.", "Export at least one event; nothing was imported.")
    text = [pl.col(c).str.strip_chars().fill_null("") for c in (*COLUMNS, "note") if c in frame.columns]
    frame = frame.with_columns(text)
    if "note" not in frame.columns:
        frame = frame.with_columns(note=pl.lit(""))
    with project.reading() as con:
        versions = pl.DataFrame(con.execute("SELECT model_id, version FROM model_versions").fetchall(),
                                schema={"model": pl.Utf8, "version": pl.Utf8}, orient="row")
        models = {r[0] for r in con.execute("SELECT model_id FROM models").fetchall()}
    now = datetime.now(UTC).replace(tzinfo=None)
    registered = versions.with_columns(known_version=pl.lit(True))
    parsed = frame.join(registered, on=["model", "version"], how="left").sort("row").with_columns(
        at_utc=pl.coalesce(
            pl.col("at").str.to_datetime("%Y-%m-%dT%H:%M:%S%z", strict=False, time_zone="UTC"),
            pl.col("at").str.to_datetime("%Y-%m-%d %H:%M:%S%z", strict=False, time_zone="UTC"),
            pl.col("at").str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False).dt.replace_time_zone("UTC"),
            pl.col("at").str.to_datetime("%Y-%m-%d %H:%M", strict=False).dt.replace_time_zone("UTC"),
            pl.col("at").str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        ).dt.replace_time_zone(None),
        known_model=pl.col("model").is_in(list(models)), known_version=pl.col("known_version").fill_null(False))
    checks = (
        ("model", pl.col("model") == "", "is empty", "Name the model on every row."),
        ("model", ~pl.col("known_model"), "is not a registered model",
         "Register the model first (lineproof import-model), or correct its id."),
        ("version", ~pl.col("known_version"), "is not a registered version of that model",
         "Import the version first (lineproof import-model), or correct its name."),
        ("event", ~pl.col("event").is_in(list(EVENTS)), "is not an event",
         f"Events: {', '.join(EVENTS)}."),
        ("site", (pl.col("site") == "") & (pl.col("event") != "built"), "is empty",
         "Every event but 'built' happens on a site (a plant)."),
        ("at", pl.col("at_utc").is_null(), "is not a time",
         "Write times as ISO 8601 (2026-03-09, 2026-03-09T14:30:00 in UTC, or with an offset +01:00)."),
        ("at", pl.col("at_utc") > now, "is in the future", "History records what happened; correct the date."),
        ("by", pl.col("by") == "", "is empty", "Name who acted on every row."))
    for column, bad, what, todo in checks:
        rows = parsed.filter(bad)
        if rows.height:
            raise _bad(name, rows, column, what, todo)
    out = parsed.select("row", pl.concat_str("model", pl.lit(":"), "version").alias("version_id"), "site", "event",
                        pl.col("at_utc").alias("at"), pl.col("by").alias("actor"), "note")
    dupes = out.filter(pl.struct("version_id", "site", "event").is_duplicated()).sort("row")
    if dupes.height:
        first, second = dupes.row(0, named=True), dupes.filter(
            (pl.col("version_id") == dupes["version_id"][0]) & (pl.col("site") == dupes["site"][0])
            & (pl.col("event") == dupes["event"][0]))["row"][1]
        raise IngestError(f"{name}, rows {first['row']} and {second}: {first['event']} of {first['version_id']} on "
                          f"{first['site'] or 'no site'} appears twice.",
                          "Keep one row per version, site and event; nothing was imported.")
    _check_order(name, out)
    return out


def _check_order(name: str, rows: pl.DataFrame) -> None:
    """An approval before its request, or a stage before the version was built, is a mistake in the file."""
    built = rows.filter(pl.col("event") == "built").select("version_id", pl.col("at").alias("built_at"))
    early = rows.join(built, on="version_id").filter(pl.col("at") < pl.col("built_at")).sort("row")
    if early.height:
        r = early.row(0, named=True)
        raise IngestError(f"{name}, row {r['row']}, column 'at': {r['event']} of {r['version_id']} on {r['site']} "
                          f"({r['at']}) is before the version was built ({r['built_at']}).",
                          "Correct the dates; nothing was imported.")
    requested = rows.filter(pl.col("event") == SEQUENCE[0]).select("version_id", "site", pl.col("at").alias("asked"))
    early = rows.filter(pl.col("event") == SEQUENCE[1]).join(requested, on=["version_id", "site"]).filter(
        pl.col("at") < pl.col("asked")).sort("row")
    if early.height:
        r = early.row(0, named=True)
        raise IngestError(f"{name}, row {r['row']}, column 'at': {r['version_id']} on {r['site']} was approved "
                          f"({r['at']}) before approval was requested ({r['asked']}).",
                          "Correct the dates; nothing was imported.")


def rows_digest(rows: list[tuple]) -> str:
    """sha256 over the stored rows in their order (source_row, version, site, event, at, actor, note)."""
    canon = [[r[0], r[1], r[2], r[3], r[4].isoformat(sep=" ") if isinstance(r[4], datetime) else str(r[4]),
              r[5], r[6]] for r in rows]
    return hashlib.sha256(json.dumps(canon, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


def import_history(project: Project, path: Path | str) -> int:
    """Store a checked release history file with its digest (one audited change); returns the events stored."""
    frame = read_history(project, path)
    path = Path(path)
    rows = frame.select("row", "version_id", "site", "event", "at", "actor", "note").rows()
    digest, file_sha = rows_digest(rows), sha256_of(path)
    with project.change("history.import", path.name, {"sha256": file_sha, "rows": len(rows),
                                                      "rows_sha256": digest}) as con:
        import_id = one(con, "SELECT coalesce(max(import_id), 0) + 1 FROM release_history_imports")[0]
        con.execute("INSERT INTO release_history_imports VALUES (?, ?, ?, ?, ?, now()::TIMESTAMP, ?)",
                    [import_id, path.name, file_sha, len(rows), digest, current_actor()])
        con.register("_history_rows", frame.to_arrow())
        con.execute("INSERT INTO release_history SELECT ?, \"row\", version_id, site, event, \"at\", actor, note "
                    "FROM _history_rows", [import_id])
        con.unregister("_history_rows")
    return len(rows)


def history_events(project: Project) -> pl.DataFrame:
    """Every imported event with the file it came from, oldest first."""
    with project.reading() as con:
        return con.sql("""SELECT h.version_id, h.site, h.event, h.happened_at AS at, h.actor, h.note, i.file_name, h.import_id
                          FROM release_history h JOIN release_history_imports i USING (import_id)
                          ORDER BY h.happened_at, h.import_id, h.source_row""").pl()


def history_problems(con: Any) -> list[str]:
    """Imports whose stored rows no longer match the digest (or count) recorded when they were imported."""
    problems = []
    imports = con.execute("SELECT import_id, file_name, rows, rows_sha256 FROM release_history_imports "
                          "ORDER BY import_id").fetchall()
    audited = {json.loads(d or "{}").get("rows_sha256") for (d,) in con.execute(
        "SELECT details_json FROM audit_log WHERE action = 'history.import'").fetchall()}
    for import_id, file_name, count, digest in imports:
        rows = con.execute("SELECT source_row, version_id, site, event, happened_at, actor, note FROM release_history "
                           "WHERE import_id = ? ORDER BY source_row", [import_id]).fetchall()
        if len(rows) != count or rows_digest(rows) != digest:
            problems.append(f"release history from {file_name} (import {import_id}) was changed after its import: "
                            f"{len(rows)} row(s) against {count} recorded, digest differs")
        elif digest not in audited:
            problems.append(f"release history from {file_name} (import {import_id}) has no audited import")
    stored = {r[3] for r in imports}
    problems += [f"an audited release history import (digest {d[:12]}) has no stored rows" for d in sorted(
        (d for d in audited if d), key=str) if d not in stored]
    orphans = one(con, "SELECT count(*) FROM release_history WHERE import_id NOT IN "
                       "(SELECT import_id FROM release_history_imports)")[0]
    if orphans:
        problems.append(f"{orphans} release history row(s) belong to no recorded import")
    return problems
