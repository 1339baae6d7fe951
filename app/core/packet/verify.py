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


@dataclass
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
    role: str = "not checked (verify with --project to check each signer's role)"
    level: str = ""  # PAdES baseline: B-B, B-T, B-LT, B-LTA
    signed_time: str = ""  # when, and whether a timestamp proves it
    valid_until: str = ""  # verifiable without extension until
    revocation: str = ""


@dataclass
class PacketVerification:
    """Every signature of a packet, the evidence check and the overall indication."""

    path: str
    signatures: list[SignatureCheck] = field(default_factory=list)
    evidence: str = ""
    evidence_ok: bool = False
    indication: str = FAILED
    structure: list[str] = field(default_factory=list)  # changes that make the packet FAILED
    notes: list[str] = field(default_factory=list)  # reported, changing nothing
    at: str = ""  # the date validated at ('' = now)
    content: dict[str, str] = field(default_factory=dict)  # what the packet certifies (verdict, model, run)

    @property
    def level(self) -> str:
        """The packet's level: its weakest signature's."""
        from app.core.packet.longterm import LEVELS

        levels = [s.level for s in self.signatures if s.level in LEVELS]
        return min(levels, key=LEVELS.index) if levels else ""

    @property
    def valid_until(self) -> str:
        """Until when every signature can be verified without extending the packet."""
        dates = [s.valid_until for s in self.signatures if s.valid_until]
        return min(dates) if dates else ""

    @property
    def exit_code(self) -> int:
        """0 PASSED, 1 FAILED, 3 INDETERMINATE."""
        return EXIT[self.indication]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for --format json."""
        return {"path": self.path, "indication": self.indication, "evidence_ok": self.evidence_ok,
                "evidence": self.evidence, "structure": self.structure, "notes": self.notes, "level": self.level,
                "valid_until": self.valid_until, "at": self.at, "content": self.content,
                "signatures": [asdict(s) for s in self.signatures]}


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
    """The PEM certificates of a project's users by its verified, signed record (to trust them): a row someone
    wrote into the users table is never trusted, and without a trust anchor on this PC nobody is."""
    from app.core.governance.approvals import governance

    return [user.cert_pem for _, user in sorted(governance(project).users.items())]


def _diff(status: Any) -> tuple[Any, set[str], str]:
    """pyHanko's difference analysis after this signature: (level or None, changed fields, its own words)."""
    diff = status.diff_result
    if diff is None:
        return None, set(), "no later revision"
    if not hasattr(diff, "modification_level"):  # pyHanko's SuspiciousModification
        return "SUSPICIOUS", set(), f"pyHanko: suspicious modification ({str(diff)[:200]})"
    changed = set(diff.changed_form_fields)
    words = f"pyHanko: {diff.modification_level.name}" + (f", changed fields {', '.join(sorted(changed))}"
                                                          if changed else "")
    return diff.modification_level, changed, words


