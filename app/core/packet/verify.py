"""Verifying a packet offline: per signature integrity, changes after signing and trust, with ETSI-style
indications, plus the embedded evidence against the hash in the signed document information.

"Intact but untrusted" is INDETERMINATE, never PASSED. Nothing is fetched from the network.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.core.errors import LineproofError

PASSED, INDETERMINATE, FAILED = "PASSED", "INDETERMINATE", "FAILED"
EXIT = {PASSED: 0, FAILED: 1, INDETERMINATE: 3}


class VerifyError(LineproofError):
    """The file cannot be checked at all."""


@dataclass(frozen=True)
class SignatureCheck:
    """The three answers for one signature, and the indication they add up to."""

    field: str
    signer: str
    signed_at: str
    meaning: str
    integrity: str  # intact / NOT intact (digest mismatch) / invalid signature
    modifications: str  # none / only allowed ones (later signatures) / illegal: ...
    trust: str  # trusted / untrusted / unknown
    indication: str
    detail: str = ""
    timestamp: str = ""


@dataclass
class PacketVerification:
    """Every signature of a packet, the evidence check and the overall indication."""

    path: str
    signatures: list[SignatureCheck] = field(default_factory=list)
    evidence: str = ""
    evidence_ok: bool = False
    indication: str = FAILED

    @property
    def exit_code(self) -> int:
        """0 PASSED, 1 FAILED, 3 INDETERMINATE."""
        return EXIT[self.indication]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for --format json."""
        return {"path": self.path, "indication": self.indication, "evidence_ok": self.evidence_ok,
                "evidence": self.evidence, "signatures": [asdict(s) for s in self.signatures]}


def _certificates(data: bytes, name: str) -> list[Any]:
    from asn1crypto import pem
    from asn1crypto import x509 as asn1_x509

    try:
        blocks = [der for _, _, der in pem.unarmor(data, multiple=True)] if pem.detect(data) else [data]
        certs = [asn1_x509.Certificate.load(b) for b in blocks]
        for c in certs:
            _ = c.subject  # parse now: a broken file fails here, with its name
    except Exception as exc:
        raise VerifyError(f"{name} is not a certificate ({exc}).", "Give a PEM or DER certificate file.") from exc
    return certs


def load_trust(paths: list[Path | str], pems: list[str] = ()) -> list[Any]:
    """asn1crypto certificates from PEM or DER files and from PEM texts (a user's certificate or a site CA)."""
    certs = []
    for p in paths:
        try:
            data = Path(p).read_bytes()
        except OSError as exc:
            raise VerifyError(f"Cannot read the trusted certificate {p}: {exc.strerror}.",
                              "Give a PEM or DER certificate file.") from exc
        certs += _certificates(data, str(p))
    for i, text in enumerate(pems):
        certs += _certificates(text.encode("ascii"), f"trusted certificate #{i + 1}")
    return certs


def project_certificates(project: Any) -> list[str]:
    """The PEM certificates of a project's registered users (to trust them)."""
    with project.reading() as con:
        return [r[0] for r in con.execute("SELECT cert_pem FROM users ORDER BY user_id").fetchall()]


def _modifications(status: Any) -> tuple[str, str]:
    from pyhanko.sign.diff_analysis import ModificationLevel

    level = status.modification_level
    if status.coverage is not None and status.coverage.name == "ENTIRE_FILE":
        return "none", PASSED
    if level in (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES):
        return "none after signing (only validation data)", PASSED
    if level == ModificationLevel.FORM_FILLING and status.docmdp_ok:
        return "only allowed ones (later signatures)", PASSED
    if level == ModificationLevel.ANNOTATIONS:
        return "changed after signing: annotations were added or changed", INDETERMINATE
    return f"illegal: the document was changed after signing ({getattr(level, 'name', level)})", FAILED


