"""Make a cheaper variant of the selected version (Models screen): INT8 by NNCF or FP16 by OpenVINO, and where the
INT8 calibration samples come from. The conversion and its checks are core's (app.core.models.variants)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QLabel,
    QSpinBox,
    QWidget,
)

from app.views.dialog_buttons import action_buttons

NPZ = "__npz__"


class VariantDialog(QDialog):
    """Collects what `make_variant` needs; `values()` gives them back."""

    def __init__(self, parent_version: str, datasets: list[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Make a variant of {parent_version}")
        self.parent_version = parent_version
        self.method = QComboBox(toolTip="INT8: post-training quantization with NNCF (default preset, 7-bit "
                                        "weights: the same results on every CPU), calibrated on the samples "
                                        "below. FP16: weights compressed by OpenVINO, no samples.")
        self.method.addItem("INT8 (NNCF post-training quantization)", "int8")
        self.method.addItem("FP16 (weights compressed)", "fp16")
        self.calibration = QComboBox(toolTip="Where the INT8 calibration samples come from (recorded in the "
                                             "variant's lineage with their hash and count)")
        for dataset_id, name in datasets:
            self.calibration.addItem(f"Dataset {dataset_id} ({name})", dataset_id)
        self.calibration.addItem("The log's stored features of this version", "log")
        self.calibration.addItem("An .npz file (one array per input, e.g. images)…", NPZ)
        self.npz_path = ""
        self.samples = QSpinBox(minimum=1, maximum=100_000, value=300, singleStep=100,
                                toolTip="Calibration samples (NNCF's default is 300)")
        form = QFormLayout(self)
        form.addRow(QLabel(f"A new version <b>{parent_version}-int8</b> or <b>-fp16</b>, with lineage to "
                           f"{parent_version}; it goes through the same checks and stages as any import."))
        form.addRow("Method", self.method)
        form.addRow("Calibration", self.calibration)
        form.addRow("Samples", self.samples)
        form.addRow(action_buttons(self, "Make variant", self._accept))
        self.method.currentIndexChanged.connect(self._enable)
        self._enable()

    def _enable(self) -> None:
        int8 = self.method.currentData() == "int8"
        self.calibration.setEnabled(int8)
        self.samples.setEnabled(int8)

    def _accept(self) -> None:
        if self.method.currentData() == "int8" and self.calibration.currentData() == NPZ:
            path, _ = QFileDialog.getOpenFileName(self, "Calibration samples", "", "NumPy archives (*.npz)")
            if not path:
                return
            self.npz_path = path
        self.accept()

    def values(self) -> dict:
        """Arguments for make_variant."""
        int8 = self.method.currentData() == "int8"
        calibration = (self.npz_path if self.calibration.currentData() == NPZ else self.calibration.currentData()) \
            if int8 else None
        return {"parent": self.parent_version, "method": self.method.currentData(), "calibration": calibration,
                "samples": self.samples.value()}
