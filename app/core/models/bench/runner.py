"""Start a benchmark in a child process, watch it (progress, Cancel, timeout, memory), and record the result."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from app.core.errors import Cancelled
from app.core.models.bench import store
from app.core.models.bench.config import BenchConfig, BenchError
from app.core.models.bench.devices import openvino_devices
from app.core.models.bench.fingerprint import hardware_fingerprint
from app.core.models.integrity import verify_version_files
from app.core.progress import NullProgress, Progress
from app.core.store.db import one
from app.core.store.project import Project
from app.core.store.sources import sql_literal

NOISY_LOAD = 0.10  # more than 10% of the machine busy with other work: the figures are not comparable
_POLL_S = 0.05


@dataclass
class BenchResult:
    """One recorded run: status 'ok' with its figures, or 'failed' with the reason."""

    run_id: str
    version_id: str
    status: str
    reason: str
    config: BenchConfig
    figures: dict[str, float] = field(default_factory=dict)
    background_load: float | None = None
    noisy: bool = False
    fingerprint: dict[str, Any] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {"run_id": self.run_id, "version_id": self.version_id, "status": self.status, "reason": self.reason,
                "config": json.loads(self.config.to_json()), **self.figures,
                "background_load": self.background_load, "noisy": self.noisy, "fingerprint": self.fingerprint}


def child_command() -> list[str]:
    """How to start the benchmark process, from a source checkout or from a frozen bundle."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "_bench-child"]
    return [sys.executable, "-m", "app.core.models.bench.child"]


def _version(project: Project, version_id: str) -> dict[str, Any]:
    with project.reading() as con:
        row = one(con, "SELECT version_id, sha256, artifact_path, format, inputs_json, runtimes_json, card_json "
                       "FROM model_versions WHERE version_id = ?", [version_id])
    if row is None:
        raise BenchError(f"No model version {version_id!r} in this project.",
                         "Check the id with `lineproof models PROJECT`.")
    keys = ("version_id", "sha256", "artifact_path", "format", "inputs", "runtimes", "card")
    info = dict(zip(keys, row, strict=True))
    for k in ("inputs", "runtimes", "card"):
        info[k] = json.loads(info[k] or ("[]" if k == "inputs" else "{}"))
    return info


def _check_shapes(info: dict[str, Any], config: BenchConfig) -> None:
    """A shape for an input the model does not have is a typo: say so now, naming the inputs it has."""
    names = [str(i.get("name")) for i in info["inputs"]]
    unknown = [n for n in config.shapes if n not in names]
    if unknown:
        raise BenchError(f"{info['version_id']} has no input {', '.join(repr(n) for n in unknown)}.",
                         f"Its inputs are: {', '.join(names) or 'none recorded'}; give --shape NAME=D1,D2,... for "
                         "one of them; nothing was run.")


def _check_runtime(info: dict[str, Any], config: BenchConfig) -> None:
    state = str(info["runtimes"].get(config.runtime, "ok" if config.runtime == "openvino" else "unknown"))
    if not state.startswith("ok"):
        name = "OpenVINO" if config.runtime == "openvino" else "ONNX Runtime"
        raise BenchError(f"{info['version_id']} cannot run in {name}: {state}.",
                         "Benchmark it on the runtime that can load it (see `lineproof models`).")
    if config.runtime == "onnxruntime" and info["format"] != "onnx":
        raise BenchError(f"{info['version_id']} is an OpenVINO IR; ONNX Runtime cannot load it.",
                         "Use --runtime openvino.")
    if config.runtime == "openvino":
        devices = list(openvino_devices())
        base = config.device.split(":")[0]
        if base not in ("AUTO", "HETERO", "MULTI") and config.device not in devices:
            raise BenchError(f"OpenVINO has no device {config.device!r} on this PC.",
                             f"Use one of {', '.join([*devices, 'AUTO'])}.")


def _dataset_source(project: Project, info: dict[str, Any], dataset_id: str) -> tuple[str, list[str]]:
    with project.reading() as con:
        row = one(con, "SELECT artifact_path FROM datasets WHERE dataset_id = ?", [dataset_id])
        if row is None:
            raise BenchError(f"No dataset {dataset_id!r} in this project.", "Check the id with `lineproof info`.")
        path = project.folder / row[0]
        if path.suffix == ".npz":
            raise BenchError(f"Dataset {dataset_id} holds image tensors; the benchmark feeds table rows.",
                             "Benchmark an image model with synthetic inputs of its shape (--shape), or a Parquet "
                             "dataset for a tabular model.")
        columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_literal(str(path))})").fetchall()]
    features = list(info["card"].get("features") or [])
    missing = [f for f in features if f not in columns]
    if not features:
        raise BenchError(f"{info['version_id']}'s model card names no input features.",
                         "Add the feature column names to the model card ('features'), or use synthetic inputs.")
    if missing:
        raise BenchError(f"Dataset {dataset_id} lacks the model's feature columns: {', '.join(missing)}.",
                         "Choose a dataset with those columns, or use synthetic inputs.")
    return str(path), features


