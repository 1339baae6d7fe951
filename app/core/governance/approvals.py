"""Users, roles, risk-tier rules and the signed approval workflow (request -> review -> approve / reject).

Every decision is signed with the user's key over the canonical hash of what is approved, so editing a
decision row or moving it to another request breaks its signature. Production needs the tier's approvals.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from app.core.errors import LineproofError
from app.core.governance import trust
from app.core.governance.identity import (
    Signer,
    WrongPassphrase,
    cert_pem,
    cert_sha256,
    check_validity,
    unlock_identity,
    verify_signature,
)
from app.core.governance.ledger import (
    MEANINGS,
    TIER_ORDER,
    GovernanceState,
    append_statement,
    canonical,
    decided_after_revocation,
    decision_payload,
    identity_problem,
    project_key,
    release_problem,
    replay,
)
from app.core.governance.receipts import sign_head
from app.core.store.audit import acting_as
from app.core.store.db import one
from app.core.store.project import Project

ROLES = ("viewer", "engineer", "validation_lead", "approver", "admin")
ROLE_NAMES = {"viewer": "viewer", "engineer": "engineer", "validation_lead": "validation lead",
              "approver": "approver", "admin": "admin"}
# What a signature on a packet may mean, and the roles that may sign with that meaning (viewers and admins as such
# sign nothing: an admin manages people, not releases).
SIGNING_ROLES = {"validated by": ("validation_lead",), "approved by": ("approver",),
                 "reviewed by": ("validation_lead", "approver", "engineer"), "prepared by": ("engineer", "validation_lead")}
MAX_FAILURES = 5
LOCK_MINUTES = 15


class GovernanceError(LineproofError):
    """A governance action is refused: who may do what, in which order."""


# ----- the verified state (replayed from signed statements, cached per open project)
def governance(project: Project) -> GovernanceState:
    """The governance state that this PC's anchor verifies (statements replayed; unsigned rows reported)."""
    with project.reading() as con:
        count, last = one(con, "SELECT count(*), max(sha256) FROM statements")
        head = one(con, "SELECT entry_hash FROM audit_head WHERE id = 1")
        key = (count, last, head[0] if head else None, tuple(str(p) for p in trust.anchor_files()),
               tuple(p.stat().st_mtime_ns for p in trust.anchor_files() if p.exists()))
        cached = getattr(project, "_governance_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        state = replay(con)
    project._governance_cache = (key, state)
    return state


def governed(project: Project) -> bool:
    """True once the project has users (or ever had: statements, receipts on this PC): releases need approvals."""
    with project.reading() as con:
        users, statements = one(con, "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM statements)")
        if users or statements:
            return True
        if one(con, "SELECT count(*) FROM audit_log WHERE action IN ('user.add', 'governance.start')")[0]:
            return True
        key = project_key(con)
    return bool(trust.pc_receipts(key))


def require_anchor(project: Project) -> GovernanceState:
    """The verified state, or a clear refusal when this PC has no trust anchor to verify it with."""
    state = governance(project)
    if not state.anchored:
        raise GovernanceError("This PC has no trust anchor configured, so nobody's signature can be verified here.",
                              "Install the site CA certificate: lineproof trust add SITE-CA.pem (or pin the admins' "
                              "certificates); nothing was changed.")
    return state


def list_users(project: Project) -> pl.DataFrame:
    """Users with their roles and certificate fingerprints, and whether the signed record backs the row."""
    state = governance(project)
    with project.reading() as con:
        frame = con.sql("SELECT user_id, name, roles_json, cert_sha256, active, added_at FROM users ORDER BY user_id"
                        ).pl()
    verified = [u in state.users and sorted(json.loads(r)) == state.users[u].roles
                for u, r in zip(frame["user_id"], frame["roles_json"], strict=True)]
    revoked = [f"{state.users[u].revoked_at[:16]} UTC, {state.users[u].revoke_reason}"
               if u in state.users and state.users[u].revoked_at else "" for u in frame["user_id"]]
    return frame.with_columns(pl.Series("verified", verified, dtype=pl.Boolean),
                              pl.Series("revoked", revoked, dtype=pl.String))


def user_roles(project: Project, user_id: str) -> list[str]:
    """The roles of an active user as the verified statements say ([] for unknown, inactive or unsigned users)."""
    return governance(project).roles(user_id)


def check_signing_meaning(project: Project, user_id: str, meaning: str) -> None:
    """Refuse a packet signature whose meaning the signer's roles do not allow (once the project has users)."""
    if meaning not in SIGNING_ROLES:
        raise GovernanceError(f"{meaning!r} is not a meaning a packet signature can carry.",
                              f"Use one of: {', '.join(SIGNING_ROLES)}.")
    if not governed(project):
        return
    require_anchor(project)
    roles = set(user_roles(project, user_id))
    allowed = SIGNING_ROLES[meaning]
    if not roles & set(allowed):
        raise GovernanceError(f"{user_id} ({', '.join(sorted(roles)) or 'no role'}) may not sign {meaning!r}: that "
                              f"needs {' or '.join(ROLE_NAMES[r] for r in allowed)}.",
                              "Sign with the meaning your role allows, or ask an admin for the role.")


def _check_roles(roles: list[str]) -> None:
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise GovernanceError(f"Unknown role {unknown[0]!r}." if unknown else "A user needs at least one role.",
                              f"Roles: {', '.join(ROLES)}.")


def _require_role(project: Project, signer: Signer | None, role: str, what: str) -> None:
    require_anchor(project)
    if signer is None or role not in user_roles(project, signer.user_id):
        who = signer.user_id if signer else "nobody"
        raise GovernanceError(f"{who} may not {what}: that needs the {ROLE_NAMES[role]} role.",
                              "Ask an admin; nothing was changed.")
    _require_registered_cert(project, signer)


def _require_registered_cert(project: Project, signer: Signer) -> None:
    user = governance(project).users.get(signer.user_id)
    if user is None or user.cert_sha256 != cert_sha256(signer.cert):
        raise GovernanceError(f"The identity unlocked for {signer.user_id} is not their registered certificate.",
                              "Use the identity you registered with; nothing was changed.")


def _require_identity(cert: Any, user_id: str) -> None:
    problem = identity_problem(cert)
    if problem:
        todo = ("Make a site CA on this PC (lineproof user create-ca) and issue identities with --ca, or trust the "
                "site's CA certificate (lineproof trust add SITE-CA.pem); nothing was changed.") \
            if not trust.anchor_files() else \
            ("Use an identity issued by the site CA (lineproof user create --ca SITE-CA), or have a second admin "
             "countersign (--countersign ADMIN2); nothing was changed.")
        raise GovernanceError(f"{user_id}'s certificate cannot be registered: {problem}.", todo)


def _genesis(project: Project, user_id: str, name: str, cert: Any, roles: list[str]) -> dict[str, Any]:
    """What the first admin adopts when governance starts: the rules, tiers, authors, runs and stages as they are."""
    with project.reading() as con:
        rules = {t: json.loads(r) for t, r in con.execute("SELECT tier, rule_json FROM tier_rules").fetchall()}
        tiers = dict(con.execute("SELECT model_id, risk_tier FROM models").fetchall())
        authors = {v: str(json.loads(lineage or "{}").get("author") or "") for v, lineage in con.execute(
            "SELECT version_id, lineage_json FROM model_versions").fetchall()}
        runs = {r[0]: {"candidate_version": r[1], "verdict": r[2], "result_sha256": r[3], "plan_sha256": r[4],
                       "dataset_sha256": r[5], "candidate_sha256": r[6]} for r in con.execute(
            "SELECT run_id, candidate_version, verdict, result_sha256, plan_sha256, dataset_sha256, candidate_sha256 "
            "FROM validation_runs").fetchall()}
        stages = [{"version_id": v, "model_id": m, "site": s, "stage": st} for v, m, s, st in con.execute(
            "SELECT version_id, model_id, site, stage FROM current_stages ORDER BY ALL").fetchall()]
        rows = [list(r) for r in con.execute("SELECT change_id, version_id, site, stage FROM stage_history "
                                             "ORDER BY 1").fetchall()]
    return {"user": {"user_id": user_id, "name": name, "roles": roles, "cert_pem": cert_pem(cert)}, "rules": rules,
            "tiers": tiers, "authors": authors, "runs": runs, "stages": stages, "stage_rows": rows}


def add_user(project: Project, user_id: str, name: str, certificate_pem: str, roles: list[str],
             by: Signer | None = None, reason: str = "", countersign: Signer | None = None) -> list[str]:
    """Register a user's certificate and roles as a signed statement. The first user becomes admin and signs their
    own registration (which starts governance); later ones are registered by an admin, with a certificate the
    site's anchor issued or a second admin's countersignature."""
    from cryptography import x509

    _check_roles(roles)
    cert = x509.load_pem_x509_certificate(certificate_pem.encode("ascii"))
    check_validity(cert, user_id)
    first = not governed(project)
    with project.reading() as con:
        if one(con, "SELECT 1 FROM users WHERE user_id = ?", [user_id]):
            raise GovernanceError(f"User {user_id!r} already exists.", "Change their roles instead.")
    if first:
        roles = sorted(set(roles) | {"admin"})
        if by is None or by.user_id != user_id or cert_sha256(by.cert) != cert_sha256(cert):
            raise GovernanceError(f"The first user ({user_id}) signs their own registration, which starts governance.",
                                  "Unlock their identity with its passphrase; nothing was changed.")
        _require_identity(cert, user_id)
    else:
        _require_role(project, by, "admin", "add users")
        assert by is not None
        if countersign is not None:
            if countersign.user_id == by.user_id:
                raise GovernanceError("A countersignature must come from a second admin.", "Nothing was changed.")
            _require_role(project, countersign, "admin", "countersign a registration")
        if identity_problem(cert) and (countersign is None or "does not chain" not in identity_problem(cert)):
            _require_identity(cert, user_id)
    actor = by.user_id
    details = {"name": name, "roles": roles, "cert_sha256": cert_sha256(cert),
               "reason": reason or ("first user" if first else ""),
               **({"countersigned_by": countersign.user_id} if countersign else {})}
    with acting_as(actor), project.change("user.add", user_id, details) as con:
        if first:
            body = _genesis(project, user_id, name, cert, roles)
            details["statement_sha256"] = append_statement(con, "governance.start", user_id, body, by)
        else:
            details["statement_sha256"] = append_statement(
                con, "user.register", user_id, {"user_id": user_id, "name": name, "roles": sorted(roles),
                                                 "cert_pem": cert_pem(cert), "reason": reason}, by, countersign)
        con.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, true, now()::TIMESTAMP)",
                    [user_id, name, json.dumps(sorted(roles)), cert_pem(cert), cert_sha256(cert)])
    sign_head(project, by)
    return roles


