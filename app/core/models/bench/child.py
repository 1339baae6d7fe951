"""The benchmark process: loads one model in one runtime, times it, and writes JSON lines to stdout.

It runs apart from the app so that a model that crashes, hangs or eats memory takes only this process down.
Protocol: one JSON job on stdin; JSON lines out ({"progress": f, "message": m}, {"event": "measure_start"},
{"event": "measure_end"}, then {"result": {...}} or {"error": "..."}).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import numpy as np

from app.core.errors import runtime_cause
from app.core.models.child_guard import exit_with_parent

_DTYPES = {"f32": np.float32, "f16": np.float16, "f64": np.float64, "i64": np.int64, "i32": np.int32,
           "u8": np.uint8, "i8": np.int8, "boolean": np.bool_, "FLOAT": np.float32, "FLOAT16": np.float16, "DOUBLE": np.float64, "INT64": np.int64,
           "INT32": np.int32, "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_,
           "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
           "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
           "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


def _say(**message: Any) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _peak_rss_mb() -> float:
    # Linux keeps ru_maxrss across fork and exec: a child of the GUI reported the GUI's own peak (730-800 MB for a
    # model that needs 230 MB). VmHWM is this process image's own high-water mark.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024.0
    except (OSError, StopIteration, ValueError):
        pass
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    except ImportError:  # Windows
        import psutil

        return psutil.Process().memory_info().peak_wset / 2**20


def _shape(name: str, dims: list[Any], job: dict[str, Any]) -> list[int]:
    given = job["config"]["shapes"].get(name)
    if given:
        return [int(d) for d in given]
    out = []
    for i, d in enumerate(dims):
        if isinstance(d, int) and d > 0:
            out.append(d)
        elif i == 0:
            out.append(int(job["config"]["batch"]))
        else:
            raise ValueError(f"Input {name!r} has the dynamic dimension {d!r} at position {i}: give its size "
                             f"with a shape for {name} (e.g. --shape {name}=1,3,224,224).")
    return out


def _inputs(job: dict[str, Any]) -> list[dict[str, np.ndarray]]:
    """Batches of feeds: seeded synthetic data from the signature, or real rows from a dataset."""
    rng = np.random.default_rng(job["config"]["seed"])
    specs = job["inputs"]
    if job.get("dataset_path"):
        import pyarrow.parquet as pq

        spec = specs[0]
        table = pq.read_table(job["dataset_path"], columns=job["dataset_columns"])
        rows = np.column_stack([table.column(c).to_numpy(zero_copy_only=False) for c in job["dataset_columns"]])
        rows = rows.astype(_DTYPES.get(spec["dtype"], np.float32))
        batch = int(job["config"]["batch"])
        count = max(1, min(64, len(rows) // batch))
        return [{spec["name"]: np.ascontiguousarray(rows[i * batch:(i + 1) * batch])} for i in range(count)]
    feeds: dict[str, np.ndarray] = {}
    for spec in specs:
        shape = _shape(spec["name"], spec["shape"], job)
        dtype = _DTYPES.get(spec["dtype"], np.float32)
        if np.issubdtype(dtype, np.floating):
            feeds[spec["name"]] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[spec["name"]] = rng.integers(0, 2, shape).astype(np.bool_)
        else:
            feeds[spec["name"]] = rng.integers(0, 10, shape).astype(dtype)
    return [feeds]


class _Clock:
    """Stops the measurement after a duration or an iteration count and reports progress."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.seconds = float(config["seconds"])
        self.iterations = int(config["iterations"])
        self.start = time.perf_counter()
        self.count = 0
        self._next_report = self.start + 0.25
        self._lock = threading.Lock()

    def tick(self, now: float) -> bool:
        """Count one inference; False once the run is over."""
        with self._lock:
            self.count += 1
            done = self.count >= self.iterations if self.iterations > 0 else now - self.start >= self.seconds
            if now >= self._next_report:
                self._next_report = now + 0.25
                frac = self.count / self.iterations if self.iterations > 0 else (now - self.start) / self.seconds
                _say(progress=0.1 + 0.9 * min(1.0, frac), message=f"{self.count:,} inferences")
            return not done


def _time_onnxruntime(job: dict[str, Any]) -> dict[str, Any]:
    import onnxruntime as ort

    cfg = job["config"]
    options = ort.SessionOptions()
    if cfg["threads"]:
        options.intra_op_num_threads = int(cfg["threads"])
    t0 = time.perf_counter()
    session = ort.InferenceSession(job["model_path"], options, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - t0) * 1e3
    if not job["inputs"]:
        job["inputs"] = [{"name": i.name, "dtype": i.type, "shape": list(i.shape)} for i in session.get_inputs()]
    batches = _inputs(job)
    return _measure(job, batches, lambda feeds: session.run(None, feeds), None, load_ms, load_ms,
                    {"providers": session.get_providers()})


