"""Schema 4: events on the timeline (detected version changes, manual events) and alerts."""

from __future__ import annotations

import duckdb

from app.core.store.migrations._script import run_script

SQL = """
CREATE TABLE events (
    event_id INTEGER PRIMARY KEY, ts TIMESTAMP NOT NULL, kind VARCHAR NOT NULL, source VARCHAR NOT NULL,
    dimension VARCHAR, scope VARCHAR, line VARCHAR, old_value VARCHAR, new_value VARCHAR,
    description VARCHAR NOT NULL, created_by VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL);
CREATE TABLE alerts (
    alert_id INTEGER PRIMARY KEY, rule VARCHAR NOT NULL, scope VARCHAR NOT NULL, line VARCHAR,
    subject VARCHAR NOT NULL, window_start TIMESTAMP, window_end TIMESTAMP, severity VARCHAR NOT NULL,
    message VARCHAR NOT NULL, evidence_json VARCHAR NOT NULL, raised_at TIMESTAMP NOT NULL,
    state VARCHAR NOT NULL DEFAULT 'open', acked_by VARCHAR, acked_at TIMESTAMP, ack_comment VARCHAR,
    UNIQUE (rule, scope, subject, window_start, window_end));
"""


def apply(con: duckdb.DuckDBPyConnection) -> None:
    """Create the events and alerts tables."""
    run_script(con, SQL)