def _check(sig: Any, context: Any) -> tuple[SignatureCheck, Any]:
    from pyhanko.sign.validation import async_validate_pdf_signature

    name = sig.field_name
    meaning = str(sig.sig_object.get("/Reason", "")) if sig.sig_object else ""
    try:
        status = asyncio.run(async_validate_pdf_signature(sig, context))
    except Exception as exc:  # pyHanko raises on structurally broken signatures: that is a failure, not a crash
        return SignatureCheck(name, "unknown", "", meaning, "cannot be checked", "unknown", "unknown", FAILED,
                              f"{type(exc).__name__}: {str(exc)[:200]}"), None
    subject = status.signing_cert.subject.native if status.signing_cert else {}
    signer = f"{subject.get('common_name', '?')} ({subject.get('user_id', 'no user id')})" if subject else "unknown"
    when = status.signer_reported_dt.isoformat(timespec="seconds") if status.signer_reported_dt else ""
    stamp, stamp_ok = "", True
    if status.timestamp_validity is not None:
        ts = status.timestamp_validity
        stamp_ok = bool(ts.valid and ts.intact and ts.trusted)
        state = "valid, trusted TSA" if stamp_ok else (
            "INVALID" if not (ts.valid and ts.intact) else "untrusted TSA: its certificate does not chain to a "
                                                           "trusted one")
        stamp = f"timestamp {ts.timestamp.isoformat(timespec='seconds')} ({state})"
    if not status.intact:
        return SignatureCheck(name, signer, when, meaning, "NOT intact: the signed bytes were changed (digest mismatch)",
                              "unknown", "unknown", FAILED, "", stamp), status
    if not status.valid:
        return SignatureCheck(name, signer, when, meaning, "invalid: the signature does not match the signed data",
                              "unknown", "unknown", FAILED, "", stamp), status
    trust = "trusted" if status.trusted else "untrusted (the signer's certificate does not chain to a trusted one)"
    indication = PASSED if status.trusted and stamp_ok else INDETERMINATE
    return SignatureCheck(name, signer, when, meaning, "intact", "", trust, indication, "", stamp), status


def _rect(widget: Any) -> tuple[float, ...]:
    return tuple(round(float(v), 1) for v in widget["/Rect"]) if "/Rect" in widget else ()


def _form_fields(reader: Any) -> list[tuple[str, bool, bool]]:
    """(name, is a signature field, is signed) of every form field of the final revision."""
    root = reader.root
    form = root["/AcroForm"] if "/AcroForm" in root else None
    out = []
    for ref in (form["/Fields"] if form is not None and "/Fields" in form else []):
        item = ref.get_object()
        kind = str(item.get("/FT", ""))
        out.append((str(item.get("/T", "?")), kind == "/Sig", "/V" in item))
    return out


def _apply_packet_rules(reader: Any, sigs: list[Any], checks: list[SignatureCheck], statuses: list[Any],
                        stamp_names: list[str] = ()) -> None:
    """Lineproof's own rules on top of pyHanko: a packet holds only its own signatures, each in its slot on the
    cover with a known meaning, and after a signature nothing may change but the later Lineproof signatures."""
    from pyhanko.sign.diff_analysis import ModificationLevel

    from app.core.governance.approvals import SIGNING_ROLES
    from app.core.packet.sign import SIGNATURE_SLOTS

    names = [c.field for c in checks]
    expected = [f"Signature{i + 1}" for i in range(len(checks))]
    cover = reader.root["/Pages"]["/Kids"][0].get_object()
    stray = [f"{name} ({'empty signature field' if is_sig and not signed else 'form field'})"
             for name, is_sig, signed in _form_fields(reader) if name not in names
             and not (is_sig and signed and name in stamp_names)]
    for i, (sig, check, status) in enumerate(zip(sigs, checks, statuses, strict=True)):
        problems = []
        if check.field != expected[i]:
            problems.append(f"field {check.field!r} is not Lineproof's {expected[i]!r}")
        widget = sig.sig_field
        page = widget.get("/P").get_object() if "/P" in widget else None
        slot = tuple(float(v) for v in SIGNATURE_SLOTS[i]) if i < len(SIGNATURE_SLOTS) else ()
        if _rect(widget) != slot or (page is not None and page.idnum != cover.idnum if hasattr(page, "idnum")
                                     else False):
            problems.append(f"its box {_rect(widget)} is not signature slot {i + 1} on the cover (it could cover "
                            "the content)")
        if check.meaning not in SIGNING_ROLES:
            problems.append(f"meaning {check.meaning!r} is not one of {', '.join(SIGNING_ROLES)}")
        if status is not None and check.integrity == "intact":
            level, changed, words = _diff(status)
            later = set(names[i + 1:]) | set(stamp_names)  # later signatures and document timestamps
            covers_all = status.coverage is not None and status.coverage.name == "ENTIRE_FILE"
            if covers_all or level is None:
                check.modifications = "none"
            elif level in (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES) and not changed:
                check.modifications = f"none after signing (only validation data); {words}"
            elif level == ModificationLevel.FORM_FILLING and changed <= later and not stray:
                check.modifications = f"only the later Lineproof signature(s) {', '.join(sorted(changed))}; {words}"
            else:
                other = sorted(changed - later) + stray
                problems.append("changed after signing: " + (f"{', '.join(other)}; " if other else "") + words)
                check.modifications = f"illegal: the document was changed after signing ({words})"
        if problems:
            check.indication = FAILED
            check.detail = "; ".join(problems)
    if stray and checks and checks[-1].indication != FAILED:
        checks[-1].indication = FAILED
        checks[-1].detail = f"the packet holds fields Lineproof never adds: {', '.join(stray)}"


