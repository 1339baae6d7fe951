"""Benchmarks screen: configure and run a benchmark with progress and Cancel; runs table; latency histogram,
percentiles table and throughput bars of the selected runs; a latency budget line. Thin over app.core.models.bench."""

from __future__ import annotations

import json
from typing import Any

import polars as pl
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import LineproofError
from app.core.models.bench import BenchConfig, run_benchmark
from app.core.models.bench.config import parse_shapes
from app.core.models.bench.devices import openvino_devices
from app.core.models.bench.store import compare_figures, list_runs, run_detail
from app.core.models.registry import list_versions
from app.core.store.datasets import list_datasets
from app.core.store.project import Project
from app.views.bench_charts import LatencyHistogram, ThroughputBars
from app.views.errors import show_error
from app.views.screen import Screen
from app.views.table_model import Column, FrameTableModel
from app.views.table_view import DataTable
from app.views.task_controls import TaskControls
from app.views.workers import Task

EMPTY = "No project open.\n\nOpen a project (Ctrl+O) to benchmark its models on this PC."
NO_MODELS = "No model versions to benchmark.\n\nImport a model first (Models screen, or lineproof import-model)."


def _load_tip(r: dict[str, Any]) -> str:
    if r["background_load"] is None:
        return "Background load not measured (failed run)"
    text = f"Other work used {r['background_load']:.1%} of the CPU during the measurement."
    return text + " Noisy: the figures are not comparable; rerun on a quiet PC." if r["noisy"] else text


RUN_COLUMNS = [
    Column("started_at", "Started (UTC)"), Column("version_id", "Version"), Column("runtime", "Runtime"),
    Column("device_hint", "Device", tooltip=lambda r: f"Device {r['device']}" + (
        f", OpenVINO performance hint {r['hint']}" if r["hint"] else "")),
    Column("mode", "Mode"), Column("batch", "Batch"),
    Column("p50_ms", "p50 ms", tooltip=lambda r: "Median latency per inference (ms)"),
    Column("p99_ms", "p99 ms", tooltip=lambda r: "99th percentile latency (ms): 1 inference in 100 is slower"),
    Column("throughput", "Throughput/s", tooltip=lambda r: "Inferences x batch per second"),
    Column("peak_rss_mb", "RSS MB", tooltip=lambda r: "Peak resident memory of the benchmark process itself "
                                                          "(the runtime, the model and its buffers), in MB"),
    Column("noisy", "Noisy", tooltip=_load_tip, background=lambda r: "#f4cccc" if r["noisy"] else None),
    # Hardware before the free-text status: at 1366 px the status gives way, the hardware id stays in view
    Column("fingerprint_id", "Hardware", "digest",
           tooltip=lambda r: f"Hardware fingerprint {r['fingerprint_id']} (site {r['site'] or 'not set'}); runs "
                             "are comparable only on the same hardware"),
    Column("status", "Status", tooltip=lambda r: r["reason"] or "Completed", free_text=True),
]
PERCENTILE_ROWS = [("compile_ms", "compile (ms)"), ("first_ms", "first inference (ms)"), ("p50_ms", "p50 (ms)"),
                   ("p90_ms", "p90 (ms)"), ("p95_ms", "p95 (ms)"), ("p99_ms", "p99 (ms)"), ("p999_ms", "p99.9 (ms)"),
                   ("max_ms", "max (ms)"), ("mean_ms", "mean (ms)"), ("throughput", "throughput / s"),
                   ("peak_rss_mb", "peak RSS (MB)")]
FIGURE_LABELS = dict(PERCENTILE_ROWS)


def _ratio_colour(figure: str, ratio: float | None) -> str | None:
    """Green where the run is better than the baseline by 5% or more, red where worse."""
    if ratio is None:
        return None
    better = ratio >= 1.05 if figure == "throughput" else ratio <= 0.95
    worse = ratio <= 0.95 if figure == "throughput" else ratio >= 1.05
    return "#d9ead3" if better else "#f4cccc" if worse else None


def run_label(r: dict[str, Any]) -> str:
    """Short label of a run for legends and column headers."""
    hint = f" {r['hint']}" if r.get("hint") else ""
    runtime = {"onnxruntime": "ORT", "openvino": "OV"}.get(r["runtime"], r["runtime"])
    return f"{r['version_id']} {runtime}/{r['device']}{hint} b{r['batch']}"


