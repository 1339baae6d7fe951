"""Signed governance statements, and the state that replaying the ones that verify gives.

Every governance fact (a user and their roles, a tier rule, a model's risk tier, a version's author, a release
request, a validation run's result, a stage change) is a statement signed by a registered user whose identity
chains to this PC's trust anchor. Statements are chained (each names the previous one's sha256) and bound to the
project (the hash of its first audit entry). Decisions read only the replayed state: a table row that no verified
statement backs is ignored and reported ("unsigned row in users: ghost"), never used.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
from cryptography import x509

from app.core.governance import trust
from app.core.governance.identity import Signer, cert_pem, cert_sha256, verify_signature
from app.core.store.db import one
from app.core.store.migrations.m008_governance import TIER_RULES

FORMAT = "lineproof-statement/1"
GENESIS = "0" * 64
ADMIN_KINDS = ("user.register", "user.roles", "tier.rule", "user.revoke")
# Seeded by migration 8 (its rules are the defaults); a project adopts the table as it stands in governance.start.
DEFAULT_RULES = TIER_RULES
TIER_ORDER = ("low", "medium", "high", "safety-relevant")
MEANINGS = {"review": "reviewed by", "approve": "approved by", "reject": "rejected by"}


def canonical(data: Any) -> bytes:
    """The canonical JSON bytes that statements are signed over."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def decision_payload(request_id: str, subject_sha256: str, step: int, user_id: str, role: str, decision: str,
                     comment: str, decided_at: str) -> bytes:
    """What an approval decision signs: the request, its subject's hash, the step, who, as what, and why."""
    return canonical({"request_id": request_id, "subject_sha256": subject_sha256, "step": step, "user_id": user_id,
                      "role": role, "decision": decision, "meaning": MEANINGS.get(decision, ""), "comment": comment,
                      "decided_at": decided_at})


def project_key(con: duckdb.DuckDBPyConnection) -> str:
    """The project's identity: the hash of its first audit entry (its creation)."""
    row = one(con, "SELECT entry_hash FROM audit_log WHERE seq = 1")
    return str(row[0]) if row else GENESIS


def _payload(key: str, seq: int, kind: str, subject: str, body: dict, signer: str, cert_sha: str, signed_at: str,
             prev: str) -> bytes:
    return canonical({"format": FORMAT, "project": key, "seq": seq, "kind": kind, "subject": subject, "body": body,
                      "signer": signer, "cert_sha256": cert_sha, "signed_at": signed_at, "prev": prev})


def append_statement(con: duckdb.DuckDBPyConnection, kind: str, subject: str, body: dict[str, Any], signer: Signer,
                     cosigner: Signer | None = None) -> str:
    """Sign and store one statement inside the caller's audited transaction; returns its sha256."""
    last = one(con, "SELECT seq, sha256 FROM statements ORDER BY seq DESC LIMIT 1")
    seq = int(last[0]) + 1 if last else 1
    prev = str(last[1]) if last else GENESIS
    signed_at = datetime.now(UTC).isoformat(timespec="microseconds")
    payload = _payload(project_key(con), seq, kind, subject, body, signer.user_id, cert_sha256(signer.cert),
                       signed_at, prev)
    sha = hashlib.sha256(payload).hexdigest()
    cosig = base64.b64encode(cosigner.sign(payload)).decode("ascii") if cosigner else None
    con.execute("INSERT INTO statements VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [seq, kind, subject, json.dumps(body, sort_keys=True), signer.user_id, cert_pem(signer.cert),
                 signed_at, prev, sha, base64.b64encode(signer.sign(payload)).decode("ascii"),
                 cosigner.user_id if cosigner else None, cert_pem(cosigner.cert) if cosigner else None, cosig])
    return sha


@dataclass
class UserFact:
    """A user as the verified statements say."""

    user_id: str
    name: str
    cert_pem: str
    cert_sha256: str
    roles: list[str]
    active: bool = True
    granted_by: str = ""  # the admin who last registered or re-roled them alone (rule 3: no lone sponsor)
    revoked_at: str = ""  # when an admin withdrew their key (the statement's signing time), and why
    revoke_reason: str = ""
    revoke_statement: str = ""  # that statement's sha256: its audit entry orders everything signed around it


