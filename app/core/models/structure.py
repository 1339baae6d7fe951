"""What changed inside a model between two versions: inputs and outputs, opset and IR version, operators, parameter
count, weights (by name and hash, with the largest relative change), metadata, model-card fields and, for ONNX-ML
tree ensembles, trees, depth and features used. Reads ONNX and OpenVINO IR files as stored (hashes checked first).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.core.errors import LineproofError
from app.core.models.integrity import verify_version_files
from app.core.store.db import one
from app.core.store.project import Project

TREE_OPS = {"TreeEnsembleClassifier", "TreeEnsembleRegressor"}
# INT8 weights within -64..64 (NNCF's 7-bit overflow fix) compute the same on every x86 CPU. CPUs without VNNI (AVX2,
# AVX-512 before Cascade Lake) add u8 x s8 products in pairs into int16: 2 x 255 x 64 = 32,640 fits, but full 8-bit
# weights (up to 127) saturate it, and the model scores differently there than on a VNNI PC (an INT8 MLP agreed with
# its parent on 97.0% of decisions on AVX2, 99.8% on the reference path): a validation on one PC need not hold on
# another.
PORTABLE_INT8 = (-64, 64)
INT8_8BIT_NOTE = ("stores 8-bit INT8 weights: on CPUs without VNNI (AVX2) OpenVINO's INT8 kernels can saturate, so it "
                  "may score differently there than here. Validate it on the target PC, or make the variant again "
                  "with Lineproof (7-bit weights, the same on every CPU).")


class StructureError(LineproofError):
    """A model's structure could not be read; nothing was changed."""


@dataclass(frozen=True)
class Weight:
    """One stored tensor: its shape, type and content hash (the array is kept for the change measure)."""

    shape: tuple[int, ...]
    dtype: str
    sha256: str
    values: np.ndarray = field(repr=False, compare=False)


@dataclass
class ModelStructure:
    """The parts of a model the diff compares, read from its file."""

    version_id: str
    format: str
    ir_version: str
    opsets: dict[str, int]
    inputs: dict[str, tuple[str, str]]  # name -> (shape, type)
    outputs: dict[str, tuple[str, str]]
    op_counts: Counter
    weights: dict[str, Weight]
    metadata: dict[str, str]
    card: dict[str, Any]
    trees: dict[str, Any] | None = None

    @property
    def int8_weights(self) -> str | None:
        """'7-bit' or '8-bit' when the model stores INT8 weights (see PORTABLE_INT8), None when it stores none."""
        stored = [w.values for w in self.weights.values() if w.dtype == "int8" and w.values.size]
        if not stored:
            return None
        low, high = PORTABLE_INT8
        return "7-bit" if all(low <= int(v.min()) and int(v.max()) <= high for v in stored) else "8-bit"

    @property
    def parameters(self) -> int:
        """Elements in all stored weights."""
        return int(sum(int(np.prod(w.shape)) if w.shape else 1 for w in self.weights.values()))


@dataclass
class StructureDiff:
    """Differences between two versions, each list empty when nothing changed in that respect."""

    a: ModelStructure
    b: ModelStructure
    io: list[str]
    versions: list[str]
    operators: list[tuple[str, int, int]]  # (op, count in a, count in b), only where they differ
    weights_added: list[str]
    weights_removed: list[str]
    weights_changed: list[tuple[str, float | None]]  # (name, relative change or None when the shape changed)
    metadata: list[str]
    card: list[str]
    trees: list[str]

    @property
    def largest_weight_change(self) -> tuple[str, float] | None:
        """The weight whose values moved most, relative to its own size (L2 norm of the change / of the weight)."""
        measured = [(n, r) for n, r in self.weights_changed if r is not None]
        return max(measured, key=lambda item: item[1]) if measured else None

    @property
    def identical(self) -> bool:
        """True when the two files hold the same model in every compared respect."""
        return not (self.io or self.versions or self.operators or self.weights_added or self.weights_removed
                    or self.weights_changed or self.metadata or self.card or self.trees)


