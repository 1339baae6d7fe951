"""Withdrawing a key: the site CA's certificate revocation list (CRL), issued with the CA tooling Lineproof has,
kept beside the trust configuration on each PC (never in a project), and the question every check asks: was this
certificate revoked, since when and why, and was something signed before or after that.

A CRL counts only when an anchor of this PC issued it (name and signature). The newest one per CA wins; an older
one is refused at import, so a stale file cannot bring a revoked key back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from app.core.governance import trust
from app.core.governance.trust import TrustError

REASONS = {"keyCompromise": x509.ReasonFlags.key_compromise, "superseded": x509.ReasonFlags.superseded,
           "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
           "affiliationChanged": x509.ReasonFlags.affiliation_changed}
CRL_DAYS = 30  # a site re-issues its CRL at least monthly; verifiers see how old the one they hold is


@dataclass(frozen=True)
class Revocation:
    """A certificate's revocation as a CRL (or a signed project statement) records it."""

    revoked_at: dt.datetime
    reason: str
    source: str  # "CRL of <CA> issued <date>" or "statement by <admin>"


def _crl_dir() -> Path:
    folder = trust.trust_dir() / "crls"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _load_crl(data: bytes, name: str) -> x509.CertificateRevocationList:
    try:
        return x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise TrustError(f"{name} is not a certificate revocation list ({exc}).",
                         "Give the CRL file the site CA published (PEM or DER).") from exc


def _issuer_anchor(crl: x509.CertificateRevocationList, extra: list[x509.Certificate] = ()
                   ) -> x509.Certificate | None:
    for anchor in [*trust.anchors(), *extra]:
        if anchor.subject == crl.issuer and crl.is_signature_valid(anchor.public_key()):
            return anchor
    return None


def _number(crl: x509.CertificateRevocationList) -> int:
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        return 0


def _store_name(crl: x509.CertificateRevocationList) -> Path:
    return _crl_dir() / f"{hashlib.sha256(crl.issuer.public_bytes()).hexdigest()[:16]}.crl.pem"


def install_crl(source: Path | str | x509.CertificateRevocationList) -> tuple[Path, x509.CertificateRevocationList]:
    """Keep a CRL on this PC (`lineproof trust import-crl`): it must be issued by one of this PC's anchors and not
    older than the one kept for that CA."""
    if isinstance(source, x509.CertificateRevocationList):
        crl, name = source, "the CRL"
    else:
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise TrustError(f"Cannot read {path}: {exc.strerror}.", "Give the CRL file the site CA published.") \
                from exc
        crl, name = _load_crl(data, path.name), path.name
    if _issuer_anchor(crl) is None:
        raise TrustError(f"{name} is issued by {crl.issuer.rfc4514_string()}, which is not one of this PC's trust "
                         "anchors (or its signature does not match).",
                         "Add the site CA first (lineproof trust add SITE-CA.pem); nothing was changed.")
    target = _store_name(crl)
    if target.exists():
        current = _load_crl(target.read_bytes(), target.name)
        if (_number(crl), crl.last_update_utc) < (_number(current), current.last_update_utc):
            raise TrustError(f"{name} (issued {crl.last_update_utc:%Y-%m-%d %H:%M} UTC) is older than the CRL this "
                             f"PC keeps for that CA (issued {current.last_update_utc:%Y-%m-%d %H:%M} UTC).",
                             "Import the newest CRL the site published; nothing was changed.")
    target.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return target, crl


def pc_crls() -> list[x509.CertificateRevocationList]:
    """The CRLs kept on this PC that an anchor issued (checked again on every read)."""
    out = []
    for path in sorted(_crl_dir().glob("*.crl.pem")):
        try:
            crl = _load_crl(path.read_bytes(), path.name)
        except TrustError:
            continue
        if _issuer_anchor(crl) is not None:
            out.append(crl)
    return out


def revocation_of(cert: x509.Certificate, extra: list[x509.CertificateRevocationList] = (),
                  issuers: list[x509.Certificate] = ()) -> tuple[Revocation | None, str]:
    """(the revocation, or None, and what that rests on) from the newest CRL by the certificate's issuer among
    this PC's and `extra` (e.g. the ones a packet carries), each signed by an anchor of this PC or one of
    `issuers` (the certificates a verifier chose to trust); '' when no CRL covers the certificate."""
    candidates = [c for c in [*pc_crls(), *extra]
                  if c.issuer == cert.issuer and _issuer_anchor(c, issuers) is not None]
    if not candidates:
        return None, ""
    crl = max(candidates, key=lambda c: (_number(c), c.last_update_utc))
    basis = f"CRL of {crl.issuer.rfc4514_string()} issued {crl.last_update_utc:%Y-%m-%d %H:%M} UTC"
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if entry is None:
        return None, basis
    try:
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
    except x509.ExtensionNotFound:
        reason = "unspecified"
    return Revocation(entry.revocation_date_utc, _reason_name(reason), basis), basis