@dataclass
class GovernanceState:
    """What the verified statements establish, and every row or statement that was ignored."""

    anchored: bool
    anchor_note: str = ""
    started: bool = False
    users: dict[str, UserFact] = field(default_factory=dict)
    rules: dict[str, dict] = field(default_factory=lambda: json.loads(json.dumps(DEFAULT_RULES)))
    tiers: dict[str, str] = field(default_factory=dict)
    authors: dict[str, str] = field(default_factory=dict)
    runs: dict[str, dict] = field(default_factory=dict)
    requests: dict[str, dict] = field(default_factory=dict)
    stages: dict[tuple[str, str], str] = field(default_factory=dict)
    version_model: dict[str, str] = field(default_factory=dict)
    production_log: list[tuple[str, str, str]] = field(default_factory=list)  # (model, site, version) in order
    stage_rows: dict[int, tuple] = field(default_factory=dict)  # change_id -> (version, site, stage) signed
    statements: int = 0
    verified: int = 0
    problems: list[str] = field(default_factory=list)

    def roles(self, user_id: str) -> list[str]:
        """Roles of an active, verified user ([] otherwise)."""
        user = self.users.get(user_id)
        return list(user.roles) if user and user.active and not user.revoked_at else []

    def admins(self) -> list[str]:
        """Active admins."""
        return sorted(u for u, f in self.users.items() if f.active and "admin" in f.roles)


def _cert(pem: str) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, TypeError):
        return None


def _has_digital_signature(cert: x509.Certificate) -> bool:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        return bool(usage.digital_signature or usage.content_commitment)
    except x509.ExtensionNotFound:
        return True  # no KeyUsage extension: not restricted (RFC 5280)


def identity_problem(cert: x509.Certificate, roots: list[x509.Certificate] | None = None) -> str:
    """'' when a certificate may be a Lineproof identity on this PC: chains to the anchor, may sign."""
    if not _has_digital_signature(cert):
        return f"{cert.subject.rfc4514_string()} is not allowed to sign (no digitalSignature key usage)"
    return trust.chain_problem(cert, roots, at=cert.not_valid_before_utc)


def replay(con: duckdb.DuckDBPyConnection, roots: list[x509.Certificate] | None = None) -> GovernanceState:
    """Verify every statement in order and build the governance state; report unsigned rows of the tables."""
    roots = trust.anchors() if roots is None else roots
    state = GovernanceState(anchored=bool(roots),
                            anchor_note="" if roots else "this PC has no trust anchor configured: governance is "
                                                         "not verified (lineproof trust add SITE-CA.pem)")
    key = project_key(con)
    rows = con.execute("SELECT seq, kind, subject, body_json, signer, cert_pem, signed_at, prev_sha256, sha256, "
                       "signature, cosigner, cosigner_cert_pem, cosignature FROM statements ORDER BY seq").fetchall()
    state.statements = len(rows)
    prev, broken = GENESIS, ""
    for expected, row in enumerate(rows, start=1):
        seq, kind, subject, body_json, signer, pem, signed_at, prev_sha, sha, signature, cos, cos_pem, cosig = row
        where = f"statement {seq} ({kind} {subject})"
        if broken:
            state.problems.append(f"{where}: ignored, the statement chain is broken before it ({broken})")
            continue
        try:
            body = json.loads(body_json)
        except ValueError:
            body = None
        cert = _cert(pem)
        payload = _payload(key, int(seq), kind, subject, body, signer, cert_sha256(cert) if cert else "",
                           signed_at, prev_sha) if body is not None and cert is not None else b""
        if seq != expected or prev_sha != prev:
            broken = f"statement {expected} is missing or was moved"
        elif not payload or hashlib.sha256(payload).hexdigest() != sha:
            broken = f"{where} was edited after it was signed, or was signed for another project"
        elif not verify_signature(pem, payload, _b64(signature)):
            broken = f"{where} carries a signature that does not match it"
        if broken:
            state.problems.append(f"{where}: ignored, {broken}")
            continue
        prev = sha
        if not roots:
            continue
        problem = _apply(state, int(seq), kind, subject, body, signer, pem, cert, payload, cos, cos_pem, cosig,
                         con, roots)
        if problem:
            state.problems.append(f"{where} by {signer}: ignored, {problem}")
        else:
            state.verified += 1
    _report_unsigned_rows(con, state)
    return state


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text)
    except (ValueError, TypeError):
        return b""