class BenchView(Screen):
    """Run benchmarks and compare the recorded runs."""

    recorded = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.version = QComboBox(toolTip="Model version to benchmark")
        self.runtime = QComboBox(toolTip="Inference runtime")
        self.runtime.addItems(["onnxruntime", "openvino"])
        self.device = QComboBox(toolTip="OpenVINO device (ONNX Runtime runs on CPU)")
        self.hint = QComboBox(toolTip="OpenVINO performance hint")
        self.hint.addItems(["latency", "throughput", "none"])
        self.mode = QComboBox(toolTip="sync: one request at a time; async: several in flight")
        self.mode.addItems(["sync", "async"])
        self.batch = QSpinBox(minimum=1, maximum=4096, value=1, toolTip="Batch size")
        self.seconds = QDoubleSpinBox(minimum=0.5, maximum=600, value=10, decimals=1, suffix=" s",
                                      toolTip="Measurement duration")
        self.inputs = QComboBox(toolTip="Synthetic inputs from the model signature (seeded), or real rows from "
                                        "a dataset")
        self.shapes = QLineEdit(placeholderText="from the model", toolTip="Full input shapes for dynamic "
                                "dimensions: NAME=D1,D2,... (several separated by ;), e.g. image=1,3,224,224")
        self.threads = QSpinBox(minimum=0, maximum=256, value=0, toolTip="Inference threads (0: the runtime "
                                                                        "decides)")
        self.threads.setSpecialValueText("auto")
        self.precision = QComboBox(toolTip="OpenVINO inference precision hint (default: the device's own)")
        self.precision.addItem("device default", "")
        for value in ("f32", "f16", "bf16"):
            self.precision.addItem(value, value)
        self.run_button = QPushButton("Run benchmark", toolTip="Run in a separate process (Ctrl+R)")
        self.run_button.setShortcut("Ctrl+R")
        self.controls = TaskControls(self.run_button, "Stop the benchmark process; nothing is recorded")
        self.cancel_button, self.progress = self.controls.cancel_button, self.controls.progress
        self.controls.can_run = lambda: self.project is not None and not self.project.read_only
        self.budget = QDoubleSpinBox(minimum=0, maximum=100000, value=0, decimals=3, suffix=" ms",
                                     toolTip="Latency budget: drawn on the histogram; p99 above it is flagged")
        self.budget.setSpecialValueText("no budget")
        grid = QGridLayout()
        cells = [("Version", self.version), ("Runtime", self.runtime), ("Device", self.device), ("Hint", self.hint),
                 ("Mode", self.mode), ("Batch", self.batch), ("Duration", self.seconds), ("Inputs", self.inputs),
                 ("Shapes", self.shapes), ("Threads", self.threads), ("Precision", self.precision)]
        for i, (label, widget) in enumerate(cells):
            grid.addWidget(QLabel(label), i // 4, (i % 4) * 2)
            grid.addWidget(widget, i // 4, (i % 4) * 2 + 1)
        for column in (1, 3, 5, 7):
            grid.setColumnStretch(column, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.progress, 1)
        buttons.addStretch(0)
        buttons.addWidget(QLabel("Latency budget"))
        buttons.addWidget(self.budget)
        top = QVBoxLayout()
        top.addLayout(grid)
        top.addLayout(buttons)

        self.runs = FrameTableModel(RUN_COLUMNS)
        self.table = DataTable(self.runs)
        self.table.setToolTip("Recorded runs; select several (Ctrl+click) to compare them")
        self.histogram = LatencyHistogram()
        self.bars = ThroughputBars()
        self.percentiles = FrameTableModel([])
        self.verdict = QLabel(wordWrap=True, objectName="budgetVerdict")
        self.baseline = QComboBox(toolTip="The run the others are compared with: delta and ratio columns")
        pct_page = QWidget()
        pl_ = QVBoxLayout(pct_page)
        pl_.setContentsMargins(0, 0, 0, 0)
        base_row = QHBoxLayout()
        base_row.addWidget(QLabel("Compare with"))
        base_row.addWidget(self.baseline, 1)
        pl_.addLayout(base_row)
        pl_.addWidget(DataTable(self.percentiles), 1)
        pl_.addWidget(self.verdict)
        tabs = QTabWidget()
        tabs.addTab(self.histogram, "Latency histogram")
        tabs.addTab(pct_page, "Percentiles")
        tabs.addTab(self.bars, "Throughput")
        runs_box = QGroupBox("Recorded runs")
        QVBoxLayout(runs_box).addWidget(self.table)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(runs_box)
        body.addWidget(tabs)
        body.setSizes([220, 330])
        self.install(top, body, empty_message=EMPTY)

        self.runtime.currentTextChanged.connect(self._runtime_changed)
        self.run_button.clicked.connect(self.start)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self.show_selected())
        self.budget.valueChanged.connect(lambda _: self.show_selected())
        self.baseline.activated.connect(lambda _: self.show_selected(keep_baseline=True))
        self.ov_devices: list[str] = []
        self._shown: list[dict[str, Any]] = []  # the selected runs as last read
        self._runtime_changed("onnxruntime")

    # ----- project
    def set_project(self, project: Project | None) -> None:
        """Show a project's runs and versions (or the empty state)."""
        self.stop_jobs()
        self.project = project
        if project is None:
            self.show_empty(EMPTY)
            return
        versions = list_versions(project)
        if versions.is_empty():
            self.show_empty(NO_MODELS)
            return
        self.version_states = {r["version_id"]: r for r in versions.iter_rows(named=True)}
        self.version.clear()
        self.version.addItems(list(self.version_states))
        datasets = [dataset_id for dataset_id, _name in list_datasets(project)]
        self.inputs.clear()
        self.inputs.addItem("synthetic (seeded)", "")
        for d in datasets:
            self.inputs.addItem(f"dataset {d}", d)
        self.run_button.setEnabled(not project.read_only)
        if project.read_only:
            self.run_button.setToolTip("The project is open read-only: runs cannot be recorded")
        self.show_content()
        self.reload()
        if not self.ov_devices:
            self.run_job("Finding OpenVINO devices", lambda _progress: openvino_devices()).done.connect(
                self._devices_found)

    def _runtime_changed(self, runtime: str) -> None:
        self.device.clear()
        if runtime == "openvino":
            # Filled by the worker that asked OpenVINO (slow to start); CPU until then.
            self.device.addItems([*(self.ov_devices or ["CPU"]), "AUTO"])
        else:
            self.device.addItem("CPU")
        self.hint.setEnabled(runtime == "openvino")
        self.precision.setEnabled(runtime == "openvino")

    def _devices_found(self, devices: dict[str, str]) -> None:
        self.ov_devices = list(devices)
        self.device.setToolTip("OpenVINO devices here: " + "; ".join(f"{k}: {v}" for k, v in devices.items())
                               if devices else "OpenVINO could not start on this PC")
        if self.runtime.currentText() == "openvino":
            self._runtime_changed("openvino")

    def reload(self, select: str | None = None) -> None:
        """Re-read the runs table."""
        if self.project is None:
            return
        with self.project.reading() as con:
            frame = list_runs(con)
        # The OpenVINO hint belongs to the device it tunes: one column instead of two at 1366x768.
        self.runs.set_frame(frame.with_columns(pl.when(pl.col("hint").is_not_null() & (pl.col("hint") != ""))
                                               .then(pl.col("device") + " · " + pl.col("hint"))
                                               .otherwise(pl.col("device")).alias("device_hint")))
        if select:
            for row in range(self.runs.rowCount()):
                if self.runs.row(row)["run_id"] == select:
                    self.table.selectRow(row)
        elif self.runs.rowCount():
            self.table.selectRow(0)
        else:
            self.show_selected()

    # ----- running
    def config(self) -> BenchConfig:
        """The benchmark the form describes."""
        openvino = self.runtime.currentText() == "openvino"
        return BenchConfig(runtime=self.runtime.currentText(), device=self.device.currentText() or "CPU",
                           hint=self.hint.currentText(), mode=self.mode.currentText(), batch=self.batch.value(),
                           seconds=self.seconds.value(), dataset_id=self.inputs.currentData() or "",
                           shapes=parse_shapes([self.shapes.text()]), threads=self.threads.value(),
                           precision=(self.precision.currentData() or "") if openvino else "")

    def start(self) -> Task | None:
        """Run the configured benchmark in the worker (the benchmark itself runs in a child process)."""
        if self.project is None or self.task is not None:
            return None
        try:
            config = self.config()
        except LineproofError as exc:  # a shape that is not NAME=D1,D2,...: said before any process starts
            show_error(self, exc, "Benchmark")
            return None
        project, version_id = self.project, self.version.currentText()
        task = self.run_job(f"Benchmark {version_id}", lambda progress: run_benchmark(project, version_id, config,
                                                                                      progress))
        self.controls.attach(task)
        task.done.connect(self._done)
        task.error.connect(lambda exc: show_error(self, exc, "Benchmark"))
        return task

    @property
    def task(self) -> Task | None:
        """The running benchmark, if any."""
        return self.controls.task

    def cancel(self) -> None:
        """Stop the running benchmark."""
        self.controls.cancel()

    def _done(self, result) -> None:
        self.reload(select=result.run_id)
        if result.status != "ok":
            show_error(self, LineproofError(f"The benchmark failed and was recorded as failed: {result.reason}",
                                            "The app is unaffected; see the run's status for the reason."),
                       "Benchmark")
        self.recorded.emit(result)


    # ----- comparing
    def selected_runs(self) -> list[dict[str, Any]]:
        """Full records of the selected runs (latencies included), in table order."""
        if self.project is None:
            return []
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        with self.project.reading() as con:
            details = [run_detail(con, self.runs.row(r)["run_id"]) for r in rows]
        return [d for d in details if d is not None]

    def show_selected(self, keep_baseline: bool = False) -> None:
        """Update histogram, percentiles (with delta and ratio against the chosen baseline run) and throughput;
        a new baseline reuses the runs already read."""
        if not keep_baseline:
            self._shown = [r for r in self.selected_runs() if r["status"] == "ok"]
        runs = self._shown
        budget = self.budget.value()
        self.histogram.show_runs([(run_label(r), r["latencies_ms"], r["p99_ms"]) for r in runs])
        self.histogram.set_budget(budget)
        self.bars.show_runs([(run_label(r), r["throughput"] or 0.0) for r in runs])
        chosen = self.baseline.currentIndex() if keep_baseline else 0
        self.baseline.clear()
        self.baseline.addItems([run_label(r) for r in runs])
        base = min(max(chosen, 0), max(len(runs) - 1, 0))
        self.baseline.setCurrentIndex(base)
        rows = compare_figures(runs, base)
        # "figure" shows the label; "key" (not a shown column) tells the colouring which way is better
        frame = pl.DataFrame(rows, strict=False).with_columns(
            pl.col("figure").alias("key"), pl.col("figure").replace_strict(FIGURE_LABELS, default=pl.col("figure"))
        ) if rows else pl.DataFrame()
        columns = [Column("figure", "")]
        for i, r in enumerate(runs):
            fp = r["fingerprint"]
            columns.append(Column(f"run{i}", run_label(r) + (" (baseline)" if i == base else ""),
                                  tooltip=lambda _row, fp=fp, r=r: (
                f"{r['run_id']} at {r['site'] or 'no site'}: {fp.get('cpu_model')}, {fp.get('logical_cores')} "
                f"cores, {fp.get('ram_gb')} GB, {fp.get('os')}; ONNX Runtime {fp.get('onnxruntime')}, "
                f"OpenVINO {fp.get('openvino')}; config {json.dumps(r['config'])}")))
            if i != base:
                columns.append(Column(f"delta{i}", "Δ", tooltip=lambda row, i=i: "this run minus the baseline"))
                columns.append(Column(f"ratio{i}", "×", tooltip=lambda row, i=i: (
                    "this run / the baseline (throughput: above 1 is faster; times and memory: below 1 is "
                    "better)"), background=lambda row, i=i: _ratio_colour(row["key"], row.get(f"ratio{i}"))))
        self.percentiles.set_frame(frame, columns)
        if budget > 0 and runs:
            over = [run_label(r) for r in runs if (r["p99_ms"] or 0) > budget]
            self.verdict.setText(f"p99 over the {budget:g} ms budget: {', '.join(over)}" if over
                                 else f"Every selected run keeps p99 within the {budget:g} ms budget.")
        else:
            self.verdict.setText("")


if __name__ == "__main__":
    from app.views.screen import run_alone

    raise SystemExit(run_alone(BenchView, read_only=False))
