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
from app.core.governance import trust
from app.core.governance.identity import Signer, cert_pem, cert_sha256, verify_signature
from app.core.governance.ledger import project_key
from app.core.store.db import one
from app.core.store.project import Project

FORMAT = "lineproof-audit-receipt/1"


class ReceiptError(LineproofError):
    """A receipt cannot be read or written."""


def _payload(seq: int, entry_hash: str, user_id: str, signed_at: str) -> bytes:
    return json.dumps({"format": FORMAT, "seq": seq, "entry_hash": entry_hash, "user_id": user_id,
                       "signed_at": signed_at}, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sign_head(project: Project, signer: Signer) -> dict[str, Any]:
    """Sign the current head with an unlocked user's key, keep the receipt in the project and a copy on this PC."""
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
            key = project_key(con)
        finally:
            con.close()
    receipt = {"format": FORMAT, "project": project.display_name, "project_key": key, "seq": seq,
               "entry_hash": entry_hash, "user_id": signer.user_id, "signed_at": signed_at,
               "signature": signature.decode("ascii"), "cert_pem": cert_pem(signer.cert)}
    trust.remember_receipt(key, project.snapshot_of or project.folder, receipt)
    return receipt


def latest_receipt(project: Project) -> dict[str, Any] | None:
    """The newest receipt in the project, with its signer's certificate (packets and review records embed it)."""
    with project.reading() as con:
        row = one(con, "SELECT r.seq, r.entry_hash, r.user_id, r.signed_at, r.signature, u.cert_pem "
                       "FROM audit_receipts r JOIN users u ON u.user_id = r.user_id AND u.cert_sha256 = r.cert_sha256 "
                       "ORDER BY r.seq DESC, r.signed_at DESC LIMIT 1")
        key = project_key(con)
    if row is None:
        return None
    return {"format": FORMAT, "project_key": key, "seq": int(row[0]), "entry_hash": row[1], "user_id": row[2],
            "signed_at": row[3], "signature": row[4], "cert_pem": row[5]}


def export_receipt(project: Project, signer: Signer, out: Path | str) -> Path:
    """Sign the head and write the receipt to a file meant to be kept outside the project (never overwritten)."""
    out = Path(out)
    if out.exists():
        raise ReceiptError(f"{out} exists already.", "Choose a new file name; nothing was written.")
    receipt = sign_head(project, signer)
    out.write_text(json.dumps(receipt, indent=1), encoding="utf-8")
    return out


def signature_ok(receipt: dict[str, Any], cert_pem_text: str) -> bool:
    """True when the receipt's signature was made with the key of this certificate."""
    try:
        payload = _payload(int(receipt["seq"]), receipt["entry_hash"], receipt["user_id"], receipt["signed_at"])
        return verify_signature(cert_pem_text, payload, base64.b64decode(receipt["signature"]))
    except (KeyError, ValueError, TypeError):
        return False


def read_receipt_file(path: Path | str) -> dict[str, Any]:
    """A receipt file written by `lineproof audit receipt` (or refused with its name)."""
    try:
        r = json.loads(Path(path).read_text(encoding="utf-8"))
        if r.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        for key in ("seq", "entry_hash", "user_id", "signed_at", "signature", "cert_pem"):
            if key not in r:
                raise KeyError(key)
        return r
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise ReceiptError(f"{path} is not a Lineproof audit receipt ({exc}).",
                           "Give a file written by `lineproof audit receipt`.") from exc


def verify_receipts(project: Project, files: list[Path | str] = ()) -> tuple[int, list[str]]:
    """Check the project against every receipt it can find: (receipts checked, problems)."""
    from app.core.governance.integrity import check_anchors

    report = check_anchors(project, files)
    return report.checked, report.problems
