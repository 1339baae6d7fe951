"""The desktop session without Qt (napari's ViewerModel under the window): the open project, who is signed in,
the recent projects, and the rule that nothing closes over unsaved edits without asking. The window shows it;
tests drive it without a window."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.core.governance import approvals
from app.core.store.audit import set_session_user
from app.core.store.project import Project

MAX_RECENT = 8


def updated_recent(recent: list[str], folder: Path | str, keep: int = MAX_RECENT) -> list[str]:
    """The recent-projects list after opening `folder`: it goes first, once, and the list keeps `keep`."""
    return ([str(folder)] + [p for p in recent if p != str(folder)])[:keep]


class Session:
    """At most one open project and at most one signed-in user of it."""

    def __init__(self) -> None:
        self.project: Project | None = None
        self.signed_in: str | None = None

    @staticmethod
    def load(folder: Path | str, read_only: bool = False) -> Project:
        """Open a folder (read-only: a private snapshot, so no writer is locked out); raises ProjectLockedError
        when another process holds it. Blocking work: the window runs it off its event loop."""
        return Project.open_snapshot(folder) if read_only else Project.open(folder)

    def adopt(self, project: Project) -> None:
        """Make an opened (or created) project the session's; the previous one must be closed first."""
        if self.project is not None:
            raise RuntimeError("close the open project before adopting another")
        self.project = project

    def sign_in(self, user_id: str, passphrase: str) -> None:
        """Prove who works at this PC: the passphrase unlocks their identity (wrong ones count towards the
        lockout, as anywhere); from now on changes are audited under them."""
        if self.project is None:
            raise RuntimeError("no project is open")
        approvals.unlock(self.project, user_id, passphrase)
        self.signed_in = user_id
        set_session_user(user_id)

    def sign_out(self) -> None:
        """Back to the PC's own account in the audit trail."""
        self.signed_in = None
        set_session_user(None)

    def may_close(self, unsaved: list[str], ask_discard: Callable[[list[str]], bool], force: bool = False) -> bool:
        """Whether the project may close: nothing unsaved, forced, or the user agreed to lose the edits."""
        return self.project is None or not unsaved or force or ask_discard(unsaved)

    def close(self) -> None:
        """Release the project; a sign-in belongs to the project's users, so it ends with it."""
        self.sign_out()
        if self.project is not None:
            self.project.close()
            self.project = None

    @property
    def title(self) -> str:
        """The window title: the project's name and how it is open."""
        if self.project is None:
            return "Lineproof"
        return f"{self.project.display_name}{self.mode} — Lineproof"

    @property
    def mode(self) -> str:
        """' [read-only snapshot]', ' [read-only]' or ''."""
        p = self.project
        return "" if p is None else " [read-only snapshot]" if p.snapshot_of else " [read-only]" if p.read_only else ""

    @property
    def location(self) -> str:
        """The folder the user opened (a snapshot's original, not its private copy)."""
        return "" if self.project is None else str(self.project.snapshot_of or self.project.folder)
