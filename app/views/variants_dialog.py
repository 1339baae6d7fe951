"""A parent model and its variants side by side (Models > Compare variants…): thin over
app.core.models.validation.variants_compare, run in the worker with progress and Cancel."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.core.store.datasets import dataset_file
from app.core.store.project import Project
from app.views.errors import show_error
from app.views.table_model import Column, FrameTableModel
from app.views.table_view import DataTable
from app.views.task_controls import TaskControls
from app.views.workers import Task, start_task


def _interval(metric: str) -> Any:
    return lambda r: (f"{metric}: {r[metric]:.4f}, interval [{r[metric + '_low']:.4f}, {r[metric + '_high']:.4f}]"
                      if r.get(metric) is not None and r.get(metric + "_low") is not None else "")


OVERALL = [Column("version_id", "Version"), Column("numbers", "Numbers", tooltip=lambda r: r.get("cpu_note") or (
                  "FP32: the parent; FP16: weights compressed; INT8: quantized by NNCF")), Column("runtime", "Runtime"),
           *[Column(m, m.upper() if m in ("fpr", "auc") else m.title(), tooltip=_interval(m))
             for m in ("recall", "fpr", "auc")],
           Column("max_abs_diff", "Max |Δ score|", tooltip=lambda r: "Largest score difference from the parent "
                                                                     "on the dataset's rows"),
           Column("decision_agreement", "Agreement", kind="percent",
                  tooltip=lambda r: "Rows where the variant decides as the parent does"),
           Column("p50_ms", "p50 ms"), Column("p99_ms", "p99 ms"), Column("throughput", "Inferences/s"),
           Column("speedup_p50", "× faster", tooltip=lambda r: "Parent's median latency / this version's")]


def _gain(metric: str) -> Column:
    key = f"diff_{metric}"
    return Column(key, f"Δ {metric}", tooltip=lambda r: (
        f"Gain over the parent {r[key]:+.4f}, paired interval [{r[key + '_low']:+.4f}, {r[key + '_high']:+.4f}] "
        "(negative: worse)" if r.get(key) is not None and r.get(key + "_low") is not None else ""),
        background=lambda r: "#f8cbad" if (r.get(key + "_high") is not None and
                                           (r[key + "_high"] < 0 if metric != "fpr" else r[key + "_low"] > 0))
        else None)


class VariantsDialog(QDialog):
    """Pick the held-out dataset and whether to benchmark; see the parent and its variants side by side."""

    def __init__(self, project: Project, parent_version: str, datasets: list[tuple[str, str]],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"{parent_version} and its variants")
        self.resize(1180, 600)
        self.project, self.parent_version = project, parent_version
        self.dataset = QComboBox(toolTip="Held-out dataset with the model's features, a label and slice columns")
        for dataset_id, name in datasets:
            self.dataset.addItem(f"{dataset_id} ({name})", dataset_id)
        self.by = QComboBox(toolTip="Slices the gains are shown for")
        self.bench = QCheckBox("Benchmark on this PC", checked=True,
                               toolTip="OpenVINO CPU, batch 1, 3 interleaved rounds of 3 s per version")
        self.run_button = QPushButton("Compare")
        self.controls = TaskControls(self.run_button, "Stop scoring and benchmarking; nothing is stored but the "
                                                      "benchmark runs already finished")
        self.overall = FrameTableModel(OVERALL)
        self.slices = FrameTableModel([])
        self.slices_table = DataTable(self.slices)
        top = QHBoxLayout()
        for label, widget in (("Dataset", self.dataset), ("Slices by", self.by)):
            top.addWidget(QLabel(label))
            top.addWidget(widget, 1)
        top.addWidget(self.bench)
        top.addWidget(self.run_button)
        top.addWidget(self.controls.cancel_button)
        top.addWidget(self.controls.progress, 1)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(DataTable(self.overall))
        body.addWidget(self.slices_table)
        # A parent has a handful of variants but a dozen slices or more: the slices get most of the height.
        body.setStretchFactor(0, 1)
        body.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(QLabel("Overall on the dataset (hover a metric for its interval); below, each variant's "
                                "gain per slice against the parent with its paired interval (red: worse beyond "
                                "doubt)."))
        layout.addWidget(body, 1)
        self.dataset.currentIndexChanged.connect(lambda _i: self._fill_slices())
        self.run_button.clicked.connect(self.start)
        self._fill_slices()

    def _fill_slices(self) -> None:
        import pyarrow.parquet as pq

        self.by.clear()
        dataset_id = self.dataset.currentData()
        if not dataset_id:
            return
        path = dataset_file(self.project, dataset_id)
        dims = list(self.project.manifest.slice_dimensions)
        names = set(pq.read_schema(path).names) if path else set()
        for d in sorted((d for d in dims if d in names), key=lambda d: d != "line") or ["(overall only)"]:
            self.by.addItem(d, d if d in names else "")

    def start(self) -> Task | None:
        """Score (and benchmark) the parent and its variants in the worker."""
        from app.core.models.bench import BenchConfig
        from app.core.models.validation.variants_compare import compare_variants

        if self.controls.task is not None or not self.dataset.currentData():
            return None
        project, parent, dataset = self.project, self.parent_version, self.dataset.currentData()
        by = (self.by.currentData(),) if self.by.currentData() else ()
        bench = BenchConfig(runtime="openvino", batch=1, seconds=3.0) if self.bench.isChecked() else None
        task = start_task(f"Comparing the variants of {parent}", lambda progress: compare_variants(
            project, parent, dataset, by, bench=bench, progress=progress), self)
        self.controls.attach(task)
        task.done.connect(self.show_comparison)
        task.error.connect(lambda exc: show_error(self, exc, "Compare variants"))
        return task

    def show_comparison(self, comparison: Any) -> None:
        """Fill both tables from a VariantComparison."""
        from app.core.models.validation.variants_compare import overall_frame, slice_gains_frame

        self.overall.set_frame(overall_frame(comparison))
        gains = slice_gains_frame(comparison)
        self.slices.set_frame(gains, [Column("version_id", "Variant"), *[Column(k, k) for k in comparison.by],
                                      Column("rows", "Rows"), Column("positives", "Defects"),
                                      *[_gain(m) for m in ("recall", "fpr", "auc")]])
