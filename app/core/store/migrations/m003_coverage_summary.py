"""Schema 3: the coverage summary the overview reads, built from the data already there."""

from __future__ import annotations

import duckdb

SQL = """
CREATE TABLE coverage_summary (
    plant VARCHAR, line VARCHAR, version_id VARCHAR NOT NULL, week DATE NOT NULL,
    rows BIGINT NOT NULL, labelled BIGINT NOT NULL, first_ts TIMESTAMP, last_ts TIMESTAMP)
"""


def apply(con: duckdb.DuckDBPyConnection) -> None:
    """Create the summary and fill it from predictions and labels (plant and line when the log has them)."""
    con.execute(SQL)
    known = {r[0] for r in con.execute("SELECT name FROM log_columns").fetchall()}
    keys = ", ".join(f'p."{k}"' if k in known else "NULL" for k in ("plant", "line"))
    con.execute(f"""INSERT INTO coverage_summary
        SELECT {keys}, p.version_id, date_trunc('week', p.ts)::DATE, count(*), count(l.record_id),
               min(p.ts), max(p.ts)
        FROM predictions p LEFT JOIN labels l USING (record_id) GROUP BY ALL""")
