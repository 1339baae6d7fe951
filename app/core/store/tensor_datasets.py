"""Held-out data for image (and other tensor) models: an .npz of input tensors with labels, or a folder of images
with a labels CSV, stored as one .npz like any dataset (content-addressed, read-only, hashed).

Layout of a stored .npz: one array per model input (by input name, or `x` for a one-input model) with the rows on
the first axis, `label` (class names or indices), and optional 1-D arrays for slice columns and `record_id`. A
folder of images becomes `x` as uint8 [N, H, W, C] (decoded once, all of one size) plus the CSV's columns; the
model card's `preprocess` (resize, scale, mean/std, layout) turns it into the model's input at validation time.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from app.core.errors import LineproofError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
RESERVED = ("label", "record_id")


class TensorDatasetError(LineproofError):
    """An image or tensor dataset cannot be read as given; nothing was registered."""


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz (no pickled objects: a dataset file must not run code when read)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise TensorDatasetError(f"{path.name} is not a readable .npz of arrays: {exc}.",
                                 "Save it with numpy.savez (numbers and strings only, no Python objects).") from exc
    return arrays


def npz_names(path: Path) -> set[str]:
    """The arrays an .npz holds, read from its index without loading them (an image set can be large)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return set(data.files)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise TensorDatasetError(f"{path.name} is not a readable .npz of arrays: {exc}.",
                                 "Register the dataset again from its source.") from exc


def check_arrays(arrays: dict[str, np.ndarray], source: str) -> int:
    """The row count; raise when there is no label, no input tensor, or arrays of different lengths."""
    if "label" not in arrays:
        raise TensorDatasetError(f"{source} has no 'label' array.",
                                 f"Its arrays: {', '.join(sorted(arrays)) or 'none'}. Add label (class of each row).")
    rows = len(arrays["label"])
    uneven = {k: len(v) for k, v in arrays.items() if v.ndim == 0 or len(v) != rows}
    if uneven:
        name, n = next(iter(uneven.items()))
        raise TensorDatasetError(f"{source}: array {name!r} has {n} rows, 'label' has {rows}.",
                                 "Every array needs one entry per row, on its first axis.")
    if not [k for k, v in arrays.items() if k not in RESERVED and v.ndim >= 2]:
        raise TensorDatasetError(f"{source} holds no input tensor (an array with 2 or more axes).",
                                 "Add the model's input as `x` (or under the input's name), rows first.")
    return rows


def images_to_arrays(folder: Path, labels_csv: Path | None = None) -> dict[str, np.ndarray]:
    """A folder of images and its labels CSV (file, label, other columns) as arrays: x uint8 [N, H, W, 3]."""
    from PIL import Image, UnidentifiedImageError

    csv = labels_csv or folder / "labels.csv"
    if not csv.is_file():
        raise TensorDatasetError(f"{folder} has no labels CSV ({csv.name}).",
                                 "Add labels.csv with a column `file` (the image's name) and `label`.")
    table = pl.read_csv(csv, infer_schema_length=0)  # every column as text: class names stay as written
    for column in ("file", "label"):
        if column not in table.columns:
            raise TensorDatasetError(f"{csv.name} has no column {column!r}.",
                                     f"Its columns: {', '.join(table.columns)}. It needs file and label.")
    images, size = [], None
    for row, name in enumerate(table["file"].to_list(), start=2):  # one decode per file: I/O, not row arithmetic
        path = folder / name
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
        except (OSError, UnidentifiedImageError) as exc:
            raise TensorDatasetError(f"{csv.name} row {row}: {name} cannot be read as an image ({exc}).",
                                     "Fix or remove that row; nothing was registered.") from exc
        if size is None:
            size = pixels.shape
        elif pixels.shape != size:
            raise TensorDatasetError(f"{csv.name} row {row}: {name} is {pixels.shape[1]}x{pixels.shape[0]}, the "
                                     f"first image is {size[1]}x{size[0]}.",
                                     "Store the images at one size; the model card's preprocess resizes them.")
        images.append(pixels)
    if not images:
        raise TensorDatasetError(f"{csv.name} lists no images.", "Add one row per image.")
    arrays = {"x": np.stack(images).astype(np.uint8), "label": table["label"].to_numpy().astype(str),
              "record_id": table["file"].to_numpy().astype(str)}
    arrays.update({c: table[c].to_numpy().astype(str) for c in table.columns if c not in ("file", "label")})
    return arrays


@dataclass(frozen=True)
class Preprocess:
    """How raw images become the model's input (from the model card's `preprocess`)."""

    resize: tuple[int, int] | None = None  # (height, width)
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    layout: str = "NCHW"

    @classmethod
    def from_card(cls, card: dict[str, Any], version: str) -> Preprocess:
        """Read and check the card's preprocess table."""
        spec = card.get("preprocess") or {}
        if not isinstance(spec, dict):
            raise TensorDatasetError(f"{version}'s model card preprocess is {spec!r}, not a table.",
                                     'Write e.g. {"resize": [224, 224], "mean": [0.5, 0.5, 0.5], "layout": "NCHW"}.')
        unknown = sorted(set(spec) - {"resize", "scale", "mean", "std", "layout"})
        if unknown:
            raise TensorDatasetError(f"{version}'s model card preprocess has an unknown key {unknown[0]!r}.",
                                     "Known: resize, scale, mean, std, layout.")
        layout = str(spec.get("layout", "NCHW")).upper()
        if layout not in ("NCHW", "NHWC"):
            raise TensorDatasetError(f"{version}'s preprocess layout {layout!r}.", "Use NCHW or NHWC.")
        resize = spec.get("resize")
        return cls(tuple(int(v) for v in resize) if resize else None, float(spec.get("scale", 1 / 255)),
                   tuple(float(v) for v in spec.get("mean", ())), tuple(float(v) for v in spec.get("std", ())),
                   layout)

    def apply(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, C] images -> float32 model input, for one batch (the whole set never sits in float)."""
        x = images.astype(np.float32)
        if self.resize and tuple(x.shape[1:3]) != self.resize:
            x = resize_bilinear(x, self.resize)
        x *= self.scale
        if self.mean:
            x -= np.asarray(self.mean, dtype=np.float32)
        if self.std:
            x /= np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if self.layout == "NCHW" else x)


def resize_bilinear(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a batch [N, H, W, C] (pixel centres aligned, as PIL and OpenCV do), vectorised and
    separable: rows first, then columns, so at most three batch-sized arrays exist at a time."""
    out_h, out_w = size

    def axis(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
        low = np.floor(pos).astype(np.int64)
        return low, np.minimum(low + 1, src - 1), (pos - low).astype(np.float32)

    y0, y1, wy = axis(x.shape[1], out_h)
    rows = x[:, y0] * (1 - wy)[None, :, None, None]
    rows += x[:, y1] * wy[None, :, None, None]
    x0, x1, wx = axis(x.shape[2], out_w)
    out = rows[:, :, x0] * (1 - wx)[None, None, :, None]
    out += rows[:, :, x1] * wx[None, None, :, None]
    return out