def set_roles(project: Project, user_id: str, roles: list[str], by: Signer, reason: str) -> None:
    """Change a user's roles (admin only; reason required; old and new audited; a signed statement)."""
    _check_roles(roles)
    _require_role(project, by, "admin", "change roles")
    if not reason.strip():
        raise GovernanceError("Changing roles needs a reason.", "Say why; nothing was changed.")
    old = user_roles(project, user_id)
    if not old:
        raise GovernanceError(f"No active user {user_id!r}.", "Check the id with `lineproof user list`.")
    gained = sorted(set(roles) - set(old) - {"viewer"})
    if user_id == by.user_id and gained:
        raise GovernanceError(f"{by.user_id} may not grant themselves {', '.join(ROLE_NAMES[r] for r in gained)}: "
                              "an admin who could then approve alone would defeat the four-eyes rule.",
                              "Another admin must grant it; nothing was changed.")
    if "admin" in old and "admin" not in roles and governance(project).admins() == [user_id]:
        raise GovernanceError(f"{user_id} is the last admin; without one nobody could manage users again.",
                              "Make another user admin first; nothing was changed.")
    details: dict[str, Any] = {"old": old, "new": sorted(roles), "reason": reason}
    with acting_as(by.user_id), project.change("user.roles", user_id, details) as con:
        details["statement_sha256"] = append_statement(con, "user.roles", user_id, {
            "user_id": user_id, "roles": sorted(roles), "active": True, "reason": reason}, by)
        con.execute("UPDATE users SET roles_json = ? WHERE user_id = ?", [json.dumps(sorted(roles)), user_id])
    sign_head(project, by)