def read_structure(project: Project, version_id: str, via_openvino: bool = False) -> ModelStructure:
    """The structure of a stored version (its files re-hashed first: a diff of a tampered file would mislead).

    `via_openvino` reads an ONNX file as OpenVINO sees it, so that it compares with an IR file (a variant) in the
    same operator vocabulary; its IR version and opsets still come from the ONNX file."""
    verify_version_files(project, version_id)
    with project.reading() as con:
        row = one(con, "SELECT format, artifact_path, card_json FROM model_versions WHERE version_id = ?",
                  [version_id])
    fmt, rel, card_json = row
    path = project.folder / rel
    card = json.loads(card_json or "{}")
    try:
        if fmt == "onnx" and not via_openvino:
            return _onnx_structure(version_id, path, card)
        structure = _openvino_structure(version_id, path, card)
        if fmt == "onnx":
            import onnx

            header = onnx.load(str(path), load_external_data=False)
            structure.format, structure.ir_version = "onnx", str(header.ir_version)
            structure.opsets = {(o.domain or "ai.onnx"): int(o.version) for o in header.opset_import}
        return structure
    except LineproofError:
        raise
    except Exception as exc:  # a file the runtimes accepted at import but this reader cannot walk
        raise StructureError(f"{version_id}: {path.name} could not be read for the diff ({exc}).",
                             "Check the file with `lineproof verify-models`; nothing was changed.") from exc


def _tensor_hash(values: np.ndarray) -> str:
    return hashlib.sha256(str(values.dtype).encode() + str(values.shape).encode()
                          + np.ascontiguousarray(values).tobytes()).hexdigest()