class _Watch:
    """Reads the child's output lines on a thread and samples CPU time at the measurement boundaries."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.ps = psutil.Process(proc.pid)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr: deque[str] = deque(maxlen=30)
        self.marks: dict[str, tuple[float, float, float]] = {}
        self.peak_rss = 0.0
        self._threads = [threading.Thread(target=self._read_out, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for t in self._threads:
            t.start()

    def _mark(self, name: str) -> None:
        try:
            cpu = psutil.cpu_times()
            busy = sum(cpu) - cpu.idle - getattr(cpu, "iowait", 0.0)
            own = self.ps.cpu_times()
            self.marks[name] = (time.perf_counter(), busy, own.user + own.system)
        except psutil.Error:
            pass

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # a runtime printing to stdout: not ours
            if message.get("event") in ("measure_start", "measure_end"):
                self._mark(message["event"])
            self.lines.put(message)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if line.strip():
                self.stderr.append(line.rstrip())

    def output_open(self) -> bool:
        """True while the child may still write result lines."""
        return self._threads[0].is_alive()

    def rss_mb(self) -> float:
        try:
            rss = self.ps.memory_info().rss / 2**20
        except psutil.Error:
            return 0.0
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    def join(self) -> None:
        for t in self._threads:
            t.join(timeout=5)

    def background_load(self) -> float | None:
        """Share of the machine's CPU used by everything but the benchmark while it measured."""
        if "measure_start" not in self.marks or "measure_end" not in self.marks:
            return None
        (t0, busy0, own0), (t1, busy1, own1) = self.marks["measure_start"], self.marks["measure_end"]
        wall = (t1 - t0) * (psutil.cpu_count() or 1)
        return max(0.0, min(1.0, ((busy1 - busy0) - (own1 - own0)) / wall)) if wall > 0 else None


def _kill(proc: subprocess.Popen[str]) -> None:
    try:
        proc.kill()
    except OSError:
        pass
    proc.wait()


def _supervise(proc: subprocess.Popen[str], watch: _Watch, config: BenchConfig, progress: Progress,
               limit_mb: float) -> tuple[dict[str, Any] | None, str]:
    """Follow the child until it ends, is cancelled, runs away with memory or hangs: (result, failure reason)."""
    deadline = time.monotonic() + config.effective_timeout
    result: dict[str, Any] | None = None
    reason = ""
    while True:
        try:
            message = watch.lines.get(timeout=_POLL_S)
        except queue.Empty:
            message = None
        if message is not None:
            if "progress" in message:
                progress.report(float(message["progress"]), str(message.get("message", "")))
            elif "result" in message:
                result = message["result"]
            elif "error" in message:
                reason = f"The model failed in {config.runtime}: {message['error']}"
        if progress.cancelled():
            _kill(proc)
            raise Cancelled("Benchmark cancelled; the benchmark process was stopped and nothing was recorded.")
        if watch.rss_mb() > limit_mb:
            _kill(proc)
            reason = (f"The benchmark process used more than {limit_mb:,} MB of memory and was stopped "
                      "(runaway allocation).")
            break
        if time.monotonic() > deadline:
            _kill(proc)
            reason = f"The benchmark did not finish within {config.effective_timeout:.0f} s and was stopped (hang)."
            break
        if proc.poll() is not None and watch.lines.empty() and not watch.output_open():
            break
    return result, reason


def _exit_reason(code: int, stderr: deque[str]) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        reason = f"The benchmark process crashed ({name})."
    else:
        reason = f"The benchmark process exited with code {code} without a result."
    tail = " | ".join(list(stderr)[-3:])
    return f"{reason} Last output: {tail}" if tail else reason


def figures_from(latencies: list[float], raw: dict[str, Any]) -> dict[str, float]:
    """Percentiles (linear interpolation, as numpy), mean, max and the runtime's timings."""
    lat = np.asarray(latencies, dtype=np.float64)
    pct = np.percentile(lat, [50, 90, 95, 99, 99.9]) if lat.size else [None] * 5
    return {"load_ms": raw.get("load_ms"), "compile_ms": raw.get("compile_ms"), "first_ms": raw.get("first_ms"),
            "p50_ms": _f(pct[0]), "p90_ms": _f(pct[1]), "p95_ms": _f(pct[2]), "p99_ms": _f(pct[3]),
            "p999_ms": _f(pct[4]), "max_ms": _f(lat.max()) if lat.size else None,
            "mean_ms": _f(lat.mean()) if lat.size else None, "throughput": raw.get("throughput"),
            "inferences": raw.get("inferences"), "measure_s": raw.get("measure_s"),
            "peak_rss_mb": raw.get("peak_rss_mb")}


