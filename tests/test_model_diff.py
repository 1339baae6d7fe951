"""`lineproof diff A B`: what changed inside a model, checked on pairs built here so that the truth is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.cli import main
from app.core.models.integrity import ModelIntegrityError
from app.core.models.model_import import import_model
from app.core.models.registry import register_model
from app.core.models.structure import diff_text, diff_versions
from app.core.store.project import Project

RNG = np.random.default_rng(7)
W1 = RNG.normal(size=(4, 3)).astype(np.float32)
B1 = RNG.normal(size=3).astype(np.float32)
W2 = RNG.normal(size=(3, 1)).astype(np.float32)
DELTA = np.zeros((4, 3), dtype=np.float32)
DELTA[2, 1] = 0.5


def _mlp(path: Path, *, v2: bool) -> Path:
    """v1: x @ W1 + b1 -> Relu -> @ W2 -> Sigmoid. v2: W1 moved by DELTA, no bias, a Mul by `scale`, a second
    output `logit`, opset 18, other metadata."""
    w1 = W1 + DELTA if v2 else W1
    inits = [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(W2, "W2")]
    if v2:
        inits.append(numpy_helper.from_array(np.array([2.0], dtype=np.float32), "scale"))
        nodes = [helper.make_node("MatMul", ["x", "W1"], ["h0"]), helper.make_node("Mul", ["h0", "scale"], ["h1"]),
                 helper.make_node("Relu", ["h1"], ["h"]), helper.make_node("MatMul", ["h", "W2"], ["logit"]),
                 helper.make_node("Sigmoid", ["logit"], ["y"])]
    else:
        inits.append(numpy_helper.from_array(B1, "b1"))
        nodes = [helper.make_node("MatMul", ["x", "W1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
                 helper.make_node("Relu", ["h1"], ["h"]), helper.make_node("MatMul", ["h", "W2"], ["logit"]),
                 helper.make_node("Sigmoid", ["logit"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1])]
    if v2:
        outputs.append(helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["n", 1]))
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18 if v2 else 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"trained_on": "2026" if v2 else "2025"})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def pair(tmp_path: Path):
    project = Project.create(tmp_path / "proj", "diff")
    register_model(project, "m", "MLP", "binary")
    import_model(project, _mlp(tmp_path / "v1.onnx", v2=False), "m", "v1", card={"owner": "ana"})
    import_model(project, _mlp(tmp_path / "v2.onnx", v2=True), "m", "v2", card={"owner": "ben"})
    yield project
    project.close()


def test_the_diff_of_two_built_versions_lists_exactly_the_known_changes(pair: Project) -> None:
    d = diff_versions(pair, "m:v1", "m:v2")
    assert d.io == ["output logit added (nx1, float)"]
    assert d.versions == ["opset ai.onnx 17 -> 18"]
    assert d.operators == [("Add", 1, 0), ("Mul", 0, 1)]
    assert d.weights_added == ["scale"] and d.weights_removed == ["b1"]
    assert [n for n, _ in d.weights_changed] == ["W1"]  # W2 is byte-identical: not listed
    expected = np.linalg.norm(DELTA.astype(np.float64)) / np.linalg.norm(W1.astype(np.float64))
    assert d.weights_changed[0][1] == pytest.approx(expected, rel=1e-6)
    assert d.largest_weight_change[0] == "W1"
    assert (d.a.parameters, d.b.parameters) == (12 + 3 + 3, 12 + 3 + 1)
    assert d.metadata == ["trained_on: 2025 -> 2026"]
    assert d.card == ["owner: ana -> ben"] and d.trees == []
    text = "\n".join(diff_text(d))
    assert "Parameters: 18 -> 16" in text and "Add: 1 -> 0" in text and "Largest relative weight change: W1" in text


def test_a_version_against_itself_is_identical(pair: Project) -> None:
    d = diff_versions(pair, "m:v1", "m:v1")
    assert d.identical and "same model in every compared respect" in diff_text(d)[-1]


@pytest.mark.slow  # CPU-heavy: runs in the slow suite (make test-slow, CI)
def test_a_tree_ensembles_trees_depth_and_features_come_from_the_estimator(tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier

    x = RNG.normal(size=(400, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 3] > 0).astype(int)
    project = Project.create(tmp_path / "proj", "trees")
    register_model(project, "t", "forest", "binary")
    forests = {}
    for version, (n, depth) in {"a": (5, 3), "b": (8, 4)}.items():
        forest = RandomForestClassifier(n_estimators=n, max_depth=depth, random_state=1).fit(x, y)
        path = tmp_path / f"{version}.onnx"
        path.write_bytes(to_onnx(forest, x[:1], options={"zipmap": False}, target_opset=17).SerializeToString())
        import_model(project, path, "t", version)
        forests[version] = forest
    d = diff_versions(project, "t:a", "t:b")
    project.close()
    for structure, forest in ((d.a, forests["a"]), (d.b, forests["b"])):
        est = forest.estimators_
        assert structure.trees["trees"] == len(est)
        assert structure.trees["max depth"] == max(e.tree_.max_depth for e in est)
        assert structure.trees["nodes"] == sum(e.tree_.node_count for e in est)
        used = sorted({int(f) for e in est for f in e.tree_.feature if f >= 0})
        assert structure.trees["features used"] == used
    assert "trees: 5 -> 8" in d.trees


def test_a_changed_file_is_refused_before_it_is_read(pair: Project) -> None:
    with pair.reading() as con:
        rel = con.execute("SELECT artifact_path FROM model_versions WHERE version_id = 'm:v2'").fetchall()[0][0]
    path = pair.folder / rel
    path.chmod(0o644)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelIntegrityError, match="does not match the sha256"):
        diff_versions(pair, "m:v1", "m:v2")


def test_the_cli_prints_the_diff_and_names_an_unknown_version(pair: Project, capsys) -> None:
    folder = pair.folder
    pair.close()
    assert main(["diff", str(folder), "m:v1", "m:v2"]) == 0
    out = capsys.readouterr().out
    assert "m:v1 -> m:v2" in out and "output logit added" in out and "removed b1" in out
    assert main(["diff", str(folder), "m:v1", "m:v9"]) == 2
    err = capsys.readouterr().err
    assert "m:v9" in err and "Traceback" not in err


def test_the_card_command_sets_features_and_the_diff_shows_it(pair: Project, capsys) -> None:
    folder = pair.folder
    pair.close()
    assert main(["card", str(folder), "m:v2", "--features", "a, b,c,d", "--set", "intended_use=seams",
                 "--reason", "inputs documented"]) == 0
    assert "card.features: None -> ['a', 'b', 'c', 'd']" in capsys.readouterr().out
    assert main(["card", str(folder), "m:v2", "--set", "colour=red", "--reason", "x"]) == 2
    assert "Unknown field 'colour'" in capsys.readouterr().err
    assert main(["card", str(folder), "m:v2", "--set", "owner", "--reason", "x"]) == 2
    assert "is not FIELD=VALUE" in capsys.readouterr().err
    with Project.open(folder, read_only=True) as project:
        d = diff_versions(project, "m:v1", "m:v2")
    assert 'features: - -> ["a", "b", "c", "d"]' in d.card and "intended_use: - -> seams" in d.card
