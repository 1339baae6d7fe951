"""The project manifest `lineproof.toml`: name, site, schema version and slice dimensions."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.core.errors import ProjectCorruptError

MANIFEST_NAME = "lineproof.toml"
DEFAULT_SLICE_DIMENSIONS = ("plant", "line", "asset", "shift", "firmware")


@dataclass(frozen=True)
class Manifest:
    """What the manifest says about a project."""

    name: str
    site: str = ""
    schema_version: int = 1
    slice_dimensions: tuple[str, ...] = DEFAULT_SLICE_DIMENSIONS
    description: str = ""
    extra: dict = field(default_factory=dict)

    def with_schema(self, version: int) -> Manifest:
        """A copy carrying another schema version."""
        return replace(self, schema_version=version)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_manifest(manifest: Manifest) -> str:
    """TOML text of a manifest (hand-written: tomllib only reads)."""
    dims = ", ".join(_quote(d) for d in manifest.slice_dimensions)
    return (
        "# Lineproof project manifest. The data lives in project.duckdb.\n"
        "[project]\n"
        f"name = {_quote(manifest.name)}\n"
        f"site = {_quote(manifest.site)}\n"
        f"description = {_quote(manifest.description)}\n"
        f"schema_version = {manifest.schema_version}\n\n"
        "[slices]\n"
        f"dimensions = [{dims}]\n"
    )


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Write the manifest atomically (temp file + rename)."""
    target = folder / MANIFEST_NAME
    tmp = target.with_suffix(".toml.tmp")
    tmp.write_text(render_manifest(manifest), encoding="utf-8")
    tmp.replace(target)


def read_manifest(folder: Path) -> Manifest:
    """Read and check `lineproof.toml` in a project folder."""
    path = folder / MANIFEST_NAME
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProjectCorruptError(
            f"{path} is not valid TOML ({exc}).", "Fix the file by hand or restore it from a backup."
        ) from exc
    project = data.get("project", {})
    if "name" not in project:
        raise ProjectCorruptError(f"{path} has no [project] name.", "Add `name = \"...\"` under [project].")
    dims = data.get("slices", {}).get("dimensions", list(DEFAULT_SLICE_DIMENSIONS))
    if not all(isinstance(d, str) and d.isidentifier() for d in dims):
        raise ProjectCorruptError(
            f"{path}: [slices] dimensions must be simple names (letters, digits, _), got {dims!r}.",
            "Rename the dimensions in the manifest.",
        )
    known = {"project", "slices"}
    extra = {k: v for k, v in data.items() if k not in known}
    version_like = data.get("slices", {}).get("version_like")
    if version_like is not None:
        extra["slices_version_like"] = [str(v) for v in version_like]
    return Manifest(
        name=str(project["name"]),
        site=str(project.get("site", "")),
        schema_version=int(project.get("schema_version", 1)),
        slice_dimensions=tuple(dims),
        description=str(project.get("description", "")),
        extra=extra,
    )
