"""Batched scoring of a model file with the real ONNX Runtime and OpenVINO, with progress and Cancel.

The feature matrix is built once; each batch is a contiguous slice of it, so the loop around the runtime
costs a view and a cancel check per batch, not a copy (the benchmark compares it with a bare session.run).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.errors import LineproofError, runtime_cause
from app.core.progress import Progress, check_cancelled

RUNTIMES = ("onnxruntime", "openvino")


class ScoringError(LineproofError):
    """A model could not be run on the validation data."""


@dataclass(frozen=True)
class RuntimeScores:
    """One model's scores on one runtime, or why there are none."""

    runtime: str
    scores: np.ndarray | None
    seconds: float = 0.0
    compile_seconds: float = 0.0
    skipped: str = ""


def _probability(outputs: list[np.ndarray], names: list[str], version: str, classes: int = 0) -> np.ndarray:
    """The defect probability column from a model's outputs (prob[:, 1], or a single score column); for a
    multiclass model (`classes` > 0) the whole [N, classes] probability matrix."""
    pick = next((i for i, n in enumerate(names) if "prob" in n.lower()), 0)
    out = np.asarray(outputs[pick])
    if classes:
        if out.ndim == 2 and out.shape[1] == classes:
            return out
        raise ScoringError(f"{version}'s output {names[pick]!r} has shape {list(out.shape)}; its card names "
                           f"{classes} classes, so it needs [N, {classes}] probabilities.",
                           "Correct the card's classes, or re-export the model with a probability output.")
    if out.ndim == 2 and out.shape[1] == 2:
        return out[:, 1]
    if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
        return out.reshape(-1)
    raise ScoringError(f"{version}'s output {names[pick]!r} has shape {list(out.shape)}; a binary model needs "
                       "[N], [N, 1] or [N, 2] probabilities.", "Re-export the model with a probability output.")


