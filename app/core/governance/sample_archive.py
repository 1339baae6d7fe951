"""The sample project shipped prebuilt with the offline bundle.

The sample's recipe trains its models with scikit-learn and skl2onnx, which the bundle leaves out. `make installer`
builds the sample once with the full environment and exports it as a project archive; the bundle ships that
archive, and `lineproof sample` or the first start unpack it, with every file's hash checked (import_project), in
seconds instead of the minutes the recipe takes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from app.core.errors import SampleUnavailableError, sample_unavailable
from app.core.governance.portable import import_project
from app.core.progress import Progress

ARCHIVE_NAME = "sample-project.lpz"


def prebuilt_sample_archive() -> Path | None:
    """The shipped sample archive: LINEPROOF_SAMPLE_ARCHIVE, or resources/sample/ inside a bundle; else None."""
    given = os.environ.get("LINEPROOF_SAMPLE_ARCHIVE", "").strip()
    if given:
        return Path(given) if Path(given).is_file() else None
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        shipped = Path(bundle) / "resources" / "sample" / ARCHIVE_NAME
        return shipped if shipped.is_file() else None
    return None


def sample_source() -> str:
    """How this installation provides the sample: "recipe" (build it) or "archive" (unpack the shipped one).

    Raises SampleUnavailableError, saying what to do instead, where it can do neither."""
    why = sample_unavailable()
    if why is None:
        return "recipe"
    if prebuilt_sample_archive() is not None:
        return "archive"
    raise why


def unpack_prebuilt_sample(folder: Path | str, progress: Progress | None = None) -> Path:
    """Unpack the shipped sample archive into a new folder (nothing is left behind if a check fails)."""
    archive = prebuilt_sample_archive()
    if archive is None:
        raise sample_unavailable() or SampleUnavailableError(
            "This installation ships no prebuilt sample project.", "Build it with `lineproof sample FOLDER`.")
    return import_project(archive, folder, progress)