def _signer_problem(state: GovernanceState, signer: str, cert: x509.Certificate, roots: list) -> str:
    user = state.users.get(signer)
    if user is not None and user.revoked_at:
        return f"{signer}'s key was revoked at {user.revoked_at[:16]} ({user.revoke_reason}) before it"
    if user is None or not user.active:
        return f"{signer} is not an active user at that point"
    if user.cert_sha256 != cert_sha256(cert):
        return f"it is signed with a certificate that is not {signer}'s registered one"
    return identity_problem(cert, roots)


def _apply(state: GovernanceState, seq: int, kind: str, subject: str, body: dict, signer: str, pem: str,
           cert: x509.Certificate, payload: bytes, cos: str | None, cos_pem: str | None, cosig: str | None,
           con: duckdb.DuckDBPyConnection, roots: list) -> str:
    """Apply one verified-signature statement if its signer was allowed to make it; '' or the reason not."""
    if kind == "governance.start":
        if state.started:
            return "governance was started already"
        problem = identity_problem(cert, roots)
        if problem:
            return problem
        if body.get("user", {}).get("user_id") != signer:
            return "the first admin must sign their own registration"
        state.started = True
        user = body["user"]
        state.users[signer] = UserFact(signer, user["name"], pem, cert_sha256(cert), sorted(user["roles"]))
        state.rules.update(body.get("rules") or {})
        state.tiers.update(body.get("tiers") or {})
        state.authors.update(body.get("authors") or {})
        state.runs.update(body.get("runs") or {})
        for item in body.get("stages") or []:
            state.stages[(item["version_id"], item["site"])] = item["stage"]
            state.version_model[item["version_id"]] = item["model_id"]
            if item["stage"] == "production":
                state.production_log.append((item["model_id"], item["site"], item["version_id"]))
        state.stage_rows.update({int(r[0]): tuple(r[1:]) for r in body.get("stage_rows") or []})
        return ""
    if not state.started:
        return "governance was never started by a verified first admin"
    problem = _signer_problem(state, signer, cert, roots)
    if problem:
        return problem
    roles = state.roles(signer)
    if kind in ADMIN_KINDS and "admin" not in roles:
        return f"{kind} needs an admin; {signer} holds {', '.join(roles) or 'no role'}"
    if kind == "user.register":
        return _register(state, signer, body, payload, cos, cos_pem, cosig, roots)
    if kind == "user.roles":
        return _reroles(state, signer, body)
    if kind == "user.revoke":
        return _revoke(state, signer, body, payload)
    if kind == "tier.rule":
        state.rules[subject] = body["rule"]
        return ""
    if roles in ([], ["viewer"]):
        return f"{signer} holds no role that may make a {kind} statement"
    if kind == "model.tier":
        old = state.tiers.get(subject)
        tier = body.get("tier")
        if tier not in TIER_ORDER:
            return f"unknown tier {tier!r}"
        if old and TIER_ORDER.index(tier) < TIER_ORDER.index(old) and not {"admin", "validation_lead"} & set(roles):
            return f"lowering {subject} from {old} to {tier} needs an admin or a validation lead"
        state.tiers[subject] = tier
        return ""
    if kind == "version.author":
        state.authors[subject] = str(body.get("author") or "")
        return ""
    if kind == "validation.run":
        state.runs[subject] = {**body, "signed_by": signer}
        return ""
    if kind == "release.request":
        state.requests[subject] = {**body, "requested_by": signer}
        return ""
    if kind == "stage.set":
        return _stage(state, signer, body, con)
    return f"unknown statement kind {kind!r}"


def _register(state: GovernanceState, signer: str, body: dict, payload: bytes, cos: str | None,
              cos_pem: str | None, cosig: str | None, roots: list) -> str:
    user_id = body.get("user_id", "")
    if user_id in state.users:
        return f"{user_id} is registered already"
    new = _cert(body.get("cert_pem", ""))
    if new is None:
        return "the registered certificate cannot be read"
    problem = identity_problem(new, roots)
    cosigned = False
    if cos:  # a second admin's countersignature lets a certificate the anchor did not issue in
        if cos == signer or "admin" not in state.roles(cos) or cos_pem != state.users[cos].cert_pem or \
                not verify_signature(cos_pem, payload, _b64(cosig or "")):
            return f"the countersignature of {cos} is not a valid second admin's"
        cosigned = True
        if problem and "does not chain" in problem:
            problem = ""
    if problem:
        return f"{user_id}: {problem}"
    roles = sorted(body.get("roles") or [])
    state.users[user_id] = UserFact(user_id, body.get("name", user_id), body["cert_pem"], cert_sha256(new), roles,
                                    True, "" if cosigned else signer)
    return ""


