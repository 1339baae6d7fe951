"""Schema 7: the hash-chained audit trail; the entries written before are chained in order.

The hash below is the chain format of schema 7, copied here on purpose: it must not follow later edits of
app.core.store.audit (a new format would be a new migration).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC

import duckdb

from app.core.store.migrations._script import run_script

SQL = """
ALTER TABLE audit_log ADD COLUMN ts_text VARCHAR;
ALTER TABLE audit_log ADD COLUMN host VARCHAR DEFAULT '';
ALTER TABLE audit_log ADD COLUMN app_version VARCHAR DEFAULT '';
ALTER TABLE audit_log ADD COLUMN old_json VARCHAR;
ALTER TABLE audit_log ADD COLUMN new_json VARCHAR;
ALTER TABLE audit_log ADD COLUMN reason VARCHAR DEFAULT '';
ALTER TABLE audit_log ADD COLUMN prev_hash VARCHAR;
ALTER TABLE audit_log ADD COLUMN entry_hash VARCHAR;
CREATE TABLE audit_head (id INTEGER PRIMARY KEY, seq BIGINT NOT NULL, entry_hash VARCHAR NOT NULL)
"""
GENESIS = "0" * 64
HASHED = ("seq", "ts_text", "actor", "host", "app_version", "action", "target", "details_json", "old_json",
          "new_json", "reason", "prev_hash")


def _entry_hash(values: dict) -> str:
    canonical = json.dumps([values.get(k) for k in HASHED], separators=(",", ":"), ensure_ascii=False,
                           default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def apply(con: duckdb.DuckDBPyConnection) -> None:
    """Add the chain columns and the head, then hash the existing entries in sequence order."""
    run_script(con, SQL)
    rows = con.execute("SELECT seq, ts, actor, action, target, details_json FROM audit_log ORDER BY seq").fetchall()
    prev = GENESIS
    # A Python loop on purpose: each hash depends on the previous one (old projects hold tens of entries).
    for seq, ts, actor, action, target, details in rows:
        values = {"seq": int(seq), "ts_text": ts.replace(tzinfo=UTC).isoformat(timespec="microseconds"),
                  "actor": actor, "host": "", "app_version": "", "action": action, "target": target,
                  "details_json": details, "old_json": None, "new_json": None, "reason": "", "prev_hash": prev}
        prev = _entry_hash(values)
        con.execute("UPDATE audit_log SET ts_text = ?, host = '', app_version = '', reason = '', prev_hash = ?, "
                    "entry_hash = ? WHERE seq = ?", [values["ts_text"], values["prev_hash"], prev, seq])
    if rows:
        con.execute("INSERT OR REPLACE INTO audit_head VALUES (1, ?, ?)", [rows[-1][0], prev])