def _reason_name(flag_name: str) -> str:
    return next((k for k, v in REASONS.items() if v.name == flag_name), flag_name)


# ----- the site CA's side: a register of what it revoked, and the CRL it signs
def _register(ca_id: str) -> Path:
    from app.core.governance.identity import profile_dir

    return profile_dir() / f"{ca_id}.revoked.json"


def issue_crl(ca_id: str, passphrase: str, revoke: list[tuple[x509.Certificate, str, dt.datetime | None]] = (),
              days: int = CRL_DAYS) -> tuple[Path, x509.CertificateRevocationList]:
    """Sign a new CRL with the site CA `ca_id` (its key in this profile), adding `revoke` (certificate, reason,
    since when; default now) to what it revoked before; keep it on this PC and return the file to distribute."""
    from app.core.governance.identity import unlock_identity

    ca = unlock_identity(ca_id, passphrase)
    return sign_crl(ca_id, ca.key, ca.cert, revoke, days)


def sign_crl(ca_id: str, key: object, ca_cert: x509.Certificate,
             revoke: list[tuple[x509.Certificate, str, dt.datetime | None]] = (), days: int = CRL_DAYS
             ) -> tuple[Path, x509.CertificateRevocationList]:
    """The CRL of an unlocked site CA (see issue_crl)."""
    now = dt.datetime.now(dt.UTC)
    register = _register(ca_id)
    state = json.loads(register.read_text(encoding="utf-8")) if register.exists() else {"number": 0, "revoked": []}
    for cert, reason, since in revoke:
        if reason not in REASONS:
            raise TrustError(f"Unknown revocation reason {reason!r}.", f"Use one of: {', '.join(REASONS)}.")
        if cert.issuer != ca_cert.subject:
            raise TrustError(f"{cert.subject.rfc4514_string()} was not issued by {ca_id}.",
                             "Revoke it with the CA that issued it; nothing was changed.")
        # A later entry for the same certificate replaces the earlier one: a key found compromised after it was
        # superseded is re-dated to when the compromise began.
        state["revoked"] = [r for r in state["revoked"] if r["serial"] != str(cert.serial_number)]
        state["revoked"].append({"serial": str(cert.serial_number), "subject": cert.subject.rfc4514_string(),
                                 "reason": reason, "revoked_at": (since or now).isoformat()})
    state["number"] += 1
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
               .last_update(now - dt.timedelta(minutes=1)).next_update(now + dt.timedelta(days=days))
               .add_extension(x509.CRLNumber(state["number"]), critical=False))
    for item in state["revoked"]:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(int(item["serial"]))
            .revocation_date(dt.datetime.fromisoformat(item["revoked_at"]))
            .add_extension(x509.CRLReason(REASONS[item["reason"]]), critical=False).build())
    crl = builder.sign(key, hashes.SHA256())
    register.write_text(json.dumps(state, indent=1), encoding="utf-8")
    out = register.parent / f"{ca_id}.crl.pem"
    out.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    install_crl(crl)
    return out, crl


def signed_when(revocation: Revocation | None, signed_at: dt.datetime | None, proven: bool) -> tuple[str, str]:
    """The verdict on one signature against a revocation: ('ok'|'failed'|'indeterminate', in words). `proven` is
    True when a trusted timestamp, not the signer's own clock, gives `signed_at`."""
    if revocation is None:
        return "ok", ""
    when = f"{revocation.revoked_at:%Y-%m-%d %H:%M} UTC ({revocation.reason}; {revocation.source})"
    if signed_at is None:
        return "indeterminate", f"the key was revoked {when} and nothing says when this was signed"
    if signed_at >= revocation.revoked_at:
        return "failed", f"signed {signed_at:%Y-%m-%d %H:%M} UTC, after its key was revoked {when}"
    if proven:
        return "ok", f"signed {signed_at:%Y-%m-%d %H:%M} UTC (proven by a timestamp), before its key was revoked {when}"
    return "indeterminate", (f"the key was revoked {when}; the signing time {signed_at:%Y-%m-%d %H:%M} UTC is only "
                             "the signer's claim (no timestamp proves it came before)")