def _reroles(state: GovernanceState, signer: str, body: dict) -> str:
    user = state.users.get(body.get("user_id", ""))
    if user is None:
        return f"{body.get('user_id')} is not a registered user"
    if user.revoked_at:
        return f"{user.user_id}'s key was revoked: a revoked key is never given roles again (register a new identity)"
    roles = sorted(body.get("roles") or [])
    gained = set(roles) - set(user.roles) - {"viewer"}
    if user.user_id == signer and gained:
        return f"{signer} may not grant themselves {', '.join(sorted(gained))}"
    if "admin" in user.roles and "admin" not in roles and state.admins() == [user.user_id]:
        return f"{user.user_id} is the last admin"
    if user.user_id != signer:  # the admin who last set someone's roles is their sponsor (rule 3)
        user.granted_by = signer
    user.roles = roles
    user.active = bool(body.get("active", True))
    return ""


def _revoke(state: GovernanceState, signer: str, body: dict, payload: bytes) -> str:
    user = state.users.get(body.get("user_id", ""))
    if user is None:
        return f"{body.get('user_id')} is not a registered user"
    if user.cert_sha256 != body.get("cert_sha256"):
        return f"it names a certificate that is not {user.user_id}'s registered one"
    if "admin" in user.roles and state.admins() == [user.user_id]:
        return f"{user.user_id} is the last admin"
    user.active = False
    user.revoked_at = json.loads(payload)["signed_at"]
    user.revoke_reason = str(body.get("reason", ""))
    user.revoke_statement = hashlib.sha256(payload).hexdigest()
    return ""


def _stage(state: GovernanceState, signer: str, body: dict, con: duckdb.DuckDBPyConnection) -> str:
    version, site, stage, model = body["version_id"], body["site"], body["stage"], body["model_id"]
    if stage == "production":
        if body.get("rollback"):
            if not any(v == version and m == model and s == site for m, s, v in state.production_log):
                return f"rollback to {version}, which was never released to production at {site} by the record"
        else:
            problem = release_problem(state, con, body.get("request_id") or "", version, site)
            if problem:
                return problem
        for key, value in list(state.stages.items()):
            if value == "production" and key[1] == site and key[0] != version and \
                    state.version_model.get(key[0]) == model:
                state.stages[key] = "pilot"
        state.production_log.append((model, site, version))
    state.version_model[version] = model
    state.stages[(version, site)] = stage
    state.stage_rows.update({int(r[0]): tuple(r[1:]) for r in body.get("stage_rows") or []})
    return ""


def sponsor_problem(state: GovernanceState, people: list[str]) -> str:
    """Rule 3: a chain in which everyone besides admin X was registered or given roles by X alone is X deciding
    alone; '' when the chain holds."""
    distinct = sorted(set(people))
    for x in distinct:
        others = [p for p in distinct if p != x]
        if others and all(p in state.users and state.users[p].granted_by == x for p in others):
            return (f"everyone besides {x} in this chain ({', '.join(others)}) was registered or given roles by {x} "
                    f"alone; another admin must confirm one of their roles (lineproof user roles ... --as ADMIN2), "
                    f"or someone else signs instead of {x}")
    return ""


