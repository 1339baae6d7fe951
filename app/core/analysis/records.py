"""The rows behind a number: the prediction log, with its labels, for one slice and time span, to read on screen or
export whole. A slice cell, a drift cell or an alert names the filter; this module runs it (SQL in DuckDB)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from app.core.errors import LineproofError
from app.core.store.db import one
from app.core.store.project import Project
from app.core.store.sources import sql_ident, sql_literal

MISSING = "(missing)"  # how the tables show an empty slice value


class RecordsError(LineproofError):
    """A filter the log cannot answer; nothing was read."""


@dataclass(frozen=True)
class RecordFilter:
    """Which rows: slice (dimension, value) pairs, a time span [start, end) and optionally one model version."""

    where: tuple[tuple[str, str], ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    version_id: str | None = None

    def describe(self) -> str:
        """The filter in words, for a title."""
        parts = [f"{d} = {v}" for d, v in self.where]
        if self.version_id:
            parts.append(self.version_id)
        if self.start or self.end:
            parts.append(f"{self.start:%Y-%m-%d} to {self.end:%Y-%m-%d}" if self.start and self.end else
                         f"from {self.start:%Y-%m-%d}" if self.start else f"before {self.end:%Y-%m-%d}")
        return ", ".join(parts) or "the whole log"


def _query(project: Project, f: RecordFilter) -> str:
    """SQL for the filtered rows (every stored column of the log, the label and when it arrived), newest first."""
    with project.reading() as con:
        columns = con.execute("SELECT name, role FROM log_columns ORDER BY role, name").fetchall()
    known = {name for name, _ in columns}
    unknown = [d for d, _ in f.where if d not in known]
    if unknown:
        raise RecordsError(f"The log has no column {unknown[0]!r}.",
                           f"Its slice and feature columns: {', '.join(sorted(known)) or 'none yet'}.")
    conditions = [f"p.{sql_ident(d)} IS NULL" if v == MISSING else f"p.{sql_ident(d)}::VARCHAR = {sql_literal(v)}"
                  for d, v in f.where]
    if f.start:
        conditions.append(f"p.ts >= TIMESTAMP {sql_literal(f.start.isoformat(sep=' '))}")
    if f.end:
        conditions.append(f"p.ts < TIMESTAMP {sql_literal(f.end.isoformat(sep=' '))}")
    if f.version_id:
        conditions.append(f"p.version_id = {sql_literal(f.version_id)}")
    slices = [n for n, role in columns if role == "slice"]
    rest = [n for n, role in columns if role != "slice"]
    picked = ", ".join(f"p.{sql_ident(c)}" for c in [*slices, *rest])
    return (f"SELECT p.record_id, p.ts, p.version_id, p.score, p.predicted_label, l.label, l.labelled_at"
            f"{', ' + picked if picked else ''} FROM predictions p LEFT JOIN labels l USING (record_id) "
            f"WHERE {' AND '.join(conditions) or 'true'}")


def count_records(project: Project, f: RecordFilter) -> int:
    """How many rows the filter selects."""
    sql = _query(project, f)
    with project.reading() as con:
        return int(one(con, f"SELECT count(*) FROM ({sql})")[0])


def read_records(project: Project, f: RecordFilter, limit: int = 1000) -> pl.DataFrame:
    """The newest `limit` rows the filter selects (a screen shows these; export_records writes them all)."""
    sql = _query(project, f)
    with project.reading() as con:
        return con.sql(f"{sql} ORDER BY p.ts DESC, p.record_id LIMIT {int(limit)}").pl()


def export_records(project: Project, f: RecordFilter, path: Path | str) -> int:
    """Write every row the filter selects to a CSV file (DuckDB's COPY: no row passes through Python); returns
    how many. The file is written next to its final name and renamed, so a failed export leaves nothing."""
    path = Path(path)
    sql = _query(project, f)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with project.reading() as con:
            con.execute(f"COPY ({sql} ORDER BY p.ts, p.record_id) TO {sql_literal(str(partial))} "
                        "(FORMAT csv, HEADER true)")
        partial.replace(path)
    except (OSError, duckdb.IOException) as exc:
        partial.unlink(missing_ok=True)
        raise RecordsError(f"{path} could not be written: {exc}.", "Choose another folder; nothing was saved.") from exc
    except Exception:
        partial.unlink(missing_ok=True)
        raise
    return count_records(project, f)


def period_span(start_text: str, window: str) -> tuple[datetime, datetime]:
    """[start, end) of one period of a slice table (day, week or month) from its first day, as the table shows it."""
    from datetime import timedelta

    start = datetime.fromisoformat(str(start_text)[:10])
    if window == "month":
        end = start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)
    else:
        end = start + timedelta(days=7 if window == "week" else 1)
    return start, end


def alert_filter(scope: str, window_start: datetime | None, window_end: datetime | None) -> RecordFilter:
    """The rows behind an alert: its scope ("line=P2-L02", "asset=…"; "plant-wide" is every row) over the window it
    was raised for."""
    where = tuple((d.strip(), v.strip()) for d, _, v in (part.partition("=") for part in scope.split(",")) if v)
    return RecordFilter(where, window_start, window_end)
