"""Helpers every command group shares: opening a project, progress on stderr, parsing, passphrases."""

from __future__ import annotations

import getpass
import os
import sys
import time
from typing import Any

from app.core.errors import LineproofError, ProjectLockedError
from app.core.progress import TaskProgress

PASS_ENV = "LINEPROOF_PASSPHRASE"


MEANING_OF_ROLE = {"validation_lead": "validated by", "approver": "approved by", "engineer": "prepared by"}


def show_progress(quiet: bool) -> TaskProgress:
    last = [0.0]

    def show(fraction: float, message: str) -> None:
        now = time.monotonic()
        if quiet or (now - last[0] < 0.2 and fraction < 1.0):
            return
        last[0] = now
        end = "\n" if fraction >= 1.0 or not sys.stderr.isatty() else ""
        print(f"\r[{fraction:4.0%}] {message:<70}", end=end, file=sys.stderr, flush=True)

    return TaskProgress(show)


def pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise LineproofError(f"{what} {item!r} is not of the form NAME=COLUMN.", "Example: --map score=proba")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def open_project(path: str, read_only: bool = False, allow_snapshot: bool = False):
    from app.core.store.project import Project

    try:
        return Project.open(path, read_only=read_only)
    except ProjectLockedError as exc:
        if not allow_snapshot:
            raise
        print(f"note: {exc.what} Showing a read-only snapshot.", file=sys.stderr)
        return Project.open_snapshot(path)


def parse_when(text: str | None, flag: str):
    """A date or date-time from the command line as naive UTC (the project stores UTC); an offset is honoured."""
    from datetime import UTC, datetime

    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
        return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when
    except ValueError as exc:
        raise LineproofError(f"{flag} {text!r} is not a date.", "Use YYYY-MM-DD or YYYY-MM-DDTHH:MM.") from exc


def parse_window(text: str, flag: str):
    if ".." not in text:
        raise LineproofError(f"{flag} {text!r} is not a window.", f"Use FROM..TO, e.g. {flag} 2026-05-04..2026-08-24")
    start, end = text.split("..", 1)
    return parse_when(start, flag), parse_when(end, flag)


def passphrase(prompt: str, env: str = PASS_ENV) -> str:
    """From the environment variable (scripts), else asked without echo (people)."""
    if os.environ.get(env):
        return os.environ[env]
    if not sys.stdin.isatty():
        raise LineproofError("No passphrase given.", f"Run in a terminal, or set {env} for scripts.")
    return getpass.getpass(prompt)


def signing_for(project, spec: str):
    """USER or USER:MEANING -> an unlocked signing (passphrase from the environment or asked)."""
    from app.core.governance import approvals as gov
    from app.core.packet import Signing

    user_id, _, meaning = spec.partition(":")
    roles = gov.user_roles(project, user_id) if gov.governed(project) else []
    meaning = meaning or next((MEANING_OF_ROLE[r] for r in MEANING_OF_ROLE if r in roles), "reviewed by")
    gov.check_signing_meaning(project, user_id, meaning)
    signer = gov.unlock(project, user_id, passphrase(f"Passphrase for {user_id}: "))
    return Signing(signer, meaning, project.manifest.site)


def signer(project: Any, user_id: str | None, needed_for: str = "") -> Any:
    """The user who signs a change, unlocked with the passphrase asked for; None without --as. `needed_for` names
    the change, which a governed project then refuses to make unsigned."""
    from app.core.governance.approvals import governed, unlock

    if user_id:
        return unlock(project, user_id, passphrase(f"Passphrase for {user_id}: "))
    if needed_for and governed(project):
        raise LineproofError(f"This project has users: {needed_for} is a signed change.",
                             "Say who makes it: --as USER (passphrase asked).")
    return None
