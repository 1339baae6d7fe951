"""Freshness: when each asset (or line) last sent data, and the silent gaps in its history."""

from __future__ import annotations

import polars as pl

from app.core.store.project import Project
from app.core.store.sources import sql_ident


def silent_gaps(project: Project, per: str = "asset", expected_hours: float = 24.0) -> pl.DataFrame:
    """Stretches longer than `expected_hours` without a record, per asset, including one still open at the end.

    Works on hourly counts (one GROUP BY in DuckDB), so gaps are resolved to the hour.
    """
    with project.reading() as con:
        present = {r[0] for r in con.execute("SELECT name FROM log_columns").fetchall()}
        if per not in present:
            return pl.DataFrame(schema={per: pl.Utf8, "line": pl.Utf8, "gap_start": pl.Datetime("us"),
                                        "gap_end": pl.Datetime("us"), "gap_hours": pl.Float64, "open": pl.Boolean})
        line = 'any_value("line")' if "line" in present and per != "line" else "NULL"
        hours = con.sql(f"""SELECT {sql_ident(per)}::VARCHAR AS key, {line}::VARCHAR AS line,
                                   date_trunc('hour', ts) AS hour
                            FROM predictions GROUP BY 1, 3""").pl()
        newest = con.execute("SELECT max(ts) FROM predictions").fetchall()[0][0]
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


def last_seen(project: Project, per: str = "line") -> pl.DataFrame:
    """Last record per line (or asset) and how far it lies behind the newest record in the project."""
    with project.reading() as con:
        return con.sql(f"""SELECT {sql_ident(per)} AS {sql_ident(per)}, max(ts) AS last_record,
                                  epoch((SELECT max(ts) FROM predictions) - max(ts)) / 3600.0 AS hours_behind
                           FROM predictions GROUP BY 1 ORDER BY hours_behind DESC""").pl()
