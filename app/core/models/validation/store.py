"""Validation plans (versioned, hashed) and validation runs (insert-only) in the project database."""

from __future__ import annotations

import json
import re
from typing import Any

import duckdb
import polars as pl

from app.core.models.validation.plan import ValidationPlan
from app.core.store.db import one


def plan_id_of(name: str) -> str:
    """A stable id from a plan's name: lower case, words joined by '-'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "plan"


def save_plan(con: duckdb.DuckDBPyConnection, plan: ValidationPlan, actor: str) -> tuple[str, int, bool]:
    """Store the plan as a new revision unless its text is already the latest; (plan id, revision, new?)."""
    plan_id = plan_id_of(plan.name)
    last = one(con, "SELECT revision, sha256 FROM validation_plans WHERE plan_id = ? ORDER BY revision DESC LIMIT 1",
               [plan_id])
    if last and last[1] == plan.sha256:
        return plan_id, int(last[0]), False
    revision = (int(last[0]) if last else 0) + 1
    con.execute("INSERT INTO validation_plans VALUES (?, ?, ?, ?, ?, now()::TIMESTAMP, ?)",
                [plan_id, revision, plan.name, plan.sha256, plan.text, actor])
    return plan_id, revision, True


def list_plans(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The latest revision of every plan."""
    return con.sql("""SELECT plan_id, arg_max(revision, revision) AS revision, arg_max(name, revision) AS name,
                             arg_max(sha256, revision) AS sha256, arg_max(plan_toml, revision) AS plan_toml,
                             max(saved_at) AS saved_at
                      FROM validation_plans GROUP BY plan_id ORDER BY plan_id""").pl()


def insert_run(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    """Store a finished run (inside the caller's audited transaction)."""
    names = list(row)
    con.execute(f"INSERT INTO validation_runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                [row[n] for n in names])


def list_runs(con: duckdb.DuckDBPyConnection, candidate: str | None = None) -> pl.DataFrame:
    """Runs, newest first, without their results."""
    where, params = ("WHERE candidate_version = ?", [candidate]) if candidate else ("", [])
    return con.sql(f"""SELECT run_id, candidate_version, champion_version, dataset_id, verdict, plan_sha256,
                              started_at, finished_at, created_by
                       FROM validation_runs {where} ORDER BY finished_at DESC, run_id DESC""", params=params).pl()


def load_result(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
    """A stored run's full result, or None."""
    row = one(con, "SELECT result_json FROM validation_runs WHERE run_id = ?", [run_id])
    return json.loads(row[0]) if row else None