def _project_rules(project: Any, sigs: list[Any], checks: list[SignatureCheck], evidence: dict | None,
                   evidence_sha: str) -> list[str]:
    """With the project at hand: each signer is a registered, active user whose roles allow the meaning signed,
    and the packet's run, verdict and evidence are the ones the project stored. Returns problems with the packet."""
    from app.core.governance.approvals import ROLE_NAMES, SIGNING_ROLES, governance, governed
    from app.core.store.db import one

    # Who may sign what comes from the verified, signed record, never from the users table.
    state = governance(project)
    # A revoked key keeps the roles it had: whether it signed before the revocation is judged with the revocation.
    users = {u.cert_sha256: (u.user_id, set(u.roles), u.active or bool(u.revoked_at)) for u in state.users.values()}
    with project.reading() as con:
        for sig, check in zip(sigs, checks, strict=True):
            der = sig.signer_cert.dump() if sig.signer_cert is not None else b""
            user = users.get(hashlib.sha256(der).hexdigest())
            allowed = SIGNING_ROLES.get(check.meaning, ())
            if user is None:
                check.role = "not a registered user of this project"
            elif not user[2]:
                check.role = f"{user[0]} is no longer an active user"
            elif not user[1] & set(allowed):
                check.role = (f"{user[0]} ({', '.join(sorted(user[1]))}) may not sign {check.meaning!r}: that "
                              f"needs {' or '.join(ROLE_NAMES[r] for r in allowed) or 'a signing role'}")
            else:
                check.role = f"{user[0]}: {', '.join(sorted(user[1] & set(allowed)))} (checked against the project)"
                continue
            check.indication = FAILED
        problems = []
        if evidence is None:
            return ["the evidence cannot be compared with the project"]
        if "validation" in evidence:
            run_id = evidence["validation"].get("run_id")
            row = one(con, "SELECT verdict, result_sha256 FROM validation_runs WHERE run_id = ?", [run_id])
            if row is None:
                problems.append(f"validation run {run_id} is not in this project")
            elif governed(project) and (state.runs.get(run_id) or {}).get("result_sha256") != row[1]:
                problems.append(f"validation run {run_id} in the project differs from its signed result")
            elif (row[0], row[1]) != (evidence["validation"].get("verdict"), evidence["validation"].get("result_sha256")):
                problems.append(f"the packet says run {run_id} gave {evidence['validation'].get('verdict')}; the "
                                f"project stored {row[0]} (result {row[1][:16]}…)")
        exported = {r[0] for r in con.execute(
            "SELECT json_extract_string(details_json, '$.evidence_sha256') FROM audit_log "
            "WHERE action IN ('packet.export', 'review.export')").fetchall()}
        if evidence_sha not in exported:
            problems.append("this project never exported a packet with this evidence (no audit entry carries its "
                            "sha256)")
        else:
            problems += _missing_signatures(con, evidence_sha, len(checks))
    return problems


