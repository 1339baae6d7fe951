"""Business outcomes per line and week (scrap rate, rework, downtime) imported from CSV, shown next to the model's
metrics in operating reviews. A file is checked completely before a row is stored."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from app.core.errors import IngestError
from app.core.store.project import Project
from app.core.store.sources import read_text_csv

COLUMNS = ("line", "week", "kpi", "value")


def read_kpis(path: Path | str) -> pl.DataFrame:
    """The file's rows as (line, week = Monday of the week, kpi, value); errors name the row and the column."""
    name = Path(path).name
    frame = read_text_csv(path, COLUMNS, "KPIs")
    parsed = frame.with_columns(
        pl.col("value").str.strip_chars().cast(pl.Float64, strict=False).alias("value_num"),
        pl.coalesce(pl.col("week").str.strip_chars().str.to_date("%Y-%m-%d", strict=False),
                    pl.col("week").str.strip_chars().str.to_date("%G-W%V-%u", strict=False),
                    (pl.col("week").str.strip_chars() + "-1").str.to_date("%G-W%V-%u", strict=False)).alias("week_date"))
    for column, bad, todo in (
            ("line", pl.col("line").is_null() | (pl.col("line").str.strip_chars() == ""), "Give every row a line."),
            ("kpi", pl.col("kpi").is_null() | (pl.col("kpi").str.strip_chars() == ""), "Name the KPI on every row."),
            ("value", pl.col("value_num").is_null() | pl.col("value_num").is_nan() | pl.col("value_num").is_infinite(),
             "Values must be numbers (use . as the decimal point)."),
            ("week", pl.col("week_date").is_null(), "Write weeks as a date (2026-09-07) or an ISO week (2026-W37).")):
        rows = parsed.filter(bad)
        if rows.height:
            first = rows.row(0, named=True)
            raise IngestError(f"{name}, row {first['row']}, column {column!r}: {first[column]!r} is not valid "
                              f"({rows.height} row(s) like this).", f"{todo} Nothing was imported.")
    out = parsed.select(pl.col("line").str.strip_chars(), pl.col("week_date").dt.truncate("1w").alias("week"),
                        pl.col("kpi").str.strip_chars(), pl.col("value_num").alias("value"), "row")
    dupes = out.filter(pl.struct("line", "week", "kpi").is_duplicated())
    if dupes.height:
        first = dupes.row(0, named=True)
        raise IngestError(f"{name}, row {first['row']}: {first['kpi']} for {first['line']} in the week of "
                          f"{first['week']} appears twice.", "Keep one value per line, week and KPI; nothing was "
                                                             "imported.")
    return out.drop("row")


def import_kpis(project: Project, path: Path | str) -> int:
    """Store the file's KPIs (a later value for the same line, week and KPI replaces the earlier); returns rows."""
    frame = read_kpis(path)
    with project.change("kpis.import", Path(path).name, {"rows": frame.height,
                                                          "kpis": sorted(frame["kpi"].unique().to_list())}) as con:
        con.register("_kpi_rows", frame.to_arrow())
        con.execute("INSERT OR REPLACE INTO kpis SELECT line, week, kpi, value FROM _kpi_rows")
        con.unregister("_kpi_rows")
    return frame.height


def kpi_changes(project: Project, start, end, previous_start) -> list[dict]:
    """Mean of each KPI per line in the period and in the period before."""
    with project.reading() as con:
        has = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'kpis'").fetchall()[0][0]
        if not has:
            return []
        frame = con.sql("""SELECT line, kpi, avg(value) FILTER (WHERE week >= $s::DATE) AS now,
                                  avg(value) FILTER (WHERE week < $s::DATE) AS before,
                                  count(*) FILTER (WHERE week >= $s::DATE) AS weeks
                           FROM kpis WHERE week >= $p::DATE AND week < $e::DATE GROUP BY 1, 2 ORDER BY 1, 2""",
                        params={"s": start, "p": previous_start, "e": end}).pl()
    return frame.filter(pl.col("weeks") > 0).to_dicts()
