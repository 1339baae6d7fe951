"""Signing identities: an X.509 certificate and private key in a passphrase-protected PKCS#12 file in the
user's profile folder (never in the project). Lineproof can create self-signed identities, a site CA for
plants without a PKI, identities signed by that CA, or import a PKCS#12 file from the organisation's PKI."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.core.errors import LineproofError

USER_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")


class IdentityError(LineproofError):
    """A signing identity cannot be created, found or unlocked."""


class WrongPassphrase(IdentityError):
    """The passphrase does not open the identity."""


@dataclass
class Signer:
    """An unlocked identity: able to sign until it is dropped."""

    user_id: str
    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    chain: list[x509.Certificate]
    p12_path: Path

    @property
    def name(self) -> str:
        """The certificate's common name."""
        return self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value

    def sign(self, payload: bytes) -> bytes:
        """RSA PKCS#1 v1.5 signature over SHA-256 of the payload."""
        return self.key.sign(payload, padding.PKCS1v15(), hashes.SHA256())


def profile_dir() -> Path:
    """Where this user's identities live."""
    from app.core.governance.trust import lineproof_home

    folder = lineproof_home() / "identities"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cert_pem(cert: x509.Certificate) -> str:
    """PEM text of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def cert_sha256(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint of the DER certificate."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def verify_signature(cert_pem_text: str, payload: bytes, signature: bytes) -> bool:
    """True when `signature` over `payload` was made with the key of this certificate."""
    cert = x509.load_pem_x509_certificate(cert_pem_text.encode("ascii"))
    try:
        cert.public_key().verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
        return True
    except Exception:  # InvalidSignature, or a key type that cannot verify this
        return False


def _check_id(user_id: str) -> None:
    if not USER_ID.match(user_id):
        raise IdentityError(f"User id {user_id!r} is not usable.",
                            "Use 2-40 lower-case letters, digits, '.', '_' or '-', e.g. a.kowalski.")


def _check_passphrase(passphrase: str) -> None:
    if len(passphrase) < 8:
        raise IdentityError("The passphrase is shorter than 8 characters.", "Choose a longer passphrase.")


def _certificate(name: str, user_id: str, key: rsa.RSAPrivateKey, issuer: tuple[rsa.RSAPrivateKey, x509.Certificate]
                 | None, is_ca: bool, days: int) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                         x509.NameAttribute(NameOID.USER_ID, user_id),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Lineproof")])
    now = dt.datetime.now(dt.UTC)
    issuer_key, issuer_cert = issuer if issuer else (key, None)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer_cert.subject if issuer_cert else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=0 if is_ca else None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=not is_ca, content_commitment=not is_ca,
                                            key_encipherment=False, data_encipherment=False, key_agreement=False,
                                            key_cert_sign=is_ca, crl_sign=is_ca, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if not is_ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION,
                                                               ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    if issuer_cert is not None:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                        critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_p12(path: Path, user_id: str, key, cert, chain: list[x509.Certificate], passphrase: str) -> None:
    data = pkcs12.serialize_key_and_certificates(user_id.encode(), key, cert, chain or None,
                                                 serialization.BestAvailableEncryption(passphrase.encode()))
    tmp = path.with_suffix(".partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    (path.with_suffix(".cert.pem")).write_text(cert_pem(cert), encoding="ascii")


def identity_path(user_id: str) -> Path:
    """The PKCS#12 file of a user in this profile."""
    return profile_dir() / f"{user_id}.p12"


def create_identity(user_id: str, name: str, passphrase: str, ca_id: str | None = None,
                    ca_passphrase: str | None = None, days: int = 3 * 365) -> x509.Certificate:
    """A new key and certificate (self-signed, or signed by the site CA `ca_id`) saved in the profile."""
    _check_id(user_id)
    _check_passphrase(passphrase)
    path = identity_path(user_id)
    if path.exists():
        raise IdentityError(f"An identity {user_id!r} already exists in {path.parent}.",
                            "Use it, or choose another user id.")
    issuer = None
    chain: list[x509.Certificate] = []
    if ca_id:
        ca = unlock_identity(ca_id, ca_passphrase or "")
        issuer = (ca.key, ca.cert)
        chain = [ca.cert]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _certificate(name, user_id, key, issuer, is_ca=False, days=days)
    _write_p12(path, user_id, key, cert, chain, passphrase)
    if issuer is not None:  # a CRL issued after the certificate, so that its signatures can prove it unrevoked
        from app.core.governance.revocation import sign_crl

        sign_crl(ca_id, issuer[0], issuer[1])
    return cert