def release_problem(state: GovernanceState, con: duckdb.DuckDBPyConnection, request_id: str, version_id: str,
                    site: str) -> str:
    """'' when the signed request and decisions, checked against the replayed state, allow production."""
    request = state.requests.get(request_id)
    row = one(con, "SELECT subject_json, subject_sha256 FROM approval_requests WHERE request_id = ?", [request_id])
    if request is None or row is None:
        return f"no signed release request {request_id or '(none named)'}"
    if hashlib.sha256(row[0].encode("utf-8")).hexdigest() != request["subject_sha256"] or \
            row[1] != request["subject_sha256"]:
        return f"request {request_id} was changed after it was signed"
    subject = json.loads(row[0])
    if (subject.get("version_id"), subject.get("site"), subject.get("target_stage")) != (version_id, site,
                                                                                          "production"):
        return f"request {request_id} is not for {version_id} to production at {site}"
    model = subject.get("model_id", "")
    tier = state.tiers.get(model, "safety-relevant")
    if subject.get("risk_tier") != tier:
        return f"request {request_id} says risk tier {subject.get('risk_tier')}; the signed tier of {model} is {tier}"
    rule = state.rules.get(tier)
    if subject.get("rule") != rule:
        return f"request {request_id} was made under another rule than the signed rule of tier {tier}"
    author = state.authors.get(version_id, "")
    if subject.get("author", "") != author:
        return f"request {request_id} names author {subject.get('author')!r}; the signed author is {author!r}"
    if rule.get("needs_validation"):
        run = state.runs.get(subject.get("validation_run_id") or "")
        if run is None:
            return f"validation run {subject.get('validation_run_id')} has no signed result"
        if run.get("verdict") != "PASS" or run.get("result_sha256") != subject.get("validation_result_sha256") or \
                run.get("plan_sha256") != subject.get("plan_sha256") or \
                run.get("candidate_version") != version_id:
            return f"validation run {subject.get('validation_run_id')}'s signed result is not the passed run the " \
                   "request names"
    decisions = con.execute("SELECT step, user_id, role, decision, comment, decided_at, payload_sha256, signature, "
                            "cert_sha256 FROM approval_decisions WHERE request_id = ? ORDER BY step",
                            [request_id]).fetchall()
    if len(decisions) != len(rule["steps"]):
        return f"request {request_id} carries {len(decisions)} signed decision(s) where the rule needs " \
               f"{len(rule['steps'])}"
    people = []
    for (step, user_id, role, decision, comment, decided_at, payload_sha, signature, cert_sha), (action, need) in \
            zip(decisions, rule["steps"], strict=True):
        user = state.users.get(user_id)
        if user is None or user.cert_sha256 != cert_sha:
            return f"step {step} is signed by {user_id}, whose certificate is not a verified user's"
        payload = decision_payload(request_id, request["subject_sha256"], step, user_id, role, decision, comment,
                                   decided_at)
        if hashlib.sha256(payload).hexdigest() != payload_sha or not verify_signature(user.cert_pem, payload,
                                                                                      _b64(signature)):
            return f"the decision of step {step} does not match its signature"
        if decision != action or role != need:
            return f"step {step} is a {decision} as {role}; the rule needs a {action} as {need}"
        if user.revoked_at and decided_after_revocation(con, f"{request_id}-{step}", user):
            return f"step {step} was signed by {user_id} after their key was revoked ({user.revoke_reason})"
        held = user.roles if user.revoked_at else state.roles(user_id)  # a revoked key keeps what it signed before
        if need not in held:
            return f"{user_id} does not hold the {need} role by the signed record"
        if action == "approve" and user_id in (request["requested_by"], author):
            return f"{user_id} approved their own request or model"
        if rule.get("exclude_author") and author and user_id == author:
            return f"{user_id} is the author of {version_id}"
        people.append(user_id)
    if rule.get("distinct_people") and len(set(people)) != len(people):
        return "one person signed more than one step"
    return sponsor_problem(state, people + [request["requested_by"]] if len(people) > 1 else people)


def decided_after_revocation(con: duckdb.DuckDBPyConnection, decision_id: str, user: UserFact) -> bool:
    """Whether a decision's audit entry comes after the one of its signer's revocation: the chain orders them,
    not the clocks. A revocation without its audit entry leaves nothing provably before it."""
    at = one(con, "SELECT min(seq) FROM audit_log WHERE target = ? AND action LIKE 'approval.%'", [decision_id])
    revoked = one(con, "SELECT min(seq) FROM audit_log WHERE action = 'user.revoke' AND "
                       "json_extract_string(details_json, '$.statement_sha256') = ?", [user.revoke_statement])
    if revoked is None or revoked[0] is None:
        return True
    return at is None or at[0] is None or int(at[0]) > int(revoked[0])


