"""Approvals and Audit screens (pytest-qt): request, review and approve with the passphrase prompt, order
enforced with a dialog, signatures shown as valid; the audit screen verifies and reports a tampered entry."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from app.core.governance import approvals as gov
from app.core.governance.identity import cert_pem, create_identity
from app.core.models.model_import import import_model
from app.core.models.registry import register_model
from app.core.store.project import Project
from app.views.approvals_view import ApprovalsView
from app.views.audit_view import AuditView
from tests.helpers import opened_copy, pin_self_signed_identities
from tests.test_governance import _model_file

pytestmark = pytest.mark.gui
PASS = "passphrase-1"


@pytest.fixture(scope="module")
def project_template(tmp_path_factory) -> Path:
    """Four self-signed users pinned in the profile, one medium-tier version; built once, copied per test."""
    folder = tmp_path_factory.mktemp("approvals-template")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LINEPROOF_HOME", str(folder / "profile"))
        pin_self_signed_identities(mp)
        with Project.create(folder / "proj", "gui governance", site="P1") as project:
            for user_id, roles in (("admin", ["admin"]), ("eve", ["engineer"]), ("vera", ["validation_lead"]),
                                   ("anna", ["approver"])):
                cert = create_identity(user_id, f"{user_id.title()} Żółć", PASS)
                gov.add_user(project, user_id, user_id.title(), cert_pem(cert), roles,
                             by=gov.unlock(project, "admin", PASS))
            register_model(project, "med", "medium", "binary", risk_tier="medium",
                           by=gov.unlock(project, "admin", PASS))
            import_model(project, _model_file(folder), "med", "v1", by=gov.unlock(project, "admin", PASS))
    return folder


@pytest.fixture
def project(tmp_path: Path, monkeypatch, project_template: Path):
    shutil.copytree(project_template / "profile", tmp_path / "profile")
    monkeypatch.setenv("LINEPROOF_HOME", str(tmp_path / "profile"))
    with opened_copy(project_template / "proj", tmp_path / "proj") as project:
        yield project


def test_request_review_approve_in_the_screen(qtbot, project: Project):
    view = ApprovalsView()
    qtbot.addWidget(view)
    view.show()
    prompts: list[str] = []
    view.ask_passphrase = lambda user: prompts.append(user) or PASS
    view.set_project(project)
    assert "No requests yet" in view.status.text()
    view.user.setCurrentText("eve")
    view.version.setCurrentText("med:v1")
    view.site.setText("P1")
    request_id = view.new_request()
    assert request_id and "still needs a review by validation lead, an approval by approver" in view.status.text()

    view.user.setCurrentText("anna")
    view.comment.setText("looks fine")
    assert not view.approve_button.isHidden() and not view.decide("approve")  # before review: refused
    box = view.findChild(QMessageBox, "errorDialog")
    assert box is not None and "first needs a review by validation lead" in box.text()
    box.close()

    view.user.setCurrentText("vera")
    view.comment.setText("slices and drift checked")
    assert view.decide("review")
    view.user.setCurrentText("anna")
    view.comment.setText("approved for P1")
    assert view.decide("approve")
    assert prompts == ["eve", "anna", "vera", "anna"]  # asked at every signature
    assert "Approved" in view.status.text()
    frame = view.decisions.frame
    assert frame["meaning"].to_list() == ["reviewed by", "approved by"]
    assert frame["verified"].to_list() == ["valid", "valid"]
    assert not view.approve_button.isEnabled()


def test_cancelled_passphrase_signs_nothing(qtbot, project: Project):
    view = ApprovalsView()
    qtbot.addWidget(view)
    view.ask_passphrase = lambda user: None
    view.set_project(project)
    view.site.setText("P1")
    assert view.new_request() is None
    assert gov.list_requests(project).is_empty()


def test_audit_screen_verifies_and_names_the_tampered_entry(qtbot, project: Project):
    view = AuditView()
    qtbot.addWidget(view)
    view.show()
    view.set_project(project)
    qtbot.waitUntil(lambda: view.intact is not None, timeout=10_000)  # verified in the worker
    assert "Chain intact" in view.head.text()
    with project.reading() as con:
        n, head = con.execute("SELECT count(*), max_by(entry_hash, seq) FROM audit_log").fetchall()[0]
    assert view.entries.rowCount() == n and head in view.head.text()
    view.action.setText("user.")
    assert view.entries.rowCount() == 4
    view.table.selectRow(0)
    assert "user.add" in view.detail.toPlainText()
    project.con.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
    with qtbot.waitSignal(view.verify().done, timeout=10_000):
        pass
    assert not view.intact
    assert "CHAIN BROKEN at entry 3" in view.head.text()


def test_audit_screen_names_a_governance_row_no_signature_backs(qtbot, project: Project):
    view = AuditView()
    qtbot.addWidget(view)
    view.set_project(project)
    qtbot.waitUntil(lambda: view.intact is not None, timeout=10_000)
    assert view.intact and "NOT BACKED" not in view.head.text()
    project.con.execute("UPDATE users SET roles_json = '[\"approver\", \"engineer\"]' WHERE user_id = 'eve'")
    with qtbot.waitSignal(view.verify().done, timeout=10_000):
        pass
    assert not view.intact and "Chain intact" in view.head.text()  # the chain cannot see a row edit...
    assert "NOT BACKED BY A SIGNATURE" in view.head.text() and "unsigned change in users: eve" in view.head.text()


def test_empty_states(qtbot, empty_project: Project):
    approvals, audit = ApprovalsView(), AuditView()
    qtbot.addWidget(approvals)
    qtbot.addWidget(audit)
    approvals.set_project(None)
    assert "Open a project" in approvals.empty.text()
    approvals.set_project(empty_project)
    assert "lineproof user create" in approvals.empty.text()


def test_users_screen_changes_roles_with_admin_passphrase(qtbot, project: Project):
    from app.views.users_view import UsersView

    view = UsersView()
    qtbot.addWidget(view)
    view.show()
    asked: list[str] = []
    view.ask_passphrase = lambda user: asked.append(user) or PASS
    view.set_project(project)
    assert view.users.rowCount() == 4 and view.admin.currentText() == "admin"
    needs = dict(zip(view.tiers.frame["tier"], view.tiers.frame["needs"], strict=True))
    assert needs["high"] == ("a passed validation run, review by validation lead, then approval by approver "
                             "(different people, not the model's author)")
    view.table.selectRow(view.users.frame["user_id"].to_list().index("eve"))
    assert view.role_boxes["engineer"].isChecked() and not view.role_boxes["approver"].isChecked()
    view.role_boxes["approver"].setChecked(True)
    assert not view.save_roles()  # no reason
    view.reason.setText("covers approvals during the audit")
    assert view.save_roles() and asked == ["admin", "admin"]
    assert gov.user_roles(project, "eve") == ["approver", "engineer"]
    with project.reading() as con:
        action, details = con.execute("SELECT action, details_json FROM audit_log ORDER BY seq DESC LIMIT 1"
                                      ).fetchall()[0]
    assert action == "user.roles" and '"old": ["engineer"]' in details


def test_models_screen_asks_who_changes_a_stage_in_a_governed_project(qtbot, project: Project):
    from app.views.models_view import ModelsView

    view = ModelsView()
    qtbot.addWidget(view)
    view.show()
    view.set_project(project)
    assert not view.stage_user.isHidden() and view.stage_user.findData("eve") >= 0
    view.select("med:v1")
    view.site.setCurrentText("P1")
    view.stage.setCurrentText("pilot")
    view.stage_user.setCurrentIndex(view.stage_user.findData("eve"))
    view.ask_passphrase = lambda user: None  # cancelled: nothing changes
    assert not view.apply_selected_stage()
    assert project.con.execute("SELECT count(*) FROM stage_history").fetchone()[0] == 0
    asked = []
    view.ask_passphrase = lambda user: asked.append(user) or PASS
    view.stage_reason.setText("pilot on line 1")
    with qtbot.waitSignal(view.apply_selected_stage().done, timeout=20_000):
        pass
    assert asked == ["eve"]
    assert project.con.execute("SELECT stage, changed_by FROM stage_history").fetchall() == [("pilot", "eve")]


def test_users_screen_adds_users_with_a_new_or_an_imported_identity(qtbot, project: Project, tmp_path: Path):
    from app.core.governance.identity import identity_path
    from app.views.users_view import UsersView

    view = UsersView()
    qtbot.addWidget(view)
    view.ask_passphrase = lambda user: PASS
    view.set_project(project)
    dialog = view.add_user_dialog()
    dialog.user_id.setText("m.kowalski")
    dialog.name.setText("Michał Kowalski")
    dialog.roles["validation_lead"].setChecked(True)
    dialog.passphrase.setText("new-pass-123")
    dialog.repeat.setText("new-pass-124")
    assert not dialog.add()  # the passphrases differ: refused, nobody added
    box = dialog.findChild(QMessageBox, "errorDialog")
    assert box is not None and "differ" in box.text()
    dialog.repeat.setText("new-pass-123")
    assert dialog.add()
    assert identity_path("m.kowalski").exists()
    assert gov.user_roles(project, "m.kowalski") == ["validation_lead"]
    assert gov.unlock(project, "m.kowalski", "new-pass-123").name == "Michał Kowalski"
    assert "m.kowalski" in [view.users.row(i)["user_id"] for i in range(view.users.rowCount())]

    elsewhere = create_identity("z.nowak", "Zofia Nowak", "other-pass-1")  # made on another PC
    pem = tmp_path / "z.nowak.cert.pem"
    pem.write_text(cert_pem(elsewhere))
    dialog = view.add_user_dialog()
    dialog.user_id.setText("z.nowak")
    dialog.name.setText("Zofia Nowak")
    dialog.roles["approver"].setChecked(True)
    dialog.source.setCurrentIndex(dialog.source.findData("import"))
    dialog.cert_file.setText(str(pem))
    assert dialog.add()
    last = project.con.execute("SELECT actor, action, target FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    assert last == ("admin", "user.add", "z.nowak")


def test_the_first_user_can_be_added_in_the_screen(qtbot, empty_project: Project, tmp_path: Path, monkeypatch):
    from app.views.users_view import UsersView

    monkeypatch.setenv("LINEPROOF_HOME", str(tmp_path / "profile"))
    view = UsersView()
    qtbot.addWidget(view)
    view.set_project(empty_project)
    assert "Nobody is registered yet" in view.hint.text() and view.add_button.isEnabled()
    dialog = view.add_user_dialog()
    assert dialog.roles["admin"].isChecked() and not dialog.roles["admin"].isEnabled()
    dialog.user_id.setText("ada")
    dialog.name.setText("Ada Lovelace")
    dialog.passphrase.setText("first-pass-1")
    dialog.repeat.setText("first-pass-1")
    assert dialog.add() and gov.governed(empty_project)
    assert gov.user_roles(empty_project, "ada") == ["admin"]
