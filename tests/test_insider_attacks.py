# ruff: noqa: F811  (the governed fixture is imported from test_governance)
"""What a hostile insider with write access to project.duckdb (but no one else's key) tries, and what now stops it:
every governance fact is a signed statement replayed against this PC's trust anchor, so a row edit is ignored and
reported, never used. Each test here released, forged or hid something on the previous design."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest

from app.core.governance.approvals import (
    GovernanceError,
    create_request,
    decide,
    governance,
    user_roles,
)
from app.core.governance.identity import cert_pem, cert_sha256, create_identity, unlock_identity
from app.core.governance.integrity import verify_project
from app.core.models.registry import rollback, set_stage
from app.core.store.project import Project
from tests.test_governance import PASS, _model_file, governed, governed_template, profile, signer  # noqa: F401 (fixtures)


def _problems(project: Project) -> list[str]:
    verdict = verify_project(project)
    return verdict.governance + verdict.anchors.problems + ([verdict.chain.problem] if not verdict.chain.ok else [])


def test_a_forged_users_row_is_ignored_and_reported(governed: Project) -> None:
    cert = create_identity("ghost", "Ghost Approver", PASS)  # even a certificate this PC pins
    governed.con.execute("INSERT INTO users VALUES ('ghost', 'Ghost', '[\"approver\", \"validation_lead\"]', ?, ?, "
                         "true, now()::TIMESTAMP)", [cert_pem(cert), cert_sha256(cert)])
    assert user_roles(governed, "ghost") == []
    req = create_request(governed, "med:v1", "P1", "production", signer(governed, "eve"))
    with pytest.raises(GovernanceError, match="ghost is not a user of this project"):
        signer(governed, "ghost")
    with pytest.raises(GovernanceError, match="ghost.*(not their registered certificate|may not review)"):
        decide(governed, req, "review", unlock_identity("ghost", PASS), "forged")
    assert "unsigned row in users: ghost" in _problems(governed)


def test_a_roles_edit_grants_nothing(governed: Project) -> None:
    governed.con.execute("UPDATE users SET roles_json = '[\"approver\", \"engineer\", \"validation_lead\"]' "
                         "WHERE user_id = 'eve'")
    assert user_roles(governed, "eve") == ["engineer"]
    req = create_request(governed, "med:v1", "P1", "production", signer(governed, "anna"))
    with pytest.raises(GovernanceError, match="eve \\(engineer\\) may not review"):
        decide(governed, req, "review", signer(governed, "eve"), "I review my own model")
    assert any(p.startswith("unsigned change in users: eve") for p in _problems(governed))


def test_a_risk_tier_edit_does_not_lower_what_a_release_needs(governed: Project) -> None:
    governed.con.execute("UPDATE models SET risk_tier = 'low' WHERE model_id = 'hi'")
    with pytest.raises(GovernanceError, match="Risk tier high needs a passed validation run"):
        create_request(governed, "hi:v1", "P1", "production", signer(governed, "eve"))
    req = create_request(governed, "hi:v1", "P1", "production", signer(governed, "eve"), validation_run_id="VAL-1")
    subject = json.loads(governed.con.execute("SELECT subject_json FROM approval_requests WHERE request_id = ?",
                                              [req]).fetchall()[0][0])
    assert subject["risk_tier"] == "high" and len(subject["rule"]["steps"]) == 2
    assert any("unsigned change in models: hi risk tier low" in p for p in _problems(governed))


def test_an_inserted_stage_history_row_cannot_be_rolled_back_to(governed: Project) -> None:
    governed.con.execute("INSERT INTO stage_history VALUES (100, 'hi:v1', 'P1', 'production', now()::TIMESTAMP, "
                         "'eve', 'released long ago')")
    with pytest.raises(GovernanceError, match="never released to production at P1 by the signed record"):
        set_stage(governed, "hi:v1", "P1", "production", "rollback", rolling_back=True, by=signer(governed, "eve"))
    with pytest.raises(Exception, match="no production version at P1"):
        rollback(governed, "hi", "P1", by=signer(governed, "eve"))
    assert any("unsigned row in stage_history: #100 hi:v1 P1 production" in p for p in _problems(governed))


def test_an_edited_validation_run_supports_no_request_and_no_packet(governed: Project) -> None:
    from app.core.packet.evidence import PacketError, gather

    governed.con.execute("UPDATE validation_runs SET result_sha256 = 'f' || repeat('0', 63) WHERE run_id = 'VAL-1'")
    with pytest.raises(GovernanceError, match="differs from its signed result"):
        create_request(governed, "hi:v1", "P1", "production", signer(governed, "eve"), validation_run_id="VAL-1")
    with pytest.raises(PacketError, match="differs from its signed result"):
        gather(governed, "VAL-1")
    governed.con.execute("INSERT INTO validation_runs SELECT 'VAL-2', candidate_version, champion_version, "
                         "dataset_id, dataset_sha256, plan_sha256, plan_toml, candidate_sha256, champion_sha256, "
                         "verdict, result_json, result_sha256, tool_version, started_at, finished_at, created_by "
                         "FROM validation_runs WHERE run_id = 'VAL-1'")
    with pytest.raises(GovernanceError, match="VAL-2 has no signed result"):
        create_request(governed, "hi:v1", "P1", "production", signer(governed, "eve"), validation_run_id="VAL-2")
    problems = _problems(governed)
    assert "unsigned row in validation_runs: VAL-2" in problems
    assert any(p.startswith("unsigned change in validation_runs: VAL-1") for p in problems)


def test_deleted_receipts_are_missed_by_the_chain(governed: Project) -> None:
    req = create_request(governed, "med:v1", "P1", "production", signer(governed, "eve"))
    decide(governed, req, "review", signer(governed, "vera"), "checked")
    assert _problems(governed) == []
    governed.con.execute("DELETE FROM audit_receipts")
    assert any("were deleted" in p for p in _problems(governed))


def test_a_receipt_re_signed_by_another_user_is_refused(governed: Project) -> None:
    from app.core.governance.receipts import _payload

    req = create_request(governed, "med:v1", "P1", "production", signer(governed, "eve"))
    decide(governed, req, "review", signer(governed, "vera"), "checked")
    seq, entry_hash, signed_at = governed.con.execute(
        "SELECT seq, entry_hash, signed_at FROM audit_receipts WHERE user_id = 'vera'").fetchall()[0]
    anna = signer(governed, "anna")  # signs a receipt in vera's name with her own key
    forged = base64.b64encode(anna.sign(_payload(seq, entry_hash, "vera", signed_at))).decode()
    governed.con.execute("UPDATE audit_receipts SET signature = ?, cert_sha256 = ? WHERE user_id = 'vera'",
                         [forged, cert_sha256(anna.cert)])
    assert any("not vera's registered one" in p for p in _problems(governed))


def test_a_database_rolled_back_to_an_older_copy_is_found(governed: Project, tmp_path: Path) -> None:
    folder = governed.folder
    governed.con.execute("CHECKPOINT")
    shutil.copy(folder / "project.duckdb", tmp_path / "old.duckdb")
    req = create_request(governed, "med:v1", "P1", "production", signer(governed, "eve"))
    decide(governed, req, "review", signer(governed, "vera"), "checked")  # a receipt goes to this PC too
    governed.close()
    os.replace(tmp_path / "old.duckdb", folder / "project.duckdb")
    with Project.open(folder, read_only=True) as project:
        problems = _problems(project)
    assert any("the database was rolled back to an older copy" in p for p in problems)


def test_without_a_trust_anchor_nothing_is_verified(governed: Project, tmp_path: Path, monkeypatch) -> None:
    eve = signer(governed, "eve")
    monkeypatch.setenv("LINEPROOF_HOME", str(tmp_path / "bare-pc"))  # a PC with no trust configuration
    state = governance(governed)
    assert not state.anchored and state.users == {} and "no trust anchor" in state.anchor_note
    with pytest.raises(GovernanceError, match="no trust anchor configured"):
        create_request(governed, "med:v1", "P1", "production", eve)


@pytest.mark.unpinned
def test_an_identity_outside_the_anchor_is_not_registered_unless_a_second_admin_countersigns(governed: Project
                                                                                            ) -> None:
    from app.core.governance.approvals import add_user, set_roles

    cert = create_identity("zoe", "Zoe Self-Signed", PASS)  # not pinned, not issued by the site CA
    with pytest.raises(GovernanceError, match="does not chain to this PC's trust anchor"):
        add_user(governed, "zoe", "Zoe", cert_pem(cert), ["approver"], by=signer(governed, "admin"))
    ca_cert = create_identity("ada", "Ada Admin", PASS, ca_id="plant-ca", ca_passphrase=PASS)
    add_user(governed, "ada", "Ada", cert_pem(ca_cert), ["viewer"], by=signer(governed, "admin"))
    set_roles(governed, "ada", ["admin"], signer(governed, "admin"), "second admin")
    add_user(governed, "zoe", "Zoe", cert_pem(cert), ["approver"], by=signer(governed, "admin"),
             countersign=signer(governed, "ada"))
    assert user_roles(governed, "zoe") == ["approver"]


def test_one_admin_alone_cannot_make_a_four_eyes_chain(governed: Project) -> None:
    """Rule 3: an admin with a signing role whose only co-signer is someone they registered is one person."""
    from app.core.governance.approvals import add_user, set_roles

    ca_cert = create_identity("ada", "Ada Admin", PASS, ca_id="plant-ca", ca_passphrase=PASS)
    add_user(governed, "ada", "Ada", cert_pem(ca_cert), ["admin"], by=signer(governed, "admin"))
    set_roles(governed, "admin", ["admin", "validation_lead"], signer(governed, "ada"), "reviews too")
    newcomer = create_identity("newt", "Newt", PASS, ca_id="plant-ca", ca_passphrase=PASS)
    add_user(governed, "newt", "Newt", cert_pem(newcomer), ["approver"], by=signer(governed, "admin"))
    set_roles(governed, "eve", ["engineer"], signer(governed, "admin"), "re-roled by admin")
    req = create_request(governed, "med:v1", "P1", "production", signer(governed, "eve"))
    decide(governed, req, "review", signer(governed, "admin"), "checked")
    decide(governed, req, "approve", signer(governed, "newt"), "ok")
    with pytest.raises(GovernanceError, match="was registered or given roles by admin alone"):
        set_stage(governed, "med:v1", "P1", "production", by=signer(governed, "eve"))


def test_a_relative_model_path_is_resolved_before_the_runtime_check(empty_project: Project, tmp_path: Path,
                                                                   monkeypatch) -> None:
    from app.core.models.model_import import import_model

    path = _model_file(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = import_model(empty_project, Path(path.name), "rel", "v1", new_model={"name": "rel"})
    assert result.runtimes.get("onnxruntime", "").startswith("ok")


def test_an_mlflow_folder_may_not_link_a_folder_from_outside(empty_project: Project, tmp_path: Path) -> None:
    from app.core.models.model_import import ModelImportError, import_model

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(_model_file(tmp_path), outside / "model.onnx")
    folder = tmp_path / "mlflow-model"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors:\n  onnx:\n    data: data/model.onnx\n", encoding="utf-8")
    (folder / "data").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ModelImportError, match="is a link to another folder"):
        import_model(empty_project, folder, "ml", "v1", new_model={"name": "ml"})