def _report_unsigned_rows(con: duckdb.DuckDBPyConnection, state: GovernanceState) -> None:
    """Name every table row that differs from the verified state: it is ignored, and said."""
    if not state.started:
        users = [r[0] for r in con.execute("SELECT user_id FROM users ORDER BY user_id").fetchall()]
        for user_id in users:
            state.problems.append(f"unsigned row in users: {user_id}")
        return
    for user_id, roles_json, cert_sha, active, pem in con.execute(
            "SELECT user_id, roles_json, cert_sha256, active, cert_pem FROM users ORDER BY user_id").fetchall():
        fact = state.users.get(user_id)
        if fact is None:
            state.problems.append(f"unsigned row in users: {user_id}")
        elif (sorted(json.loads(roles_json or "[]")), cert_sha, bool(active), pem.strip()) != (
                fact.roles, fact.cert_sha256, fact.active, fact.cert_pem.strip()):
            state.problems.append(f"unsigned change in users: {user_id} (the signed record says roles "
                                  f"{', '.join(fact.roles)})")
    rules = dict(con.execute("SELECT tier, rule_json FROM tier_rules ORDER BY tier").fetchall())
    for tier, rule_json in rules.items():
        if json.loads(rule_json) != state.rules.get(tier):
            state.problems.append(f"unsigned change in tier_rules: {tier}")
    tiers = dict(con.execute("SELECT model_id, risk_tier FROM models ORDER BY model_id").fetchall())
    authors = {r[0] for r in con.execute("SELECT version_id FROM model_versions").fetchall()}
    for table, signed, present in (("tier_rules", state.rules, rules), ("models", state.tiers, tiers),
                                   ("model_versions", state.authors, authors)):
        for key in sorted(set(signed) - set(present)):
            state.problems.append(f"missing row in {table}: {key} (a signed statement names it)")
    for model_id, tier in tiers.items():
        if state.tiers.get(model_id) != tier:
            signed = state.tiers.get(model_id)
            state.problems.append(f"unsigned change in models: {model_id} risk tier {tier} (signed: "
                                  f"{signed or 'none, so the strictest tier applies'})")
    for version_id, lineage in con.execute("SELECT version_id, lineage_json FROM model_versions ORDER BY 1"
                                           ).fetchall():
        author = str(json.loads(lineage or "{}").get("author") or "")
        if author != state.authors.get(version_id, ""):
            state.problems.append(f"unsigned change in model_versions: {version_id} author {author!r} (signed: "
                                  f"{state.authors.get(version_id, '')!r})")
    signed_columns = ("verdict", "result_sha256", "plan_sha256", "candidate_version", "dataset_sha256",
                      "candidate_sha256")
    for row in con.execute(f"SELECT run_id, {', '.join(signed_columns)} FROM validation_runs ORDER BY run_id"
                           ).fetchall():
        run_id, fact = row[0], state.runs.get(row[0])
        if fact is None:
            state.problems.append(f"unsigned row in validation_runs: {run_id}")
        elif tuple(fact.get(c) for c in signed_columns) != tuple(row[1:]):
            state.problems.append(f"unsigned change in validation_runs: {run_id} (signed verdict "
                                  f"{fact.get('verdict')})")
    seen = set()
    for change_id, version_id, site, stage in con.execute(
            "SELECT change_id, version_id, site, stage FROM stage_history ORDER BY change_id").fetchall():
        seen.add(int(change_id))
        if state.stage_rows.get(int(change_id)) != (version_id, site, stage):
            state.problems.append(f"unsigned row in stage_history: #{change_id} {version_id} {site} {stage}")
    for change_id in sorted(set(state.stage_rows) - seen):
        state.problems.append(f"missing row in stage_history: #{change_id} (a signed stage change wrote it)")
    present = {r[0] for r in con.execute("SELECT user_id FROM users").fetchall()}
    for user_id in sorted(set(state.users) - present):
        state.problems.append(f"missing row in users: {user_id} (registered by a signed statement)")
    runs = {r[0] for r in con.execute("SELECT run_id FROM validation_runs").fetchall()}
    for run_id in sorted(set(state.runs) - runs):
        state.problems.append(f"missing row in validation_runs: {run_id} (its result was signed)")
    requests = set()
    for request_id, requested_by, subject_sha, subject_json, version_id, site, stage in con.execute(
            "SELECT request_id, requested_by, subject_sha256, subject_json, version_id, site, target_stage "
            "FROM approval_requests ORDER BY 1").fetchall():
        requests.add(request_id)
        fact = state.requests.get(request_id)
        if fact is None:
            state.problems.append(f"unsigned row in approval_requests: {request_id}")
        elif (fact["requested_by"], fact["subject_sha256"], hashlib.sha256(subject_json.encode()).hexdigest(),
              fact["version_id"], fact["site"], fact["stage"]) != (requested_by, subject_sha, subject_sha, version_id,
                                                                   site, stage):
            state.problems.append(f"unsigned change in approval_requests: {request_id}")
    for request_id in sorted(set(state.requests) - requests):
        state.problems.append(f"missing row in approval_requests: {request_id} (the request was signed)")