def _f(x: Any) -> float | None:
    return None if x is None else float(x)


def run_benchmark(project: Project, version_id: str, config: BenchConfig, progress: Progress | None = None,
                  site: str = "", on_start: Callable[[int], None] | None = None) -> BenchResult:
    """Benchmark one model version in a child process and record the run (failed runs too, with the reason).

    Cancel kills the child and records nothing.
    """
    progress = progress or NullProgress()
    project.require_writable()
    config.check()
    info = _version(project, version_id)
    verify_version_files(project, version_id)
    _check_runtime(info, config)
    _check_shapes(info, config)
    job: dict[str, Any] = {"config": json.loads(config.to_json()), "inputs": info["inputs"],
                           "model_path": str(project.folder / info["artifact_path"])}
    if config.dataset_id:
        job["dataset_path"], job["dataset_columns"] = _dataset_source(project, info, config.dataset_id)
    limit_mb = config.max_memory_mb or int(psutil.virtual_memory().total / 2**20 * 0.75)
    fingerprint = hardware_fingerprint()
    started = datetime.now(UTC).replace(tzinfo=None)
    progress.report(0.0, f"Starting the benchmark of {version_id} on {config.runtime} {config.device}")
    proc = subprocess.Popen(child_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(Path(__file__).resolve().parents[4]))
    watch = _Watch(proc)
    if on_start is not None:
        on_start(proc.pid)
    assert proc.stdin is not None
    try:
        proc.stdin.write(json.dumps(job))
        proc.stdin.close()
    except OSError:
        pass  # the child died at once; its exit code tells why
    try:
        result, reason = _supervise(proc, watch, config, progress, limit_mb)
    except BaseException:  # Ctrl-C, SIGTERM (SystemExit), a crash here: never leave the child running
        _kill(proc)
        raise
    proc.wait()
    watch.join()
    while not watch.lines.empty():  # anything said after the last poll
        message = watch.lines.get()
        if "result" in message:
            result = message["result"]
        elif "error" in message and not reason:
            reason = f"The model failed in {config.runtime}: {message['error']}"
    if result is None and not reason:
        reason = _exit_reason(proc.returncode, watch.stderr)
    run_id = f"{started:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    background = watch.background_load() if result else None
    bench = BenchResult(run_id=run_id, version_id=version_id, status="ok" if result else "failed",
                        reason="" if result else reason, config=config, fingerprint=fingerprint,
                        background_load=background, noisy=bool(background is not None and background > NOISY_LOAD))
    if result:
        bench.latencies_ms = [float(x) for x in result["latencies_ms"]]
        bench.figures = figures_from(bench.latencies_ms, result)
    _record(project, bench, info["sha256"], site or project.manifest.site, started,
            result.get("runtime_details", {}) if result else {"peak_rss_mb_seen": watch.peak_rss})
    progress.report(1.0, "Benchmark recorded" if result else "Benchmark failed (recorded)")
    return bench


def _record(project: Project, bench: BenchResult, sha: str, site: str, started: datetime,
            details: dict[str, Any]) -> None:
    c = bench.config
    row = {"run_id": bench.run_id, "version_id": bench.version_id, "model_sha256": sha, "runtime": c.runtime,
           "device": c.device, "hint": c.hint if c.runtime == "openvino" else "", "mode": c.mode, "batch": c.batch,
           "site": site, "status": bench.status, "reason": bench.reason, "started_at": started,
           **{k: v for k, v in bench.figures.items()},
           "background_load": bench.background_load, "noisy": bench.noisy,
           "fingerprint_id": bench.fingerprint.get("fingerprint_id"),
           "fingerprint_json": json.dumps(bench.fingerprint, sort_keys=True), "config_json": c.to_json(),
           "details_json": json.dumps(details, sort_keys=True), "latencies_ms": bench.latencies_ms}
    audit = {"status": bench.status, "runtime": c.runtime, "device": c.device, "model_sha256": sha,
             "p50_ms": bench.figures.get("p50_ms"), "throughput": bench.figures.get("throughput"),
             "reason": bench.reason}
    with project.change("bench.run", bench.run_id, audit) as con:
        store.insert_run(con, row)
