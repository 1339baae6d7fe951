"""Offline help, Qt-free: the README's sections for each screen plus the glossary, and the libraries' licences.

The README is the manual; help shows the part of it that belongs to the screen in front of the user (F1), so the
two never drift apart. A bundle carries README.md in resources/help/; a checkout reads the repository's.
"""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

from app.views.resources import resource_path

GOVERNANCE = "Governance: identities, roles, approvals, audit trail"
SCREEN_SECTIONS: dict[str, tuple[str, ...]] = {
    "overview": ("The sample project", "Performance before the labels arrive (estimation)"),
    "slices": ("Slice performance", "Operator overrides: the floor's verdict"),
    "drift": ("Drift, data quality, events and alerts",),
    "alerts": ("Drift, data quality, events and alerts",),
    "models": ("Benchmarks", GOVERNANCE),
    "benchmarks": ("Benchmarks",),
    "validation": ("Offline validation", "The signed validation and approval packet"),
    "approvals": (GOVERNANCE, "The signed validation and approval packet"),
    "reviews": ("Operating reviews",),
    "audit": (GOVERNANCE, "Security: threat model and what each check guarantees"),
    "users": (GOVERNANCE,),
}
# Licences of what the bundle ships (PyPI metadata where it states one; these where it does not).
LIBRARIES = {"PySide6-Essentials": "LGPL-3.0 (Qt for Python)", "pyqtgraph": "MIT", "duckdb": "MIT", "polars": "MIT",
             "pyarrow": "Apache-2.0", "numpy": "BSD-3-Clause", "onnxruntime": "MIT", "openvino": "Apache-2.0",
             "onnx": "Apache-2.0", "reportlab": "BSD", "pyHanko": "MIT", "cryptography": "Apache-2.0 or BSD",
             "platformdirs": "MIT", "psutil": "BSD-3-Clause"}


def readme_text() -> str:
    """The manual: resources/help/README.md in a bundle, else the checkout's README.md ('' when neither)."""
    for path in (resource_path("help", "README.md"), Path(__file__).resolve().parents[2] / "README.md"):
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return ""


def section(readme: str, heading: str) -> str:
    """The markdown of the `## heading` section with its ### subsections, up to the next `## `."""
    lines = readme.splitlines()
    try:
        start = lines.index(f"## {heading}")
    except ValueError:
        return ""
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end]).strip()


def glossary() -> str:
    """The glossary of the statistics (resources/help/glossary.md)."""
    path = resource_path("help", "glossary.md")
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def help_markdown(screen: str, label: str) -> str:
    """What F1 shows on `screen`: its README sections, then the glossary."""
    readme = readme_text()
    parts = [section(readme, h) for h in SCREEN_SECTIONS.get(screen, ())]
    body = "\n\n".join(p for p in parts if p) or ("The manual (README.md) is not installed with this copy; the "
                                                "glossary below still is.")
    return f"# Help: {label}\n\n{body}\n\n{glossary()}"


def library_rows() -> list[tuple[str, str, str]]:
    """(library, version, licence) of the libraries the application ships; 'not installed' where missing."""
    rows = []
    for name, known in LIBRARIES.items():
        try:
            meta = md.metadata(name)
            version = meta["Version"]
            stated = meta.get("License-Expression") or meta.get("License") or ""
            licence = stated if stated and len(stated) <= 40 and "\n" not in stated else known
        except md.PackageNotFoundError:
            version, licence = "not installed", known
        rows.append((name, version, licence))
    return rows
