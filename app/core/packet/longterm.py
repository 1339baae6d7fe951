"""How long a packet's signatures stay verifiable, and verifying them as an auditor would at a later date.

Levels (PAdES baseline): B-B has only the signer's claim of when it signed; B-T adds a timestamp from a trusted
TSA; B-LT adds the validation data (certificate chain, CRLs) in the document; B-LTA adds document timestamps that
keep all of that provable after the certificates expire. Revocation is judged here with the site's CRLs (this PC's
and the packet's own) and, with the project, the admins' signed revocations: what was signed before a revocation
keeps its value when a timestamp proves the time, what was signed after fails.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any

LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")


@dataclass
class SigningTime:
    """When a signature was made, and whether a trusted timestamp proves it (else it is the signer's claim)."""

    at: dt.datetime | None
    proven: bool
    words: str


def dss_crls(reader: Any) -> list[Any]:
    """The CRLs a packet carries in its document security store (cryptography objects)."""
    from cryptography import x509

    root = reader.root
    dss = root["/DSS"] if "/DSS" in root else None
    out = []
    for stream in (dss["/CRLs"] if dss is not None and "/CRLs" in dss else []):
        try:
            out.append(x509.load_der_x509_crl(stream.get_object().data))
        except (ValueError, AttributeError):
            continue
    return out


def has_validation_data(reader: Any) -> bool:
    """Whether the packet carries revocation data (CRLs or OCSP responses) in its document security store."""
    root = reader.root
    dss = root["/DSS"] if "/DSS" in root else None
    return dss is not None and any(k in dss and len(dss[k]) for k in ("/CRLs", "/OCSPs"))


def level_of(sig: Any, status: Any, reader: Any, stamps: list[Any]) -> str:
    """The PAdES baseline level of one signature."""
    if any(s.signed_revision > sig.signed_revision for s in stamps) and has_validation_data(reader):
        return "B-LTA"
    timestamped = status is not None and status.timestamp_validity is not None
    if timestamped and has_validation_data(reader):
        return "B-LT"
    return "B-T" if timestamped else "B-B"


def signing_time(sig: Any, status: Any, stamp_times: list[tuple[int, dt.datetime]]) -> SigningTime:
    """The best proven time of a signature: its own trusted timestamp, else the first trusted document timestamp
    made after it (the signature existed by then), else the signer's claim."""
    if status is not None and status.timestamp_validity is not None:
        ts = status.timestamp_validity
        if ts.valid and ts.intact and ts.trusted:
            return SigningTime(ts.timestamp, True, f"{ts.timestamp:%Y-%m-%d %H:%M} UTC, proven by its timestamp")
    later = [t for rev, t in stamp_times if rev > sig.signed_revision]
    if later:
        first = min(later)
        return SigningTime(first, True, f"by {first:%Y-%m-%d %H:%M} UTC, proven by a document timestamp")
    claimed = status.signer_reported_dt if status is not None else None
    return SigningTime(claimed, False, (f"{claimed:%Y-%m-%d %H:%M} UTC " if claimed else "") +
                       "by the signer's own clock only (no timestamp proves it)")


def stamp_times(stamps: list[Any], roots: list[Any], at: dt.datetime | None) -> list[tuple[int, dt.datetime, Any]]:
    """(revision, time, TSA certificate) of every document timestamp that verifies against the trusted roots."""
    from pyhanko.sign.validation import async_validate_pdf_timestamp
    from pyhanko_certvalidator import ValidationContext

    out = []
    for stamp in stamps:
        try:
            status = asyncio.run(async_validate_pdf_timestamp(
                stamp, ValidationContext(trust_roots=roots, allow_fetching=False, moment=at)))
        except Exception:  # a broken timestamp proves nothing; the structure checks name what is wrong
            continue
        if status.valid and status.intact and (status.trusted or at is not None):
            out.append((stamp.signed_revision, status.timestamp, status.signing_cert))
    return out


def verifiable_until(level: str, signer_cert: Any, stamps: list[tuple[int, dt.datetime, Any]]) -> dt.datetime | None:
    """Until when the signature can be verified without extending the packet: the newest document timestamp's
    certificate for B-LTA, else the signer's certificate."""
    if level == "B-LTA" and stamps:
        newest = max(stamps, key=lambda s: s[1])[2]
        return newest["tbs_certificate"]["validity"]["not_after"].native if newest is not None else None
    return signer_cert["tbs_certificate"]["validity"]["not_after"].native if signer_cert is not None else None


def lta_passes(sig: Any, roots: list[Any], at: dt.datetime) -> tuple[bool, str]:
    """PAdES long-term validation of one signature at `at` (pyHanko's AdES LTA algorithm, nothing fetched):
    do the document timestamps prove the signature existed while its certificate was valid?"""
    from pyhanko.sign.ades.report import AdESStatus
    from pyhanko.sign.validation import ades
    from pyhanko.sign.validation.policy_decl import (
        PdfSignatureValidationSpec,
        RevinfoOnlineFetchingRule,
        RevocationInfoGatheringSpec,
        SignatureValidationSpec,
    )
    from pyhanko_certvalidator.context import CertValidationPolicySpec
    from pyhanko_certvalidator.ltv.types import ValidationTimingInfo
    from pyhanko_certvalidator.policy_decl import (
        CertRevTrustPolicy,
        RevocationCheckingPolicy,
        RevocationCheckingRule,
    )
    from pyhanko_certvalidator.registry import SimpleTrustManager

    # The signer's certificate must have been provably unrevoked when it signed (the CRL the packet carries);
    # a timestamp authority's certificate only where it names a CRL. Later revocations Lineproof judges itself.
    def policy(rule: Any) -> Any:
        return CertValidationPolicySpec(trust_manager=SimpleTrustManager.build(trust_roots=roots),
                                        revinfo_policy=CertRevTrustPolicy(RevocationCheckingPolicy(
                                            ee_certificate_rule=rule, intermediate_ca_cert_rule=rule)))

    local_only = RevocationInfoGatheringSpec(online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY)
    spec = PdfSignatureValidationSpec(SignatureValidationSpec(
        revinfo_gathering_policy=local_only,  # nothing is fetched: the packet's data and the trusted roots only
        cert_validation_policy=policy(RevocationCheckingRule.CRL_REQUIRED),
        ts_cert_validation_policy=policy(RevocationCheckingRule.CHECK_IF_DECLARED)))
    timing = ValidationTimingInfo(validation_time=at, best_signature_time=at, point_in_time_validation=True)
    try:
        result = asyncio.run(ades.ades_lta_validation(sig, spec, timing_info=timing))
    except Exception as exc:  # the algorithm gives up on broken structures: then nothing is proven
        return False, f"long-term validation could not run ({type(exc).__name__})"
    indication = result.ades_subindic.status if result.ades_subindic is not None else None
    return indication == AdESStatus.PASSED, str(result.ades_subindic.name if result.ades_subindic else "")


def project_revocations(project: Any) -> dict[str, Any]:
    """The keys an admin revoked in the project's signed record: certificate sha256 -> Revocation."""
    from app.core.governance.approvals import governance
    from app.core.governance.revocation import Revocation

    out = {}
    for user in governance(project).users.values():
        if user.revoked_at:
            out[user.cert_sha256] = Revocation(dt.datetime.fromisoformat(user.revoked_at), user.revoke_reason,
                                               f"revoked for {user.user_id} by a signed statement in the project")
    return out


def apply_long_term(reader: Any, sigs: list[Any], checks: list[Any], statuses: list[Any], stamps: list[Any],
                    roots: list[Any], at: dt.datetime | None, revoked_in_project: dict[str, Any]) -> None:
    """Per signature: its level, signing time, how long it stays verifiable, the long-term validation where the
    certificate is no longer valid, and the revocation verdict."""
    import hashlib

    from cryptography import x509

    from app.core.governance.revocation import revocation_of, signed_when
    from app.core.packet.verify import FAILED, INDETERMINATE, PASSED

    when = at or dt.datetime.now(dt.UTC)
    times = stamp_times(stamps, roots, at)
    carried = dss_crls(reader)
    trusted = [x509.load_der_x509_certificate(r.dump()) for r in roots]  # the verifier's chosen anchors
    for sig, check, status in zip(sigs, checks, statuses, strict=True):
        check.level = level_of(sig, status, reader, stamps)
        timing = signing_time(sig, status, [(rev, t) for rev, t, _ in times])
        check.signed_time = timing.words
        until = verifiable_until(check.level, sig.signer_cert, times)
        check.valid_until = f"{until:%Y-%m-%d}" if until else ""
        if check.integrity != "intact" or sig.signer_cert is None:
            continue
        cert = x509.load_der_x509_certificate(sig.signer_cert.dump())
        if check.indication == INDETERMINATE and cert.not_valid_after_utc < when:
            check.trust = f"the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}"
            if check.level == "B-LTA":
                ok, why = lta_passes(sig, roots, when)
                if ok and not check.detail:
                    check.trust = (f"trusted on {when:%Y-%m-%d} by long-term validation: the document timestamps "
                                   f"prove it was signed while the certificate was valid (it expired "
                                   f"{cert.not_valid_after_utc:%Y-%m-%d})")
                    check.indication = PASSED
                elif not ok:
                    check.detail = _join(check.detail, f"long-term validation on {when:%Y-%m-%d} failed ({why})")
            else:
                check.detail = _join(check.detail, f"{check.level}: on {when:%Y-%m-%d} the certificate is no longer "
                                                   "valid and no document timestamp proves when it signed"
                                     + ("; the signing time is only the signer's claim" if not timing.proven else ""))
        crl_revocation, basis = revocation_of(cert, carried, trusted)
        project_revocation = revoked_in_project.get(hashlib.sha256(sig.signer_cert.dump()).hexdigest())
        known = [r for r in (crl_revocation, project_revocation) if r is not None]
        revocation = min(known, key=lambda r: r.revoked_at) if known else None
        verdict, words = signed_when(revocation, timing.at, timing.proven)
        check.revocation = words or (f"not revoked ({basis})" if basis else
                                     "not checked: no CRL of its CA on this PC or in the packet")
        if verdict == "failed":
            check.indication = FAILED
            check.detail = _join(check.detail, words)
        elif verdict == "indeterminate" and check.indication == PASSED:
            check.indication = INDETERMINATE
            check.detail = _join(check.detail, words)


def _join(first: str, second: str) -> str:
    return f"{first}; {second}" if first else second
