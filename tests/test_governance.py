"""Roles, risk tiers and the signed approval workflow: who may sign what, in which order, and that a signed
decision cannot be edited or moved."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from app.core.errors import LineproofError
from app.core.governance.approvals import (
    GovernanceError,
    add_user,
    create_request,
    decide,
    governance,
    production_clearance,
    request_status,
    set_roles,
    sign_statement,
    unlock,
    user_roles,
    verify_decisions,
)
from app.core.governance.identity import cert_pem, create_identity, create_site_ca
from app.core.models.model_import import import_model
from app.core.models.registry import edit_version_metadata, register_model, set_stage
from app.core.store.project import Project
from tests.helpers import opened_copy, tiny_onnx_model

PASS = "passphrase-1"


@pytest.fixture
def profile(tmp_path: Path, monkeypatch) -> Path:
    home = tmp_path / "profile"
    monkeypatch.setenv("LINEPROOF_HOME", str(home))
    return home


def _model_file(tmp_path: Path) -> Path:
    return tiny_onnx_model(tmp_path)


def _build_governed(folder: Path) -> None:
    """Users: admin, an engineer (the model's author), two validation leads, two approvers; tiers high and
    medium with one version each; a passed validation run for the high one."""
    create_site_ca("plant-ca", "Plant P1 CA", PASS)
    people = {"admin": ["admin"], "eve": ["engineer"], "vera": ["validation_lead"], "vlad": ["validation_lead"],
              "anna": ["approver"], "both": ["validation_lead", "approver"]}
    with Project.create(folder / "proj", "governed", site="P1") as project:
        for user_id, roles in people.items():
            cert = create_identity(user_id, user_id.title() + " Ölund", PASS, ca_id="plant-ca", ca_passphrase=PASS)
            add_user(project, user_id, user_id.title(), cert_pem(cert), roles, by=unlock(project, "admin", PASS))
        register_model(project, "hi", "high model", "binary", risk_tier="high", by=unlock(project, "vera", PASS))
        register_model(project, "med", "medium model", "binary", risk_tier="medium", by=unlock(project, "vera", PASS))
        path = _model_file(folder)
        import_model(project, path, "hi", "v1", lineage={"author": "eve"}, by=unlock(project, "eve", PASS))
        import_model(project, path, "med", "v1", lineage={"author": "eve"}, by=unlock(project, "eve", PASS))
        _record_passed_run(project, "VAL-1", "hi:v1")


@pytest.fixture(scope="session")
def governed_template(tmp_path_factory) -> Path:
    """The governed project and the profile that holds its people's keys, built once per session (~3 s: a site
    CA, six identities, two imports with their isolated runtime check); each test works on its own copy."""
    folder = tmp_path_factory.mktemp("governed-template")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LINEPROOF_HOME", str(folder / "profile"))
        _build_governed(folder)
    return folder


@pytest.fixture
def governed(tmp_path: Path, profile: Path, governed_template: Path):
    """A copy of the governed template (see _build_governed) in this test's folder, its profile in `profile`."""
    shutil.copytree(governed_template / "profile", profile)
    with opened_copy(governed_template / "proj", tmp_path / "proj") as project:
        yield project


PLAN_TEXT = 'name = "release"\n'


def _record_passed_run(project: Project, run_id: str, version_id: str) -> None:
    """A finished PASS validation run of the version under a saved plan revision (no scoring needed here)."""
    sha = hashlib.sha256(PLAN_TEXT.encode()).hexdigest()
    with project.change("validation.record", run_id) as con:
        if not con.execute("SELECT 1 FROM validation_plans WHERE sha256 = ?", [sha]).fetchall():
            con.execute("INSERT INTO validation_plans VALUES ('release', 1, 'release', ?, ?, now()::TIMESTAMP, 'vera')",
                        [sha, PLAN_TEXT])
        con.execute("""INSERT INTO validation_runs VALUES (?, ?, NULL, 'holdout', 'd'||repeat('0',63), ?, ?,
                       (SELECT sha256 FROM model_versions WHERE version_id = ?), NULL, 'PASS', '{}', 'r'||repeat('0',63),
                       '0.1.0', now()::TIMESTAMP, now()::TIMESTAMP, 'vera')""",
                    [run_id, version_id, sha, PLAN_TEXT, version_id])
        model_sha = con.execute("SELECT sha256 FROM model_versions WHERE version_id = ?", [version_id]).fetchall()[0][0]
    sign_statement(project, "validation.sign", "validation.run", run_id, {
        "candidate_version": version_id, "verdict": "PASS", "result_sha256": "r" + "0" * 63, "plan_sha256": sha,
        "dataset_sha256": "d" + "0" * 63, "candidate_sha256": model_sha}, unlock(project, "vera", PASS))


