# ruff: noqa: F811  (the governed fixture is imported from test_governance)
"""Randomised tampering of a governed project's database, as an insider with the file would do it: edit, delete or
insert rows of every governance table, receipts and statements, rewrite the audit log with every later hash
recomputed and the head moved, cut the log back, or restore an older copy. `audit verify` (with this PC's anchor)
must find every one, and raise no alarm on untouched copies."""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from app.core.governance.approvals import create_request, decide, set_roles, set_tier_rule, unlock
from app.core.governance.integrity import verify_project
from app.core.governance.receipts import export_receipt
from app.core.models.registry import set_stage
from app.core.store.audit import GENESIS, HASHED, entry_hash
from app.core.store.project import Project
from tests.test_governance import PASS, governed, governed_template, profile, signer  # noqa: F401 (fixtures)

TAMPERS = 320
UNTOUCHED = 50
TABLES = ("users", "tier_rules", "models", "model_versions", "validation_runs", "stage_history",
          "approval_requests", "approval_decisions", "statements", "audit_receipts", "signing_failures")
F64 = "f" * 64


def _other(rng: random.Random, current, choices):
    options = [c for c in choices if c != current]
    return rng.choice(options)


def _edits(con, rng: random.Random, table: str, row: dict) -> tuple[str, object]:
    """A column of this row and a value that changes what the row says."""
    users = [r[0] for r in con.execute("SELECT user_id FROM users").fetchall()]
    pems = [r[0] for r in con.execute("SELECT DISTINCT cert_pem FROM users").fetchall()]
    signatures = [r[0] for r in con.execute(f"SELECT DISTINCT signature FROM {table}").fetchall()] \
        if "signature" in row else []
    edits = {
        "users": lambda: {"roles_json": json.dumps(sorted(set(json.loads(row["roles_json"])) ^ {"approver"})),
                  "cert_sha256": F64, "cert_pem": _other(rng, row["cert_pem"], pems) if len(pems) > 1 else "x",
                  "active": not row["active"], "user_id": row["user_id"] + "x"},
        "tier_rules": lambda: {"rule_json": json.dumps({"needs_validation": False, "steps": [["approve", "engineer"]]})},
        "models": lambda: {"risk_tier": _other(rng, row.get("risk_tier"), ("low", "medium", "high", "safety-relevant"))},
        "model_versions": lambda: {"lineage_json": json.dumps({"author": "mallory"})},
        "validation_runs": lambda: {"verdict": _other(rng, row.get("verdict"), ("PASS", "FAIL", "INCONCLUSIVE")),
                            "result_sha256": F64, "plan_sha256": F64, "candidate_version": "med:v1x"},
        "stage_history": lambda: {"stage": _other(rng, row.get("stage"), ("candidate", "pilot", "production", "retired")),
                          "version_id": _other(rng, row.get("version_id"), ("hi:v1", "med:v1")), "site": "P9"},
        "approval_requests": lambda: {"requested_by": _other(rng, row.get("requested_by"), users),
                              "state": _other(rng, row.get("state"), ("open", "approved", "applied", "rejected")),
                              "subject_sha256": F64, "site": "P9", "subject_json": row.get("subject_json", "") + " ",
                              "version_id": _other(rng, row.get("version_id"), ("hi:v1", "med:v1"))},
        "approval_decisions": lambda: {"user_id": _other(rng, row.get("user_id"), users),
                               "role": _other(rng, row.get("role"), ("validation_lead", "approver", "engineer")),
                               "decision": _other(rng, row.get("decision"), ("review", "approve", "reject")),
                               "comment": f"{row.get('comment')}x", "decided_at": f"{row.get('decided_at')}x",
                               "payload_sha256": F64, "cert_sha256": F64, "step": (row.get("step") or 0) + 1,
                               "request_id": f"{row.get('request_id')}x",
                               "signature": _other(rng, row.get("signature"), signatures + ["AAAA"])},
        "statements": lambda: {"kind": f"{row.get('kind')}x", "subject": f"{row.get('subject')}x",
                       "body_json": json.dumps({**json.loads(row.get("body_json") or "{}"), "x": 1}),
                       "signer": _other(rng, row.get("signer"), users), "signed_at": f"{row.get('signed_at')}x",
                       "prev_sha256": F64, "sha256": F64,
                       "signature": _other(rng, row.get("signature"), signatures + ["AAAA"]),
                       "cert_pem": _other(rng, row.get("cert_pem"), pems)},
        "audit_receipts": lambda: {"entry_hash": F64, "user_id": _other(rng, row.get("user_id"), users),
                           "cert_sha256": F64, "signed_at": f"{row.get('signed_at')}x",
                           "signature": _other(rng, row.get("signature"), signatures + ["AAAA"])},
        "signing_failures": lambda: {"user_id": _other(rng, row.get("user_id"), users)},
    }[table]()
    column = rng.choice(sorted(edits))
    return column, edits[column]


def _rewrite(con, rng: random.Random) -> str:
    """Change one audit entry and recompute every later hash and the head: a consistent chain."""
    rows = con.sql(f"SELECT {', '.join(HASHED)} FROM audit_log ORDER BY seq").pl().to_dicts()
    target = rng.choice(rows)["seq"]
    column = rng.choice(("details_json", "actor", "action", "target", "reason"))
    prev = GENESIS
    for row in rows:
        if row["seq"] == target:
            row[column] = json.dumps({"rewritten": True}) if column == "details_json" else f"{row[column]}-x"
        row["prev_hash"] = prev
        prev = entry_hash(row)
        con.execute(f"UPDATE audit_log SET {column} = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?",
                    [row[column], row["prev_hash"], prev, row["seq"]])
    con.execute("UPDATE audit_head SET entry_hash = ? WHERE id = 1", [prev])
    return f"audit_log rewrite of entry {target}.{column}"


