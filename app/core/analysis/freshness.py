"""Freshness: when each asset (or line) last sent data, and the silent gaps in its history."""

from __future__ import annotations

import polars as pl

from app.core.store.project import Project
from app.core.store.sources import sql_ident


def _summary(project: Project, sql: str, log: str | None, engine: str | None) -> pl.DataFrame:
    """A summary query over the project's own log (`{rows}` = predictions) or an attached one, on its engine."""
    if log:
        from app.core.analysis.attached import summary_frame
        return summary_frame(project, log, engine, sql.format(rows="_log"))
    with project.reading() as con:
        return con.sql(sql.format(rows="predictions")).pl()


def _columns(project: Project, log: str | None) -> set[str]:
    if log:
        from app.core.engine.attach import load_log
        return set(load_log(project, log, check=False).slices)
    with project.reading() as con:
        return {r[0] for r in con.execute("SELECT name FROM log_columns").fetchall()}


def silent_gaps(project: Project, per: str = "asset", expected_hours: float = 24.0, log: str | None = None,
                engine: str | None = None) -> pl.DataFrame:
    """Stretches longer than `expected_hours` without a record, per asset, including one still open at the end.

    Works on hourly counts (one GROUP BY where the log lives: DuckDB, or Spark for an attached log), so gaps are
    resolved to the hour.
    """
    present = _columns(project, log)
    if per not in present:
        return pl.DataFrame(schema={per: pl.Utf8, "line": pl.Utf8, "gap_start": pl.Datetime("us"),
                                    "gap_end": pl.Datetime("us"), "gap_hours": pl.Float64, "open": pl.Boolean})
    # min, not any_value: the same line on every engine and every run when an asset moved between lines
    line = 'min("line")' if "line" in present and per != "line" else "NULL"
    hours = _summary(project, f"""SELECT CAST({sql_ident(per)} AS VARCHAR) AS key, CAST({line} AS VARCHAR) AS line,
                                         date_trunc('hour', ts) AS hour, max(ts) AS newest
                                  FROM {{rows}} GROUP BY 1, 3""", log, engine)
    newest = hours["newest"].max() if hours.height else None
    if not hours.height:
        return pl.DataFrame()
    ordered = hours.sort("key", "hour").with_columns(
        pl.col("line").fill_null(strategy="forward").over("key"),
        pl.col("hour").shift(-1).over("key").alias("next_hour"))
    ordered = ordered.with_columns(pl.col("next_hour").fill_null(pl.lit(newest)).alias("next_seen"),
                                   pl.col("next_hour").is_null().alias("open"))
    gaps = ordered.with_columns(
        ((pl.col("next_seen") - pl.col("hour")).dt.total_seconds() / 3600 - 1).alias("gap_hours"))
    columns = [pl.col("key").alias(per)] + ([] if per == "line" else ["line"])  # per line: the key is the line
    return gaps.filter(pl.col("gap_hours") > expected_hours).select(
        *columns, (pl.col("hour") + pl.duration(hours=1)).alias("gap_start"),
        pl.col("next_seen").alias("gap_end"), "gap_hours", "open").sort("gap_hours", descending=True)