def _check(sig: Any, context: Any) -> SignatureCheck:
    from pyhanko.sign.validation import async_validate_pdf_signature

    name = sig.field_name
    meaning = str(sig.sig_object.get("/Reason", "")) if sig.sig_object else ""
    try:
        status = asyncio.run(async_validate_pdf_signature(sig, context))
    except Exception as exc:  # pyHanko raises on structurally broken signatures: that is a failure, not a crash
        return SignatureCheck(name, "unknown", "", meaning, "cannot be checked", "unknown", "unknown", FAILED,
                              f"{type(exc).__name__}: {str(exc)[:200]}")
    subject = status.signing_cert.subject.native if status.signing_cert else {}
    signer = f"{subject.get('common_name', '?')} ({subject.get('user_id', 'no user id')})" if subject else "unknown"
    when = status.signer_reported_dt.isoformat(timespec="seconds") if status.signer_reported_dt else ""
    stamp = ""
    if status.timestamp_validity is not None:
        ts = status.timestamp_validity
        stamp = f"timestamp {ts.timestamp.isoformat(timespec='seconds')} ({'valid' if ts.valid and ts.intact else 'INVALID'})"
    if not status.intact:
        return SignatureCheck(name, signer, when, meaning, "NOT intact: the signed bytes were changed (digest mismatch)",
                              "unknown", "unknown", FAILED, "", stamp)
    if not status.valid:
        return SignatureCheck(name, signer, when, meaning, "invalid: the signature does not match the signed data",
                              "unknown", "unknown", FAILED, "", stamp)
    modifications, indication = _modifications(status)
    trust = "trusted" if status.trusted else "untrusted (the signer's certificate does not chain to a trusted one)"
    if indication == PASSED and not status.trusted:
        indication = INDETERMINATE
    return SignatureCheck(name, signer, when, meaning, "intact", modifications, trust, indication, "", stamp)


def _evidence(reader: Any) -> tuple[bool, str]:
    """The attached evidence against the sha256 in the document information, and its validation result hash."""
    trailer = reader.trailer_view
    info = trailer["/Info"] if "/Info" in trailer else None
    keywords = str(info["/Keywords"]) if info is not None and "/Keywords" in info else ""
    match = re.search(r"lineproof-evidence-sha256:([0-9a-f]{64})", keywords)
    if not match:
        return False, "no Lineproof evidence hash in the document information"
    root = reader.root
    names = root["/Names"] if "/Names" in root else None
    files = names["/EmbeddedFiles"] if names is not None and "/EmbeddedFiles" in names else None
    entries = files["/Names"] if files is not None and "/Names" in files else []
    data = None
    for i in range(0, len(entries) - 1, 2):  # name, file spec pairs: a handful of attachments
        if str(entries[i]) == "evidence.json":
            data = entries[i + 1]["/EF"]["/F"].data
    if data is None:
        return False, "the evidence.json attachment is missing"
    digest = hashlib.sha256(data).hexdigest()
    if digest != match.group(1):
        return False, f"evidence.json does not match the signed hash ({digest[:16]}… vs {match.group(1)[:16]}…)"
    try:
        evidence = json.loads(data)
        if "validation" not in evidence:  # an operating review: its findings carry their own hash
            body = json.dumps(evidence["review"], sort_keys=True, default=str).encode()
            if hashlib.sha256(body).hexdigest() != evidence["findings_sha256"]:
                return False, "the review's findings inside the evidence do not match their recorded sha256"
            return True, f"evidence.json matches the signed sha256 {digest[:16]}…; the findings match their hash"
        from app.core.models.validation.run import result_sha256

        stored = evidence["validation"]["result"]
        if result_sha256(stored) != evidence["validation"]["result_sha256"]:
            return False, "the validation result inside the evidence does not match its recorded sha256"
    except (ValueError, KeyError, TypeError) as exc:
        return False, f"the evidence cannot be read ({exc})"
    return True, f"evidence.json matches the signed sha256 {digest[:16]}…; the validation result matches its hash"


def verify_packet(path: Path | str, trust: list[Path | str] | None = None, trusted_pems: list[str] = ()
                  ) -> PacketVerification:
    """Check every signature of a packet offline against the trusted certificates (files or PEM texts)."""
    import logging

    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko_certvalidator import ValidationContext

    # pyHanko logs every untrusted path as an error with a traceback; the verdict already says it.
    logging.getLogger("pyhanko.sign.validation").setLevel(logging.CRITICAL)
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise VerifyError(f"Cannot read {path}: {exc.strerror}.", "Give the path of a packet PDF.") from exc
    if not data.startswith(b"%PDF"):
        raise VerifyError(f"{path.name} is not a PDF.", "Give the path of a packet PDF.")
    roots = load_trust(list(trust or []), list(trusted_pems))
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        signatures = reader.embedded_signatures
    except Exception as exc:
        raise VerifyError(f"{path.name} cannot be parsed as a PDF ({exc}).", "It is damaged or not a PDF.") from exc
    result = PacketVerification(str(path))
    if not signatures:
        result.evidence = "the PDF carries no signature"
        return result
    context = ValidationContext(trust_roots=roots, allow_fetching=False)
    result.signatures = [_check(sig, context) for sig in signatures]
    result.evidence_ok, result.evidence = _evidence(reader)
    indications = [s.indication for s in result.signatures]
    if FAILED in indications or not result.evidence_ok:
        result.indication = FAILED
    elif INDETERMINATE in indications:
        result.indication = INDETERMINATE
    else:
        result.indication = PASSED
    return result
