"""Column-mapping dialogs for importing prediction logs and labels."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.store.ingest import NO_COLUMN, LabelMapping, PredictionMapping, guess_prediction_mapping
from app.core.store.sources import FileInfo
from app.views.dialog_buttons import action_buttons
from app.views.table_model import Column, FrameTableModel
from app.views.table_view import DataTable

NONE = NO_COLUMN


def _combo(columns: list[str], current: str | None, optional: bool) -> QComboBox:
    box = QComboBox()
    if optional:
        box.addItem(NONE)
    box.addItems(columns)
    if current in columns:
        box.setCurrentText(current)
    return box


def _value(box: QComboBox) -> str | None:
    return None if box.currentText() == NONE else box.currentText()


def _preview(info: FileInfo) -> DataTable:
    model = FrameTableModel([Column(c, f"{c}\n{t}") for c, t in info.columns])
    model.set_frame(info.preview)
    table = DataTable(model)
    table.setMinimumHeight(160)
    return table


class PredictionImportDialog(QDialog):
    """Map a file's columns to record id, time, version, score, slices and features."""

    def __init__(self, info: FileInfo, dimensions: tuple[str, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Import predictions: {info.source.path.name}")
        self.resize(900, 640)
        columns = [c for c, _ in info.columns]
        guess = guess_prediction_mapping(columns, dimensions)
        form = QFormLayout()
        self.record_id = _combo(columns, guess.record_id, False)
        self.timestamp = _combo(columns, guess.timestamp, False)
        self.model_version = _combo(columns, guess.model_version, True)
        self.score = _combo(columns, guess.score, True)
        self.predicted_label = _combo(columns, guess.predicted_label, True)
        for box in (self.model_version, self.score):
            box.setToolTip(f"'{NONE}' for both imports the file as inputs only: drift and data quality, no metrics.")
            box.currentTextChanged.connect(self._show_kind)
        self.kind = QLabel()
        self.kind.setWordWrap(True)
        form.addRow("Record id", self.record_id)
        form.addRow("Timestamp", self.timestamp)
        form.addRow("Model version", self.model_version)
        form.addRow("Score (probability)", self.score)
        form.addRow("Predicted label", self.predicted_label)
        form.addRow(self.kind)
        self._show_kind()
        roles = QGroupBox("Roles")
        roles.setLayout(form)

        slice_form = QFormLayout()
        self.slices = {d: _combo(columns, guess.slices.get(d), True) for d in dimensions}
        for dim, box in self.slices.items():
            slice_form.addRow(dim, box)
        slices = QGroupBox("Slice dimensions")
        slices.setLayout(slice_form)
        slices.setToolTip("The project's slice dimensions are listed in lineproof.toml ([slices] dimensions).")

        self.features = QListWidget()
        self.features.setToolTip("Checked columns are stored as features (for drift and data-quality checks).")
        used = set(guess.roles().values()) | set(guess.slices.values())
        for col, dtype in info.columns:
            item = QListWidgetItem(f"{col}  ({dtype})")
            item.setData(Qt.ItemDataRole.UserRole, col)
            item.setCheckState(Qt.CheckState.Unchecked if col in used else Qt.CheckState.Checked)
            self.features.addItem(item)
        feats = QGroupBox("Features")
        QVBoxLayout(feats).addWidget(self.features)

        top = QHBoxLayout()
        top.addWidget(roles)
        top.addWidget(slices)
        top.addWidget(feats)
        buttons = action_buttons(self, "Import")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"{info.row_count:,} rows, {len(columns)} columns, {info.source.format.upper()}. "
                                "Nothing is written until every row has been checked."))
        layout.addLayout(top, 1)
        layout.addWidget(QLabel("First rows"))
        layout.addWidget(_preview(info), 1)
        layout.addWidget(buttons)

    def _show_kind(self) -> None:
        version, score = _value(self.model_version), _value(self.score)
        inputs_only = version is None and score is None
        if inputs_only:  # no model, so no decisions either
            self.predicted_label.setCurrentText(NONE)
        self.predicted_label.setEnabled(not inputs_only)
        if inputs_only:
            self.kind.setText("Inputs only: no model version and no score, so the rows feed drift and data-quality "
                              "checks, not performance metrics.")
        elif version is None or score is None:
            self.kind.setText("Map both the model version and the score, or neither (inputs only).")
        else:
            self.kind.setText("")

    def mapping(self) -> PredictionMapping:
        """The mapping the user chose."""
        slices = {d: v for d, box in self.slices.items() if (v := _value(box))}
        roles = {self.record_id.currentText(), self.timestamp.currentText(), _value(self.model_version),
                 _value(self.score), _value(self.predicted_label), *slices.values()}
        features = []
        for i in range(self.features.count()):
            item = self.features.item(i)
            col = item.data(Qt.ItemDataRole.UserRole)
            if item.checkState() == Qt.CheckState.Checked and col not in roles:
                features.append(col)
        return PredictionMapping(self.record_id.currentText(), self.timestamp.currentText(),
                                 _value(self.model_version), _value(self.score),
                                 _value(self.predicted_label), slices, tuple(features))


class LabelImportDialog(QDialog):
    """Map a label file's columns; choose what happens to labels for unknown records."""

    def __init__(self, info: FileInfo, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Import labels: {info.source.path.name}")
        self.resize(760, 480)
        columns = [c for c, _ in info.columns]
        lower = {c.lower(): c for c in columns}
        self.record_id = _combo(columns, lower.get("record_id"), False)
        self.label = _combo(columns, lower.get("label", lower.get("true_label")), False)
        self.labelled_at = _combo(columns, lower.get("labelled_at"), True)
        self.skip_unknown = QCheckBox("Import the labels of known records and report the unknown ones")
        self.skip_unknown.setToolTip("Off: a file with any unknown record id is refused as a whole.")
        form = QFormLayout()
        form.addRow("Record id", self.record_id)
        form.addRow("Label (0/1 or value)", self.label)
        form.addRow("Labelled at", self.labelled_at)
        form.addRow("", self.skip_unknown)
        buttons = action_buttons(self, "Import")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"{info.row_count:,} labels in {info.source.path.name}. Labels join predictions "
                                "by record id; a later label for the same record replaces the earlier one."))
        layout.addLayout(form)
        layout.addWidget(_preview(info), 1)
        layout.addWidget(buttons)

    def mapping(self) -> LabelMapping:
        """The mapping the user chose."""
        return LabelMapping(self.record_id.currentText(), self.label.currentText(), _value(self.labelled_at))