def tier_rules(project: Project) -> dict[str, dict[str, Any]]:
    """The rule of every risk tier (the signed ones once the project is governed)."""
    if governed(project):
        return governance(project).rules
    with project.reading() as con:
        return {t: json.loads(r) for t, r in con.execute("SELECT tier, rule_json FROM tier_rules").fetchall()}


def model_tier(project: Project, model_id: str) -> str:
    """A model's risk tier: the signed one once governed (the strictest tier when none was signed)."""
    if governed(project):
        return governance(project).tiers.get(model_id, TIER_ORDER[-1])
    with project.reading() as con:
        row = one(con, "SELECT risk_tier FROM models WHERE model_id = ?", [model_id])
    return row[0] if row else TIER_ORDER[-1]


def version_author(project: Project, version_id: str) -> str:
    """Who wrote a version: the signed author once governed."""
    if governed(project):
        return governance(project).authors.get(version_id, "")
    with project.reading() as con:
        row = one(con, "SELECT lineage_json FROM model_versions WHERE version_id = ?", [version_id])
    return str(json.loads((row[0] if row else None) or "{}").get("author") or "")


def set_tier_rule(project: Project, tier: str, rule: dict[str, Any], by: Signer, reason: str) -> None:
    """Change what a release to production needs for a tier (admin only; audited with old and new; signed)."""
    _require_role(project, by, "admin", "change risk-tier rules")
    if not reason.strip():
        raise GovernanceError("Changing a tier rule needs a reason.", "Say why; nothing was changed.")
    old = tier_rules(project).get(tier)
    if old is None:
        raise GovernanceError(f"Unknown risk tier {tier!r}.", f"Tiers: {', '.join(TIER_ORDER)}.")
    steps = rule.get("steps") or []
    if not steps or any(len(s) != 2 or s[0] not in ("review", "approve") or s[1] not in ROLES for s in steps):
        raise GovernanceError("A tier rule needs steps like [['review', 'validation_lead'], ['approve', 'approver']].",
                              "Nothing was changed.")
    if steps[-1][0] != "approve":
        raise GovernanceError("The last step of a tier rule must be an approval.", "Nothing was changed.")
    details: dict[str, Any] = {"old": old, "new": rule, "reason": reason}
    with acting_as(by.user_id), project.change("tier.rule", tier, details) as con:
        details["statement_sha256"] = append_statement(con, "tier.rule", tier, {"rule": rule, "reason": reason}, by)
        con.execute("UPDATE tier_rules SET rule_json = ? WHERE tier = ?", [json.dumps(rule, sort_keys=True), tier])
    sign_head(project, by)


