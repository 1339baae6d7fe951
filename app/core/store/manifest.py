"""The project manifest `lineproof.toml`: name, site, schema version and slice dimensions."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from app.core.errors import ProjectCorruptError, SettingsError

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


def settings_table(cls: type, extra: dict, table: str, limits: dict[str, tuple[float, float]] | None = None) -> Any:
    """An instance of the dataclass `cls` from the manifest's [table], every key and value checked.

    Unknown keys (typos such as `stale_hour`) are named rather than ignored, because a threshold that silently
    keeps its default is worse than an error. Values must be finite numbers within `limits` (default >= 0).
    """
    data = extra.get(table, {}) if isinstance(extra, dict) else {}
    where = f"{MANIFEST_NAME} [{table}]"
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if not isinstance(data, dict):
        raise SettingsError(f"{where} is not a table.", f"Write it as a table: [{table}] on its own line, then "
                                                        "key = value lines.")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SettingsError(f"{where} has unknown key(s): {', '.join(unknown)}.",
                            f"Known keys: {', '.join(fields)}. Fix the spelling or remove the line.")
    values = {}
    for key, value in data.items():
        default = fields[key].default
        low, high = (limits or {}).get(key, (0.0, math.inf))
        example = f"{key} = {default}"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SettingsError(f"{where} {key} = {value!r} is not a number.",
                                f"Write a number, e.g. {example} (the default), or remove the line.")
        if isinstance(default, int) and not float(value).is_integer():
            raise SettingsError(f"{where} {key} = {value!r} must be a whole number.", f"For example {example}.")
        if not low <= value <= high:
            bound = f"between {low:g} and {high:g}" if math.isfinite(high) else f"at least {low:g}"
            raise SettingsError(f"{where} {key} = {value!r} is out of range.", f"Use a value {bound}, e.g. {example}.")
        values[key] = type(default)(value)
    return cls(**values)
