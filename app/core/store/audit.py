"""The project's audit trail: every change appends an entry in the transaction of the change. Entries are
hash-chained (each includes the previous entry's hash) and the head is kept apart, so editing, deleting,
reordering or cutting off entries is found by `verify_audit`."""

from __future__ import annotations

import getpass
import hashlib
import json
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb

from app.core.store.db import one

if TYPE_CHECKING:
    import polars as pl

GENESIS = "0" * 64
# Columns that the entry hash covers, in this order (seq and prev_hash included: moving an entry breaks it).
HASHED = ("seq", "ts_text", "actor", "host", "app_version", "action", "target", "details_json", "old_json",
          "new_json", "reason", "prev_hash")


def current_actor() -> str:
    """The acting user: the signed-in Lineproof user if any, else the OS user name."""
    if _acting_user:
        return _acting_user[-1]
    if _session_user:
        return _session_user[0]
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): still record something honest
        return "unknown-user"


_acting_user: list[str] = []
_session_user: list[str] = []  # who signed in to the desktop app (one at a time)


def set_session_user(user_id: str | None) -> None:
    """The signed-in user of a desktop session: audit entries name them unless a block says otherwise."""
    _session_user.clear()
    if user_id:
        _session_user.append(user_id)


class acting_as:  # noqa: N801 - used as a context manager like a function
    """Within this block, audit entries name `user_id` as the actor."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id

    def __enter__(self) -> None:
        _acting_user.append(self.user_id)

    def __exit__(self, *exc: object) -> None:
        _acting_user.pop()


def entry_hash(values: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of the hashed fields of one entry."""
    canonical = json.dumps([values.get(k) for k in HASHED], separators=(",", ":"), ensure_ascii=False,
                           default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _app_version() -> str:
    from app import __version__

    return __version__


def append_audit(
    con: duckdb.DuckDBPyConnection, action: str, target: str, details: dict[str, Any] | None = None,
    actor: str | None = None, old: Any = None, new: Any = None, reason: str = "",
) -> int:
    """Append one chained entry; the caller's open transaction makes it atomic with the change it records."""
    last = one(con, "SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1")
    seq = (last[0] if last else 0) + 1
    now = datetime.now(UTC)
    if last is not None:
        # The receipts signed on the previous head go into this entry: deleting one breaks the chain's record.
        receipts = receipts_of(con, int(last[0]))
        if receipts:
            details = {**(details or {}), "receipts_before": receipts}
    values = {
        "seq": int(seq), "ts_text": now.isoformat(timespec="microseconds"), "actor": actor or current_actor(),
        "host": socket.gethostname(), "app_version": _app_version(), "action": action, "target": target,
        "details_json": json.dumps(details or {}, sort_keys=True, default=str),
        "old_json": None if old is None else json.dumps(old, sort_keys=True, default=str),
        "new_json": None if new is None else json.dumps(new, sort_keys=True, default=str),
        "reason": reason or "", "prev_hash": (last[1] if last and last[1] else GENESIS),
    }
    values["entry_hash"] = entry_hash(values)
    values["ts"] = now.replace(tzinfo=None)
    names = list(values)
    con.execute(f"INSERT INTO audit_log ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                [values[n] for n in names])
    con.execute("INSERT OR REPLACE INTO audit_head VALUES (1, ?, ?)", [seq, values["entry_hash"]])
    return int(seq)

def receipt_hash(seq: int, entry_hash: str, user_id: str, cert_sha256: str, signed_at: str, signature: str) -> str:
    """sha256 of one stored receipt (what the next audit entry records)."""
    return hashlib.sha256(json.dumps([int(seq), entry_hash, user_id, cert_sha256, signed_at, signature],
                                     separators=(",", ":")).encode("utf-8")).hexdigest()


def receipts_of(con: duckdb.DuckDBPyConnection, seq: int) -> list[str]:
    """Hashes of the receipts stored for one audit entry, sorted."""
    rows = con.execute("SELECT seq, entry_hash, user_id, cert_sha256, signed_at, signature FROM audit_receipts "
                       "WHERE seq = ?", [seq]).fetchall()
    return sorted(receipt_hash(*r) for r in rows)


@dataclass
class AuditVerdict:
    """Result of recomputing the chain."""

    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str = ""
    clock_warnings: list[str] = field(default_factory=list)


def verify_audit(con: duckdb.DuckDBPyConnection) -> AuditVerdict:
    """Recompute every entry's hash and link; name the first entry that was changed, removed or moved."""
    frame = con.sql(f"SELECT {', '.join(HASHED)}, entry_hash, ts FROM audit_log ORDER BY seq").pl()
    head = one(con, "SELECT seq, entry_hash FROM audit_head WHERE id = 1")
    rows = frame.to_dicts()
    warnings: list[str] = []

    def bad(seq: int, problem: str) -> AuditVerdict:
        last = rows[-1] if rows else {"seq": 0, "entry_hash": GENESIS}
        return AuditVerdict(False, len(rows), int(last["seq"]), str(last["entry_hash"]), seq, problem, warnings)

    prev_hash, prev_ts = GENESIS, None
    for expected, row in enumerate(rows, start=1):
        if row["seq"] != expected:
            return bad(expected, f"entry {expected} is missing (the next entry found is {row['seq']}).")
        if entry_hash(row) != row["entry_hash"]:
            return bad(expected, f"entry {expected} was changed after it was written (its hash does not match).")
        if row["prev_hash"] != prev_hash:
            if expected == 1:
                return bad(1, "entry 1 does not start the chain.")
            return bad(expected - 1, f"entry {expected - 1} was rewritten: entry {expected} chained to a different "
                                     "hash.")
        try:
            when = datetime.fromisoformat(row["ts_text"])
        except (TypeError, ValueError):
            return bad(expected, f"entry {expected} has no readable time.")
        if row["ts"] is not None and when.astimezone(UTC).replace(tzinfo=None) != row["ts"]:
            return bad(expected, f"entry {expected}'s time was changed after it was written.")
        if prev_ts is not None and when < prev_ts:
            warnings.append(f"entry {expected} is dated {row['ts_text']}, before entry {expected - 1}: the clock "
                            "went backwards")
        prev_hash, prev_ts = row["entry_hash"], when
    if head is not None:
        if head[0] > len(rows):
            return bad(len(rows) + 1, f"entries {len(rows) + 1}..{head[0]} were cut off the end of the log.")
        if head[0] < len(rows):
            return bad(int(head[0]) + 1, f"entries after {head[0]} were added outside Lineproof.")
        if head[1] != prev_hash:
            return bad(len(rows), f"entry {len(rows)} was rewritten (it no longer matches the recorded head).")
    elif rows:
        return bad(1, "the recorded head of the log is missing.")
    if not rows:  # every project's first entry is its creation: an empty log was emptied
        return bad(1, "the log is empty, but every project starts with its creation entry: it was emptied.")
    return AuditVerdict(True, len(rows), len(rows), prev_hash, None, "", warnings)


def read_audit(con: duckdb.DuckDBPyConnection, limit: int = 200, action: str | None = None,
               actor: str | None = None, text: str | None = None) -> pl.DataFrame:
    """The newest audit entries first, optionally filtered by action prefix, actor or free text."""
    where, params = [], []
    if action:
        where.append("action LIKE ?")
        params.append(action + "%")
    if actor:
        where.append("actor = ?")
        params.append(actor)
    if text:
        where.append("(target ILIKE ? OR details_json ILIKE ? OR reason ILIKE ?)")
        params += [f"%{text}%"] * 3
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return con.sql(f"SELECT seq, ts_text, actor, host, app_version, action, target, reason, details_json, "
                   f"old_json, new_json, entry_hash FROM audit_log {clause} ORDER BY seq DESC LIMIT {int(limit)}",
                   params=params).pl()
