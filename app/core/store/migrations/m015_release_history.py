"""Schema 15: release history recorded before Lineproof (a plant's change-management records), imported as is."""

from __future__ import annotations

import duckdb

from app.core.store.migrations._script import run_script

SQL = """
CREATE TABLE release_history (
    import_id INTEGER NOT NULL, source_row INTEGER NOT NULL, version_id VARCHAR NOT NULL, site VARCHAR NOT NULL,
    event VARCHAR NOT NULL, happened_at TIMESTAMP NOT NULL, actor VARCHAR NOT NULL, note VARCHAR NOT NULL,
    PRIMARY KEY (import_id, source_row));
CREATE TABLE release_history_imports (
    import_id INTEGER PRIMARY KEY, file_name VARCHAR NOT NULL, file_sha256 VARCHAR NOT NULL, rows INTEGER NOT NULL,
    rows_sha256 VARCHAR NOT NULL, imported_at TIMESTAMP NOT NULL, imported_by VARCHAR NOT NULL);
"""


def apply(con: duckdb.DuckDBPyConnection) -> None:
    """Create the release history tables."""
    run_script(con, SQL)
