"""Schema 2: lifecycle stages per site, and a risk tier per model."""

from __future__ import annotations

import duckdb

from app.core.store.migrations._script import run_script

SQL = """
CREATE TABLE stage_history (
    change_id INTEGER PRIMARY KEY, version_id VARCHAR NOT NULL, site VARCHAR NOT NULL,
    stage VARCHAR NOT NULL, changed_at TIMESTAMP NOT NULL, changed_by VARCHAR NOT NULL,
    reason VARCHAR DEFAULT '');
ALTER TABLE models ADD COLUMN risk_tier VARCHAR DEFAULT 'medium';
CREATE VIEW current_stages AS
    SELECT h.version_id, v.model_id, h.site, arg_max(h.stage, h.change_id) AS stage,
           max(h.changed_at) AS since
    FROM stage_history h JOIN model_versions v USING (version_id)
    GROUP BY h.version_id, v.model_id, h.site;
"""


def apply(con: duckdb.DuckDBPyConnection) -> None:
    """Add stage history, the current-stage view and the risk tier."""
    run_script(con, SQL)
