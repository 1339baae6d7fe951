"""This PC's trust configuration, kept outside every project: the site's trust anchors (site CA certificates or
pinned certificates), copies of the audit receipts of the projects signed here, and the signing lockout counters.

Nothing here is ever read from a project: whoever can write `project.duckdb` cannot make themselves trusted, roll
the database back unnoticed, or reset a lockout by restoring an older copy.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding

from app.core.errors import LineproofError

HOME_ENV = "LINEPROOF_HOME"
TRUST_ENV = "LINEPROOF_TRUST"  # extra anchor files for one run, separated like PATH (the CLI's --trust)
_extra: list[Path] = []


class TrustError(LineproofError):
    """The trust configuration cannot be read or changed as asked."""


def lineproof_home() -> Path:
    """This installation's own folder: $LINEPROOF_HOME (tests, portable installs) or the user data folder."""
    base = os.environ.get(HOME_ENV)
    if base:
        return Path(base)
    import platformdirs

    return Path(platformdirs.user_data_dir("lineproof", appauthor=False))


def trust_dir() -> Path:
    """The folder of this installation's trust configuration (beside the identities)."""
    folder = lineproof_home() / "trust"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def use_extra_anchors(paths: list[Path | str]) -> None:
    """Trust these certificate files too, for this process only (`--trust CERT.pem`)."""
    _extra.clear()
    _extra.extend(Path(p) for p in paths)


def _load_certs(path: Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrustError(f"Cannot read the trust anchor {path}: {exc.strerror}.",
                         "Give a PEM or DER certificate file.") from exc
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise TrustError(f"{path} is not a certificate ({exc}).", "Give a PEM or DER certificate file.") from exc


def anchor_files() -> list[Path]:
    """The anchor files configured on this PC, then the ones given for this run."""
    configured = sorted((trust_dir() / "anchors").glob("*.pem"))
    env = [Path(p) for p in os.environ.get(TRUST_ENV, "").split(os.pathsep) if p.strip()]
    return configured + env + list(_extra)


def anchors_in(path: Path) -> list[x509.Certificate]:
    """The certificates of one anchor file."""
    return _load_certs(path)


def anchors() -> list[x509.Certificate]:
    """Every trusted anchor certificate (site CAs and pinned certificates)."""
    return [c for path in anchor_files() for c in _load_certs(path)]


def der_sha256(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint of a certificate."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def add_anchor(source: Path | str | x509.Certificate, name: str | None = None) -> Path:
    """Trust a site CA certificate (or pin one certificate) on this PC; returns the stored file."""
    certs = [source] if isinstance(source, x509.Certificate) else _load_certs(Path(source))
    folder = trust_dir() / "anchors"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{name or der_sha256(certs[0])[:16]}.pem"
    out.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return out


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject or not _is_ca(issuer):
        return False
    try:
        issuer.public_key().verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                                   cert.signature_hash_algorithm)
        return True
    except Exception:  # InvalidSignature or an unusual key type: not issued by this anchor
        return False


def chain_problem(cert: x509.Certificate, roots: list[x509.Certificate] | None = None,
                  at: dt.datetime | None = None) -> str:
    """'' when the certificate is a pinned anchor or was issued by an anchor CA valid at `at`; else why not."""
    roots = anchors() if roots is None else roots
    if not roots:
        return "this PC has no trust anchor configured (lineproof trust add SITE-CA.pem)"
    at = at or dt.datetime.now(dt.UTC)
    sha = der_sha256(cert)
    for root in roots:
        if der_sha256(root) == sha or _issued_by(cert, root):
            if not root.not_valid_before_utc <= at <= root.not_valid_after_utc:
                return f"the anchor {root.subject.rfc4514_string()} is not valid at {at:%Y-%m-%d}"
            return ""
    return f"{cert.subject.rfc4514_string()} does not chain to this PC's trust anchor"


# ----- copies of audit receipts, kept per project (by the hash of its first audit entry) and per folder
def _receipts_file(project_key: str) -> Path:
    folder = trust_dir() / "receipts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{project_key[:32]}.jsonl"


def remember_receipt(project_key: str, folder: Path, receipt: dict[str, Any]) -> None:
    """Keep a copy of a signed receipt on this PC, and which project lives in which folder."""
    with _receipts_file(project_key).open("a", encoding="utf-8") as f:
        f.write(json.dumps(receipt, sort_keys=True) + "\n")
    index = trust_dir() / "projects.json"
    known = _read_json(index, {})
    known[str(Path(folder).resolve())] = project_key
    _write_json(index, known)


def pc_receipts(project_key: str) -> list[dict[str, Any]]:
    """The receipt copies this PC holds for a project."""
    path = _receipts_file(project_key)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def known_key(folder: Path) -> str | None:
    """The project key this PC last saw in that folder (a different key means the log was replaced)."""
    return _read_json(trust_dir() / "projects.json", {}).get(str(Path(folder).resolve()))


# ----- signing lockout: counted here, so restoring an older project.duckdb does not reset it
def _lock_file(user_id: str) -> Path:
    folder = trust_dir() / "lockout"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{user_id}.json"


def lockout_state(user_id: str) -> dict[str, Any]:
    """{'failures': n since the last unlock, 'locked_at': ISO time or None}."""
    return _read_json(_lock_file(user_id), {"failures": 0, "locked_at": None})


def record_lockout(user_id: str, failures: int, locked_at: str | None) -> None:
    """Store a user's failure count and lock time."""
    _write_json(_lock_file(user_id), {"failures": failures, "locked_at": locked_at})


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


# ----- the plant's timestamp authority (RFC 3161), used for every signature made on this PC when set
def tsa_url() -> str:
    """The TSA configured on this PC ('' when none: signatures are B-B or B-LT, their time the signer's claim)."""
    return str(_read_json(trust_dir() / "tsa.json", {}).get("url") or "")


def set_tsa(url: str) -> None:
    """Configure (or with '' remove) the plant's timestamp authority for this PC."""
    if url and not url.startswith(("http://", "https://")):
        raise TrustError(f"{url!r} is not an http(s) URL.", "Give the RFC 3161 URL of the plant's TSA.")
    _write_json(trust_dir() / "tsa.json", {"url": url})
