"""Benchmarks run in a child process: figures checked against the stored latencies, failures recorded, the
test process survives crashes, hangs and runaway allocations."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.core.errors import Cancelled
from app.core.models.bench import BenchConfig, BenchError, run_benchmark
from app.core.models.bench.fingerprint import hardware_fingerprint
from app.core.models.model_import import import_model
from app.core.models.registry import register_model
from app.core.progress import TaskProgress
from app.core.store.project import Project
from tests.helpers import opened_copy


def _save(model: onnx.ModelProto, path: Path) -> Path:
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _matmul_model(path: Path) -> Path:
    w = numpy_helper.from_array(np.ones((4, 2), dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])], [w])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def _endless_loop_model(path: Path) -> Path:
    """A Loop with an astronomically large trip count: loads fine, never finishes an inference."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1])],
        [numpy_helper.from_array(np.ones(1, dtype=np.float32), "one")])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond", "x"], ["y"], body=body)], "endless",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [numpy_helper.from_array(np.array(2**62, dtype=np.int64), "trips"),
         numpy_helper.from_array(np.array(True), "cond")])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def _huge_allocation_model(path: Path) -> Path:
    """Expands its input to 30000 x 30000 floats (3.6 GB) per inference: a runaway allocation."""
    graph = helper.make_graph(
        [helper.make_node("Expand", ["x", "shape"], ["big"]), helper.make_node("ReduceSum", ["big"], ["y"],
                                                                                 keepdims=0)],
        "hog", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        [numpy_helper.from_array(np.array([30000, 30000], dtype=np.int64), "shape")])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.fixture(scope="module")
def bench_template(tmp_path_factory) -> Path:
    """A project with a tiny MatMul model and the three misbehaving ones, built once (three imports with their
    isolated runtime checks take ~2 s); each test gets its own copy."""
    folder = tmp_path_factory.mktemp("bench-template")
    with Project.create(folder / "proj", "bench", site="LAB") as project:
        register_model(project, "m", "tiny", "regression")
        import_model(project, _matmul_model(folder / "matmul.onnx"), "m", "ok")
        import_model(project, _endless_loop_model(folder / "loop.onnx"), "m", "hang")
        import_model(project, _huge_allocation_model(folder / "hog.onnx"), "m", "hog")
    return folder / "proj"


@pytest.fixture
def bench_project(tmp_path: Path, bench_template: Path):
    """A private copy of the bench template."""
    with opened_copy(bench_template, tmp_path / "proj") as project:
        yield project


def _rows(project: Project, sql: str) -> list[tuple]:
    with project.reading() as con:
        return con.execute(sql).fetchall()


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_benchmark_figures_match_the_stored_latencies(bench_project: Project, runtime: str) -> None:
    config = BenchConfig(runtime=runtime, batch=8, iterations=400, warmup=5)
    result = run_benchmark(bench_project, "m:ok", config)
    assert result.status == "ok", result.reason
    bench_project.close()
    con = duckdb.connect(str(bench_project.db_path), read_only=True)
    row = con.execute("SELECT latencies_ms, p50_ms, p90_ms, p99_ms, max_ms, mean_ms, inferences, throughput, "
                      "measure_s, model_sha256, fingerprint_id, status, compile_ms, peak_rss_mb "
                      "FROM bench_runs WHERE run_id = ?", [result.run_id]).fetchall()[0]
    audit = con.execute("SELECT action, target FROM audit_log ORDER BY seq DESC LIMIT 1").fetchall()[0]
    sha = con.execute("SELECT sha256 FROM model_versions WHERE version_id = 'm:ok'").fetchall()[0][0]
    con.close()
    lat = row[0]
    assert len(lat) == row[6] == 400
    cuts = statistics.quantiles(lat, n=100, method="inclusive")  # independent of numpy: same linear rule
    assert row[1] == pytest.approx(statistics.median(lat))
    assert row[2] == pytest.approx(cuts[89]) and row[3] == pytest.approx(cuts[98])
    assert row[4] == max(lat) and row[5] == pytest.approx(sum(lat) / len(lat))
    assert row[7] == pytest.approx(400 * 8 / row[8])
    assert row[9] == sha and row[10] == hardware_fingerprint()["fingerprint_id"] and row[11] == "ok"
    assert row[12] > 0 and row[13] > 50  # compile time measured; the child's RSS includes its runtime
    assert audit == ("bench.run", result.run_id)


def test_the_recorded_peak_memory_is_the_childs_own_not_its_parents(bench_project: Project) -> None:
    # Linux carries ru_maxrss over fork and exec: a benchmark started from the GUI (700+ MB) reported the GUI's
    # peak. Make this process's peak large first, then check the child's figure against what the child can hold.
    import resource

    big = np.ones(2**27)  # 1 GiB, touched
    del big
    parent_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert parent_peak > 1024
    result = run_benchmark(bench_project, "m:ok", BenchConfig(runtime="onnxruntime", batch=1, iterations=50))
    assert result.status == "ok", result.reason
    peak = _rows(bench_project, f"SELECT peak_rss_mb FROM bench_runs WHERE run_id = '{result.run_id}'")[0][0]
    assert 20 < peak < 600, f"child peak {peak:.0f} MB (parent's {parent_peak:.0f} MB)"


def test_fingerprint_describes_this_machine() -> None:
    fp = hardware_fingerprint()
    assert fp["logical_cores"] == os.cpu_count()
    assert fp["ram_gb"] > 0 and fp["cpu_model"] and fp["os"]
    import onnxruntime
    import openvino

    assert fp["onnxruntime"] == onnxruntime.__version__ and fp["openvino"] == openvino.__version__
    assert "CPU" in fp["ov_devices"] and "CPUExecutionProvider" in fp["ort_providers"]
    assert hardware_fingerprint()["fingerprint_id"] == fp["fingerprint_id"]


