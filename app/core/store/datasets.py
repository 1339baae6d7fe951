"""Immutable datasets (validation, reference, training) stored as content-addressed Parquet files."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from app.core.errors import LineproofError
from app.core.store.db import one
from app.core.store.project import Project
from app.core.store.sources import recognise, sha256_of, sql_literal

DATASET_KINDS = ("validation", "reference", "training")


class DatasetError(LineproofError):
    """A dataset cannot be registered."""


def register_dataset(project: Project, dataset_id: str, name: str, kind: str, parquet_path: Path | str,
                     description: str = "") -> str:
    """Copy a Parquet file into artifacts/datasets/<sha256>.parquet and record it; returns the hash."""
    if kind not in DATASET_KINDS:
        raise DatasetError(f"Unknown dataset kind {kind!r}.", f"Use one of {', '.join(DATASET_KINDS)}.")
    given = Path(parquet_path)
    if given.is_dir() or given.suffix.lower() == ".npz":
        return _register_tensors(project, dataset_id, name, kind, given, description)
    source = recognise(parquet_path)
    if source.format != "parquet":
        raise DatasetError(f"{source.path.name} is not Parquet.", "Datasets are Parquet (tables), .npz (tensors "
                                                                  "with labels) or a folder of images with labels.csv.")
    sha = sha256_of(source.path)
    rel = Path("artifacts") / "datasets" / f"{sha}.parquet"
    dest = project.folder / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        tmp = dest.with_suffix(".partial")
        shutil.copyfile(source.path, tmp)
        os.chmod(tmp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        tmp.replace(dest)
    rows = one(project.con, f"SELECT count(*) FROM read_parquet({sql_literal(str(dest))})")[0]
    with project.change("dataset.register", dataset_id, {"name": name, "kind": kind, "sha256": sha, "rows": rows}
                        ) as con:
        con.execute("INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
                    [dataset_id, name, kind, sha, rel.as_posix(), rows, description])
    return sha


def _register_tensors(project: Project, dataset_id: str, name: str, kind: str, path: Path, description: str) -> str:
    """An .npz of tensors, or a folder of images with labels.csv (stored as one .npz), checked whole first."""
    import tempfile

    import numpy as np

    from app.core.store.tensor_datasets import check_arrays, images_to_arrays, read_npz

    if not path.exists():
        raise DatasetError(f"{path} does not exist.", "Choose the .npz file or the folder of images.")
    arrays = images_to_arrays(path) if path.is_dir() else read_npz(path)
    rows = check_arrays(arrays, path.name)
    with tempfile.TemporaryDirectory(dir=project.folder / "artifacts") as tmp:
        source = path
        if path.is_dir():
            source = Path(tmp) / "images.npz"
            np.savez(source, **arrays)
        sha = sha256_of(source)
        rel = Path("artifacts") / "datasets" / f"{sha}.npz"
        dest = project.folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            part = dest.with_suffix(".partial")
            shutil.copyfile(source, part)
            os.chmod(part, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            part.replace(dest)
    with project.change("dataset.register", dataset_id, {"name": name, "kind": kind, "sha256": sha, "rows": rows,
                                                         "format": "npz"}) as con:
        con.execute("INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
                    [dataset_id, name, kind, sha, rel.as_posix(), rows, description])
    return sha


def is_tensor_dataset(path: Path) -> bool:
    """A stored dataset of tensors (.npz), not a table."""
    return path.suffix == ".npz"


def list_datasets(project: Project, exclude_kind: str | None = None) -> list[tuple[str, str]]:
    """(dataset id, name) of the registered datasets, by id; `exclude_kind="training"` leaves training sets out."""
    with project.reading() as con:
        return [tuple(r) for r in con.execute("SELECT dataset_id, name FROM datasets WHERE kind IS DISTINCT FROM ? "
                                              "ORDER BY dataset_id", [exclude_kind]).fetchall()]


def dataset_file(project: Project, dataset_id: str) -> Path | None:
    """The stored Parquet file of a dataset (None when no such dataset is registered)."""
    with project.reading() as con:
        row = con.execute("SELECT artifact_path FROM datasets WHERE dataset_id = ?", [dataset_id]).fetchall()
    return project.folder / row[0][0] if row else None
