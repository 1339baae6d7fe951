"""Frozen schema migrations: MIGRATIONS[n - 1] brings a project database from schema n - 1 to schema n.

A released migration never changes (tests/test_schema_migrations.py holds the sha256 of each file), and these
modules import nothing from the rest of Lineproof: a migration must do today what it did the day it shipped,
whatever the capability modules look like now. A schema change is a new file here, never an edit.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from app.core.store.migrations import (
    m001_initial,
    m002_stages,
    m003_coverage_summary,
    m004_events_alerts,
    m005_runtimes,
    m006_bench_runs,
    m007_audit_chain,
    m008_governance,
    m009_validation_plans,
    m010_operating_reviews,
    m011_kpis,
    m012_audit_receipts,
    m013_inputs_only_rows,
    m014_statements,
    m015_release_history,
    m016_attached_logs,
)

Migration = Callable[[duckdb.DuckDBPyConnection], None]

MIGRATIONS: tuple[Migration, ...] = (
    m001_initial.apply,
    m002_stages.apply,
    m003_coverage_summary.apply,
    m004_events_alerts.apply,
    m005_runtimes.apply,
    m006_bench_runs.apply,
    m007_audit_chain.apply,
    m008_governance.apply,
    m009_validation_plans.apply,
    m010_operating_reviews.apply,
    m011_kpis.apply,
    m012_audit_receipts.apply,
    m013_inputs_only_rows.apply,
    m014_statements.apply,
    m015_release_history.apply,
    m016_attached_logs.apply,
)