def signer(project: Project, user_id: str):
    return unlock(project, user_id, PASS)


def test_first_user_is_admin_and_later_users_need_an_admin(governed: Project, profile: Path) -> None:
    assert "admin" in json.loads(governed.con.execute("SELECT roles_json FROM users WHERE user_id = 'admin'")
                                 .fetchall()[0][0])
    cert = create_identity("zed", "Zed", PASS)
    with pytest.raises(GovernanceError, match="eve may not add users: that needs the admin role"):
        add_user(governed, "zed", "Zed", cert_pem(cert), ["engineer"], by=signer(governed, "eve"))
    with pytest.raises(GovernanceError, match="needs a reason"):
        set_roles(governed, "eve", ["approver"], signer(governed, "admin"), "")


def test_full_high_tier_release(governed: Project) -> None:
    with pytest.raises(GovernanceError, match=r"needs a passed validation run.*Missing: an approval request"):
        set_stage(governed, "hi:v1", "P1", "production", by=signer(governed, "eve"))
    req = create_request(governed, "hi:v1", "P1", "production", signer(governed, "eve"), validation_run_id="VAL-1")
    decide(governed, req, "review", signer(governed, "vera"), "metrics and slices checked")
    with pytest.raises(GovernanceError, match="still needs an approval by approver"):
        set_stage(governed, "hi:v1", "P1", "production", by=signer(governed, "eve"))
    status = decide(governed, req, "approve", signer(governed, "anna"), "release approved")
    assert status.state == "approved" and [d["meaning"] for d in status.decisions] == ["reviewed by", "approved by"]
    assert all(v["ok"] for v in verify_decisions(governed, req))
    with pytest.raises(GovernanceError, match="made by a registered user"):
        set_stage(governed, "hi:v1", "P1", "production", "approved release")
    set_stage(governed, "hi:v1", "P1", "production", "approved release", by=signer(governed, "eve"))
    assert request_status(governed, req).state == "applied"
    actor, action = governed.con.execute("SELECT actor, action FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    assert (actor, action) == ("eve", "stage.set")  # the Lineproof user, not the OS account


def test_high_tier_needs_a_passed_validation_run(governed: Project) -> None:
    with pytest.raises(GovernanceError, match="needs a passed validation run for production \\(none was named\\)"):
        create_request(governed, "hi:v1", "P1", "production", signer(governed, "eve"))


def test_engineer_cannot_approve_and_approval_before_review_is_refused(governed: Project) -> None:
    req = create_request(governed, "med:v1", "P1", "production", signer(governed, "eve"))
    with pytest.raises(GovernanceError, match="cannot be approved yet: it first needs a review by validation lead"):
        decide(governed, req, "approve", signer(governed, "anna"), "ok")
    with pytest.raises(GovernanceError, match=r"eve \(engineer\) may not review .*needs the validation lead role"):
        decide(governed, req, "review", signer(governed, "eve"), "looks fine")
    decide(governed, req, "review", signer(governed, "vera"), "checked")
    with pytest.raises(GovernanceError, match="eve .* may not approve .* needs the approver role"):
        decide(governed, req, "approve", signer(governed, "eve"), "ok")


def test_author_cannot_approve_own_model(governed: Project) -> None:
    edit_version_metadata(governed, "hi:v1", lineage={"author": "anna"}, reason="author corrected",
                          by=signer(governed, "vera"))
    req = create_request(governed, "hi:v1", "P1", "production", signer(governed, "eve"), validation_run_id="VAL-1")
    decide(governed, req, "review", signer(governed, "vera"), "checked")
    with pytest.raises(GovernanceError, match="anna is the author of hi:v1 and may not approve"):
        decide(governed, req, "approve", signer(governed, "anna"), "mine, approved")


def test_same_person_cannot_fill_both_roles_of_high_tier(governed: Project) -> None:
    req = create_request(governed, "hi:v1", "P1", "production", signer(governed, "eve"), validation_run_id="VAL-1")
    decide(governed, req, "review", signer(governed, "both"), "checked")
    with pytest.raises(GovernanceError, match="both already signed .* needs a different person for each step"):
        decide(governed, req, "approve", signer(governed, "both"), "approved too")


def test_edited_or_moved_decision_fails_verification(governed: Project) -> None:
    req1 = create_request(governed, "med:v1", "P1", "production", signer(governed, "eve"))
    req2 = create_request(governed, "med:v1", "P2", "production", signer(governed, "eve"))
    decide(governed, req1, "review", signer(governed, "vera"), "checked P1")
    decide(governed, req1, "approve", signer(governed, "anna"), "approved for P1")
    assert production_clearance(governed, "med:v1", "P1") is None
    con = governed.con
    con.execute("UPDATE approval_decisions SET comment = 'approved for everything' WHERE step = 2 "
                "AND request_id = ?", [req1])
    bad = [v for v in verify_decisions(governed, req1) if not v["ok"]]
    assert len(bad) == 1 and "edited or moved" in bad[0]["problem"]
    assert "fails verification" in production_clearance(governed, "med:v1", "P1")
    con.execute("UPDATE approval_decisions SET comment = 'approved for P1' WHERE step = 2 AND request_id = ?", [req1])
    assert all(v["ok"] for v in verify_decisions(governed, req1))
    # Move the approval to the P2 request (with a recomputed payload hash, as a careful forger would).
    con.execute("UPDATE approval_decisions SET request_id = ? WHERE request_id = ?", [req2, req1])
    moved = verify_decisions(governed, req2)
    assert moved and not any(v["ok"] for v in moved)
    con.execute("UPDATE approval_requests SET state = 'approved' WHERE request_id = ?", [req2])
    assert "fails verification" in production_clearance(governed, "med:v1", "P2")


def test_changed_model_after_approval_is_caught(governed: Project) -> None:
    req = create_request(governed, "med:v1", "P1", "production", signer(governed, "eve"))
    decide(governed, req, "review", signer(governed, "vera"), "checked")
    decide(governed, req, "approve", signer(governed, "anna"), "approved")
    governed.con.execute("UPDATE model_versions SET sha256 = ? WHERE version_id = 'med:v1'",
                         [hashlib.sha256(b"other model").hexdigest()])
    assert "changed since request" in production_clearance(governed, "med:v1", "P1")


def test_five_wrong_passphrases_lock_signing_and_are_audited(governed: Project) -> None:
    for attempt in range(1, 5):
        with pytest.raises(GovernanceError, match=f"Wrong passphrase for vera \\({attempt} of 5"):
            unlock(governed, "vera", "wrong-guess")
    with pytest.raises(GovernanceError, match="5 in a row\\): signing is locked for 15 minutes"):
        unlock(governed, "vera", "wrong-guess")
    with pytest.raises(GovernanceError, match="Signing is locked for vera"):
        unlock(governed, "vera", PASS)  # even the right passphrase, while locked
    actions = [r[0] for r in governed.con.execute(
        "SELECT action FROM audit_log WHERE target = 'vera' AND action LIKE 'signing.%' ORDER BY seq").fetchall()]
    assert actions == ["signing.failed"] * 5 + ["signing.locked"]
    from app.core.governance import trust

    locked = trust.lockout_state("vera")
    assert locked["failures"] == 5 and locked["locked_at"]  # counted on this PC, outside the project
    # Restoring an older database (no failures in it) does not reset the lock: the counter is not in the project.
    governed.con.execute("DELETE FROM signing_failures")
    with pytest.raises(GovernanceError, match="Signing is locked for vera"):
        unlock(governed, "vera", PASS)
    from datetime import UTC, datetime, timedelta

    earlier = (datetime.now(UTC) - timedelta(minutes=16)).isoformat()
    trust.record_lockout("vera", 5, earlier)
    assert unlock(governed, "vera", PASS).user_id == "vera"  # the lock expires
    assert trust.lockout_state("vera")["failures"] == 0


def test_rejected_request_ends_and_blocks_production(governed: Project) -> None:
    req = create_request(governed, "med:v1", "P1", "production", signer(governed, "eve"))
    assert decide(governed, req, "reject", signer(governed, "vera"), "recall too low on P1-L04").state == "rejected"
    with pytest.raises(GovernanceError, match="is rejected; it takes no more decisions"):
        decide(governed, req, "review", signer(governed, "vlad"), "second opinion")
    with pytest.raises(GovernanceError, match=f"Request {req} was rejected"):
        set_stage(governed, "med:v1", "P1", "production", by=signer(governed, "eve"))


def test_stage_changes_in_a_governed_project_are_made_by_a_user(governed: Project) -> None:
    cert = create_identity("vic", "Vic Viewer", PASS, ca_id="plant-ca", ca_passphrase=PASS)
    add_user(governed, "vic", "Vic", cert_pem(cert), ["viewer"], by=signer(governed, "admin"))
    before = governed.con.execute("SELECT count(*) FROM stage_history").fetchone()[0]
    with pytest.raises(GovernanceError, match="made by a registered user"):
        set_stage(governed, "med:v1", "P1", "pilot", "pilot on line 1")
    with pytest.raises(GovernanceError, match="vic may not change stages"):
        set_stage(governed, "med:v1", "P1", "pilot", "pilot on line 1", by=signer(governed, "vic"))
    assert governed.con.execute("SELECT count(*) FROM stage_history").fetchone()[0] == before
    set_stage(governed, "med:v1", "P1", "pilot", "pilot on line 1", by=signer(governed, "eve"))
    assert governed.con.execute("SELECT changed_by FROM stage_history ORDER BY change_id DESC LIMIT 1"
                                ).fetchone()[0] == "eve"


def test_safety_relevant_tier_needs_a_second_distinct_approver(governed: Project, tmp_path: Path) -> None:
    """Safety-relevant: review, approve, approve, by three different people; one approval is not enough."""
    register_model(governed, "saf", "safety model", "binary", risk_tier="safety-relevant")
    import_model(governed, _model_file(tmp_path), "saf", "v1", lineage={"author": "eve"})
    _record_passed_run(governed, "VAL-S", "saf:v1")
    req = create_request(governed, "saf:v1", "P1", "production", signer(governed, "eve"), validation_run_id="VAL-S")
    decide(governed, req, "review", signer(governed, "vera"), "checked")
    status = decide(governed, req, "approve", signer(governed, "anna"), "first approval")
    assert status.state != "approved"
    with pytest.raises(GovernanceError, match="still needs an approval by approver"):
        set_stage(governed, "saf:v1", "P1", "production", by=signer(governed, "eve"))
    with pytest.raises(GovernanceError):
        decide(governed, req, "approve", signer(governed, "anna"), "approving twice")
    status = decide(governed, req, "approve", signer(governed, "both"), "second approval")
    assert status.state == "approved"
    assert [d["user_id"] for d in status.decisions] == ["vera", "anna", "both"]
    set_stage(governed, "saf:v1", "P1", "production", "approved release", by=signer(governed, "eve"))


def _cert_for(key, user_id: str, start_days: float, end_days: float):
    """A self-signed certificate for `key` valid from now + start_days to now + end_days."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user_id), x509.NameAttribute(NameOID.USER_ID, user_id)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now + timedelta(days=start_days))
            .not_valid_after(now + timedelta(days=end_days)).sign(key, hashes.SHA256()))


def test_a_request_marked_approved_in_the_database_does_not_release(governed: Project) -> None:
    req = create_request(governed, "med:v1", "P1", "production", signer(governed, "eve"))
    governed.con.execute("UPDATE approval_requests SET state = 'approved' WHERE request_id = ?", [req])
    with pytest.raises(GovernanceError, match=r"still needs a review by validation lead"):
        set_stage(governed, "med:v1", "P1", "production", by=signer(governed, "eve"))
    # A real review plus a forged second decision row (copied from the review) does not pass either.
    governed.con.execute("UPDATE approval_requests SET state = 'open' WHERE request_id = ?", [req])
    decide(governed, req, "review", signer(governed, "vera"), "checked")
    governed.con.execute("""INSERT INTO approval_decisions SELECT decision_id || 'x', request_id, 2, user_id, role,
                            decision, meaning, comment, decided_at, payload_sha256, signature, cert_sha256
                            FROM approval_decisions WHERE request_id = ?""", [req])
    governed.con.execute("UPDATE approval_requests SET state = 'approved' WHERE request_id = ?", [req])
    with pytest.raises(GovernanceError, match="fails verification|does not clear it"):
        set_stage(governed, "med:v1", "P1", "production", by=signer(governed, "eve"))
    assert governed.con.execute("SELECT count(*) FROM stage_history WHERE stage = 'production'").fetchall()[0][0] == 0


def test_the_requester_may_not_approve_their_own_request(governed: Project) -> None:
    req = create_request(governed, "med:v1", "P1", "production", signer(governed, "anna"))
    decide(governed, req, "review", signer(governed, "vera"), "checked")
    with pytest.raises(GovernanceError, match="anna asked for .* and may not approve it"):
        decide(governed, req, "approve", signer(governed, "anna"), "approving my own request")
    assert decide(governed, req, "approve", signer(governed, "both"), "ok").state == "approved"


def test_the_author_may_not_approve_even_in_a_medium_tier(governed: Project) -> None:
    edit_version_metadata(governed, "med:v1", lineage={"author": "anna"}, reason="author corrected",
                          by=signer(governed, "admin"))
    req = create_request(governed, "med:v1", "P1", "production", signer(governed, "eve"))
    decide(governed, req, "review", signer(governed, "vera"), "checked")
    with pytest.raises(GovernanceError, match="anna is the author of med:v1 and may not approve"):
        decide(governed, req, "approve", signer(governed, "anna"), "mine")


def test_changing_the_author_is_a_signed_change_and_voids_an_approval(governed: Project) -> None:

    with pytest.raises(GovernanceError, match="signed change by a registered user"):
        edit_version_metadata(governed, "med:v1", lineage={"author": "zoe"}, reason="typo")
    req = create_request(governed, "med:v1", "P1", "production", signer(governed, "eve"))
    decide(governed, req, "review", signer(governed, "vera"), "checked")
    decide(governed, req, "approve", signer(governed, "anna"), "ok")
    edit_version_metadata(governed, "med:v1", lineage={"author": "anna"}, reason="really anna's",
                          by=signer(governed, "eve"))
    actor, details = governed.con.execute("SELECT actor, details_json FROM audit_log WHERE action = "
                                          "'model_version.edit' ORDER BY seq DESC LIMIT 1").fetchall()[0]
    statement = governed.con.execute("SELECT signer, body_json, cert_pem, sha256 FROM statements WHERE kind = "
                                     "'version.author' ORDER BY seq DESC LIMIT 1").fetchall()[0]
    assert actor == "eve" and statement[0] == "eve" and json.loads(statement[1])["author"] == "anna"
    assert json.loads(details)["statement_sha256"] == statement[3]
    assert governance(governed).authors["med:v1"] == "anna"  # the replayed, verified record
    with pytest.raises(GovernanceError, match="names author 'eve'; the signed author is 'anna'"):
        set_stage(governed, "med:v1", "P1", "production", by=signer(governed, "eve"))


def test_an_admin_may_not_grant_themselves_approval_roles(governed: Project, profile: Path) -> None:
    with pytest.raises(GovernanceError, match="may not grant themselves approver"):
        set_roles(governed, "admin", ["admin", "approver"], signer(governed, "admin"), "I approve too")
    cert = create_identity("ada", "Ada Second-Admin", PASS, ca_id="plant-ca", ca_passphrase=PASS)
    add_user(governed, "ada", "Ada", cert_pem(cert), ["admin"], by=signer(governed, "admin"))
    set_roles(governed, "admin", ["admin", "approver"], signer(governed, "ada"), "second approver needed")
    assert "approver" in user_roles(governed, "admin")


def test_the_last_admin_keeps_the_role(governed: Project, profile: Path) -> None:
    with pytest.raises(GovernanceError, match="admin is the last admin"):
        set_roles(governed, "admin", ["viewer"], signer(governed, "admin"), "stepping down")
    cert = create_identity("ada", "Ada Second-Admin", PASS, ca_id="plant-ca", ca_passphrase=PASS)
    add_user(governed, "ada", "Ada", cert_pem(cert), ["admin"], by=signer(governed, "admin"))
    set_roles(governed, "admin", ["viewer"], signer(governed, "admin"), "stepping down, ada takes over")
    assert user_roles(governed, "admin") == ["viewer"]


def test_the_request_pins_the_plan_revision_and_refuses_an_edited_plan(governed: Project) -> None:
    req = create_request(governed, "hi:v1", "P1", "production", signer(governed, "eve"), validation_run_id="VAL-1")
    subject = json.loads(governed.con.execute("SELECT subject_json FROM approval_requests WHERE request_id = ?",
                                              [req]).fetchall()[0][0])
    assert subject["plan_revision"] == "release#1" and subject["author"] == "eve" and subject["rule"]["steps"]
    governed.con.execute("UPDATE validation_runs SET plan_toml = plan_toml || '# looser' WHERE run_id = 'VAL-1'")
    with pytest.raises(GovernanceError, match="does not match its sha256: it was edited after the run"):
        create_request(governed, "hi:v1", "P1", "production", signer(governed, "eve"), validation_run_id="VAL-1")
    governed.con.execute("UPDATE validation_runs SET plan_toml = replace(plan_toml, '# looser', '') "
                         "WHERE run_id = 'VAL-1'")
    governed.con.execute("DELETE FROM validation_plans")  # the run's plan is no saved revision any more
    with pytest.raises(GovernanceError, match="used a plan that is not a saved revision"):
        create_request(governed, "hi:v1", "P1", "production", signer(governed, "eve"), validation_run_id="VAL-1")


@pytest.mark.parametrize(("start", "end", "message"), [(-30, -1, "expired on"), (1, 30, "is not valid before")])
def test_expired_or_future_certificates_are_refused_when_adding_a_user(governed: Project, start, end, message):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = _cert_for(key, "old", start, end).public_bytes(serialization.Encoding.PEM).decode("ascii")
    with pytest.raises(LineproofError, match=message):
        add_user(governed, "old", "Old Cert", pem, ["approver"], by=signer(governed, "admin"))
    assert not governed.con.execute("SELECT 1 FROM users WHERE user_id = 'old'").fetchall()


def test_a_decision_with_an_expired_certificate_is_refused(governed: Project) -> None:
    import dataclasses

    req = create_request(governed, "med:v1", "P1", "production", signer(governed, "eve"))
    vera = signer(governed, "vera")
    expired = dataclasses.replace(vera, cert=_cert_for(vera.key, "vera", -30, -1))
    with pytest.raises(GovernanceError, match="expired on .* A decision cannot be signed with it"):
        decide(governed, req, "review", expired, "checked")
    assert request_status(governed, req).decisions == []


def _rewrite_history(project: Project, seq: int) -> None:
    """What an insider with the database file can do: change entry `seq`, recompute every later hash, move the
    head. The hash chain alone cannot tell."""
    from app.core.store.audit import GENESIS, HASHED, entry_hash

    rows = project.con.sql(f"SELECT {', '.join(HASHED)} FROM audit_log ORDER BY seq").pl().to_dicts()
    prev = GENESIS
    for row in rows:
        if row["seq"] == seq:
            row["details_json"] = json.dumps({"note": "history rewritten"})
        row["prev_hash"] = prev
        prev = entry_hash(row)
        project.con.execute("UPDATE audit_log SET details_json = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?",
                            [row["details_json"], row["prev_hash"], prev, row["seq"]])
    project.con.execute("UPDATE audit_head SET entry_hash = ? WHERE id = 1", [prev])


def test_a_recomputed_chain_is_caught_by_the_signed_receipts(governed: Project, tmp_path: Path, capsys) -> None:
    from app.cli import main
    from app.core.governance.receipts import export_receipt, verify_receipts
    from app.core.store.audit import verify_audit

    req = create_request(governed, "med:v1", "P1", "production", signer(governed, "eve"))
    decide(governed, req, "review", signer(governed, "vera"), "checked")  # writes a signed receipt
    outside = export_receipt(governed, signer(governed, "anna"), tmp_path / "head.json")
    checked, problems = verify_receipts(governed, [outside])
    stored = governed.con.execute("SELECT count(*) FROM audit_receipts").fetchall()[0][0]
    assert problems == [] and checked >= stored + 1  # in the project, the file, and this PC's copies
    _rewrite_history(governed, 3)
    assert verify_audit(governed.con).ok  # the chain itself is consistent again...
    checked, problems = verify_receipts(governed, [outside])
    assert problems and all("the log was rewritten" in p or "deleted" in p or "added afterwards" in p
                            for p in problems)  # ...the receipts are not
    # Deleting the receipts inside the project does not help: the file kept outside still catches it.
    governed.con.execute("DELETE FROM audit_receipts")
    checked, problems = verify_receipts(governed, [outside])
    assert any("head.json: anna signed entry" in p for p in problems)
    assert any("were deleted" in p for p in problems)  # the log itself records the receipts it had
    assert any("this PC's copy" in p for p in problems)  # and this PC kept copies
    folder = governed.folder
    governed.close()
    assert main(["audit", "verify", str(folder), "--receipt", str(outside)]) == 1
    assert "RECEIPT FAILED" in capsys.readouterr().out


def test_an_emptied_log_does_not_verify(governed: Project) -> None:
    from app.core.store.audit import verify_audit

    governed.con.execute("DELETE FROM audit_log")
    governed.con.execute("DELETE FROM audit_head")
    verdict = verify_audit(governed.con)
    assert not verdict.ok and "it was emptied" in verdict.problem


def test_delivery_metrics_count_handoffs_waits_and_unverified_releases(governed: Project) -> None:
    from app.core.governance.delivery import delivery_metrics

    req = create_request(governed, "hi:v1", "P1", "production", signer(governed, "eve"), validation_run_id="VAL-1")
    decide(governed, req, "review", signer(governed, "vera"), "metrics and slices checked")
    decide(governed, req, "approve", signer(governed, "anna"), "release approved")
    set_stage(governed, "hi:v1", "P1", "production", "approved release", by=signer(governed, "eve"))
    metrics = delivery_metrics(governed)
    row = next(r for r in metrics["versions"] if (r["version_id"], r["site"]) == ("hi:v1", "P1"))
    assert metrics["governed"] and row["verified_release"] is True and metrics["unverified_releases"] == []
    # hand-offs and the wait, counted here from the tables directly
    con = governed.con
    events = (con.execute("SELECT changed_at, 9, changed_by FROM stage_history WHERE version_id = 'hi:v1' AND "
                          "site = 'P1'").fetchall()
              + con.execute("SELECT requested_at, 0, requested_by FROM approval_requests WHERE request_id = ?",
                            [req]).fetchall()
              + con.execute("SELECT decided_at::TIMESTAMPTZ::TIMESTAMP, step, user_id FROM approval_decisions "
                            "WHERE request_id = ?", [req]).fetchall())
    people = [r[2] for r in sorted(events, key=lambda r: (r[0].replace(microsecond=0), r[1]))]
    assert people[-4:] == ["eve", "vera", "anna", "eve"]
    assert row["handoffs"] == sum(a != b for a, b in zip(people, people[1:], strict=False))
    asked, decided = con.execute("SELECT r.requested_at, max(d.decided_at::TIMESTAMPTZ::TIMESTAMP) FROM "
                                 "approval_requests r JOIN "
                                 "approval_decisions d USING (request_id) WHERE r.request_id = ? GROUP BY 1",
                                 [req]).fetchall()[0]
    assert row["approval_wait_days"] == pytest.approx((decided - asked).total_seconds() / 86400)
    assert row["days_to"]["production"] > 0
    # a decision edited after signing: the release no longer has a verified chain, and that is counted
    con.execute("UPDATE approval_decisions SET comment = 'rubber stamp' WHERE request_id = ? AND step = 2", [req])
    after = delivery_metrics(governed)
    assert [(u["version_id"], u["site"]) for u in after["unverified_releases"]] == [("hi:v1", "P1")]


def test_the_quarterly_answers_time_the_release_and_the_approval_wait_per_tier(governed: Project) -> None:
    from datetime import datetime, timedelta

    from app.core.analysis.quarterly import quarterly_answers
    from app.core.governance.delivery import delivery_metrics

    req = create_request(governed, "hi:v1", "P1", "production", signer(governed, "eve"), validation_run_id="VAL-1")
    decide(governed, req, "review", signer(governed, "vera"), "checked")
    decide(governed, req, "approve", signer(governed, "anna"), "approved")
    set_stage(governed, "hi:v1", "P1", "production", "approved release", by=signer(governed, "eve"))
    now = datetime.now()
    span = (now - timedelta(days=1), now + timedelta(days=1))
    delivery = delivery_metrics(governed, *span)
    answers = quarterly_answers(governed, *span, (span[0] - timedelta(days=90), span[0]), delivery)
    row = next(r for r in delivery["versions"] if (r["version_id"], r["site"]) == ("hi:v1", "P1"))
    assert answers["time_to_production"]["releases"] == 1
    assert answers["time_to_production"]["median_days"] == pytest.approx(row["days_to"]["production"])
    assert answers["time_to_production"]["releases_before"] == 0
    [high] = [t for t in answers["approval_wait_by_tier"] if t["tier"] == "high"]
    assert high["requests"] == 1 and high["mean_days"] == pytest.approx(row["approval_wait_days"])
    assert answers["lead_time"] == [] and answers["overrides"] == []  # no prediction log in this project