def _tamper(db: Path, rng: random.Random, older: Path) -> str:
    kind = rng.choices(("edit", "delete", "insert", "rewrite", "cut", "rollback"), (60, 15, 10, 9, 3, 3))[0]
    if kind == "rollback":
        shutil.copy(older, db)
        return "database restored from an older copy"
    con = duckdb.connect(str(db))
    try:
        if kind == "rewrite":
            return _rewrite(con, rng)
        if kind == "cut":
            last = con.execute("SELECT max(seq) FROM audit_log").fetchall()[0][0]
            k = rng.randint(1, 3)
            con.execute("DELETE FROM audit_log WHERE seq > ?", [last - k])
            new = con.execute("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchall()[0]
            con.execute("UPDATE audit_head SET seq = ?, entry_hash = ? WHERE id = 1", list(new))
            return f"audit log cut back by {k} with the head moved"
        table = rng.choice(TABLES)
        frame = con.sql(f"SELECT rowid AS _rowid, * FROM {table}").pl()
        row = frame.row(rng.randrange(frame.height), named=True)
        if kind == "delete":
            con.execute(f"DELETE FROM {table} WHERE rowid = ?", [row["_rowid"]])
            return f"delete from {table}"
        if kind == "insert":
            copy = {k: v for k, v in row.items() if k != "_rowid"}
            key = {"users": "user_id", "tier_rules": "tier", "models": "model_id", "model_versions": "version_id",
                   "validation_runs": "run_id", "approval_requests": "request_id", "approval_decisions": "decision_id",
                   "audit_receipts": "signed_at", "signing_failures": "user_id"}.get(table)
            if table == "stage_history":
                copy["change_id"] = con.execute("SELECT max(change_id) + 1 FROM stage_history").fetchall()[0][0]
            elif table == "statements":
                copy["seq"] = con.execute("SELECT max(seq) + 1 FROM statements").fetchall()[0][0]
            elif table == "audit_receipts":
                copy["user_id"] = _other(rng, copy["user_id"], [r[0] for r in con.execute(
                    "SELECT user_id FROM users").fetchall()])
            else:
                copy[key] = f"{copy[key]}z" if isinstance(copy[key], str) else copy[key]
            con.execute(f"INSERT INTO {table} ({', '.join(copy)}) VALUES ({', '.join('?' * len(copy))})",
                        list(copy.values()))
            return f"insert into {table}"
        column, value = _edits(con, rng, table, row)
        con.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", [value, row["_rowid"]])
        return f"edit {table}.{column}"
    finally:
        con.close()


def _copy(base: Path, dest: Path) -> Path:
    dest.mkdir()
    for name in ("lineproof.toml", "project.duckdb"):
        shutil.copy(base / name, dest / name)
    return dest


def _detected(folder: Path) -> bool:
    with Project.open(folder, read_only=True) as project:
        return not verify_project(project).ok


@pytest.mark.slow
def test_every_randomised_tamper_is_found_and_untouched_copies_raise_no_alarm(governed: Project, tmp_path: Path
                                                                              ) -> None:
    # A governed history with every kind of row: releases, a rule change, a role change, a wrong passphrase.
    req = create_request(governed, "med:v1", "P1", "production", signer(governed, "eve"))
    decide(governed, req, "review", signer(governed, "vera"), "checked")
    decide(governed, req, "approve", signer(governed, "anna"), "go")
    set_stage(governed, "med:v1", "P1", "production", "release", by=signer(governed, "eve"))
    governed.con.execute("CHECKPOINT")
    older = tmp_path / "older.duckdb"
    shutil.copy(governed.folder / "project.duckdb", older)
    hi = create_request(governed, "hi:v1", "P1", "production", signer(governed, "eve"), validation_run_id="VAL-1")
    decide(governed, hi, "review", signer(governed, "vlad"), "slices checked")
    set_tier_rule(governed, "low", {"needs_validation": False, "steps": [["approve", "approver"]],
                                    "distinct_people": True, "exclude_author": True}, signer(governed, "admin"),
                  "approvers approve")
    set_roles(governed, "vlad", ["validation_lead", "engineer"], signer(governed, "admin"), "also builds")
    with pytest.raises(Exception, match="Wrong passphrase"):
        unlock(governed, "anna", "wrong-one")
    export_receipt(governed, signer(governed, "anna"), tmp_path / "head.json")  # the head is signed
    base = governed.folder
    governed.close()

    false_alarms = sum(_detected(_copy(base, tmp_path / f"clean-{i}")) for i in range(UNTOUCHED))
    missed: list[str] = []
    kinds: Counter = Counter()
    for i in range(TAMPERS):
        rng = random.Random(i)
        folder = _copy(base, tmp_path / f"t-{i}")
        what = _tamper(folder / "project.duckdb", rng, older)
        kinds[what.split(" of ")[0] if what.startswith("audit_log") else what] += 1
        if not _detected(folder):
            missed.append(f"#{i}: {what}")
        shutil.rmtree(folder)
    print(f"\ntamper suite: {TAMPERS - len(missed)}/{TAMPERS} tampers detected, {false_alarms}/{UNTOUCHED} false "
          f"alarms; kinds: {dict(sorted(kinds.items()))}")
    assert false_alarms == 0
    assert missed == [], missed
