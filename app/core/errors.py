"""One family of user-facing errors: each says what was wrong and what to do."""

from __future__ import annotations

import re

# Lines a runtime prints to say where in its own sources it failed, before it says why (OpenVINO: "Exception from
# src/inference/src/cpp/core.cpp:132:"; "Check '...' failed at src/...:88:").
_LOCATION_ONLY = re.compile(r"^\s*(Exception from \S+:\d+:?|Check .* failed at \S+:\d+:?|\[ ?\w+ ?\])\s*$")


def runtime_cause(text: str, limit: int = 300) -> str:
    """The first line of a runtime's error message that says why, not where in the runtime's sources."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    meaningful = [ln for ln in lines if not _LOCATION_ONLY.match(ln)]
    return ((meaningful or lines or [""])[0])[:limit]


class LineproofError(Exception):
    """Base of every error a user can cause; the message is meant to be shown as is."""

    def __init__(self, what: str, todo: str = "") -> None:
        self.what = what
        self.todo = todo
        super().__init__(f"{what}\n{todo}".strip() if todo else what)


class ProjectError(LineproofError):
    """The project folder or its database cannot be used."""


class ProjectNotFoundError(ProjectError):
    """No Lineproof project at the given path."""


class ProjectExistsError(ProjectError):
    """Refused to create a project over an existing one."""


class ProjectLockedError(ProjectError):
    """Another process holds the project open for writing."""

    def __init__(self, what: str, todo: str = "", holder_pid: int | None = None) -> None:
        super().__init__(what, todo)
        self.holder_pid = holder_pid


class SchemaTooNewError(ProjectError):
    """The project was written by a newer Lineproof."""


class ProjectCorruptError(ProjectError):
    """project.duckdb or the manifest is damaged."""


class SchemaDamagedError(ProjectCorruptError):
    """Tables, columns or views the schema version requires are missing or were redefined outside Lineproof."""


class ProjectNotWritableError(ProjectError):
    """The project folder cannot be written by this user."""


class ReadOnlyProjectError(ProjectError):
    """A change was asked of a project opened read-only."""


class IngestError(LineproofError):
    """An input file cannot be imported; nothing was imported."""


class Cancelled(LineproofError):
    """The user cancelled a long operation; nothing was changed."""

    def __init__(self, what: str = "Cancelled by the user; nothing was changed.", todo: str = "") -> None:
        super().__init__(what, todo)


class SettingsError(ProjectError):
    """A table of lineproof.toml holds a key or value Lineproof cannot use."""


class SampleUnavailableError(LineproofError):
    """This installation cannot build the sample project (the offline bundle leaves its recipe's tools out)."""


def sample_unavailable() -> SampleUnavailableError | None:
    """Why the sample project cannot be built here, or None: its recipe trains models with scikit-learn, which
    the offline bundle leaves out (looked up without importing anything)."""
    import importlib.util

    missing = [m for m in ("app.sample", "sklearn", "skl2onnx") if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return SampleUnavailableError(
        f"This installation cannot build the sample project (it lacks {', '.join(missing)}; the offline bundle "
        "leaves the sample's recipe out).",
        "Open a project (File > Open project), or import one another PC exported: lineproof import-project "
        "PROJECT.lpz FOLDER (File > Import project).")
