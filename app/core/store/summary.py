"""Coverage summary: rows, labelled rows and time span per plant, line, model version and week.

Kept up to date inside every import's transaction, so the overview reads a few hundred rows instead of
joining millions of predictions with their labels (1.8 s at 10M rows on 2 cores; the summary makes it ms).
"""

from __future__ import annotations

import duckdb

from app.core.store.sources import sql_ident

KEYS = ("plant", "line")


def _keys(con: duckdb.DuckDBPyConnection, alias: str) -> str:
    known = {r[0] for r in con.execute("SELECT name FROM log_columns").fetchall()}
    return ", ".join(f"{alias}.{sql_ident(k)}" if k in known else "NULL" for k in KEYS)


def add_predictions(con: duckdb.DuckDBPyConnection, import_id: int) -> None:
    """Count a new prediction import (its rows have no labels yet: labels need known record ids)."""
    con.execute(f"""INSERT INTO coverage_summary
        SELECT {_keys(con, 'p')}, p.version_id, date_trunc('week', p.ts)::DATE, count(*), 0, min(p.ts), max(p.ts)
        FROM predictions p WHERE p.import_id = ? GROUP BY ALL""", [import_id])


def add_labels(con: duckdb.DuckDBPyConnection, new_labels: str) -> None:
    """Count records that get their first label (call before earlier labels are replaced)."""
    con.execute(f"""INSERT INTO coverage_summary
        SELECT {_keys(con, 'p')}, p.version_id, date_trunc('week', p.ts)::DATE, 0, count(*), NULL, NULL
        FROM (SELECT record_id FROM {new_labels} ANTI JOIN labels USING (record_id)) n
        JOIN predictions p USING (record_id) GROUP BY ALL""")


def rebuild(con: duckdb.DuckDBPyConnection) -> None:
    """Recompute the whole summary from predictions and labels (migrations, repairs)."""
    con.execute("DELETE FROM coverage_summary")
    con.execute(f"""INSERT INTO coverage_summary
        SELECT {_keys(con, 'p')}, p.version_id, date_trunc('week', p.ts)::DATE, count(*), count(l.record_id),
               min(p.ts), max(p.ts)
        FROM predictions p LEFT JOIN labels l USING (record_id) GROUP BY ALL""")
