"""Numbered schema migrations of project.duckdb; the version lives in the database."""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from app.core.store.db import one

# Schema 1 is the first released layout; a committed fixture (tests/fixtures/schema1) keeps it tested.
_SCHEMA_1 = """
CREATE TABLE schema_info (version INTEGER NOT NULL, migrated_at TIMESTAMP NOT NULL, app_version VARCHAR);
CREATE TABLE models (
    model_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, task VARCHAR NOT NULL,
    description VARCHAR DEFAULT '', created_at TIMESTAMP NOT NULL);
CREATE TABLE model_versions (
    version_id VARCHAR PRIMARY KEY, model_id VARCHAR NOT NULL, version VARCHAR NOT NULL,
    format VARCHAR NOT NULL, sha256 VARCHAR NOT NULL, artifact_path VARCHAR NOT NULL,
    size_bytes BIGINT NOT NULL, threshold DOUBLE DEFAULT 0.5,
    inputs_json VARCHAR, outputs_json VARCHAR, lineage_json VARCHAR, card_json VARCHAR,
    created_at TIMESTAMP NOT NULL);
CREATE TABLE datasets (
    dataset_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, kind VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL, artifact_path VARCHAR NOT NULL, row_count BIGINT NOT NULL,
    description VARCHAR DEFAULT '', created_at TIMESTAMP NOT NULL);
CREATE TABLE imports (
    import_id INTEGER PRIMARY KEY, kind VARCHAR NOT NULL, file_name VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL, row_count BIGINT NOT NULL, mapping_json VARCHAR,
    imported_at TIMESTAMP NOT NULL);
CREATE TABLE predictions (
    record_id VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, version_id VARCHAR NOT NULL,
    score DOUBLE NOT NULL, predicted_label INTEGER, import_id INTEGER NOT NULL);
CREATE TABLE labels (
    record_id VARCHAR NOT NULL, label DOUBLE NOT NULL, labelled_at TIMESTAMP NOT NULL,
    import_id INTEGER NOT NULL);
CREATE TABLE log_columns (name VARCHAR PRIMARY KEY, role VARCHAR NOT NULL, dtype VARCHAR NOT NULL);
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY, ts TIMESTAMP NOT NULL, actor VARCHAR NOT NULL, action VARCHAR NOT NULL,
    target VARCHAR NOT NULL, details_json VARCHAR);
"""

# Schema 2: lifecycle stages per site, and a risk tier per model.
_SCHEMA_2 = """
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


def _script(sql: str) -> Callable[[duckdb.DuckDBPyConnection], None]:
    def apply(con: duckdb.DuckDBPyConnection) -> None:
        for statement in filter(str.strip, sql.split(";")):
            con.execute(statement)

    return apply


def _schema_3(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 3: the coverage summary the overview reads, built from the data already there."""
    from app.core.store import summary

    con.execute(summary.CREATE)
    summary.rebuild(con)


def _schema_4(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 4: events on the timeline (detected version changes, manual events) and alerts."""
    from app.core.analysis import alerts, events

    con.execute(events.CREATE)
    con.execute(alerts.CREATE)


# Schema 5: which runtimes can load each model version (and the sha256 of every file), set by safe import.
_SCHEMA_5 = "ALTER TABLE model_versions ADD COLUMN runtimes_json VARCHAR"


def _schema_6(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 6: benchmark runs with their latencies, config and hardware fingerprint."""
    from app.core.models.bench import store

    con.execute(store.CREATE)


def _schema_7(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 7: the hash-chained audit trail (existing entries are chained in order)."""
    from app.core.store import audit

    _script(audit.SCHEMA_7)(con)
    audit.chain_existing(con)


def _schema_8(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 8: users, risk-tier rules, approval requests and signed decisions, signing lockouts, and
    validation runs."""
    from app.core.governance import approvals as governance

    _script(governance.SCHEMA_8)(con)
    governance.seed_tier_rules(con)


def _schema_9(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 9: validation plans, versioned by name and hashed."""
    from app.core.models.validation.store import SCHEMA_9

    con.execute(SCHEMA_9)


def _schema_10(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 10: saved operating reviews."""
    from app.core.analysis.operating_review import SCHEMA_10

    con.execute(SCHEMA_10)


def _schema_11(con: duckdb.DuckDBPyConnection) -> None:
    """Schema 11: business KPIs per line and week."""
    from app.core.analysis.kpis import SCHEMA_11

    con.execute(SCHEMA_11)


# MIGRATIONS[n - 1] brings a database from schema n - 1 to schema n.
MIGRATIONS: tuple[Callable[[duckdb.DuckDBPyConnection], None], ...] = (
    _script(_SCHEMA_1),
    _script(_SCHEMA_2),
    _schema_3,
    _schema_4,
    _script(_SCHEMA_5),
    _schema_6,
    _schema_7,
    _schema_8,
    _schema_9,
    _schema_10,
    _schema_11,
)
SCHEMA_VERSION = len(MIGRATIONS)
STAGES = ("candidate", "shadow", "pilot", "production", "retired")


def stored_version(con: duckdb.DuckDBPyConnection) -> int:
    """Schema version recorded in the database (0 for an empty database)."""
    has = one(con,
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_info'"
    )[0]
    if not has:
        return 0
    row = one(con, "SELECT max(version) FROM schema_info")
    return int(row[0] or 0)


def migrate(con: duckdb.DuckDBPyConnection, target: int = SCHEMA_VERSION, app_version: str = "") -> int:
    """Apply the missing migrations up to `target` in one transaction; return the new version."""
    current = stored_version(con)
    if current >= target:
        return current
    con.execute("BEGIN TRANSACTION")
    try:
        for number in range(current + 1, target + 1):
            MIGRATIONS[number - 1](con)
            con.execute(
                "INSERT INTO schema_info VALUES (?, now()::TIMESTAMP, ?)", [number, app_version]
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return target
