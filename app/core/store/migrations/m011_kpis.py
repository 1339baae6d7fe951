"""Schema 11: business KPIs per line and week."""

from __future__ import annotations

import duckdb

SQL = """
CREATE TABLE kpis (line VARCHAR NOT NULL, week DATE NOT NULL, kpi VARCHAR NOT NULL, value DOUBLE NOT NULL,
                   PRIMARY KEY (line, week, kpi))
"""


def apply(con: duckdb.DuckDBPyConnection) -> None:
    """Create the KPI table."""
    con.execute(SQL)
