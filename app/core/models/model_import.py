"""Safe import of model files (a model file is untrusted input): ONNX, OpenVINO IR, MLflow folders with an
ONNX flavor. Nothing is unpickled; nothing outside the model's own folder is read; the project changes only
when every check has passed."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from app.core.errors import LineproofError
from app.core.governance.identity import Signer
from app.core.models.integrity import content_sha256
from app.core.models.runtime_probe import check_runtimes_isolated
from app.core.store.db import one
from app.core.store.project import Project
from app.core.store.sources import sha256_of

MAX_BYTES = 4 << 30  # refuse files above 4 GiB: no production inspection model is that large
PICKLE_SUFFIXES = {".pkl", ".pickle", ".joblib", ".pt", ".pth", ".sav"}


class ModelImportError(LineproofError):
    """A model file is refused; nothing was written to the project."""


@dataclass(frozen=True)
class ImportedModel:
    """What import_model recorded."""

    version_id: str
    format: str
    sha256: str
    files: dict[str, str]  # file name -> sha256
    runtimes: dict[str, str]  # runtime -> "ok" or the reason it cannot load the model


def _refuse(what: str, todo: str = "Nothing was imported.") -> ModelImportError:
    return ModelImportError(what, todo)


def _check_plain_file(path: Path, root: Path) -> None:
    """A regular file inside `root`: no link, no hard link, no device, not empty, not huge."""
    if path.is_symlink():
        raise _refuse(f"{path.name} is a symbolic link.", "Import the real file, not a link; nothing was imported.")
    try:
        info = path.lstat()
    except FileNotFoundError as exc:
        raise _refuse(f"{path} does not exist.", "Check the path; nothing was imported.") from exc
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(f"{path.name} is not a regular file.", "Import model files only; nothing was imported.")
    if info.st_nlink > 1:
        raise _refuse(f"{path.name} is a hard link ({info.st_nlink} names for one file).",
                      "Copy the model to a plain file first; nothing was imported.")
    if info.st_size == 0:
        raise _refuse(f"{path.name} is empty (0 bytes).", "Export the model again; nothing was imported.")
    if info.st_size > MAX_BYTES:
        raise _refuse(f"{path.name} is {info.st_size / 2**30:.1f} GiB, above the {MAX_BYTES >> 30} GiB limit.")
    resolved = path.resolve()
    if root.resolve() not in resolved.parents and resolved != root.resolve():
        raise _refuse(f"{path} points outside the model's folder {root}.",
                      "Models must keep their data next to them; nothing was imported.")


def _inside(base: Path, location: str, what: str) -> Path:
    """Resolve a relative location inside `base` or refuse (absolute paths and .. escapes)."""
    if not location or os.path.isabs(location) or re.match(r"^[A-Za-z]:", location):
        raise _refuse(f"{what} points to the absolute path {location!r}.",
                      "Models must keep their data next to them; nothing was imported.")
    if os.path.normpath(location).split(os.sep)[0] == "..":
        raise _refuse(f"{what} points outside the model's folder ({location!r}).",
                      "Models must keep their data next to them; nothing was imported.")
    return base / location  # links and escapes through links are caught by _check_plain_file


def _all_tensors(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    """Every tensor of a graph and of its subgraphs (If/Loop/Scan bodies): any of them may live in a file."""
    tensors = list(graph.initializer)
    for sparse in graph.sparse_initializer:
        tensors += [sparse.values, sparse.indices]
    for node in graph.node:  # constants and subgraphs inside nodes can carry external data too
        for attr in node.attribute:
            if attr.HasField("t"):
                tensors.append(attr.t)
            tensors += list(attr.tensors)
            if attr.HasField("g"):
                tensors += _all_tensors(attr.g)
            for sub in attr.graphs:
                tensors += _all_tensors(sub)
    return tensors


def _onnx_files(model_path: Path) -> tuple[onnx.ModelProto, list[Path]]:
    """Parse and check an ONNX file and every external-data file it names (tensors and sparse initializers)."""
    base = model_path.parent
    _check_plain_file(model_path, base)
    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and others for a cut or foreign file
        raise _refuse(f"{model_path.name} is not a readable ONNX model ({type(exc).__name__}: truncated or "
                      "not ONNX).", "Export the model again; nothing was imported.") from exc
    tensors = _all_tensors(model.graph)
    extra: list[Path] = []
    for tensor in tensors:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        data = _inside(base, location, f"Tensor {tensor.name!r}'s external data")
        _check_plain_file(data, base)
        if data not in extra:
            extra.append(data)
    try:
        onnx.checker.check_model(str(model_path))
    except Exception as exc:
        raise _refuse(f"{model_path.name} fails the ONNX checker: {str(exc).splitlines()[0]}",
                      "Fix or re-export the model; nothing was imported.") from exc
    return model, extra


def _mlflow_onnx(folder: Path) -> Path:
    """The ONNX file of an MLflow model folder (its MLmodel must declare an onnx flavor)."""
    mlmodel = folder / "MLmodel"
    _check_plain_file(mlmodel, folder)
    text = mlmodel.read_text(encoding="utf-8", errors="replace")
    if not re.search(r"^\s{2}onnx:\s*$", text, flags=re.M):
        flavors = re.findall(r"^\s{2}(\w+):\s*$", text, flags=re.M)
        raise _refuse(f"{folder.name} is an MLflow model without an ONNX flavor (flavors: {', '.join(flavors)}).",
                      "Lineproof never unpickles models: log the model with mlflow.onnx; nothing was imported.")
    block = text.split("  onnx:", 1)[1]
    match = re.search(r"^\s{4}data:\s*(\S+)\s*$", block, flags=re.M)
    if not match:
        raise _refuse(f"{folder.name}/MLmodel names no data file for the onnx flavor.")
    path = _inside(folder, match.group(1).strip("'\""), "The MLmodel onnx flavor's data path")
    _no_linked_folders(folder, path)
    return path


def _no_linked_folders(root: Path, path: Path) -> None:
    """Refuse a path that passes through a linked folder below `root` (a link would let a file outside in)."""
    current = root
    for part in path.relative_to(root).parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise _refuse(f"{root.name}/{current.relative_to(root).as_posix()} is a link to another folder "
                          f"({os.readlink(current)}).",
                          "Copy the model folder without links; nothing was imported.")


def _tensor_info(values: Any) -> list[dict[str, Any]]:
    """Name, dtype and shape (dynamic dims by name) of graph inputs or outputs."""
    out = []
    for v in values:
        t = v.type.tensor_type
        dims = [d.dim_param or (d.dim_value if d.HasField("dim_value") else None) for d in t.shape.dim]
        out.append({"name": v.name, "dtype": onnx.TensorProto.DataType.Name(t.elem_type) if t.elem_type else "?",
                    "shape": dims})
    return out


def import_model(project: Project, path: Path | str, model_id: str, version: str, threshold: float = 0.5,
                 lineage: dict | None = None, card: dict | None = None, new_model: dict | None = None,
                 check_limits: dict | None = None, by: Signer | None = None) -> ImportedModel:
    """Check, copy (read-only, content-addressed) and record a model version; refuse anything unsafe.

    `new_model` (name, task, risk_tier) registers the model in the same transaction when it does not exist yet,
    so that a refused file leaves no model and no audit entry behind. The runtimes load the file in a child
    process under `check_limits` (timeout_s, memory_mb; default the benchmark's). In a governed project `by`
    signs the version's author (and a new model's risk tier)."""
    project.require_writable()
    if by is not None:  # a signer who may not sign is refused before the file is even read
        from app.core.governance.approvals import check_signer, governed

        if governed(project):
            check_signer(project, by, "version.author")
    # Absolute before anything reads it: the runtime check runs in a child process with another working folder.
    src = Path(os.path.abspath(path))
    if src.suffix.lower() in PICKLE_SUFFIXES:
        raise _refuse(f"{src.name} is a pickled model ({src.suffix}).",
                      "Lineproof never unpickles files (they can run code): export to ONNX or OpenVINO IR; "
                      "nothing was imported.")
    if src.is_dir() and not src.is_symlink():
        main = _mlflow_onnx(src)
        model, extra = _onnx_files(main)
        fmt, files = "onnx", [main, *extra]
    elif src.suffix.lower() == ".xml":
        _check_plain_file(src, src.parent)
        weights = src.with_suffix(".bin")
        if not weights.exists():
            raise _refuse(f"{src.name} is an OpenVINO IR without its weights file {weights.name}.",
                          "Import the .xml and .bin pair from the same folder; nothing was imported.")
        _check_plain_file(weights, src.parent)
        fmt, files, model = "openvino-ir", [src, weights], None
    else:
        model, extra = _onnx_files(src)
        fmt, files = "onnx", [src, *extra]
    with project.reading() as con:
        exists = bool(one(con, "SELECT 1 FROM models WHERE model_id = ?", [model_id]))
        if not exists and new_model is None:
            raise _refuse(f"No model {model_id!r} in this project.", "Register the model first (lineproof models).")
        version_id = f"{model_id}:{version}"
        if one(con, "SELECT 1 FROM model_versions WHERE version_id = ?", [version_id]):
            raise _refuse(f"Version {version_id} already exists.", "Give the new file another version name.")
    base = files[0].parent
    hashes = {f.relative_to(base).as_posix(): sha256_of(f) for f in files}
    sha = content_sha256(hashes)  # the folder is named after every file's bytes, not the graph's alone
    runtimes = check_runtimes_isolated(files[0], **(check_limits or {})) if fmt == "onnx" else \
        {"openvino": "ok (IR)"}
    dest = project.models_dir / sha
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=project.models_dir))
    try:
        for f in files:
            target = staging / f.relative_to(base)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
            os.chmod(target, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        io = {"inputs": [], "outputs": [], "opset": {}, "producer": ""}
        if model is not None:
            # IR < 4 files list every initializer as a graph input too: those are constants, not inputs to feed
            constants = {t.name for t in model.graph.initializer}
            feeds = [i for i in model.graph.input if i.name not in constants]
            io = {"inputs": _tensor_info(feeds), "outputs": _tensor_info(model.graph.output),
                  "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
                  "producer": f"{model.producer_name} {model.producer_version}".strip(),
                  "metadata": {p.key: p.value for p in model.metadata_props}}
        rel = (Path("artifacts") / "models" / sha / files[0].name).as_posix()
        details = {"sha256": sha, "files": hashes, "format": fmt, "runtimes": runtimes}
        if not exists:
            details["registered_model"] = new_model
        with project.change("model_version.import", version_id, details) as con:
            if not exists:
                from app.core.models.registry import RISK_TIERS, TASKS

                task, tier = new_model.get("task", "binary"), new_model.get("risk_tier", "medium")
                if task not in TASKS or tier not in RISK_TIERS:
                    raise _refuse(f"Unknown task {task!r} or risk tier {tier!r}.",
                                  f"Tasks: {', '.join(TASKS)}; tiers: {', '.join(RISK_TIERS)}.")
                con.execute("INSERT INTO models (model_id, name, task, description, created_at, risk_tier) "
                            "VALUES (?, ?, ?, '', now()::TIMESTAMP, ?)",
                            [model_id, new_model.get("name") or model_id, task, tier])
            con.execute("INSERT INTO model_versions (version_id, model_id, version, format, sha256, artifact_path, "
                        "size_bytes, threshold, inputs_json, outputs_json, lineage_json, card_json, created_at, "
                        "runtimes_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP, ?)",
                        [version_id, model_id, version, fmt, sha, rel, sum(f.stat().st_size for f in files),
                         threshold, json.dumps(io["inputs"]),
                         json.dumps({k: v for k, v in io.items() if k != "inputs"}),
                         json.dumps(lineage or {}, sort_keys=True), json.dumps(card or {}, sort_keys=True),
                         json.dumps({"files": hashes, **runtimes}, sort_keys=True)])
            if not dest.exists():
                staging.rename(dest)  # same folder: atomic; a failed commit leaves only an unreferenced copy
            else:
                # Same content imported before, possibly under another file name: add the names it lacks.
                for f in staging.rglob("*"):
                    target = dest / f.relative_to(staging)
                    if f.is_file() and not target.exists():
                        target.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(f, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if by is not None:
        _sign_facts(project, model_id, version_id, None if exists else new_model, lineage, by)
    return ImportedModel(version_id, fmt, sha, hashes, runtimes)


def _sign_facts(project: Project, model_id: str, version_id: str, new_model: dict | None, lineage: dict | None,
                by: Signer) -> None:
    """The governance facts an import brings, signed by the importer: a new model's tier, the version's author."""
    from app.core.governance.approvals import governed, sign_statement

    if not governed(project):
        return
    if new_model is not None:
        sign_statement(project, "model.tier", "model.tier", model_id,
                       {"tier": new_model.get("risk_tier", "medium")}, by)
    sign_statement(project, "version.sign", "version.author", version_id,
                   {"author": str((lineage or {}).get("author") or "")}, by)