def create_site_ca(ca_id: str, name: str, passphrase: str, days: int = 10 * 365) -> x509.Certificate:
    """A site certificate authority for plants without a PKI (its certificate is what verifiers trust)."""
    _check_id(ca_id)
    _check_passphrase(passphrase)
    path = identity_path(ca_id)
    if path.exists():
        raise IdentityError(f"An identity {ca_id!r} already exists in {path.parent}.", "Choose another id.")
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    cert = _certificate(name, ca_id, key, None, is_ca=True, days=days)
    _write_p12(path, ca_id, key, cert, [], passphrase)
    from app.core.governance.trust import add_anchor

    add_anchor(cert, name=ca_id)  # made on this PC by whoever holds its key: this PC trusts what it issues
    from app.core.governance.revocation import sign_crl

    sign_crl(ca_id, key, cert)  # an empty CRL from the start: signatures can carry revocation data (B-LT)
    return cert


def check_validity(cert: x509.Certificate, what: str, at: dt.datetime | None = None) -> None:
    """Refuse a certificate that has expired or is not valid yet (at `at`, default now)."""
    at = at or dt.datetime.now(dt.UTC)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if at < start:
        raise IdentityError(f"The certificate of {what} is not valid before {start:%Y-%m-%d %H:%M} UTC.",
                            "Check this PC's clock, or use a certificate that is valid now.")
    if at > end:
        raise IdentityError(f"The certificate of {what} expired on {end:%Y-%m-%d %H:%M} UTC.",
                            "Renew the certificate (a new identity, registered by an admin); nothing was changed.")


def _check_signing_usage(cert: x509.Certificate, what: str) -> None:
    """Refuse a certificate whose key usage does not allow signatures (an encryption-only key)."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not (usage.digital_signature or usage.content_commitment):
        raise IdentityError(f"The certificate in {what} may not sign: its key usage has no digitalSignature.",
                            "Ask the PKI for a signing certificate (key usage digitalSignature / nonRepudiation).")


def import_identity(p12_file: Path | str, user_id: str, passphrase: str) -> x509.Certificate:
    """Copy a PKCS#12 file from the organisation's PKI into the profile (after checking the passphrase)."""
    _check_id(user_id)
    source = Path(p12_file)
    if not source.is_file():
        raise IdentityError(f"{source} does not exist.", "Give the path of the .p12/.pfx file.")
    try:
        key, cert, _chain = pkcs12.load_key_and_certificates(source.read_bytes(), passphrase.encode())
    except ValueError as exc:
        raise WrongPassphrase(f"The passphrase does not open {source.name} (or it is not a PKCS#12 file).",
                              "Check the passphrase and the file.") from exc
    if key is None or cert is None or not isinstance(key, rsa.RSAPrivateKey):
        raise IdentityError(f"{source.name} holds no RSA private key with a certificate.",
                            "Export the signing key with its certificate as PKCS#12.")
    check_validity(cert, source.name)
    _check_signing_usage(cert, source.name)
    path = identity_path(user_id)
    if path.exists():
        raise IdentityError(f"An identity {user_id!r} already exists in {path.parent}.", "Choose another id.")
    shutil.copyfile(source, path)
    os.chmod(path, 0o600)
    path.with_suffix(".cert.pem").write_text(cert_pem(cert), encoding="ascii")
    return cert


def discard_identity(user_id: str) -> None:
    """Remove an identity that was just made for a registration that was then refused (nothing signed with it)."""
    path = identity_path(user_id)
    path.unlink(missing_ok=True)
    path.with_suffix(".cert.pem").unlink(missing_ok=True)


def profile_certificate(user_id: str) -> x509.Certificate:
    """The public certificate of an identity in this profile (no passphrase needed)."""
    pem = identity_path(user_id).with_suffix(".cert.pem")
    if not pem.exists():
        raise IdentityError(f"No identity {user_id!r} in {pem.parent}.",
                            "Create one with `lineproof user create`, or import your PKCS#12 file.")
    return x509.load_pem_x509_certificate(pem.read_bytes())


def unlock_identity(user_id: str, passphrase: str) -> Signer:
    """Open a PKCS#12 identity with its passphrase (WrongPassphrase if it does not open)."""
    path = identity_path(user_id)
    if not path.exists():
        raise IdentityError(f"No identity {user_id!r} in {path.parent}.",
                            "Create one with `lineproof user create`, or import your PKCS#12 file.")
    try:
        key, cert, chain = pkcs12.load_key_and_certificates(path.read_bytes(), passphrase.encode())
    except ValueError as exc:
        raise WrongPassphrase(f"Wrong passphrase for {user_id}.", "Type the passphrase of your signing identity.") \
            from exc
    assert key is not None and cert is not None
    return Signer(user_id, key, cert, list(chain), path)