def _onnx_structure(version_id: str, path: Path, card: dict[str, Any]) -> ModelStructure:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    names = {i.name for i in graph.initializer}

    def io(values: Any) -> dict[str, tuple[str, str]]:
        out = {}
        for v in values:
            if v.name in names:  # an old-IR file lists its weights as inputs: they are constants
                continue
            t = v.type.tensor_type
            dims = [d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?") for d in t.shape.dim]
            dtype = onnx.TensorProto.DataType.Name(t.elem_type).lower() if v.type.HasField("tensor_type") \
                else v.type.WhichOneof("value")
            out[v.name] = ("x".join(dims) or "scalar", dtype)
        return out

    ops: Counter = Counter()
    trees = None
    for node in _all_nodes(graph):
        ops[f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type] += 1
        if node.domain == "ai.onnx.ml" and node.op_type in TREE_OPS:
            trees = _tree_summary(node)
    weights = {}
    for init in graph.initializer:
        values = numpy_helper.to_array(init)
        weights[init.name] = Weight(tuple(values.shape), str(values.dtype), _tensor_hash(values), values)
    meta = {p.key: p.value for p in model.metadata_props}
    meta.update({k: v for k, v in (("producer", f"{model.producer_name} {model.producer_version}".strip()),
                                   ("graph name", graph.name), ("doc", model.doc_string)) if v})
    return ModelStructure(version_id, "onnx", str(model.ir_version),
                          {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
                          io(graph.input), io(graph.output), ops, weights, meta, card, trees)


def _all_nodes(graph: Any) -> list[Any]:
    """Every node, subgraphs (If, Loop, Scan bodies) included."""
    nodes = []
    for node in graph.node:
        nodes.append(node)
        for attr in node.attribute:
            if attr.g.node:
                nodes.extend(_all_nodes(attr.g))
            for sub in attr.graphs:
                nodes.extend(_all_nodes(sub))
    return nodes


def _tree_summary(node: Any) -> dict[str, Any]:
    """Trees, deepest tree and features used of an ONNX-ML tree ensemble node, from its node arrays."""
    attrs = {a.name: a for a in node.attribute}

    def ints(name: str) -> np.ndarray:
        return np.asarray(attrs[name].ints, dtype=np.int64) if name in attrs else np.zeros(0, np.int64)

    tree, nid = ints("nodes_treeids"), ints("nodes_nodeids")
    true_id, false_id, feature = ints("nodes_truenodeids"), ints("nodes_falsenodeids"), ints("nodes_featureids")
    modes = [m.decode() for m in attrs["nodes_modes"].strings] if "nodes_modes" in attrs else []
    branch = np.asarray([m != "LEAF" for m in modes], dtype=bool)
    # Depth by relaxation over the (tree, node) -> children edges: at most `depth` passes, each vectorised.
    key = tree * (int(nid.max(initial=0)) + 1) + nid
    depth = dict.fromkeys(key[nid == 0].tolist(), 0)
    index = {int(k): i for i, k in enumerate(key)}
    frontier = [int(k) for k in key[nid == 0]]
    while frontier:
        nxt = []
        for k in frontier:
            i = index[k]
            if not branch[i]:
                continue
            for child in (true_id[i], false_id[i]):
                ck = int(tree[i]) * (int(nid.max(initial=0)) + 1) + int(child)
                if ck not in depth:
                    depth[ck] = depth[k] + 1
                    nxt.append(ck)
        frontier = nxt
    return {"op": node.op_type, "trees": int(len(np.unique(tree))), "max depth": int(max(depth.values(), default=0)),
            "nodes": int(len(nid)), "features used": sorted({int(f) for f in feature[branch]})}


def _openvino_structure(version_id: str, path: Path, card: dict[str, Any]) -> ModelStructure:
    import openvino as ov

    model = ov.Core().read_model(str(path))

    def io(ports: Any) -> dict[str, tuple[str, str]]:
        return {p.get_any_name(): (str(p.get_partial_shape()), str(p.get_element_type())) for p in ports}

    ops: Counter = Counter()
    weights = {}
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind in ("Parameter", "Result"):
            continue
        ops[kind] += 1
        if kind == "Constant":
            values = op.get_data()
            weights[op.get_friendly_name()] = Weight(tuple(values.shape), str(values.dtype), _tensor_hash(values),
                                                     values)
    meta = {}
    try:
        meta = {k: str(v) for k, v in model.get_rt_info().items()}
    except Exception:  # rt_info holds nested maps in some IR files; they are not part of the diff then
        meta = {}
    return ModelStructure(version_id, "openvino", "IR", {}, io(model.inputs), io(model.outputs), ops, weights, meta,
                          card)


def relative_change(a: np.ndarray, b: np.ndarray) -> float | None:
    """||b - a|| / ||a|| for same-shape numeric tensors (a quantised copy is compared in float); None otherwise."""
    if a.shape != b.shape or a.dtype.kind not in "fiub" or b.dtype.kind not in "fiub":
        return None
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norm = float(np.linalg.norm(a64))
    change = float(np.linalg.norm(b64 - a64))
    return change / norm if norm > 0 else (0.0 if change == 0 else float("inf"))


def diff_structures(a: ModelStructure, b: ModelStructure) -> StructureDiff:
    """Every difference between two read structures."""
    io = []
    for label, x, y in (("input", a.inputs, b.inputs), ("output", a.outputs, b.outputs)):
        io += [f"{label} {n} removed ({x[n][0]}, {x[n][1]})" for n in x if n not in y]
        io += [f"{label} {n} added ({y[n][0]}, {y[n][1]})" for n in y if n not in x]
        io += [f"{label} {n}: {x[n][0]} {x[n][1]} -> {y[n][0]} {y[n][1]}" for n in x if n in y and x[n] != y[n]]
    versions = []
    if a.format != b.format:
        versions.append(f"format {a.format} -> {b.format}")
    if a.ir_version != b.ir_version:
        versions.append(f"IR version {a.ir_version} -> {b.ir_version}")
    for domain in sorted(set(a.opsets) | set(b.opsets)):
        if a.opsets.get(domain) != b.opsets.get(domain):
            versions.append(f"opset {domain} {a.opsets.get(domain, '-')} -> {b.opsets.get(domain, '-')}")
    if a.int8_weights != b.int8_weights:
        versions.append(f"INT8 weights {a.int8_weights or 'none'} -> {b.int8_weights or 'none'}")
    operators = [(op, a.op_counts.get(op, 0), b.op_counts.get(op, 0))
                 for op in sorted(set(a.op_counts) | set(b.op_counts)) if a.op_counts.get(op) != b.op_counts.get(op)]
    changed = [(n, relative_change(a.weights[n].values, b.weights[n].values)) for n in sorted(a.weights)
               if n in b.weights and a.weights[n].sha256 != b.weights[n].sha256]
    metadata = [f"{k}: {a.metadata.get(k, '-')!s} -> {b.metadata.get(k, '-')!s}"
                for k in sorted(set(a.metadata) | set(b.metadata)) if a.metadata.get(k) != b.metadata.get(k)]
    card = [f"{k}: {_short(a.card.get(k))} -> {_short(b.card.get(k))}"
            for k in sorted(set(a.card) | set(b.card)) if a.card.get(k) != b.card.get(k)]
    trees = []
    if a.trees != b.trees:
        ta, tb = a.trees or {}, b.trees or {}
        trees = [f"{k}: {_short(ta.get(k))} -> {_short(tb.get(k))}" for k in
                 ("op", "trees", "max depth", "nodes", "features used") if ta.get(k) != tb.get(k)]
    return StructureDiff(a, b, io, versions, operators, sorted(n for n in b.weights if n not in a.weights),
                         sorted(n for n in a.weights if n not in b.weights), changed, metadata, card, trees)


def _short(value: Any) -> str:
    text = "-" if value is None else (json.dumps(value) if not isinstance(value, str) else value)
    return text if len(text) <= 80 else text[:77] + "..."


def diff_versions(project: Project, a: str, b: str) -> StructureDiff:
    """The structure diff of two stored versions (an ONNX file against an IR file is read through OpenVINO, unless
    it holds ONNX-ML operators OpenVINO cannot load)."""
    with project.reading() as con:
        formats = dict(con.execute("SELECT version_id, format FROM model_versions WHERE version_id IN (?, ?)",
                                   [a, b]).fetchall())
    for v in (a, b):
        if v not in formats:
            with project.reading() as con:
                known = [r[0] for r in con.execute("SELECT version_id FROM model_versions ORDER BY 1").fetchall()]
            raise StructureError(f"No model version {v!r}.", f"Versions: {', '.join(known) or 'none'}.")
    mixed = len(set(formats.values())) > 1

    def read(v: str) -> ModelStructure:
        if mixed and formats[v] == "onnx":
            try:
                return read_structure(project, v, via_openvino=True)
            except StructureError:  # ONNX-ML operators: OpenVINO cannot read it; compare it as ONNX
                pass
        return read_structure(project, v)
    return diff_structures(read(a), read(b))


def diff_text(d: StructureDiff) -> list[str]:
    """The diff as lines for the CLI, the Validation screen and the packet."""
    a, b = d.a, d.b
    lines = [f"{a.version_id} -> {b.version_id}"]
    if d.identical:
        return [*lines, "  The two files hold the same model in every compared respect."]

    def section(title: str, items: list[str]) -> None:
        if items:
            lines.append(f"  {title}:")
            lines.extend(f"    {item}" for item in items)
    section("Inputs and outputs", d.io)
    section("Format, IR and opsets", d.versions)
    section("Operators (count before -> after)", [f"{op}: {x} -> {y}" for op, x, y in d.operators])
    lines.append(f"  Parameters: {a.parameters:,} -> {b.parameters:,}")
    weights = [f"added {n} {tuple(b.weights[n].shape)}" for n in d.weights_added]
    weights += [f"removed {n} {tuple(a.weights[n].shape)}" for n in d.weights_removed]
    weights += [f"changed {n}" + (f": relative change {r:.3g}" if r is not None else
                                  f": shape {a.weights[n].shape} -> {b.weights[n].shape}")
                for n, r in d.weights_changed]
    section(f"Weights ({len(d.weights_changed)} changed, {len(d.weights_added)} added, "
            f"{len(d.weights_removed)} removed)", weights[:40] + ([f"... {len(weights) - 40} more"]
                                                                   if len(weights) > 40 else []))
    if d.largest_weight_change:
        name, r = d.largest_weight_change
        lines.append(f"  Largest relative weight change: {name} ({r:.3g})")
    section("Tree ensemble", d.trees)
    section("Metadata", d.metadata)
    section("Model card", d.card)
    if b.int8_weights == "8-bit":
        lines.append(f"  Note: {b.version_id} {INT8_8BIT_NOTE}")
    return lines
