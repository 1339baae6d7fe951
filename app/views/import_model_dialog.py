"""Import a model file from the Models screen: the file, the model it belongs to, its version and threshold.

The checks (no pickles, no links, external data inside the folder, the runtimes loading it in a child process)
are core's; this dialog only collects the answers.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from app.core.models.registry import RISK_TIERS, TASKS
from app.views.dialog_buttons import action_buttons


class ImportModelDialog(QDialog):
    """Collects what `import_model` needs; `values()` gives them back."""

    def __init__(self, models: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import model")
        self.path = QLineEdit(placeholderText="ONNX, OpenVINO .xml or MLflow folder",
                              toolTip="model.onnx, an OpenVINO .xml (with its .bin next to it), or an MLflow folder")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        self.model = QComboBox(editable=True, toolTip="An existing model, or a new id (registered with this file)")
        self.model.addItems(models)
        self.version = QLineEdit(placeholderText="e.g. v3")
        self.name = QLineEdit(placeholderText="display name of a new model (default: its id)")
        self.task = QComboBox()
        self.task.addItems(TASKS)
        self.tier = QComboBox(toolTip="What a release to production of a new model needs")
        self.tier.addItems(RISK_TIERS)
        self.tier.setCurrentText("medium")
        self.threshold = QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.05, decimals=3, value=0.5,
                                        toolTip="Decision threshold on the score of a binary model")
        form = QFormLayout(self)
        form.addRow("File", row)
        form.addRow("Model", self.model)
        form.addRow("Version", self.version)
        form.addRow("New model's name", self.name)
        form.addRow("Task", self.task)
        form.addRow("Risk tier", self.tier)
        form.addRow("Threshold", self.threshold)
        form.addRow(action_buttons(self, "Check and import"))
        self.resize(620, 0)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model file", str(Path.home()),
                                              "Models (*.onnx *.xml);;All files (*)")
        if path:
            self.path.setText(path)

    def values(self) -> dict:
        """What the user entered, as import_model's arguments."""
        model = self.model.currentText().strip()
        return {"path": self.path.text().strip(), "model_id": model, "version": self.version.text().strip(),
                "threshold": self.threshold.value(),
                "new_model": {"name": self.name.text().strip() or model, "task": self.task.currentText(),
                              "risk_tier": self.tier.currentText()}}