def test_hanging_model_is_killed_and_recorded_as_failed(bench_project: Project) -> None:
    result = run_benchmark(bench_project, "m:hang", BenchConfig(iterations=5, warmup=0, timeout_s=4))
    assert result.status == "failed" and "did not finish within 4 s" in result.reason
    assert _rows(bench_project, f"SELECT status, reason FROM bench_runs WHERE run_id = '{result.run_id}'") == [
        ("failed", result.reason)]


def test_runaway_allocation_is_stopped_and_recorded(bench_project: Project) -> None:
    result = run_benchmark(bench_project, "m:hog", BenchConfig(iterations=3, warmup=0, max_memory_mb=600))
    assert result.status == "failed"
    assert "used more than 600 MB of memory and was stopped" in result.reason, result.reason


def test_crashing_benchmark_process_is_recorded_and_the_caller_survives(bench_project: Project) -> None:
    # A segmentation fault inside the runtime looks exactly like this from outside: the child dies by SIGSEGV.
    result = run_benchmark(bench_project, "m:ok", BenchConfig(seconds=30),
                           on_start=lambda pid: os.kill(pid, signal.SIGSEGV))
    assert result.status == "failed" and "crashed (SIGSEGV)" in result.reason
    assert run_benchmark(bench_project, "m:ok", BenchConfig(iterations=20)).status == "ok"  # still usable


def test_cancel_kills_the_child_and_records_nothing(bench_project: Project) -> None:
    progress = TaskProgress()
    pids: list[int] = []

    def cancel_when_measuring(fraction: float, message: str) -> None:
        if message.endswith("inferences"):
            progress.cancel()

    progress._on_report = cancel_when_measuring
    with pytest.raises(Cancelled):
        run_benchmark(bench_project, "m:ok", BenchConfig(seconds=60), progress, on_start=pids.append)
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)
    assert _rows(bench_project, "SELECT count(*) FROM bench_runs") == [(0,)]


def test_sample_tree_model_runs_on_onnxruntime_only(sample_copy: Path) -> None:
    with Project.open(sample_copy) as project:
        runtimes = _rows(project, "SELECT runtimes_json FROM model_versions WHERE version_id = 'weld-defect:v2'")
        assert '"openvino": "not supported (TreeEnsembleClassifier)"' in runtimes[0][0]
        with pytest.raises(BenchError, match=r"cannot run in OpenVINO: not supported \(TreeEnsembleClassifier\)"):
            run_benchmark(project, "weld-defect:v2", BenchConfig(runtime="openvino", iterations=10))
        ok = run_benchmark(project, "weld-defect:v2", BenchConfig(runtime="onnxruntime", batch=32, iterations=50,
                                                                  dataset_id="holdout-2026H2"))
        assert ok.status == "ok" and ok.figures["inferences"] == 50
        assert _rows(project, "SELECT count(*) FROM bench_runs WHERE runtime = 'openvino'") == [(0,)]


@pytest.mark.parametrize("config, message", [
    (BenchConfig(runtime="openvino", device="NPU7"), "OpenVINO has no device 'NPU7'"),
    (BenchConfig(runtime="onnxruntime", device="GPU"), "ONNX Runtime is benchmarked on CPU"),
    (BenchConfig(batch=0), "Batch size 0"),
    (BenchConfig(dataset_id="nope"), "No dataset 'nope'"),
])
def test_bad_configuration_is_refused_before_any_process(bench_project: Project, config, message) -> None:
    with pytest.raises(BenchError, match=message):
        run_benchmark(bench_project, "m:ok", config)
    assert _rows(bench_project, "SELECT count(*) FROM bench_runs") == [(0,)]


def test_unknown_version_is_refused(bench_project: Project) -> None:
    with pytest.raises(BenchError, match="No model version 'm:v9'"):
        run_benchmark(bench_project, "m:v9", BenchConfig())


def test_benchmarks_in_parallel_threads_do_not_share_a_connection(bench_project: Project) -> None:
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        run_benchmark(bench_project, "m:ok", BenchConfig(iterations=50)))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status for r in results] == ["ok", "ok"]
    assert _rows(bench_project, "SELECT count(*) FROM bench_runs") == [(2,)]


def _children_after(parent: subprocess.Popen, deadline_s: float = 60.0) -> list[int]:
    import psutil

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        kids = [c.pid for c in psutil.Process(parent.pid).children(recursive=True)]
        if kids:
            return kids
        time.sleep(0.1)
    raise AssertionError("the benchmark child never started")


def _gone(pid: int, within_s: float = 10.0) -> bool:
    import psutil

    end = time.monotonic() + within_s
    while time.monotonic() < end:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_stopping_lineproof_bench_stops_the_benchmark_child(bench_project: Project, how) -> None:
    """Ctrl-C, SIGTERM, or even SIGKILL of `lineproof bench`: the measuring process does not live on."""
    folder = bench_project.folder
    bench_project.close()
    cli = subprocess.Popen([sys.executable, "-m", "app", "bench", str(folder), "--model", "m:ok", "--seconds", "120",
                            "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        kids = _children_after(cli)
        time.sleep(1.0)  # let it start measuring
        cli.send_signal(how)
        cli.wait(timeout=30)
        assert all(_gone(pid) for pid in kids), "the benchmark child outlived lineproof bench"
    finally:
        cli.kill()
        cli.wait()
    if how != signal.SIGKILL:
        assert cli.returncode == 130 and "Interrupted" in cli.stderr.read()
    with Project.open(folder) as project:
        assert _rows(project, "SELECT count(*) FROM bench_runs") == [(0,)]
