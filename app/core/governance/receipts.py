"""Signed receipts of the audit chain's head: a rewrite of the log needs a user's key to go unnoticed.

The hash chain alone catches edits, but someone with the database can recompute every hash and move the head.
A receipt is the head (sequence number and entry hash) signed with an unlocked user's key. Lineproof writes one
after every signed action (decisions, role changes, stage changes, exports), and `lineproof audit receipt` exports
one to a file kept outside the project: a recomputed chain no longer matches the receipts signed before.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.core.errors import LineproofError
from app.core.governance.identity import Signer, cert_pem, cert_sha256, verify_signature
from app.core.store.db import one
from app.core.store.project import Project

FORMAT = "lineproof-audit-receipt/1"


class ReceiptError(LineproofError):
    """A receipt cannot be read or written."""


def _payload(seq: int, entry_hash: str, user_id: str, signed_at: str) -> bytes:
    return json.dumps({"format": FORMAT, "seq": seq, "entry_hash": entry_hash, "user_id": user_id,
                       "signed_at": signed_at}, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sign_head(project: Project, signer: Signer) -> dict[str, Any]:
    """Sign the current head with an unlocked user's key and keep the receipt in the project."""
    signed_at = datetime.now(UTC).isoformat(timespec="seconds")
    with project.write_lock():
        con = project.cursor()
        try:
            head = one(con, "SELECT seq, entry_hash FROM audit_head WHERE id = 1")
            if head is None:
                raise ReceiptError("The audit log has no head yet.", "Make a change first.")
            seq, entry_hash = int(head[0]), str(head[1])
            signature = base64.b64encode(signer.sign(_payload(seq, entry_hash, signer.user_id, signed_at)))
            con.execute("INSERT OR REPLACE INTO audit_receipts VALUES (?, ?, ?, ?, ?, ?)",
                        [seq, entry_hash, signer.user_id, cert_sha256(signer.cert), signed_at,
                         signature.decode("ascii")])
        finally:
            con.close()
    return {"format": FORMAT, "project": project.display_name, "seq": seq, "entry_hash": entry_hash,
            "user_id": signer.user_id, "signed_at": signed_at, "signature": signature.decode("ascii"),
            "cert_pem": cert_pem(signer.cert)}


def export_receipt(project: Project, signer: Signer, out: Path | str) -> Path:
    """Sign the head and write the receipt to a file meant to be kept outside the project (never overwritten)."""
    out = Path(out)
    if out.exists():
        raise ReceiptError(f"{out} exists already.", "Choose a new file name; nothing was written.")
    receipt = sign_head(project, signer)
    out.write_text(json.dumps(receipt, indent=1), encoding="utf-8")
    return out


def _check(con: Any, seq: int, entry_hash: str, user_id: str, signed_at: str, signature: str, cert: str,
           where: str) -> str:
    try:
        good = verify_signature(cert, _payload(seq, entry_hash, user_id, signed_at), base64.b64decode(signature))
    except (ValueError, TypeError):
        good = False
    if not good:
        return f"{where}: the signature of {user_id} does not match the receipt"
    row = one(con, "SELECT entry_hash FROM audit_log WHERE seq = ?", [seq])
    if row is None:
        return f"{where}: {user_id} signed entry {seq} on {signed_at}, which is no longer in the log"
    if row[0] != entry_hash:
        return (f"{where}: {user_id} signed entry {seq} as {entry_hash[:16]}… on {signed_at}; the log now says "
                f"{str(row[0])[:16]}… (the log was rewritten)")
    return ""


def verify_receipts(project: Project, files: list[Path | str] = ()) -> tuple[int, list[str]]:
    """Check the project's receipts (against the registered certificates) and receipt files (against the
    certificate they carry): (receipts checked, problems)."""
    problems: list[str] = []
    checked = 0
    with project.reading() as con:
        certs = {r[0]: r[1] for r in con.execute("SELECT cert_sha256, cert_pem FROM users").fetchall()}
        for seq, entry_hash, user_id, sha, signed_at, signature in con.execute(
                "SELECT seq, entry_hash, user_id, cert_sha256, signed_at, signature FROM audit_receipts "
                "ORDER BY seq").fetchall():
            checked += 1
            if sha not in certs:
                problems.append(f"receipt of entry {seq}: {user_id}'s certificate is not registered any more")
                continue
            problem = _check(con, int(seq), entry_hash, user_id, signed_at, signature, certs[sha],
                             f"receipt of entry {seq}")
            if problem:
                problems.append(problem)
        for path in files:
            try:
                r = json.loads(Path(path).read_text(encoding="utf-8"))
                if r.get("format") != FORMAT:
                    raise ValueError(f"not a {FORMAT} file")
                args = (int(r["seq"]), r["entry_hash"], r["user_id"], r["signed_at"], r["signature"], r["cert_pem"])
            except (OSError, ValueError, KeyError) as exc:
                raise ReceiptError(f"{path} is not a Lineproof audit receipt ({exc}).",
                                   "Give a file written by `lineproof audit receipt`.") from exc
            checked += 1
            problem = _check(con, *args, where=Path(path).name)
            if problem:
                problems.append(problem)
            elif r["cert_pem"].strip() not in {c.strip() for c in certs.values()}:
                problems.append(f"{Path(path).name}: signed by a certificate that is not registered in the project")
    return checked, problems
