"""Cheaper variants of a registered model version: FP16 (OpenVINO compresses the weights) and INT8 (NNCF
post-training quantization, default preset with 7-bit weights on every layer so that the result does not depend
on the CPU's VNNI, on calibration samples whose source and count are recorded).

A variant is a new version of the same model with lineage to its parent (method, calibration source and its hash,
sample count, NNCF and OpenVINO versions), imported through the same safe import, hashing and stages as any file.
The conversion runs in a child process: Cancel stops it at once and nothing is registered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.core.errors import Cancelled, LineproofError, runtime_cause
from app.core.governance.identity import Signer
from app.core.models.integrity import verify_version_files
from app.core.models.model_import import ImportedModel, import_model
from app.core.progress import NullProgress, Progress
from app.core.store.db import one
from app.core.store.project import Project
from app.core.store.sources import sha256_of, sql_ident, sql_literal

METHODS = ("int8", "fp16")
DEFAULT_SAMPLES = 300  # NNCF's default subset size; enough for the statistics of activations
CHILD_TIMEOUT_S = 900


class VariantError(LineproofError):
    """A variant could not be made; nothing was registered."""


@dataclass(frozen=True)
class Calibration:
    """Where INT8 calibration samples came from, as the lineage records it."""

    source: str  # "dataset <id>", "log", or a file name
    sha256: str
    samples: int


def make_variant(project: Project, parent: str, method: str, calibration: str | None = None,
                 samples: int = DEFAULT_SAMPLES, progress: Progress | None = None, by: Signer | None = None
                 ) -> ImportedModel:
    """Make and register the FP16 or INT8 variant of `parent` (MODEL:VERSION) as MODEL:VERSION-<method>.

    `calibration` (INT8): a registered dataset id, "log" (the prediction log's stored features of this version),
    or an .npz file with one array per model input (images)."""
    progress = progress or NullProgress()
    project.require_writable()
    if method not in METHODS:
        raise VariantError(f"Unknown variant method {method!r}.", "Use --int8 or --fp16.")
    if method == "int8":
        import importlib.util

        if importlib.util.find_spec("nncf") is None:
            raise VariantError("INT8 quantization needs NNCF, which this installation lacks (the offline bundle "
                               "leaves it out).", "Install the variants extra (pip install 'lineproof[variants]') "
                               "on a PC that makes variants, or make an FP16 variant (OpenVINO only).")
    row = _parent(project, parent)
    model_id, version, fmt, rel, card, lineage, threshold, inputs = row
    new_version = f"{version}-{method}"
    with project.reading() as con:
        if one(con, "SELECT 1 FROM model_versions WHERE version_id = ?", [f"{model_id}:{new_version}"]):
            raise VariantError(f"{model_id}:{new_version} exists already.",
                               "Compare it (lineproof compare-variants) or retire it first; nothing was made.")
    progress.report(0.02, f"Checking {parent}")
    verify_version_files(project, parent)
    source = project.folder / rel
    _refuse_unquantizable(parent, source, fmt)
    with tempfile.TemporaryDirectory(prefix="lineproof-variant-") as tmp_name:
        tmp = Path(tmp_name)
        calib = None
        if method == "int8":
            progress.report(0.05, "Drawing calibration samples")
            calib = _calibration(project, parent, card, inputs, calibration, samples, tmp / "calibration.npz")
        out = tmp / f"{Path(rel).stem}-{method}.xml"
        job = {"source": str(source), "method": method, "out": str(out),
               "calibration": str(tmp / "calibration.npz") if calib else None}
        (tmp / "job.json").write_text(json.dumps(job), encoding="utf-8")
        progress.report(0.1, "Quantizing with NNCF (INT8)" if method == "int8" else "Compressing weights to FP16")
        versions = _run_child(tmp / "job.json", tmp, parent, progress)
        progress.report(0.85, f"Importing {model_id}:{new_version}")
        record = {"variant_of": parent, "method": "nncf.quantize (default preset)" if method == "int8"
                  else "openvino compress_to_fp16", "openvino": versions.get("openvino", "")}
        if calib:
            record.update(overflow_fix="all layers (7-bit weights: the same results with and without VNNI)",
                          calibration=calib.source, calibration_sha256=calib.sha256,
                          calibration_samples=str(calib.samples), nncf=versions.get("nncf", ""))
        new_lineage = {**lineage, **record}
        result = import_model(project, out, model_id, new_version, threshold=threshold, lineage=new_lineage,
                              card={**card, "variant": f"{method.upper()} of {parent}"}, by=by)
    progress.report(1.0, f"Registered {result.version_id}")
    return result


def _parent(project: Project, parent: str) -> tuple:
    with project.reading() as con:
        row = one(con, """SELECT model_id, version, format, artifact_path, card_json, lineage_json, threshold,
                                 inputs_json FROM model_versions WHERE version_id = ?""", [parent])
        known = [r[0] for r in con.execute("SELECT version_id FROM model_versions ORDER BY 1").fetchall()]
    if row is None:
        raise VariantError(f"No model version {parent!r}.", f"Versions: {', '.join(known) or 'none'}.")
    model_id, version, fmt, rel, card, lineage, threshold, inputs = row
    return (model_id, version, fmt, rel, json.loads(card or "{}"), json.loads(lineage or "{}"),
            float(threshold if threshold is not None else 0.5), json.loads(inputs or "[]"))


def _refuse_unquantizable(parent: str, source: Path, fmt: str) -> None:
    """Tree ensembles (ONNX-ML) run in ONNX Runtime only: OpenVINO cannot load them, NNCF cannot quantize them."""
    if fmt != "onnx":
        return
    import onnx

    model = onnx.load(str(source), load_external_data=False)
    ml = sorted({n.op_type for n in model.graph.node if n.domain == "ai.onnx.ml"})
    if ml:
        raise VariantError(f"{parent} is not quantizable: it is built from ONNX-ML operators ({', '.join(ml)}), "
                           "which OpenVINO cannot load and NNCF cannot quantize.",
                           "A tree ensemble is already cheap to run; benchmark it as it is (lineproof bench). "
                           "Nothing was made.")


def _calibration(project: Project, parent: str, card: dict, inputs: list, calibration: str | None, samples: int,
                 out: Path) -> Calibration:
    """Calibration samples as an .npz with one array per model input; the lineage gets their source and hash."""
    if samples < 1:
        raise VariantError("The calibration needs at least one sample.", "Use --samples 300 (NNCF's default).")
    if calibration is None:
        raise VariantError("INT8 quantization needs calibration samples.",
                           "Give --calibration DATASET (a registered dataset with the model's features), "
                           "--calibration log (this version's logged features) or --calibration FILE.npz (one "
                           "array per model input, e.g. images); nothing was made.")
    if calibration.endswith(".npz"):
        return _npz_calibration(Path(calibration), inputs, samples, out)
    if calibration != "log":
        with project.reading() as con:
            tensors = one(con, "SELECT artifact_path FROM datasets WHERE dataset_id = ? AND artifact_path LIKE "
                               "'%.npz'", [calibration])
        if tensors:  # an image or tensor dataset: its input tensors, preprocessed as the card says
            return _tensor_dataset_calibration(project.folder / tensors[0], calibration, card, parent, inputs,
                                               samples, out)
    features = list(card.get("features") or [])
    if not features:
        raise VariantError(f"{parent}'s model card lists no features, so rows cannot be turned into its input.",
                           "Set them (lineproof card PROJECT VERSION --features a,b,c --reason ...) or give --calibration "
                           "FILE.npz; nothing was made.")
    if len(inputs) != 1:
        raise VariantError(f"{parent} has {len(inputs)} inputs; table rows feed a model with one.",
                           "Give --calibration FILE.npz with one array per input; nothing was made.")
    if calibration == "log":
        relation, source = "predictions", "log"
        where = f"WHERE version_id = {sql_literal(parent)}"
        with project.reading() as con:
            present = {r[0] for r in con.execute("SELECT name FROM log_columns").fetchall()}
    else:
        with project.reading() as con:
            ds = one(con, "SELECT artifact_path, sha256 FROM datasets WHERE dataset_id = ?", [calibration])
            known = [r[0] for r in con.execute("SELECT dataset_id FROM datasets ORDER BY 1").fetchall()]
        if ds is None:
            raise VariantError(f"No dataset {calibration!r} to calibrate with.",
                               f"Datasets: {', '.join(known) or 'none'}; or --calibration log / FILE.npz.")
        relation = f"read_parquet({sql_literal(str(project.folder / ds[0]))})"
        source, where = f"dataset {calibration}", ""
        import pyarrow.parquet as pq

        present = set(pq.read_schema(project.folder / ds[0]).names)
    missing = [f for f in features if f not in present]
    if missing:
        raise VariantError(f"The calibration {source} has no column(s) {', '.join(missing)} of {parent}'s "
                           "features.", f"Its columns must include: {', '.join(features)}; nothing was made.")
    cols = ", ".join(f"CAST({sql_ident(f)} AS FLOAT) AS {sql_ident(f)}" for f in features)
    not_null = " AND ".join(f"{sql_ident(f)} IS NOT NULL" for f in features)
    # A seeded reservoir sample: the same rows every time for the same data, spread over the whole relation.
    sql = (f"SELECT {cols} FROM (SELECT * FROM {relation} {where}) WHERE {not_null} "
           f"USING SAMPLE reservoir({int(samples)} ROWS) REPEATABLE (42)")
    with project.reading() as con:
        matrix = con.sql(sql).fetchnumpy()
    x = np.column_stack([matrix[f] for f in features]).astype(np.float32) if matrix[features[0]].size else \
        np.zeros((0, len(features)), np.float32)
    if len(x) == 0:
        raise VariantError(f"The calibration {source} has no complete rows of {parent}'s features.",
                           "Choose another source; nothing was made.")
    np.savez(out, **{inputs[0]["name"]: x})
    return Calibration(source, sha256_of(out), len(x))


def _tensor_dataset_calibration(path: Path, dataset_id: str, card: dict, parent: str, inputs: list, samples: int,
                                out: Path) -> Calibration:
    """A registered .npz dataset: a seeded sample of its input tensor; raw uint8 images go through the card's
    preprocess (batch by batch), as validation feeds them."""
    from app.core.store.tensor_datasets import Preprocess, TensorDatasetError, read_npz

    if len(inputs) != 1:
        raise VariantError(f"{parent} has {len(inputs)} inputs; a tensor dataset feeds a model with one.",
                           "Give --calibration FILE.npz with one array per input; nothing was made.")
    name = inputs[0]["name"]
    arrays = read_npz(path)
    tensor = arrays.get(name, arrays.get("x"))
    if tensor is None or tensor.ndim < 2:
        raise VariantError(f"Dataset {dataset_id} has no input tensor for {parent} (neither {name!r} nor 'x').",
                           f"Its arrays: {', '.join(sorted(arrays))}; nothing was made.")
    rows = np.sort(np.random.default_rng(42).choice(len(tensor), size=min(samples, len(tensor)), replace=False))
    picked = tensor[rows]
    if picked.dtype == np.uint8 and picked.ndim == 4:
        try:
            prepare = Preprocess.from_card(card, parent).apply
        except TensorDatasetError as exc:
            raise VariantError(exc.what, exc.todo) from exc
        picked = np.concatenate([prepare(picked[i:i + 64]) for i in range(0, len(picked), 64)])
    np.savez(out, **{name: np.ascontiguousarray(picked, dtype=np.float32)})
    return Calibration(f"dataset {dataset_id}", sha256_of(path), len(picked))


def _npz_calibration(path: Path, inputs: list, samples: int, out: Path) -> Calibration:
    if not path.is_file():
        raise VariantError(f"{path} does not exist.", "Give an .npz file with one array per model input.")
    try:
        data = np.load(path, allow_pickle=False)
        arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise VariantError(f"{path.name} cannot be read as .npz ({exc}).",
                           "Save it with numpy.savez, one array per input; nothing was made.") from exc
    names = [i["name"] for i in inputs] or list(arrays)
    missing = [n for n in names if n not in arrays]
    if missing:
        raise VariantError(f"{path.name} has no array for input(s) {', '.join(missing)} (it has "
                           f"{', '.join(arrays) or 'none'}).", "Name each array after its input; nothing was made.")
    count = min(len(arrays[n]) for n in names)
    if count == 0:
        raise VariantError(f"{path.name} holds no samples.", "Give at least one sample; nothing was made.")
    count = min(count, samples)
    np.savez(out, **{n: np.ascontiguousarray(arrays[n][:count]) for n in names})
    return Calibration(path.name, sha256_of(path), count)


def _run_child(job: Path, tmp: Path, parent: str, progress: Progress) -> dict[str, str]:
    """Run the converter child; Cancel kills it. Returns the versions it reports."""
    env = {**os.environ, "HOME": str(tmp)}  # NNCF and OpenVINO write caches and telemetry ids under HOME
    command = [sys.executable, "_variant-child"] if getattr(sys, "frozen", False) else \
        [sys.executable, "-m", "app.core.models.variant_child"]
    child = subprocess.Popen([*command, str(job)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             cwd=str(Path(__file__).resolve().parents[3]))
    started = time.monotonic()
    try:
        while child.poll() is None:
            if progress.cancelled():
                raise Cancelled()
            if time.monotonic() - started > CHILD_TIMEOUT_S:
                raise VariantError(f"Making the variant of {parent} took over {CHILD_TIMEOUT_S} s and was stopped.",
                                   "Use fewer calibration samples (--samples); nothing was made.")
            time.sleep(0.1)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    out, err = child.communicate()
    if child.returncode != 0:
        raise VariantError(f"OpenVINO could not convert {parent}: {runtime_cause(_last_error(err))}",
                           "Check that the model runs on OpenVINO (Models screen, runtimes); nothing was made.")
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def _last_error(stderr: str) -> str:
    """The exception line of a child's traceback (the cause), else its last line."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.split(":", 1)[0].endswith(("Error", "Exception", "Failure"))]
    text = (errors or lines or ["no output"])[-1]
    return text.split(": ", 1)[1] if ": " in text and text.split(": ", 1)[0].endswith(("Error", "Exception",
                                                                                       "Failure")) else text