def _missing_signatures(con: Any, evidence_sha: str, present: int) -> list[str]:
    """A copy cut back to an earlier revision: the signatures the project recorded for this evidence (the export's
    signers in order, then each later `lineproof sign`) beyond the ones the copy carries."""
    rows = con.execute(
        "SELECT action, details_json, ts_text FROM audit_log WHERE action IN ('packet.export', 'review.export', "
        "'packet.sign') AND json_extract_string(details_json, '$.evidence_sha256') = ? ORDER BY seq",
        [evidence_sha]).fetchall()
    recorded: list[tuple[str, str, str]] = []  # (signer, meaning, when)
    for action, details_json, when in rows:
        details = json.loads(details_json)
        if action == "packet.sign":
            recorded.append((str(details.get("signer")), str(details.get("meaning", "")), when))
        else:
            meanings = details.get("meanings") or [""] * len(details.get("signers", []))
            recorded = [(str(u), str(m), when) for u, m in zip(details.get("signers", []), meanings, strict=False)]
    if len(recorded) <= present:
        return []
    missing = ", ".join(f"Signature{i + 1} by {user}" + (f" ({meaning!r})" if meaning else "") + f" on {when[:16]}"
                        for i, (user, meaning, when) in enumerate(recorded) if i >= present)
    return [f"this copy carries {present} of the {len(recorded)} signatures the project recorded for this "
            f"evidence: missing {missing} (an earlier revision of the packet; ask for the latest copy)"]


def _keywords_hash(reader: Any) -> str:
    trailer = reader.trailer_view
    info = trailer["/Info"] if "/Info" in trailer else None
    keywords = str(info["/Keywords"]) if info is not None and "/Keywords" in info else ""
    match = re.search(r"lineproof-evidence-sha256:([0-9a-f]{64})", keywords)
    return match.group(1) if match else ""


