"""`audit verify` as a whole: the hash chain, the signed statements replayed against this PC's anchor, every
table row against the record that backs it, and the log against every signed receipt that can be found (in the
project, chained into the log, on this PC beside the trust configuration, in files and packets kept elsewhere).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.governance import trust
from app.core.governance.ledger import identity_problem, project_key
from app.core.governance.release_history import history_problems
from app.core.store.audit import AuditVerdict, receipt_hash, verify_audit
from app.core.store.db import one
from app.core.store.project import Project


@dataclass
class AnchorReport:
    """Receipts checked, what contradicts the log, and what is merely worth knowing."""

    checked: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class ProjectVerdict:
    """Everything `audit verify` found."""

    chain: AuditVerdict
    anchors: AnchorReport
    governance: list[str]
    anchored: bool
    anchor_note: str

    @property
    def ok(self) -> bool:
        """True when nothing contradicts the record."""
        return self.chain.ok and not self.anchors.problems and not self.governance

    def as_dict(self) -> dict[str, Any]:
        """Plain data for --format json."""
        return {**self.chain.__dict__, "receipts_checked": self.anchors.checked,
                "receipt_problems": self.anchors.problems, "notes": self.anchors.notes,
                "governance_problems": self.governance, "anchored": self.anchored, "anchor_note": self.anchor_note,
                "ok": self.ok}


def _stored_receipts(con: Any) -> list[tuple]:
    return con.execute("SELECT seq, entry_hash, user_id, cert_sha256, signed_at, signature FROM audit_receipts "
                       "ORDER BY seq, user_id").fetchall()


def check_anchors(project: Project, files: list[Path | str] = (), extra: list[dict] = ()) -> AnchorReport:
    """The log against every receipt: each bound to its signer's registered certificate, chained into the next
    entry, and the copies kept outside the project (this PC, files, packets) against a rolled-back database."""
    from app.core.governance.approvals import governance
    from app.core.governance.receipts import read_receipt_file, signature_ok

    report = AnchorReport()
    state = governance(project)
    with project.reading() as con:
        key = project_key(con)
        head = one(con, "SELECT seq, entry_hash FROM audit_head WHERE id = 1")
        head_seq = int(head[0]) if head else 0
        entries = dict(con.execute("SELECT seq, entry_hash FROM audit_log").fetchall())
        chained = {int(s): json.loads(d or "{}").get("receipts_before") for s, d in con.execute(
            "SELECT seq, details_json FROM audit_log WHERE details_json LIKE '%receipts_before%'").fetchall()}
        stored = _stored_receipts(con)
    by_seq: dict[int, list[str]] = {}
    for seq, entry_hash, user_id, cert_sha, signed_at, signature in stored:
        report.checked += 1
        where = f"receipt of entry {seq}"
        by_seq.setdefault(int(seq), []).append(receipt_hash(seq, entry_hash, user_id, cert_sha, signed_at, signature))
        user = state.users.get(user_id)
        receipt = {"seq": seq, "entry_hash": entry_hash, "user_id": user_id, "signed_at": signed_at,
                   "signature": signature}
        if user is None:
            report.problems.append(f"{where}: signed as {user_id}, who is not a verified user of this project")
        elif user.cert_sha256 != cert_sha:
            report.problems.append(f"{where}: made with a certificate that is not {user_id}'s registered one "
                                   "(re-signed by someone else)")
        elif not signature_ok(receipt, user.cert_pem):
            report.problems.append(f"{where}: the signature of {user_id} does not match the receipt")
        elif entries.get(int(seq)) != entry_hash:
            report.problems.append(f"{where}: {user_id} signed entry {seq} as {entry_hash[:16]}…; the log now says "
                                   f"{str(entries.get(int(seq)) or 'nothing')[:16]}… (the log was rewritten)")
    for seq, recorded in chained.items():  # each entry records the receipts of the one before it
        have = sorted(by_seq.get(seq - 1, []))
        missing = sorted(set(recorded or []) - set(have))
        if missing:
            report.problems.append(f"{len(missing)} receipt(s) of entry {seq - 1} were deleted (entry {seq} "
                                   "records them)")
    for seq, hashes in by_seq.items():
        if seq + 1 in entries and not set(hashes) <= set(chained.get(seq + 1) or []):
            report.problems.append(f"a receipt of entry {seq} was added afterwards (entry {seq + 1} does not "
                                   "record it)")
    kept = {(int(r[0]), r[2]) for r in stored}
    for r in trust.pc_receipts(key):  # nothing deletes a receipt: one this PC signed must still be in the project
        if int(r["seq"]) <= head_seq and (int(r["seq"]), r["user_id"]) not in kept:
            report.problems.append(f"the receipt {r['user_id']} signed on this PC for entry {r['seq']} was deleted "
                                   "from the project")
    outside: list[tuple[str, dict]] = [("this PC's copy", r) for r in trust.pc_receipts(key)]
    outside += [(Path(f).name, read_receipt_file(f)) for f in files]
    outside += [(str(r.get("_source", "a packet")), r) for r in extra]
    seen_folder = trust.known_key(project.snapshot_of or project.folder)
    if seen_folder and seen_folder != key:
        report.problems.append(f"this PC saw a project in {project.snapshot_of or project.folder} whose log began "
                               f"with {seen_folder[:16]}…; this log begins with {key[:16]}… (the database was "
                               "replaced or rewritten from its first entry)")
    last_outside = 0
    for where, r in outside:
        report.checked += 1
        if r.get("project_key") not in (None, key):
            continue  # another project's receipt (a file given by mistake, a packet of another project)
        cert = _cert(r.get("cert_pem", ""))
        user = state.users.get(r.get("user_id", ""))
        if cert is None or not signature_ok(r, r["cert_pem"]):
            report.problems.append(f"{where}: the receipt's signature does not verify")
            continue
        if identity_problem(cert) or (user is not None and user.cert_pem.strip() != r["cert_pem"].strip()):
            report.problems.append(f"{where}: signed by a certificate that is not {r.get('user_id')}'s registered "
                                   "one or does not chain to this PC's anchor")
            continue
        seq = int(r["seq"])
        last_outside = max(last_outside, seq)
        if seq > head_seq:
            report.problems.append(f"{where}: {r['user_id']} signed entry {seq} on {r['signed_at']}, but the log ends "
                                   f"at entry {head_seq}: the database was rolled back to an older copy")
        elif entries.get(seq) != r["entry_hash"]:
            report.problems.append(f"{where}: {r['user_id']} signed entry {seq} as {r['entry_hash'][:16]}…; the log "
                                   "now differs (the log was rewritten)")
    last = max([last_outside, *by_seq.keys()], default=0)
    if head_seq > last:
        report.notes.append(f"{head_seq - last} entr{'y' if head_seq - last == 1 else 'ies'} after the last signed "
                            f"receipt (#{last}): not yet pinned by anyone's signature")
    return report


def _cert(pem: str) -> Any:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, TypeError):
        return None


def cross_check(project: Project) -> list[str]:
    """Rows that no audit entry accounts for: statements, decisions and lockout rows against the log."""
    problems: list[str] = []
    with project.reading() as con:
        details = [(s, a, json.loads(d or "{}")) for s, a, d in con.execute(
            "SELECT seq, action, details_json FROM audit_log ORDER BY seq").fetchall()]
        statements = {r[0]: r[1] for r in con.execute("SELECT sha256, seq FROM statements").fetchall()}
        decisions = {r[0]: r[1] for r in con.execute(
            "SELECT payload_sha256, decision_id FROM approval_decisions").fetchall()}
        failures = Counter(r[0] for r in con.execute("SELECT user_id FROM signing_failures").fetchall())
        targets = Counter(r[0] for r in con.execute(
            "SELECT target FROM audit_log WHERE action = 'signing.failed'").fetchall())
    recorded = {d.get("statement_sha256"): s for s, _, d in details if d.get("statement_sha256")}
    problems += _both_ways(statements, recorded, "statement {} is in no audit entry (added outside Lineproof)",
                           "the statement of audit entry {} is missing (deleted)")
    signed = {d.get("payload_sha256"): s for s, a, d in details if a.startswith("approval.") and
              d.get("payload_sha256")}
    problems += _both_ways(decisions, signed, "decision {} is in no audit entry (added or edited outside Lineproof)",
                           "the decision of audit entry {} is missing (deleted or edited)")
    if failures != targets:
        problems.append("signing_failures does not match the signing.failed entries of the log (edited)")
    return problems


def _both_ways(rows: dict[str, Any], entries: dict[str, int], unrecorded: str, missing: str) -> list[str]:
    """Rows (by hash) that no audit entry records, and recorded hashes whose row is gone."""
    return [unrecorded.format(rows[h]) for h in rows if h not in entries] + \
        [missing.format(entries[h]) for h in entries if h not in rows]


def verify_project(project: Project, files: list[Path | str] = (), extra: list[dict] = ()) -> ProjectVerdict:
    """The hash chain, the governance record, the cross-checks and every receipt."""
    from app.core.governance.approvals import governed, verify_decisions
    from app.core.governance.ledger import replay

    with project.reading() as con:
        chain = verify_audit(con)
        state = replay(con)  # fresh: the cache is keyed on the log, and a row edit does not touch the log
        problems = list(state.problems) + history_problems(con)
    if governed(project):
        problems += cross_check(project)
        problems += [f"decision {d['decision_id']}: {d['problem']}" for d in verify_decisions(project) if not d["ok"]]
        problems += _request_states(project, state)
    anchors = check_anchors(project, files, extra)
    return ProjectVerdict(chain, anchors, problems, state.anchored, state.anchor_note)


def _request_states(project: Project, state: Any) -> list[str]:
    """Each request's state column against what its signed decisions and stage statements make of it."""
    from app.core.governance.approvals import request_status

    out = []
    with project.reading() as con:
        rows = con.execute("SELECT request_id, state FROM approval_requests").fetchall()
        applied = {json.loads(b).get("request_id") for (b,) in con.execute(
            "SELECT body_json FROM statements WHERE kind = 'stage.set'").fetchall()}
    for request_id, stored in rows:
        status = request_status(project, request_id)
        done = [d for d in status.decisions if d["decision"] != "reject"]
        derived = "rejected" if len(done) != len(status.decisions) else \
            "approved" if len(done) >= len(status.rule["steps"]) else "open"
        if derived == "approved" and request_id in applied:
            derived = "applied"
        if stored != derived:
            out.append(f"request {request_id} is marked {stored}; its signed decisions make it {derived}")
    return out