def check_signer(project: Project, by: Signer, kind: str) -> None:
    """Refuse, before anything changes, a signer who may not make a statement of this kind."""
    require_anchor(project)
    if not user_roles(project, by.user_id) or user_roles(project, by.user_id) == ["viewer"]:
        raise GovernanceError(f"{by.user_id} may not sign a {kind} statement (no role beyond viewer).",
                              "Ask an engineer, a validation lead or an admin; nothing was changed.")
    _require_registered_cert(project, by)


def sign_statement(project: Project, action: str, kind: str, subject: str, body: dict[str, Any], by: Signer,
                   details: dict[str, Any] | None = None, apply: Callable[[Any], None] | None = None) -> None:
    """One signed statement with its audit entry, and `apply` (the row change it backs) in the same transaction."""
    check_signer(project, by, kind)
    details = {**(details or {}), **body}
    with acting_as(by.user_id), project.change(action, subject, details) as con:
        if apply is not None:
            apply(con)
        details["statement_sha256"] = append_statement(con, kind, subject, body, by)
    sign_head(project, by)


# ----- unlocking a signing identity (with a lockout counted on this PC, outside the project)
def unlock(project: Project, user_id: str, passphrase: str) -> Signer:
    """Open a user's identity for signing; 5 wrong passphrases lock it for 15 minutes (audited, and counted on
    this PC so that restoring an older database does not reset it)."""
    now = datetime.now(UTC)
    lock = trust.lockout_state(user_id)
    failures = int(lock.get("failures") or 0)
    locked_at = datetime.fromisoformat(lock["locked_at"]) if lock.get("locked_at") else None
    is_governed = governed(project)
    if is_governed and not user_roles(project, user_id):
        state = require_anchor(project)
        fact = state.users.get(user_id)
        if fact is not None and fact.revoked_at:
            raise GovernanceError(f"{user_id}'s signing key was revoked on {fact.revoked_at[:16]} UTC "
                                  f"({fact.revoke_reason}); nothing signed with it counts after that.",
                                  "Ask an admin to register a new identity for you.")
        raise GovernanceError(f"{user_id} is not a user of this project.", "Ask an admin to add you.")
    if locked_at is not None and now - locked_at < timedelta(minutes=LOCK_MINUTES):
        left = max(1, LOCK_MINUTES - int((now - locked_at).total_seconds() // 60))
        raise GovernanceError(f"Signing is locked for {user_id} after {MAX_FAILURES} wrong passphrases.",
                              f"Try again in about {left} minutes, or ask an admin.")
    if locked_at is not None:
        failures = 0
    try:
        signer = unlock_identity(user_id, passphrase)
    except WrongPassphrase:
        count = failures + 1
        trust.record_lockout(user_id, count, now.isoformat() if count >= MAX_FAILURES else None)
        if not project.read_only:
            with acting_as(user_id), project.change("signing.failed", user_id, {"attempt": count}) as con:
                con.execute("INSERT INTO signing_failures VALUES (?, ?)", [user_id, now.replace(tzinfo=None)])
        if count >= MAX_FAILURES:
            if not project.read_only:
                with acting_as(user_id), project.change("signing.locked", user_id,
                                                        {"failures": count, "minutes": LOCK_MINUTES}):
                    pass
            raise GovernanceError(f"Wrong passphrase for {user_id} ({count} in a row): signing is locked for "
                                  f"{LOCK_MINUTES} minutes.", "This was recorded in the audit trail.") from None
        raise GovernanceError(f"Wrong passphrase for {user_id} ({count} of {MAX_FAILURES} before signing locks).",
                              "Type the passphrase of your signing identity.") from None
    _refuse_revoked_certificate(signer)
    user = governance(project).users.get(user_id) if is_governed else None
    if user is not None and cert_sha256(signer.cert) != user.cert_sha256:
        raise GovernanceError(f"The identity in your profile is not the certificate registered for {user_id}.",
                              "Use the identity you registered with, or ask an admin to register the new one.")
    if failures or locked_at is not None:
        trust.record_lockout(user_id, 0, None)
        if not project.read_only:
            with acting_as(user_id), project.change("signing.unlocked", user_id, {"after_failures": failures}):
                pass
    return signer


def _refuse_revoked_certificate(signer: Signer) -> None:
    """A key the site CA revoked (its CRL kept on this PC) signs nothing from the revocation on."""
    from app.core.governance.revocation import revocation_of

    revoked, _ = revocation_of(signer.cert)
    if revoked is not None and revoked.revoked_at <= datetime.now(UTC):
        raise GovernanceError(f"{signer.user_id}'s certificate was revoked on {revoked.revoked_at:%Y-%m-%d %H:%M} "
                              f"UTC ({revoked.reason}; {revoked.source}).",
                              "Ask the site CA for a new certificate and an admin to register it; nothing was "
                              "signed.")


def revoke_user(project: Project, user_id: str, reason: str, by: Signer) -> None:
    """Withdraw a user's key (admin only; a signed statement, audited): nothing they sign afterwards counts, what
    they signed before keeps its value."""
    from app.core.governance.revocation import REASONS

    if reason not in REASONS:
        raise GovernanceError(f"Unknown revocation reason {reason!r}.", f"Use one of: {', '.join(REASONS)}.")
    _require_role(project, by, "admin", "revoke a key")
    state = governance(project)
    user = state.users.get(user_id)
    if user is None or user.revoked_at:
        raise GovernanceError(f"{user_id} is not a user with a valid key in this project" +
                              (f" (revoked on {user.revoked_at[:16]} UTC)." if user else "."),
                              "Check the id with `lineproof user list`; nothing was changed.")
    if "admin" in user.roles and state.admins() == [user_id]:
        raise GovernanceError(f"{user_id} is the last admin; without one nobody could manage users again.",
                              "Make another user admin first; nothing was changed.")
    body = {"user_id": user_id, "cert_sha256": user.cert_sha256, "reason": reason}
    details: dict[str, Any] = dict(body)
    with acting_as(by.user_id), project.change("user.revoke", user_id, details) as con:
        details["statement_sha256"] = append_statement(con, "user.revoke", user_id, body, by)
        con.execute("UPDATE users SET active = false WHERE user_id = ?", [user_id])
    sign_head(project, by)


# ----- requests and decisions
def _subject(project: Project, version_id: str, site: str, stage: str, validation_run_id: str | None
             ) -> dict[str, Any]:
    with project.reading() as con:
        row = one(con, "SELECT v.sha256, v.runtimes_json, m.risk_tier, v.model_id FROM model_versions v "
                       "JOIN models m USING (model_id) WHERE version_id = ?", [version_id])
        if row is None:
            raise GovernanceError(f"No model version {version_id!r}.", "Check the id with `lineproof models`.")
        run = None
        if validation_run_id:
            run = one(con, "SELECT verdict, result_sha256, plan_sha256, dataset_sha256, candidate_version "
                           "FROM validation_runs WHERE run_id = ?", [validation_run_id])
            if run is None:
                raise GovernanceError(f"No validation run {validation_run_id!r}.",
                                      "Run `lineproof validate` first, or check the run id.")
            if run[4] != version_id:
                raise GovernanceError(f"Validation run {validation_run_id} validated {run[4]}, not {version_id}.",
                                      "Name the validation run of this version.")
            if governed(project):
                signed = signed_run(project, validation_run_id)
                if (signed.get("verdict"), signed.get("result_sha256"), signed.get("plan_sha256"),
                        signed.get("dataset_sha256"), signed.get("candidate_version")) != tuple(run):
                    raise GovernanceError(f"Validation run {validation_run_id} in the database differs from its "
                                          f"signed result (signed verdict {signed.get('verdict')}).",
                                          "The run row was edited; validate again. Nothing was changed.")
        plan = None
        if run is not None:
            plan = one(con, "SELECT plan_id, revision FROM validation_plans WHERE sha256 = ? "
                            "ORDER BY saved_at LIMIT 1", [run[2]])
            text = one(con, "SELECT plan_toml FROM validation_runs WHERE run_id = ?", [validation_run_id])[0]
            if hashlib.sha256(text.encode("utf-8")).hexdigest() != run[2]:
                raise GovernanceError(f"The plan stored with validation run {validation_run_id} does not match its "
                                      "sha256: it was edited after the run.", "Validate again; nothing was changed.")
    files = json.loads(row[1] or "{}").get("files", {})
    # The subject is what every decision signs: the author and the tier's rule are in it, so that changing who
    # may approve, or what approval needs, after the request voids the decisions instead of passing silently.
    tier = model_tier(project, row[3])
    return {"version_id": version_id, "model_id": row[3], "model_sha256": row[0], "files": files,
            "risk_tier": tier, "rule": tier_rules(project)[tier], "author": version_author(project, version_id),
            "target_stage": stage, "site": site, "validation_run_id": validation_run_id,
            "validation_verdict": run[0] if run else None, "validation_result_sha256": run[1] if run else None,
            "plan_sha256": run[2] if run else None, "dataset_sha256": run[3] if run else None,
            "plan_revision": f"{plan[0]}#{plan[1]}" if plan else None}


def signed_run(project: Project, run_id: str) -> dict[str, Any]:
    """A validation run's signed result (governed projects); refuses a run nobody signed."""
    fact = governance(project).runs.get(run_id)
    if fact is None:
        raise GovernanceError(f"Validation run {run_id} has no signed result, so it cannot support a release.",
                              f"Sign it as the person who ran it: lineproof validations PROJECT --sign {run_id} "
                              "--as USER; nothing was changed.")
    return fact


def create_request(project: Project, version_id: str, site: str, stage: str, by: Signer,
                   validation_run_id: str | None = None, comment: str = "") -> str:
    """Ask for a version to move to a stage at a site (a signed statement); returns the request id."""
    require_anchor(project)
    if not user_roles(project, by.user_id):
        raise GovernanceError(f"{by.user_id} is not a user of this project.", "Ask an admin to add you.")
    if "viewer" in user_roles(project, by.user_id) and len(user_roles(project, by.user_id)) == 1:
        raise GovernanceError(f"{by.user_id} is a viewer and may not request releases.", "Ask an engineer.")
    subject = _subject(project, version_id, site, stage, validation_run_id)
    rule = tier_rules(project)[subject["risk_tier"]]
    if rule.get("needs_validation") and stage == "production" and subject["validation_verdict"] != "PASS":
        got = f"run {validation_run_id} is {subject['validation_verdict']}" if validation_run_id else "none was named"
        raise GovernanceError(f"Risk tier {subject['risk_tier']} needs a passed validation run for production "
                              f"({got}).", "Validate the version (lineproof validate) and name the passed run.")
    if rule.get("needs_validation") and stage == "production" and subject["plan_revision"] is None:
        raise GovernanceError(f"Validation run {validation_run_id} used a plan that is not a saved revision.",
                              "Save the plan in the project (Validation screen or --plan with a stored plan) and "
                              "validate with it; the request pins that revision.")
    request_id = f"REQ-{datetime.now(UTC):%Y%m%d}-{uuid.uuid4().hex[:6]}"
    sha = hashlib.sha256(canonical(subject)).hexdigest()
    _require_registered_cert(project, by)
    details = {"subject_sha256": sha, **subject, "comment": comment}
    with acting_as(by.user_id), project.change("approval.request", request_id, details) as con:
        details["statement_sha256"] = append_statement(con, "release.request", request_id, {
            "subject_sha256": sha, "version_id": version_id, "site": site, "stage": stage}, by)
        con.execute("INSERT INTO approval_requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP, ?, 'open')",
                    [request_id, version_id, site, stage, validation_run_id, canonical(subject).decode("utf-8"),
                     sha, by.user_id, comment])
    sign_head(project, by)
    return request_id


@dataclass
class RequestStatus:
    """Where a request stands: done steps, the next step, and the state."""

    request_id: str
    version_id: str
    site: str
    target_stage: str
    state: str
    risk_tier: str
    rule: dict[str, Any]
    decisions: list[dict[str, Any]]
    next_step: tuple[str, str] | None

    def describe_missing(self) -> str:
        """What is still needed, in words."""
        steps = self.rule["steps"][len([d for d in self.decisions if d["decision"] != "reject"]):]
        return ", ".join(f"{'a review' if a == 'review' else 'an approval'} by {ROLE_NAMES[r]}" for a, r in steps)


def request_status(project: Project, request_id: str) -> RequestStatus:
    """The state of one request with its decisions in order."""
    with project.reading() as con:
        row = one(con, "SELECT version_id, site, target_stage, state, subject_json FROM approval_requests "
                       "WHERE request_id = ?", [request_id])
        if row is None:
            raise GovernanceError(f"No approval request {request_id!r}.", "List them with `lineproof request --list`.")
        decisions = con.sql("SELECT * FROM approval_decisions WHERE request_id = ? ORDER BY step",
                            params=[request_id]).pl().to_dicts()
    subject = json.loads(row[4])
    rule = subject.get("rule") or tier_rules(project)[subject["risk_tier"]]  # the rule the request was made under
    done = len([d for d in decisions if d["decision"] != "reject"])
    nxt = tuple(rule["steps"][done]) if row[3] == "open" and done < len(rule["steps"]) else None
    return RequestStatus(request_id, row[0], row[1], row[2], row[3], subject["risk_tier"], rule, decisions, nxt)


_payload = decision_payload


def decide(project: Project, request_id: str, decision: str, signer: Signer, comment: str) -> RequestStatus:
    """Review, approve or reject a request, signed with the user's key; order and roles are enforced."""
    if decision not in MEANINGS:
        raise GovernanceError(f"Unknown decision {decision!r}.", "Use review, approve or reject.")
    if not comment.strip():
        raise GovernanceError("A decision needs a comment.", "Say what you checked; nothing was signed.")
    status = request_status(project, request_id)
    if status.state != "open":
        raise GovernanceError(f"{request_id} is {status.state}; it takes no more decisions.",
                              "Create a new request if needed.")
    try:
        check_validity(signer.cert, signer.user_id)
    except LineproofError as exc:
        raise GovernanceError(f"{exc.what} A decision cannot be signed with it.", exc.todo) from None
    require_anchor(project)
    if request_id not in governance(project).requests:
        raise GovernanceError(f"{request_id} is not a signed request (the row was added outside Lineproof).",
                              "Create the request again with `lineproof request`; nothing was signed.")
    _require_registered_cert(project, signer)
    roles = user_roles(project, signer.user_id)
    assert status.next_step is not None
    action, role = status.next_step
    if decision == "reject":
        needed = {r for _, r in status.rule["steps"]}
        role = next((r for r in roles if r in needed), "")
        if not role:
            raise GovernanceError(f"{signer.user_id} may not reject {request_id}: that needs one of the roles "
                                  f"{', '.join(ROLE_NAMES[r] for r in sorted(needed))}.", "Nothing was signed.")
    else:
        if decision != action:
            raise GovernanceError(f"{request_id} cannot be {MEANINGS[decision].split()[0]} yet: it first needs "
                                  f"{status.describe_missing().split(', ')[0]}.", "Nothing was signed.")
        if role not in roles:
            raise GovernanceError(f"{signer.user_id} ({', '.join(ROLE_NAMES[r] for r in roles) or 'no role'}) may not "
                                  f"{decision} {request_id}: this step needs the {ROLE_NAMES[role]} role.",
                                  "Nothing was signed.")
        if status.rule.get("distinct_people") and any(d["user_id"] == signer.user_id for d in status.decisions):
            raise GovernanceError(f"{signer.user_id} already signed {request_id}; risk tier {status.risk_tier} needs "
                                  "a different person for each step.", "Nothing was signed.")
        state = governance(project)
        requester = state.requests.get(request_id, {}).get("requested_by")
        name = state.users[signer.user_id].name if signer.user_id in state.users else signer.user_id
        author = version_author(project, status.version_id)
        if decision == "approve" and signer.user_id == requester:
            raise GovernanceError(f"{signer.user_id} asked for {request_id} and may not approve it (four eyes).",
                                  "Another approver must decide; nothing was signed.")
        if author and author in (signer.user_id, name) and (decision == "approve" or status.rule.get("exclude_author")):
            raise GovernanceError(f"{signer.user_id} is the author of {status.version_id} and may not "
                                  f"{decision} its release (risk tier {status.risk_tier}).", "Nothing was signed.")
    with project.reading() as con:
        subject_sha = one(con, "SELECT subject_sha256 FROM approval_requests WHERE request_id = ?", [request_id])[0]
    step = len(status.decisions) + 1
    decided_at = datetime.now(UTC).isoformat(timespec="seconds")
    payload = _payload(request_id, subject_sha, step, signer.user_id, role, decision, comment, decided_at)
    signature = base64.b64encode(signer.sign(payload)).decode("ascii")
    decision_id = f"{request_id}-{step}"
    done_after = len([d for d in status.decisions if d["decision"] != "reject"]) + (decision != "reject")
    new_state = "rejected" if decision == "reject" else "approved" if done_after == len(status.rule["steps"]) \
        else "open"
    details = {"request_id": request_id, "decision": decision, "meaning": MEANINGS[decision], "role": role,
               "payload_sha256": hashlib.sha256(payload).hexdigest(), "state": new_state}
    with acting_as(signer.user_id), project.change(f"approval.{decision}", decision_id, details) as con:
        con.execute("INSERT INTO approval_decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [decision_id, request_id, step, signer.user_id, role, decision, MEANINGS[decision], comment,
                     decided_at, hashlib.sha256(payload).hexdigest(), signature, cert_sha256(signer.cert)])
        con.execute("UPDATE approval_requests SET state = ? WHERE request_id = ?", [new_state, request_id])
    sign_head(project, signer)
    return request_status(project, request_id)


def verify_decisions(project: Project, request_id: str | None = None) -> list[dict[str, Any]]:
    """Check every decision's signature against its row, its request's subject and the signer's certificate as
    the signed record registers it (never the users table)."""
    where = "WHERE d.request_id = ?" if request_id else ""
    state = governance(project)
    with project.reading() as con:
        rows = con.sql(f"""SELECT d.*, r.subject_sha256 AS req_subject, r.subject_json
                           FROM approval_decisions d LEFT JOIN approval_requests r USING (request_id)
                           {where} ORDER BY d.request_id, d.step""",
                       params=[request_id] if request_id else []).pl().to_dicts()
    out = []
    for d in rows:
        problem = ""
        user = state.users.get(d["user_id"])
        signed_request = state.requests.get(d["request_id"])
        if d["req_subject"] is None:
            problem = "its request does not exist"
        elif hashlib.sha256(d["subject_json"].encode("utf-8")).hexdigest() != d["req_subject"]:
            problem = "the request's subject was changed after the request was made"
        elif signed_request is None or signed_request["subject_sha256"] != d["req_subject"]:
            problem = "its request is not a signed request"
        elif user is None or user.cert_sha256 != d["cert_sha256"]:
            problem = "the signer's certificate is not the one registered for the user"
        elif user.revoked_at and _after_revocation(project, d, user):
            problem = (f"it was signed after {user.user_id}'s key was revoked on {user.revoked_at[:16]} UTC "
                       f"({user.revoke_reason})")
        else:
            payload = _payload(d["request_id"], d["req_subject"], d["step"], d["user_id"], d["role"], d["decision"],
                               d["comment"], d["decided_at"])
            if hashlib.sha256(payload).hexdigest() != d["payload_sha256"] or d["meaning"] != MEANINGS.get(
                    d["decision"]):
                problem = "the decision row was edited or moved after signing"
            elif not verify_signature(user.cert_pem, payload, base64.b64decode(d["signature"])):
                problem = "the signature does not match the decision (edited or moved)"
        out.append({"decision_id": d["decision_id"], "request_id": d["request_id"], "user_id": d["user_id"],
                    "decision": d["decision"], "ok": not problem, "problem": problem})
    return out


def _after_revocation(project: Project, decision: dict[str, Any], user: Any) -> bool:
    with project.reading() as con:
        return decided_after_revocation(con, decision["decision_id"], user)


def clearing_request(project: Project, version_id: str, site: str) -> tuple[str | None, str | None]:
    """(what is missing or None, the signed request that clears the release): production is reached only by
    replaying verified statements and signed decisions, never by reading a state column."""
    if not governed(project):
        return None, None
    state = require_anchor(project)
    with project.reading() as con:
        model_id = one(con, "SELECT model_id FROM model_versions WHERE version_id = ?", [version_id])[0]
    tier = model_tier(project, model_id)
    rule = tier_rules(project)[tier]
    needs = ", ".join(f"{'a review' if a == 'review' else 'an approval'} by {ROLE_NAMES[r]}" for a, r in rule["steps"])
    extra = (" (different people" + (", not the model's author" if rule.get("exclude_author") else "") + ")") \
        if rule.get("distinct_people") and len(rule["steps"]) > 1 else ""
    base = (f"{version_id} cannot go to production at {site}: risk tier {tier} needs "
            f"{'a passed validation run, ' if rule.get('needs_validation') else ''}{needs}{extra}.")
    requests = [r for r, f in reversed(state.requests.items())
                if (f["version_id"], f["site"], f["stage"]) == (version_id, site, "production")]
    if not requests:
        return base + " Missing: an approval request (lineproof request).", None
    status = request_status(project, requests[0])
    if status.state == "rejected" or any(d["decision"] == "reject" for d in status.decisions):
        return base + f" Request {status.request_id} was rejected.", None
    if len(status.decisions) < len(status.rule["steps"]):
        return base + f" Request {status.request_id} still needs {status.describe_missing()}.", None
    bad = [v for v in verify_decisions(project, status.request_id) if not v["ok"]]
    if bad:
        return base + f" Request {status.request_id} has a decision that fails verification: {bad[0]['problem']}.", \
            None
    with project.reading() as con:
        problem = release_problem(state, con, status.request_id, version_id, site)
    if problem:
        return base + f" Request {status.request_id} does not clear it: {problem}.", None
    current = _subject(project, version_id, site, "production", _request_run(project, status.request_id))
    if hashlib.sha256(canonical(current)).hexdigest() != state.requests[status.request_id]["subject_sha256"]:
        return base + f" The model or validation changed since request {status.request_id} was approved.", None
    return None, status.request_id


def production_clearance(project: Project, version_id: str, site: str) -> str | None:
    """None when the version may go to production at the site; otherwise what is missing, in words."""
    return clearing_request(project, version_id, site)[0]


def _request_run(project: Project, request_id: str) -> str | None:
    with project.reading() as con:
        return one(con, "SELECT validation_run_id FROM approval_requests WHERE request_id = ?", [request_id])[0]


def mark_applied(con, version_id: str, site: str) -> None:
    """After a promotion: the approved request that allowed it is used up."""
    con.execute("UPDATE approval_requests SET state = 'applied' WHERE version_id = ? AND site = ? AND "
                "target_stage = 'production' AND state = 'approved'", [version_id, site])


def list_requests(project: Project, state: str | None = None) -> pl.DataFrame:
    """Requests, newest first, with how many decisions they have."""
    with project.reading() as con:
        return con.sql("""SELECT r.request_id, r.version_id, r.site, r.target_stage, r.state, r.requested_by,
                                 r.requested_at, r.validation_run_id, r.subject_sha256,
                                 (SELECT count(*) FROM approval_decisions d WHERE d.request_id = r.request_id)
                                   AS decisions
                          FROM approval_requests r WHERE ? IS NULL OR r.state = ?
                          ORDER BY r.requested_at DESC""", params=[state, state]).pl()