def evidence_hash_of(data: bytes) -> str:
    """The evidence sha256 a packet's document information names ('' when it names none)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        return _keywords_hash(PdfFileReader(io.BytesIO(data), strict=False))
    except Exception:  # a damaged PDF names no evidence; signing it fails with its own error
        return ""


def certified_content(evidence: dict | None) -> dict[str, str]:
    """What the packet says, for showing before its signatures: a valid signature on a FAIL verdict is still FAIL."""
    if not evidence:
        return {}
    if "validation" not in evidence:  # an operating review record
        review = evidence.get("review", {})
        return {"kind": "operating review", "period": str((review.get("period") or {}).get("label", "")),
                "decision": str(review.get("decision", ""))}
    subject, validation = evidence.get("subject", {}), evidence["validation"]
    return {"kind": "validation and approval packet", "verdict": str(validation.get("verdict", "")),
            "candidate": str(subject.get("version_id", "")), "champion": str(subject.get("champion", "")),
            "run": str(validation.get("run_id", "")),
            "release": f"{subject.get('version_id', '')} to {subject.get('target_stage', '')} at "
                       f"{subject.get('site', '')}"}


def _evidence(reader: Any) -> tuple[bool, str, dict | None, str]:
    """The attached evidence against the sha256 in the document information, and its validation result hash:
    (ok, in words, the evidence when it could be read, its sha256)."""
    expected = _keywords_hash(reader)
    if not expected:
        return False, "no Lineproof evidence hash in the document information", None, ""
    root = reader.root
    names = root["/Names"] if "/Names" in root else None
    files = names["/EmbeddedFiles"] if names is not None and "/EmbeddedFiles" in names else None
    entries = files["/Names"] if files is not None and "/Names" in files else []
    data = None
    for i in range(0, len(entries) - 1, 2):  # name, file spec pairs: a handful of attachments
        if str(entries[i]) == "evidence.json":
            data = entries[i + 1]["/EF"]["/F"].data
    if data is None:
        return False, "the evidence.json attachment is missing", None, ""
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        return False, f"evidence.json does not match the signed hash ({digest[:16]}… vs {expected[:16]}…)", None, digest
    try:
        evidence = json.loads(data)
        if "validation" not in evidence:  # an operating review: its findings carry their own hash
            body = json.dumps(evidence["review"], sort_keys=True, default=str).encode()
            if hashlib.sha256(body).hexdigest() != evidence["findings_sha256"]:
                return False, "the review's findings inside the evidence do not match their recorded sha256", None, digest
            return True, f"evidence.json matches the signed sha256 {digest[:16]}…; the findings match their hash", evidence, digest
        from app.core.models.validation.run import result_sha256

        stored = evidence["validation"]["result"]
        if result_sha256(stored) != evidence["validation"]["result_sha256"]:
            return False, "the validation result inside the evidence does not match its recorded sha256", None, digest
        if stored.get("verdict") != evidence["validation"]["verdict"]:
            return False, "the verdict in the evidence differs from the validation result's own", None, digest
    except (ValueError, KeyError, TypeError) as exc:
        return False, f"the evidence cannot be read ({exc})", None, digest
    return (True, f"evidence.json matches the signed sha256 {digest[:16]}…; the validation result matches its hash",
            evidence, digest)


def verify_packet(path: Path | str, trust: list[Path | str] | None = None, trusted_pems: list[str] = (),
                  project: Any = None, at: Any = None) -> PacketVerification:
    """Check every signature of a packet offline against the trusted certificates (files or PEM texts), as of
    `at` (a datetime; default now); with the project, also each signer's role, the keys revoked in it, and that
    the run, verdict and evidence are the ones the project stored."""
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
        signatures = reader.embedded_regular_signatures
        stamps = reader.embedded_timestamp_signatures
    except Exception as exc:
        raise VerifyError(f"{path.name} cannot be parsed as a PDF ({exc}).", "It is damaged or not a PDF.") from exc
    result = PacketVerification(str(path))
    if not signatures:
        result.evidence = "the PDF carries no signature"
        return result
    result.at = f"{at:%Y-%m-%d %H:%M} UTC" if at is not None else ""
    context = ValidationContext(trust_roots=roots, allow_fetching=False, moment=at)
    checked = [_check(sig, context) for sig in signatures]
    result.signatures = [c for c, _ in checked]
    statuses = [s for _, s in checked]
    _apply_packet_rules(reader, signatures, result.signatures, statuses, [s.field_name for s in stamps])
    from app.core.packet.longterm import apply_long_term, project_revocations
    from app.core.packet.structure import check_structure

    apply_long_term(reader, signatures, result.signatures, statuses, stamps, roots, at,
                    project_revocations(project) if project is not None else {})
    try:
        report = check_structure(reader, data, signatures, stamps)
        result.structure, result.notes = report.failures, report.notes
    except Exception as exc:  # a structure too broken to walk is a failure, not a crash
        result.structure = [f"the file's structure cannot be checked ({type(exc).__name__}: {str(exc)[:160]})"]
    result.evidence_ok, result.evidence, evidence, digest = _evidence(reader)
    result.content = certified_content(evidence)
    if project is not None:
        problems = _project_rules(project, signatures, result.signatures, evidence, digest)
        if problems:
            result.evidence_ok = False
            result.evidence += "; against the project: " + "; ".join(problems)
        elif result.evidence_ok:
            result.evidence += "; the run, verdict and evidence are the ones this project stored"
    if result.structure:  # every signature the changes came after says so, not "none after signing"
        for sig, check in zip(signatures, result.signatures, strict=True):
            if sig.coverage is None or sig.coverage.name != "ENTIRE_FILE":
                check.modifications = ("illegal: the file was changed after signing in ways listed below "
                                       f"(besides: {check.modifications})")
                check.indication = FAILED
    indications = [s.indication for s in result.signatures]
    if FAILED in indications or not result.evidence_ok or result.structure:
        result.indication = FAILED
    elif INDETERMINATE in indications:
        result.indication = INDETERMINATE
    else:
        result.indication = PASSED
    return result
