"""The window's time range (toolbar): a preset relative to the newest record, or custom days. Slices, Drift, Alerts
and Reviews follow it unless their own "Window range" box is unticked."""

from __future__ import annotations

from datetime import date

from PySide6.QtCore import QDate, Signal
from PySide6.QtWidgets import QComboBox, QDateEdit, QHBoxLayout, QLabel, QWidget

from app.core.analysis.time_range import PRESETS, TimeRange, resolve


def _qdate(day: date) -> QDate:
    return QDate(day.year, day.month, day.day)


class TimeRangeBar(QWidget):
    """Preset box and two day fields; emits `changed(TimeRange)` when the range the window shows changes."""

    changed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.span: tuple[date, date] | None = None
        self.range: TimeRange | None = None
        self.preset = QComboBox(objectName="timeRangePreset", toolTip=(
            "Time range of Slices, Drift (current window), Alerts (current window) and Reviews (Ctrl+T).\n"
            "Counted back from the newest record in the log. A screen whose 'Window range' box is unticked "
            "keeps its own dates."))
        for key, (label, _days) in PRESETS.items():
            self.preset.addItem(label, key)
        self.start = QDateEdit(calendarPopup=True, displayFormat="yyyy-MM-dd", toolTip="First day of the range")
        self.end = QDateEdit(calendarPopup=True, displayFormat="yyyy-MM-dd", toolTip="Last day of the range")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        layout.addWidget(QLabel("Time range"))
        layout.addWidget(self.preset)
        layout.addWidget(self.start)
        layout.addWidget(QLabel("to"))
        layout.addWidget(self.end)
        self.preset.currentIndexChanged.connect(lambda _i: self._update())
        self.start.dateChanged.connect(lambda _d: self._edited())
        self.end.dateChanged.connect(lambda _d: self._edited())
        self.set_span(None)

    def set_span(self, span: tuple[date, date] | None) -> None:
        """The open project's first and last logged day (None: no log, the bar is disabled)."""
        self.span = span
        self.setEnabled(span is not None)
        self.range = None
        for edit in (self.start, self.end):
            # No log: the fields show a dash, not a made-up day (the minimum date stands for "none").
            edit.setSpecialValueText("–" if span is None else "")
            if span is None:
                edit.blockSignals(True)
                edit.setDate(edit.minimumDate())
                edit.blockSignals(False)
        if span is not None:
            for edit in (self.start, self.end):
                edit.blockSignals(True)
                edit.setDateRange(_qdate(span[0]), _qdate(span[1]))
                edit.blockSignals(False)
            self._update()

    def choose(self, preset: str, start: date | None = None, end: date | None = None) -> TimeRange | None:
        """Pick a preset (or custom days) as a user would; returns the range now shown."""
        if preset == "custom" and start and end:
            for edit, day in ((self.start, start), (self.end, end)):
                edit.blockSignals(True)
                edit.setDate(_qdate(day))
                edit.blockSignals(False)
        self.preset.setCurrentIndex(self.preset.findData(preset))
        self._update()
        return self.range

    def _edited(self) -> None:
        if self.preset.currentData() != "custom":  # typing a day makes the range custom
            self.preset.blockSignals(True)
            self.preset.setCurrentIndex(self.preset.findData("custom"))
            self.preset.blockSignals(False)
        self._update()

    def _update(self) -> None:
        if self.span is None:
            return
        key = self.preset.currentData()
        new = resolve(key, *self.span, self.start.date().toPython(), self.end.date().toPython())
        if key != "custom":
            for edit, day in ((self.start, new.start), (self.end, new.end)):
                edit.blockSignals(True)
                edit.setDate(_qdate(day))
                edit.blockSignals(False)
        self.setToolTip(new.label)
        if new != self.range:
            self.range = new
            self.changed.emit(new)
