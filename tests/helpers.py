"""Independent checks used by many tests (project state read straight from the files with DuckDB), and the
tiny ONNX model several tests import."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

TABLES = ("models", "model_versions", "datasets", "imports", "predictions", "labels", "audit_log", "log_columns")


def project_state(folder: Path) -> dict:
    """Row counts of every table, column list of predictions, and hashes of the files (project closed)."""
    state: dict = {}
    for name in ("project.duckdb", "lineproof.toml"):
        state[name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    con = duckdb.connect(str(folder / "project.duckdb"), read_only=True)
    try:
        for table in TABLES:
            state[table] = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        state["columns"] = [r[0] for r in con.execute("DESCRIBE predictions").fetchall()]
    finally:
        con.close()
    return state


def write_csv(path: Path, header: str, *rows: str) -> Path:
    """A CSV file from literal lines."""
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def tiny_onnx_model(folder: Path) -> Path:
    """A three-input MatMul model (opset 17, IR 8) as folder/m.onnx: small enough for every import test."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((3, 1), dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "m.onnx"
    onnx.save(model, str(path))
    return path


def prebuilt_sample_archive(tmp: Path, name: str = "Weld-seam inspection") -> Path:
    """A small project exported as the archive the offline bundle ships as its sample (built here, not trained)."""
    from app.core.governance.portable import export_project
    from app.core.store.ingest import import_predictions
    from app.core.store.project import Project

    log = write_csv(tmp / "prebuilt-log.csv", "record_id,ts,model_version,score,line,current_a",
                    *[f"r{i},2026-03-0{1 + i % 9} 10:00:00,weld:v1,0.{i % 10},L{i % 3},{200 + i}.5" for i in range(30)])
    with Project.create(tmp / "prebuilt-sample", name) as project:
        import_predictions(project, log)
        return export_project(project, tmp / "sample-project.lpz")


def pin_self_signed_identities(monkeypatch) -> None:
    """From now on (until `monkeypatch` undoes it) a self-signed identity is pinned as an anchor when created."""
    from app.core.governance import identity, trust

    original = identity._write_p12

    def write_and_pin(path, user_id, key, cert, chain, passphrase):
        original(path, user_id, key, cert, chain, passphrase)
        if not chain:  # self-signed (a site CA pins itself anyway)
            trust.add_anchor(cert)

    monkeypatch.setattr(identity, "_write_p12", write_and_pin)


@contextmanager
def opened_copy(template: Path, dest: Path) -> Iterator:
    """A private copy of a template project folder (built once by a module or session fixture), open for writing."""
    from app.core.store.project import Project

    shutil.copytree(template, dest)
    with Project.open(dest) as project:
        yield project
