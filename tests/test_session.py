"""#27: the window's session (open project, sign-in, unsaved edits, recent projects) is Qt-free and tested here
without a window; the window only shows it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from app.core.errors import ProjectLockedError
from app.core.governance import approvals as gov
from app.core.governance.identity import cert_pem, create_identity, unlock_identity
from app.core.governance.session import Session, updated_recent
from app.core.store.audit import current_actor
from app.core.store.project import Project


def test_the_session_opens_signs_in_asks_before_losing_edits_and_closes(sample_copy: Path, tmp_path: Path,
                                                                         monkeypatch):
    monkeypatch.setenv("LINEPROOF_HOME", str(tmp_path / "profile"))
    session = Session()
    assert session.title == "Lineproof" and session.project is None
    session.adopt(Session.load(sample_copy))
    project = session.project
    assert session.title == f"{project.display_name} — Lineproof" and session.location == str(sample_copy)
    with pytest.raises(RuntimeError):
        session.adopt(project)  # one project at a time
    gov.add_user(project, "ines", "Ines", cert_pem(create_identity("ines", "Ines", "pass-word-1")), ["engineer"],
                 by=unlock_identity("ines", "pass-word-1"))
    with pytest.raises(gov.GovernanceError):
        session.sign_in("ines", "wrong passphrase")
    assert session.signed_in is None
    session.sign_in("ines", "pass-word-1")
    assert session.signed_in == "ines" and current_actor() == "ines"

    asked: list[list[str]] = []
    assert not session.may_close(["the plan being edited"], lambda lost: asked.append(lost) or False)
    assert asked == [["the plan being edited"]] and session.project is project  # kept: nothing closed
    assert session.may_close([], lambda lost: False)  # nothing to lose: no question
    assert session.may_close(["x"], lambda lost: False, force=True)
    session.close()
    assert session.project is None and session.signed_in is None and current_actor() != "ines"
    assert not project.folder.joinpath(".lineproof-holder.json").exists()  # the project was released

    session.adopt(Session.load(sample_copy, read_only=True))
    assert session.mode == " [read-only snapshot]" and session.location == str(sample_copy)
    session.close()


def test_a_project_held_by_another_process_is_refused_as_locked(sample_copy: Path):
    import subprocess

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom app.core.store.project import Project\n"
                               f"p = Project.open({str(sample_copy)!r}); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ProjectLockedError):
            Session.load(sample_copy)
        snapshot = Session.load(sample_copy, read_only=True)  # what the window then offers
        assert isinstance(snapshot, Project) and snapshot.snapshot_of == sample_copy
        snapshot.close()
    finally:
        holder.kill()
        holder.wait()


def test_recent_projects_put_the_newest_first_once_and_keep_eight():
    recent = [f"/p/{i}" for i in range(8)]
    assert updated_recent(recent, "/p/3") == ["/p/3", "/p/0", "/p/1", "/p/2", "/p/4", "/p/5", "/p/6", "/p/7"]
    assert updated_recent(recent, Path("/p/new"))[:2] == ["/p/new", "/p/0"] and len(updated_recent(recent, "/x")) == 8
