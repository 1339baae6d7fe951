"""Schema 8: users, risk-tier rules (seeded), approval requests and signed decisions, signing lockouts, and
validation runs."""

from __future__ import annotations

import json

import duckdb

from app.core.store.migrations._script import run_script

SQL = """
CREATE TABLE users (
    user_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, roles_json VARCHAR NOT NULL, cert_pem VARCHAR NOT NULL,
    cert_sha256 VARCHAR NOT NULL, active BOOLEAN NOT NULL DEFAULT true, added_at TIMESTAMP NOT NULL);
CREATE TABLE tier_rules (tier VARCHAR PRIMARY KEY, rule_json VARCHAR NOT NULL);
CREATE TABLE approval_requests (
    request_id VARCHAR PRIMARY KEY, version_id VARCHAR NOT NULL, site VARCHAR NOT NULL, target_stage VARCHAR NOT NULL,
    validation_run_id VARCHAR, subject_json VARCHAR NOT NULL, subject_sha256 VARCHAR NOT NULL,
    requested_by VARCHAR NOT NULL, requested_at TIMESTAMP NOT NULL, comment VARCHAR DEFAULT '',
    state VARCHAR NOT NULL);
CREATE TABLE approval_decisions (
    decision_id VARCHAR PRIMARY KEY, request_id VARCHAR NOT NULL, step INTEGER NOT NULL, user_id VARCHAR NOT NULL,
    role VARCHAR NOT NULL, decision VARCHAR NOT NULL, meaning VARCHAR NOT NULL, comment VARCHAR NOT NULL,
    decided_at VARCHAR NOT NULL, payload_sha256 VARCHAR NOT NULL, signature VARCHAR NOT NULL,
    cert_sha256 VARCHAR NOT NULL);
CREATE TABLE signing_failures (user_id VARCHAR NOT NULL, failed_at TIMESTAMP NOT NULL);
CREATE TABLE validation_runs (
    run_id VARCHAR PRIMARY KEY, candidate_version VARCHAR NOT NULL, champion_version VARCHAR,
    dataset_id VARCHAR NOT NULL, dataset_sha256 VARCHAR NOT NULL, plan_sha256 VARCHAR NOT NULL,
    plan_toml VARCHAR NOT NULL, candidate_sha256 VARCHAR NOT NULL, champion_sha256 VARCHAR,
    verdict VARCHAR NOT NULL, result_json VARCHAR NOT NULL, result_sha256 VARCHAR NOT NULL,
    tool_version VARCHAR NOT NULL, started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP NOT NULL,
    created_by VARCHAR NOT NULL)
"""
TIER_RULES = {
    "low": {"needs_validation": False, "steps": [["approve", "validation_lead"]], "distinct_people": True,
            "exclude_author": False},
    "medium": {"needs_validation": False, "steps": [["review", "validation_lead"], ["approve", "approver"]],
               "distinct_people": True, "exclude_author": False},
    "high": {"needs_validation": True, "steps": [["review", "validation_lead"], ["approve", "approver"]],
             "distinct_people": True, "exclude_author": True},
    "safety-relevant": {"needs_validation": True,
                        "steps": [["review", "validation_lead"], ["approve", "approver"], ["approve", "approver"]],
                        "distinct_people": True, "exclude_author": True},
}


def apply(con: duckdb.DuckDBPyConnection) -> None:
    """Create the governance tables and seed the rule of each risk tier."""
    run_script(con, SQL)
    for tier, rule in TIER_RULES.items():
        con.execute("INSERT INTO tier_rules VALUES (?, ?)", [tier, json.dumps(rule, sort_keys=True)])
