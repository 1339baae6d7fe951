"""`lineproof user|request|review|approve|reject|audit`: identities, roles, signed approvals, the audit trail."""

from __future__ import annotations

import argparse
import json
import os

from app.cli.common import PASS_ENV, open_project, passphrase
from app.cli.reviews import add_arguments, cmd_operating_review, is_operating
from app.core.errors import LineproofError


def cmd_user(args: argparse.Namespace) -> int:
    """Create, import or list users and change their roles."""
    from app.core.governance import approvals as gov
    from app.core.governance import identity

    if args.action == "list":
        with open_project(args.path, read_only=True, allow_snapshot=True) as project:
            frame = gov.list_users(project)
        for r in frame.iter_rows(named=True):
            state = f"  (key revoked {r['revoked']})" if r["revoked"] else "" if r["active"] else "  (inactive)"
            print(f"{r['user_id']:<16} {r['name']:<24} {', '.join(json.loads(r['roles_json'])):<36} "
                  f"cert {r['cert_sha256'][:16]}{state}"
                  f"{'' if r['verified'] else '  (NOT BACKED by a signed statement: ignored)'}")
        if frame.is_empty():
            print("No users yet: lineproof user create PROJECT --id ID --name NAME --role engineer "
                  "(the first user becomes admin)")
        return 0
    roles = [r.strip() for r in (args.role or "").split(",") if r.strip()]
    if args.action == "revoke":
        return _revoke(args)
    with open_project(args.path) as project:
        admin = cosigner = None
        first = not gov.governed(project)
        if not first and args.action in ("create", "import", "roles"):
            if not args.as_user:
                raise LineproofError("Adding users and changing roles needs an admin.", "Give --as ADMIN_ID.")
            admin = gov.unlock(project, args.as_user, passphrase(f"Passphrase of {args.as_user}: ",
                                                                  "LINEPROOF_ADMIN_PASSPHRASE"))
            if args.countersign:
                cosigner = gov.unlock(project, args.countersign, passphrase(
                    f"Passphrase of {args.countersign} (countersigning): ", "LINEPROOF_COSIGN_PASSPHRASE"))
        if args.action == "roles":
            gov.set_roles(project, args.id, roles, admin, args.reason or "")
            print(f"{args.id} now has the roles {', '.join(sorted(roles))}.")
            return 0
        if args.action == "create":
            if args.ca and not args.ca_passphrase_env:
                raise LineproofError("Signing with a site CA needs its passphrase.",
                                     "Set --ca-passphrase-env VAR (the variable holding it).")
            secret = passphrase(f"New passphrase for {args.id}: ")
            cert = identity.create_identity(args.id, args.name or args.id, secret, ca_id=args.ca,
                                            ca_passphrase=os.environ.get(args.ca_passphrase_env or "", ""))
            if first:  # the first user signs their own registration, which starts governance
                admin = identity.unlock_identity(args.id, secret)
        elif args.action == "create-ca":
            cert = identity.create_site_ca(args.id, args.name or args.id, passphrase("New CA passphrase: "))
            path = identity.identity_path(args.id).with_suffix(".cert.pem")
            print(f"Site CA {args.id} created and trusted on this PC; give {path} to every PC that verifies "
                  "(lineproof trust add) and to everyone who verifies packets.")
            return 0
        else:
            if not args.p12:
                raise LineproofError("Importing needs the PKCS#12 file.", "Give --p12 FILE.")
            secret = passphrase(f"Passphrase of {args.p12}: ")
            cert = identity.import_identity(args.p12, args.id, secret)
            if first:
                admin = identity.unlock_identity(args.id, secret)
        try:
            given = gov.add_user(project, args.id, args.name or args.id, identity.cert_pem(cert),
                                 roles or ["viewer"], by=admin, reason=args.reason or "", countersign=cosigner)
        except LineproofError:
            if args.action == "create":  # the key made for a refused registration is never left behind
                identity.discard_identity(args.id)
            raise
    print(f"User {args.id} added with roles {', '.join(given)}; identity in {identity.identity_path(args.id)}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    """An admin withdraws a user's key (a signed statement)."""
    from app.core.governance import approvals as gov

    if not (args.id and args.reason and args.as_user):
        raise LineproofError("Revoking needs the user, the reason and the admin.",
                             "lineproof user revoke PROJECT --id USER --reason keyCompromise|superseded|"
                             "cessationOfOperation --as ADMIN")
    with open_project(args.path) as project:
        admin = gov.unlock(project, args.as_user, passphrase(f"Passphrase of {args.as_user}: ",
                                                             "LINEPROOF_ADMIN_PASSPHRASE"))
        gov.revoke_user(project, args.id, args.reason, admin)
    print(f"{args.id}'s key is revoked ({args.reason}): nothing they sign from now on counts in this project. "
          "If the site CA issued it, publish a CRL too: lineproof trust crl --ca CA --revoke "
          f"{args.id} --reason {args.reason}")
    return 0


def cmd_request(args: argparse.Namespace) -> int:
    """Ask for a release (or list requests)."""
    from app.core.governance import approvals as gov

    if args.list:
        with open_project(args.path, read_only=True, allow_snapshot=True) as project:
            for r in gov.list_requests(project).iter_rows(named=True):
                status = gov.request_status(project, r["request_id"])
                missing = status.describe_missing() if status.state == "open" else ""
                print(f"{r['request_id']:<22} {r['version_id']:<18} {r['site']:<6} -> {r['target_stage']:<10} "
                      f"{r['state']:<9} {missing}")
        return 0
    if not (args.model and args.stage and args.site and args.as_user):
        raise LineproofError("A request needs --model M:V --stage STAGE --site SITE --as USER.",
                             "Example: lineproof request PROJECT --model weld-defect:v2 --stage production --site P1 "
                             "--validation VAL-... --as eve")
    with open_project(args.path) as project:
        signer = gov.unlock(project, args.as_user, passphrase(f"Passphrase of {args.as_user}: "))
        request_id = gov.create_request(project, args.model, args.site, args.stage, signer, args.validation,
                                        args.comment or "")
        status = gov.request_status(project, request_id)
    print(f"{request_id}: {args.model} -> {args.stage} at {args.site}; needs {status.describe_missing()}.")
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    """Review, approve or reject a request with a signature (or, with a period, an operating review)."""
    from app.core.governance import approvals as gov

    if args.command == "review":

        if is_operating(args):
            return cmd_operating_review(args)
        if not (args.request and args.as_user and args.comment):
            raise LineproofError("Name a request with --as and --comment, or a period (--month YYYY-MM).",
                                 "e.g. lineproof review PROJECT REQ-... --as vera --comment 'checked', or "
                                 "lineproof review PROJECT --month 2026-09")
    with open_project(args.path) as project:
        signer = gov.unlock(project, args.as_user, passphrase(f"Passphrase of {args.as_user}: "))
        status = gov.decide(project, args.request, args.command, signer, args.comment or "")
    meaning = gov.MEANINGS[args.command]
    left = f"; still needs {status.describe_missing()}" if status.state == "open" else ""
    print(f"{args.request}: {meaning} {signer.name} ({args.as_user}); request is {status.state}{left}.")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """List the audit trail, verify its hash chain and signed receipts (exit 1 when broken), or export a receipt."""
    from app.core.governance.receipts import export_receipt
    from app.core.store.audit import read_audit

    if args.action == "receipt":
        if not (args.as_user and args.out):
            raise LineproofError("A receipt needs --as USER and --out FILE.",
                                 "Example: lineproof audit receipt PROJECT --as vera --out head-2026-12-01.json")
        from app.core.governance.approvals import unlock

        with open_project(args.path) as project:
            signer = unlock(project, args.as_user, passphrase(f"Passphrase for {args.as_user}: "))
            out = export_receipt(project, signer, args.out)
        print(f"Receipt written: {out} (keep it outside the project folder: it pins the log as it is now)")
        return 0
    if args.action == "verify":
        return _audit_verify(args)
    with open_project(args.path, read_only=True, allow_snapshot=True) as project:
        with project.reading() as con:
            frame = read_audit(con, args.limit, args.filter_action, args.actor, args.text)
    if args.format == "json":
        print(json.dumps(frame.to_dicts(), indent=2, default=str))
        return 0
    for r in frame.iter_rows(named=True):
        reason = f"  reason: {r['reason']}" if r["reason"] else ""
        print(f"#{r['seq']:<5} {r['ts_text'][:19]} {r['actor']:<12} {r['action']:<24} {r['target']}{reason}")
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    """The chain, the signed governance record and every receipt (exit 1 when anything contradicts them)."""
    from pathlib import Path

    from app.core.errors import SchemaDamagedError
    from app.core.governance.integrity import verify_project

    files = [f for f in args.receipt or [] if not str(f).lower().endswith(".pdf")]
    try:
        with open_project(args.path, read_only=True, allow_snapshot=True) as project:
            packets = [Path(f) for f in args.receipt or [] if str(f).lower().endswith(".pdf")]
            packets += sorted((project.snapshot_of or project.folder).joinpath("packets").glob("*.pdf"))
            verdict = verify_project(project, files, _packet_receipts(packets))
    except SchemaDamagedError as exc:  # a dropped audit table is the answer to "is it intact?", not an error
        if args.format == "json":
            print(json.dumps({"ok": False, "schema": exc.what}, indent=2))
        else:
            print(f"AUDIT TRAIL BROKEN: {exc.what}\n{exc.todo}")
        return 1
    if args.format == "json":
        print(json.dumps(verdict.as_dict(), indent=2, default=str))
        return 0 if verdict.ok else 1
    chain = verdict.chain
    if not verdict.anchored:
        print(f"warning: {verdict.anchor_note}")
    if verdict.ok:
        print(f"Audit trail intact: {chain.entries} entries, head #{chain.head_seq} {chain.head_hash}")
    elif not chain.ok:
        print(f"AUDIT TRAIL BROKEN at entry {chain.first_bad_seq}: {chain.problem}")
    elif verdict.anchors.problems:
        print(f"AUDIT TRAIL REWRITTEN: the hash chain is consistent, but {len(verdict.anchors.problems)} signed "
              "receipt(s) contradict it")
    else:
        print(f"GOVERNANCE RECORD TAMPERED: {len(verdict.governance)} row(s) or statement(s) no signature backs")
    for problem in verdict.anchors.problems:
        print(f"RECEIPT FAILED: {problem}")
    for problem in verdict.governance:
        print(f"NOT BACKED: {problem}")
    for note in verdict.anchors.notes:
        print(f"note: {note}")
    print(f"Signed receipts: {verdict.anchors.checked} checked, {len(verdict.anchors.problems)} failed" + (
        "" if verdict.anchors.checked else " (none yet: export one with `lineproof audit receipt`)"))
    for warning in chain.clock_warnings:
        print(f"warning: {warning}")
    return 0 if verdict.ok else 1


def _packet_receipts(paths: list) -> list[dict]:
    """The audit receipts embedded in packets and review records (each one an anchor kept outside)."""
    from app.core.packet.evidence import embedded_receipt

    out = []
    for path in paths:
        receipt = embedded_receipt(path)
        if receipt is not None:
            out.append({**receipt, "_source": path.name})
    return out


def cmd_trust(args: argparse.Namespace) -> int:
    """Show or change this PC's trust anchors (kept outside every project)."""
    from app.core.governance import trust

    if args.action == "add":
        if not args.cert:
            raise LineproofError("Name the certificate to trust.", "lineproof trust add SITE-CA.pem")
        out = trust.add_anchor(args.cert)
        print(f"Trusted on this PC: {args.cert} (stored as {out})")
        return 0
    if args.action in ("import-crl", "crl"):
        return _crl(args)
    if args.action == "tsa":
        trust.set_tsa("" if args.cert in (None, "off") else args.cert)
        print(f"Timestamp authority for signatures made on this PC: {trust.tsa_url() or 'none'}")
        return 0
    files = trust.anchor_files()
    if not files:
        print("This PC has no trust anchor: projects are treated as ungoverned for verification.\n"
              "Install the site CA certificate: lineproof trust add SITE-CA.pem")
        return 0
    from app.core.governance.revocation import pc_crls

    print(f"Trust configuration: {trust.trust_dir()}")
    for path in files:
        for cert in trust.anchors_in(path):
            print(f"  {cert.subject.rfc4514_string():<50} sha256 {trust.der_sha256(cert)[:16]}…  ({path.name})")
    for crl in pc_crls():
        print(f"  CRL of {crl.issuer.rfc4514_string()}: issued {crl.last_update_utc:%Y-%m-%d %H:%M} UTC, next "
              f"{crl.next_update_utc:%Y-%m-%d}, {len(list(crl))} revoked")
    tsa = trust.tsa_url() or "none (signing times are the signers' own claims)"
    print(f"  Timestamp authority: {tsa}")
    return 0


def _crl(args: argparse.Namespace) -> int:
    """Import the site's CRL, or issue one with a site CA made here (revoking certificates or users' keys)."""
    from app.core.governance import identity, revocation

    if args.action == "import-crl":
        if not args.cert:
            raise LineproofError("Name the CRL file.", "lineproof trust import-crl SITE-CA.crl")
        path, crl = revocation.install_crl(args.cert)
        print(f"Kept on this PC: CRL of {crl.issuer.rfc4514_string()} issued {crl.last_update_utc:%Y-%m-%d %H:%M} "
              f"UTC with {len(list(crl))} revoked certificate(s) ({path})")
        return 0
    if not args.ca:
        raise LineproofError("Issuing a CRL needs the site CA.", "lineproof trust crl --ca CA [--revoke USER|CERT.pem]")
    since = None
    if args.since:
        from datetime import UTC, datetime

        try:
            since = datetime.fromisoformat(args.since).replace(tzinfo=datetime.fromisoformat(args.since).tzinfo or UTC)
        except ValueError as exc:
            raise LineproofError(f"--since {args.since!r} is not a date or time.", "Use e.g. 2026-12-01T08:00") \
                from exc
    revoke = []
    for item in args.revoke or []:
        from pathlib import Path

        from cryptography import x509

        cert = x509.load_pem_x509_certificate(Path(item).read_bytes()) if Path(item).is_file() \
            else identity.profile_certificate(item)
        revoke.append((cert, args.reason or "unspecified", since))
    ca_pass = os.environ.get(args.ca_passphrase_env or "", "") or passphrase(f"Passphrase of the CA {args.ca}: ")
    out, crl = revocation.issue_crl(args.ca, ca_pass, revoke)
    print(f"CRL issued {crl.last_update_utc:%Y-%m-%d %H:%M} UTC by {args.ca} with {len(list(crl))} revoked "
          f"certificate(s): {out}\n"
          "It is kept on this PC; give the file to every PC that verifies (lineproof trust import-crl FILE).")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register the governance commands."""
    p = sub.add_parser("user", help="signing identities, users and roles",
                       description="Keys stay in your profile folder (a passphrase-protected PKCS#12 file); the "
                                   "project stores certificates and roles. The first user becomes admin.")
    p.add_argument("action", choices=("create", "create-ca", "import", "list", "roles", "revoke"))
    p.add_argument("path", help="project folder")
    p.add_argument("--id", help="user id, e.g. a.kowalski")
    p.add_argument("--name", help="full name shown on signatures")
    p.add_argument("--role", help="comma-separated: viewer, engineer, validation_lead, approver, admin")
    p.add_argument("--ca", help="sign the new certificate with this site CA (created with create-ca)")
    p.add_argument("--ca-passphrase-env", help="environment variable holding the CA passphrase")
    p.add_argument("--p12", help="PKCS#12 file to import (organisation PKI)")
    p.add_argument("--as", dest="as_user", help="admin who authorises the change")
    p.add_argument("--countersign", metavar="ADMIN2",
                   help="a second admin countersigns the registration (needed for a certificate the site CA did not "
                        "issue; passphrase from LINEPROOF_COSIGN_PASSPHRASE or asked)")
    p.add_argument("--reason", help="why (required for role changes); for revoke one of keyCompromise, superseded, "
                                    "cessationOfOperation, affiliationChanged")
    p.set_defaults(func=cmd_user)

    p = sub.add_parser("trust", help="this PC's trust anchors (site CA or pinned certificates)",
                       description="Identities must chain to an anchor configured on this PC, never read from a "
                                   "project. `add` trusts a site CA certificate (or pins one certificate).")
    p.add_argument("action", choices=("add", "list", "import-crl", "crl", "tsa"),
                   help="add a CA or pinned certificate; list; import-crl FILE (the site's revocation list); crl "
                        "--ca CA (issue one with a site CA made here); tsa URL|off (the plant's timestamp authority)")
    p.add_argument("cert", nargs="?", help="certificate file for add, CRL file for import-crl, URL for tsa")
    p.add_argument("--ca", help="crl: the site CA (made with user create-ca) that signs the CRL")
    p.add_argument("--ca-passphrase-env", help="crl: environment variable holding the CA passphrase (else asked)")
    p.add_argument("--revoke", action="append", metavar="USER|CERT.pem", help="crl: revoke this identity (repeat)")
    p.add_argument("--reason", default="superseded", help="crl: keyCompromise, superseded, cessationOfOperation, "
                                                          "affiliationChanged (default %(default)s)")
    p.add_argument("--since", help="crl: revoked since (ISO time; default now), e.g. when a key was compromised")
    p.set_defaults(func=cmd_trust)

    p = sub.add_parser("request", help="ask for a model version to move to a stage at a site (or --list)")
    p.add_argument("path", help="project folder")
    p.add_argument("--model", metavar="M:V")
    p.add_argument("--stage", choices=("candidate", "shadow", "pilot", "production", "retired"))
    p.add_argument("--site")
    p.add_argument("--validation", metavar="RUN", help="validation run that supports the request")
    p.add_argument("--comment")
    p.add_argument("--as", dest="as_user", help="requesting user")
    p.add_argument("--list", action="store_true", help="list requests and what each still needs")
    p.set_defaults(func=cmd_request)

    for name, text in (("review", "review a request (signed: 'reviewed by')"),
                       ("approve", "approve a request (signed: 'approved by')"),
                       ("reject", "reject a request (signed: 'rejected by')")):
        p = sub.add_parser(name, help=text, description=f"{text}. The passphrase is asked every time (or read "
                                                         f"from {PASS_ENV}); 5 wrong ones lock signing.")
        p.add_argument("path", help="project folder")
        p.add_argument("request", nargs="?" if name == "review" else None, help="request id")
        p.add_argument("--as", dest="as_user", required=name != "review", help="your user id")
        p.add_argument("--comment", required=name != "review", help="what you checked (signed with the decision)")
        if name == "review":

            p.description += (" With --month, --quarter or --event instead of REQUEST: the operating review of "
                              "that period (findings, and with --save a signed record).")
            add_arguments(p)
        p.set_defaults(func=cmd_decide)

    p = sub.add_parser("audit", help="list the audit trail, verify it, or export a signed receipt of its head",
                       description="verify recomputes the hash chain and checks every signed receipt (those kept "
                                   "in the project and the files given with --receipt); receipt signs the current "
                                   "head with your key into a file to keep outside the project.")
    p.add_argument("action", choices=("list", "verify", "receipt"))
    p.add_argument("path", help="project folder")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--action", dest="filter_action", help="only actions starting with this, e.g. approval.")
    p.add_argument("--actor", help="only this user")
    p.add_argument("--text", help="only entries mentioning this")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--receipt", action="append", metavar="FILE",
                   help="a receipt file (or a packet PDF that embeds one) to check the log against")
    p.add_argument("--trust", action="append", metavar="CERT.pem", help="also trust this anchor for this run")
    p.add_argument("--as", dest="as_user", metavar="USER", help="who signs the receipt (passphrase asked)")
    p.add_argument("--out", metavar="FILE", help="where to write the receipt")
    p.set_defaults(func=cmd_audit)