def _time_openvino(job: dict[str, Any]) -> dict[str, Any]:
    import openvino as ov
    import openvino.properties.hint as hints

    cfg = job["config"]
    core = ov.Core()
    t0 = time.perf_counter()
    model = core.read_model(job["model_path"])
    load_ms = (time.perf_counter() - t0) * 1e3
    if not job["inputs"]:
        job["inputs"] = [{"name": i.get_any_name(), "dtype": i.get_element_type().get_type_name(),
                          "shape": [d.get_length() if d.is_static else None for d in i.get_partial_shape()]}
                         for i in model.inputs]
    batches = _inputs(job)
    if any(not p.is_static for p in (i.get_partial_shape() for i in model.inputs)):
        model.reshape({name: ov.PartialShape(list(arr.shape)) for name, arr in batches[0].items()})
    props: dict[str, Any] = {}
    if cfg["hint"] != "none":
        props[hints.performance_mode] = (hints.PerformanceMode.LATENCY if cfg["hint"] == "latency"
                                         else hints.PerformanceMode.THROUGHPUT)
    if cfg["precision"]:
        props[hints.inference_precision] = {"f32": ov.Type.f32, "f16": ov.Type.f16, "bf16": ov.Type.bf16}[
            cfg["precision"]]
    if cfg["threads"]:
        props["INFERENCE_NUM_THREADS"] = int(cfg["threads"])
    if cfg["streams"]:
        props["NUM_STREAMS"] = int(cfg["streams"])
    t0 = time.perf_counter()
    compiled = core.compile_model(model, cfg["device"], props)
    compile_ms = (time.perf_counter() - t0) * 1e3
    nireq = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    request = compiled.create_infer_request()
    for name, arr in batches[0].items():
        request.set_tensor(name, ov.Tensor(arr))
    single = len(batches) == 1

    def infer(feeds: dict[str, np.ndarray]) -> Any:
        # Inputs stay bound to the request when they do not change, as OpenVINO's benchmark_app does.
        return request.infer() if single else request.infer(feeds)

    def queue() -> tuple[Any, bool]:
        requests = ov.AsyncInferQueue(compiled, nireq)
        if single:
            for i in range(len(requests)):
                for name, arr in batches[0].items():
                    requests[i].set_tensor(name, ov.Tensor(arr))
        return requests, single

    extra = {"optimal_infer_requests": nireq,
             "streams": int(compiled.get_property("NUM_STREAMS")),
             "execution_devices": [str(d) for d in compiled.get_property("EXECUTION_DEVICES")]}
    return _measure(job, batches, infer, queue, load_ms, compile_ms, extra)


def _measure(job: dict[str, Any], batches: list[dict[str, np.ndarray]], infer: Any, make_queue: Any,
             load_ms: float, compile_ms: float, extra: dict[str, Any]) -> dict[str, Any]:
    cfg = job["config"]
    t0 = time.perf_counter()
    infer(batches[0])
    first_ms = (time.perf_counter() - t0) * 1e3
    for i in range(int(cfg["warmup"])):
        infer(batches[i % len(batches)])
    _say(progress=0.1, message="Measuring")
    _say(event="measure_start")
    clock = _Clock(cfg)
    if cfg["mode"] == "async" and make_queue is not None:
        latencies = _openvino_async(make_queue, batches, clock)
    elif cfg["mode"] == "async":
        latencies = _threads(infer, batches, clock, int(cfg["streams"]) or 2)
    else:
        latencies = _sync(infer, batches, clock)
    wall = time.perf_counter() - clock.start
    _say(event="measure_end")
    return {"load_ms": load_ms, "compile_ms": compile_ms, "first_ms": first_ms, "latencies_ms": latencies,
            "inferences": len(latencies), "measure_s": wall,
            "throughput": len(latencies) * int(cfg["batch"]) / wall if wall > 0 else 0.0,
            "peak_rss_mb": _peak_rss_mb(), "runtime_details": extra}


def _sync(infer: Any, batches: list[dict[str, np.ndarray]], clock: _Clock) -> list[float]:
    latencies: list[float] = []
    n = len(batches)
    while True:
        t0 = time.perf_counter()
        infer(batches[len(latencies) % n])
        t1 = time.perf_counter()
        latencies.append((t1 - t0) * 1e3)
        if not clock.tick(t1):
            return latencies


def _threads(infer: Any, batches: list[dict[str, np.ndarray]], clock: _Clock, workers: int) -> list[float]:
    """Concurrent requests on one ONNX Runtime session (run() is thread-safe and releases the GIL)."""
    per_thread: list[list[float]] = [[] for _ in range(workers)]
    stop = threading.Event()

    def work(out: list[float]) -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            infer(batches[len(out) % len(batches)])
            t1 = time.perf_counter()
            out.append((t1 - t0) * 1e3)
            if not clock.tick(t1):
                stop.set()

    threads = [threading.Thread(target=work, args=(out,)) for out in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [x for out in per_thread for x in out]


def _openvino_async(make_queue: Any, batches: list[dict[str, np.ndarray]], clock: _Clock) -> list[float]:
    """OpenVINO's own async queue with its optimal number of requests (as benchmark_app runs it)."""
    queue, preset = make_queue()
    latencies: list[float] = []
    running = [True]

    def done(request: Any, _userdata: Any) -> None:
        latencies.append(request.latency)
        if not clock.tick(time.perf_counter()):
            running[0] = False

    queue.set_callback(done)
    i = 0
    while running[0]:
        if preset:
            queue.start_async()
        else:
            queue.start_async(batches[i % len(batches)])
        i += 1
    queue.wait_all()
    return latencies


def main() -> int:
    """Read the job from stdin, run it, print the result; the exit code is 0 even for a model error."""
    exit_with_parent()
    job = json.loads(sys.stdin.read())
    try:
        _say(progress=0.02, message=f"Loading the model in {job['config']['runtime']}")
        timer = _time_openvino if job["config"]["runtime"] == "openvino" else _time_onnxruntime
        _say(result=timer(job))
    except Exception as exc:  # the parent records the reason with the failed run
        _say(error=f"{type(exc).__name__}: {runtime_cause(str(exc), 2000)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
