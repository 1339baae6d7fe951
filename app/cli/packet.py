"""`lineproof packet`, `lineproof sign` and `lineproof verify`: the signed validation and approval packet."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.cli.common import open_project, show_progress, signing_for


def cmd_packet(args: argparse.Namespace) -> int:
    """Build the packet for a validation run, sign it in order, write it atomically (or `packet extend FILE`)."""
    from app.core.errors import LineproofError
    from app.core.packet import build_packet

    if args.path == "extend":
        return _extend(args)
    if not args.validation or not args.sign_as:
        raise LineproofError("A packet needs the validation run and at least one signer.",
                             "lineproof packet PROJECT --validation RUN --sign-as USER [--sign-as USER:MEANING]")
    with open_project(args.path) as project:
        signings = [signing_for(project, spec) for spec in args.sign_as]
        out = Path(args.out) if args.out else project.folder / "packets" / f"{args.validation}.pdf"
        path = build_packet(project, args.validation, out, signings, args.request, timestamper=_tsa(args.tsa_url),
                            progress=show_progress(args.quiet))
    print(f"Packet written: {path} ({path.stat().st_size / 1024:.0f} KiB, signed by "
          f"{', '.join(f'{s.signer.name} ({s.meaning})' for s in signings)})")
    return 0


def _extend(args: argparse.Namespace) -> int:
    """Add a fresh archive timestamp (and the validation data of the previous one) to a B-LTA packet."""
    from app.core.errors import LineproofError
    from app.core.packet.sign import extend_packet
    from app.core.packet.verify import verify_packet

    if not args.file:
        raise LineproofError("Name the packet to extend.", "lineproof packet extend PACKET.pdf [--tsa-url URL]")
    path = extend_packet(args.file, _tsa(args.tsa_url))
    result = verify_packet(path)
    print(f"Extended {path}: level {result.level}, verifiable without extension until "
          f"{result.valid_until or 'unknown'}")
    return 0


def _tsa(url: str | None):
    """A timestamp authority on the plant network makes the signatures PAdES B-T."""
    if not url:
        return None
    from pyhanko.sign.timestamps import HTTPTimeStamper

    return HTTPTimeStamper(url, timeout=10)


def cmd_sign(args: argparse.Namespace) -> int:
    """Add a later signature (e.g. the approver's) to an existing packet."""
    from app.core.packet.sign import read_packet, sign_packet

    read_packet(args.packet)  # a missing or foreign file is named before any passphrase is asked
    with open_project(args.project) as project:
        signing = signing_for(project, args.as_user)
        sign_packet(project, args.packet, signing, _tsa(args.tsa_url))
    print(f"Signed {args.packet} as {signing.signer.name} ({signing.meaning})")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify every signature and the embedded evidence; exit 0 PASSED, 1 FAILED, 3 INDETERMINATE, 2 error."""
    from app.core.packet import verify_packet

    # `lineproof --trust CA.pem verify ...` (the global option) trusts the CA as much as `verify --trust CA.pem`.
    trust = list(args.trust or []) + list(getattr(args, "anchor", None) or [])
    at = _when(args.at) if args.at else None
    if args.project:
        from app.core.packet.verify import project_certificates

        with open_project(args.project, read_only=True, allow_snapshot=True) as project:
            pems = project_certificates(project)
            result = verify_packet(args.packet, trust, pems, project=project, at=at)
    else:
        pems = []
        result = verify_packet(args.packet, trust, pems, at=at)
    if args.format == "json":
        print(json.dumps(result.as_dict(), indent=2))
        return result.exit_code
    content = result.content
    if content.get("verdict"):
        # The packet's own verdict first: valid signatures on a FAIL validation certify a FAIL.
        print(f"{result.path}: certifies validation run {content['run']} of {content['candidate']} against "
              f"{content['champion']}: verdict {content['verdict']} (release {content['release']})")
    elif content.get("kind"):
        print(f"{result.path}: {content['kind']} {content.get('period', '')}: {content.get('decision', '')}")
    print(f"Signatures and evidence: {result.indication}" + (f" (validated as of {result.at})" if result.at else "")
          + (f" - the signatures are {'valid' if result.indication == 'PASSED' else 'not valid'}; the verdict they "
             f"certify is {content['verdict']}" if content.get("verdict") and content["verdict"] != "PASS" else ""))
    if result.level:
        print(f"  level: PAdES {result.level}; verifiable without extension until {result.valid_until or 'unknown'}"
              + ("" if result.level == "B-LTA" else " (a timestamp authority makes packets B-LTA: lineproof trust "
                                                     "tsa URL)"))
    if not result.signatures:
        print("  no signature: this is not a signed packet")
    for s in result.signatures:
        print(f"  {s.field}: {s.indication}  {s.meaning} {s.signer} at {s.signed_at}")
        print(f"    integrity:     {s.integrity}")
        print(f"    modifications: {s.modifications}")
        print(f"    role:          {s.role}")
        print(f"    signed:        {s.signed_time}")
        print(f"    revocation:    {s.revocation}")
        print(f"    identity:      {s.trust}" + (f"\n    {s.timestamp}" if s.timestamp else "")
              + (f"\n    detail:        {s.detail}" if s.detail else ""))
    print(f"  evidence: {'ok' if result.evidence_ok else 'FAILED'}: {result.evidence}")
    for problem in result.structure:
        print(f"  FAILED: {problem}")
    for note in result.notes:
        print(f"  note: {note}")
    if not trust and not pems:
        print("  (no certificate trusted: pass --trust CERT.pem or --project PROJECT)")
    return result.exit_code


def _when(text: str):
    """A --at date or time (UTC unless it says otherwise)."""
    from datetime import UTC, datetime

    from app.core.errors import LineproofError

    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise LineproofError(f"--at {text!r} is not a date.", "Use e.g. --at 2040-01-01 or 2040-01-01T12:00.") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register the packet commands."""
    p = sub.add_parser("packet", help="export the signed validation and approval packet (PDF)",
                       description="Builds the PDF for a validation run (and the approval request citing it), "
                                   "attaches the evidence as JSON and CSV, and signs it PAdES as each --sign-as "
                                   "user in order. Passphrases: $LINEPROOF_PASSPHRASE or asked.")
    p.add_argument("path", help="project folder (or `extend`, then the packet: add a fresh archive timestamp)")
    p.add_argument("file", nargs="?", help=argparse.SUPPRESS)
    p.add_argument("--validation", metavar="RUN", help="validation run id")
    p.add_argument("--request", metavar="REQ", help="approval request (default: the newest citing the run)")
    p.add_argument("--out", help="PDF to write (default: PROJECT/packets/RUN.pdf)")
    p.add_argument("--sign-as", action="append", metavar="USER[:MEANING]",
                   help="signer, in order (e.g. --sign-as vera --sign-as anna:'approved by')")
    p.add_argument("--tsa-url", help="RFC 3161 timestamp authority on the plant network (default: the one set with "
                                     "`lineproof trust tsa URL`; signatures become B-LTA)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_packet)

    p = sub.add_parser("sign", help="add a signature to an existing packet")
    p.add_argument("packet", help="packet PDF")
    p.add_argument("--project", required=True, help="project folder (the signer must be a user of it)")
    p.add_argument("--as", dest="as_user", required=True, metavar="USER[:MEANING]")
    p.add_argument("--tsa-url", help="RFC 3161 timestamp authority (the signature becomes B-T)")
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser("verify", help="verify a packet's signatures and evidence offline",
                       description="Exit code 0 PASSED, 1 FAILED, 3 INDETERMINATE (e.g. intact but untrusted), "
                                   "2 error.")
    p.add_argument("packet", help="packet PDF")
    p.add_argument("--trust", action="append", metavar="CERT", help="trusted certificate or CA (PEM/DER)")
    p.add_argument("--project", help="trust the certificates of this project's users")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--at", metavar="DATE", help="validate as an auditor would on that date (e.g. 2040-01-01): "
                                               "certificates that expired by then need the packet's timestamps")
    p.set_defaults(func=cmd_verify)