def _loop(x: np.ndarray, batch: int, infer: Callable[[np.ndarray], np.ndarray], progress: Progress,
          report: Callable[[float], None], classes: int = 0,
          transform: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    out = np.empty((len(x), classes) if classes else len(x), dtype=np.float64)
    starts = range(0, len(x), batch)
    for i, start in enumerate(starts):
        check_cancelled(progress)
        rows = x[start:start + batch]
        out[start:start + batch] = infer(transform(rows) if transform else rows)
        if i % 8 == 0:
            report((start + batch) / max(len(x), 1))
    return out


def batch_rows(x: np.ndarray, batch: int) -> int:
    """The plan's batch, capped so one batch of inputs stays under 32 MB (an image batch of 8,192 would be 4.9 GB,
    and resizing it takes a few batch-sized arrays more)."""
    row_bytes = max(int(np.prod(x.shape[1:])) * 4, 1)
    return max(1, min(batch, (32 << 20) // row_bytes))


def has_zipmap(session: Any) -> bool:
    """Whether a loaded ONNX Runtime session returns a sequence of maps (a ZipMap output) for some output."""
    return any(str(o.type).startswith("seq(map") for o in session.get_outputs())


def zipmap_free(model: Path) -> tuple[bytes | str, list[str]]:
    """The model as ONNX Runtime should load it, and the class labels of its ZipMap if it has one.

    scikit-learn exports (skl2onnx) end in ZipMap: one dictionary per row. The graph is then loaded with that
    output replaced by ZipMap's input, the same probabilities as one [N, classes] tensor, so no row is ever
    turned into a Python dictionary. The file on disk (and its hash) stays as it is. Only call it for a model
    whose session `has_zipmap`: importing onnx holds the interpreter lock for ~0.8 s (a frozen window)."""
    import onnx

    graph_model = onnx.load(str(model), load_external_data=False)
    outputs = {o.name for o in graph_model.graph.output}
    zipmap = next((n for n in graph_model.graph.node if n.op_type == "ZipMap" and n.output[0] in outputs), None)
    if zipmap is None:
        return str(model), []
    attrs = {a.name: a for a in zipmap.attribute}
    labels = [str(v) for v in attrs["classlabels_int64s"].ints] if "classlabels_int64s" in attrs else \
        [v.decode() for v in attrs["classlabels_strings"].strings]
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph_model.graph.initializer):
        onnx.load_external_data_for_model(graph_model, str(model.parent))  # the bytes must hold the weights
    for i, out in enumerate(graph_model.graph.output):
        if out.name == zipmap.output[0]:
            graph_model.graph.output.remove(out)
            graph_model.graph.output.insert(i, onnx.helper.make_tensor_value_info(
                zipmap.input[0], onnx.TensorProto.FLOAT, None))
            break
    graph_model.graph.node.remove(zipmap)
    return graph_model.SerializeToString(), labels


def score_onnxruntime(model: Path, x: np.ndarray, version: str, batch: int, threads: int, progress: Progress,
                      report: Callable[[float], None], classes: int = 0,
                      transform: Callable[[np.ndarray], np.ndarray] | None = None) -> RuntimeScores:
    """Score every row with ONNX Runtime on the CPU (`transform` turns a batch of stored rows into inputs)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    started = time.perf_counter()
    try:
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        if has_zipmap(session):
            session = ort.InferenceSession(zipmap_free(model)[0], options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # the runtime's own message names the operator or the file problem
        return RuntimeScores("onnxruntime", None, skipped=f"ONNX Runtime cannot load it: {runtime_cause(str(exc))}")
    name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]

    def infer(rows: np.ndarray) -> np.ndarray:
        return _probability(session.run(None, {name: rows}), names, version, classes)

    batch = batch_rows(x if transform is None else transform(x[:1]), batch)
    first = x[:batch]
    infer(transform(first) if transform else first)  # first run allocates threads: load time, not scoring
    compiled = time.perf_counter() - started
    started = time.perf_counter()
    scores = _loop(x, batch, infer, progress, report, classes, transform)
    return RuntimeScores("onnxruntime", scores, time.perf_counter() - started, compiled)


def openvino_refusal(message: str) -> str:
    """OpenVINO's compile error in one line, naming the operators it cannot convert when it says so."""
    match = re.search(r"No conversion rule found for operations:\s*(.+)", message)
    if match:
        ops = ", ".join(dict.fromkeys(o.strip() for o in re.split(r"[,\s]+", match.group(1)) if o.strip()))
        return f"OpenVINO has no conversion for {ops} (tree ensembles run in ONNX Runtime only)"
    return f"OpenVINO cannot compile it: {runtime_cause(message) or 'unknown error'}"


def score_openvino(model: Path, x: np.ndarray, version: str, batch: int, precision: str, progress: Progress,
                   report: Callable[[float], None], classes: int = 0,
                   transform: Callable[[np.ndarray], np.ndarray] | None = None) -> RuntimeScores:
    """Score every row with OpenVINO on the CPU, or say why OpenVINO cannot run the model."""
    import openvino as ov

    config: dict[str, Any] = {"PERFORMANCE_HINT": "THROUGHPUT"}
    if precision != "default":
        config["INFERENCE_PRECISION_HINT"] = precision
    started = time.perf_counter()
    try:
        compiled = ov.Core().compile_model(str(model), "CPU", config)
    except Exception as exc:
        return RuntimeScores("openvino", None, skipped=openvino_refusal(str(exc)))
    request = compiled.create_infer_request()
    names = [o.get_any_name() for o in compiled.outputs]

    def infer(rows: np.ndarray) -> np.ndarray:
        result = request.infer({0: rows})
        return _probability([result[o] for o in compiled.outputs], names, version, classes)

    batch = batch_rows(x if transform is None else transform(x[:1]), batch)
    first = x[:batch]
    infer(transform(first) if transform else first)  # as for ONNX Runtime: part of the compile time
    compile_s = time.perf_counter() - started
    started = time.perf_counter()
    scores = _loop(x, batch, infer, progress, report, classes, transform)
    return RuntimeScores("openvino", scores, time.perf_counter() - started, compile_s)
