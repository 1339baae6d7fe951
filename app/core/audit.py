"""The project's audit log: every governance-relevant change appends an entry in its own transaction."""

from __future__ import annotations

import getpass
import json
from typing import Any

import duckdb
import polars as pl

from app.core.db import one


def current_actor() -> str:
    """The OS user name, used as the actor until signing identities exist."""
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): still record something honest
        return "unknown-user"


def append_audit(
    con: duckdb.DuckDBPyConnection, action: str, target: str, details: dict[str, Any] | None = None,
    actor: str | None = None,
) -> int:
    """Append one entry; the caller's open transaction makes it atomic with the change it records."""
    seq = one(con, "SELECT coalesce(max(seq), 0) + 1 FROM audit_log")[0]
    con.execute(
        "INSERT INTO audit_log VALUES (?, now()::TIMESTAMP, ?, ?, ?, ?)",
        [seq, actor or current_actor(), action, target, json.dumps(details or {}, sort_keys=True, default=str)],
    )
    return int(seq)


def read_audit(con: duckdb.DuckDBPyConnection, limit: int = 200) -> pl.DataFrame:
    """The newest audit entries first."""
    return con.sql(f"SELECT * FROM audit_log ORDER BY seq DESC LIMIT {int(limit)}").pl()
