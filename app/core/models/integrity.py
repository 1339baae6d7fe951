"""Every file of a stored model version against the sha256 recorded at import, before the version is used.

A model folder is content-addressed and read-only, but a project folder can still be edited by hand or damaged
on a USB stick; benchmarks, validations, packets and stage changes refuse a version whose bytes changed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath

from app.core.errors import LineproofError
from app.core.store.db import one
from app.core.store.project import Project
from app.core.store.sources import sha256_of


class ModelIntegrityError(LineproofError):
    """A stored model file does not match what was imported; nothing was run or changed."""


def content_sha256(hashes: dict[str, str]) -> str:
    """One sha256 for a model version: the file's own for a single file, else over every (path, sha256) pair,
    so that the same graph with other weights is another version and another folder."""
    if len(hashes) == 1:
        return next(iter(hashes.values()))
    lines = "".join(f"{name}\t{sha}\n" for name, sha in sorted(hashes.items()))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def verify_version_files(project: Project, version_id: str) -> dict[str, str]:
    """Re-hash every file of the version; returns {file: sha256}, raises naming the first file that differs."""
    with project.reading() as con:
        row = one(con, "SELECT artifact_path, sha256, runtimes_json FROM model_versions WHERE version_id = ?",
                  [version_id])
    if row is None:
        raise ModelIntegrityError(f"No model version {version_id!r}.", "Check the id with `lineproof models`.")
    main = project.folder / row[0]
    files = json.loads(row[2] or "{}").get("files") or {main.name: row[1]}
    todo = ("Restore the project folder from a backup, or import the model again as a new version; nothing was "
            "run or changed.")
    for name, want in sorted(files.items()):
        path = main.parent / PurePosixPath(name)
        if not Path(path).is_file():
            raise ModelIntegrityError(f"{name} of {version_id} is missing from {main.parent}.", todo)
        got = sha256_of(path)
        if got != want:
            raise ModelIntegrityError(f"{name} of {version_id} does not match the sha256 recorded at import "
                                      f"({got[:16]}… now, {want[:16]}… then).", todo)
    return files
