"""A read-only, sortable Qt table model over a polars DataFrame from core."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import polars as pl
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()


@dataclass(frozen=True)
class Column:
    """How one DataFrame column is shown."""

    key: str
    header: str
    # How a value shows: auto, percent, hours, days (one decimal), date (a time as its day); and two kinds shortened
    # on screen but copied whole: digest (first 12 hex digits of a hash), instant (an ISO time text to the second)
    kind: str = "auto"
    tooltip: Callable[[dict[str, Any]], str] | None = None
    background: Callable[[dict[str, Any]], str | None] | None = None  # a colour name for the cell, or None
    # Long free text (a message, a reason, a list of sites): the column gives up width first when the table is
    # narrower than its contents, and the cell's tooltip shows the whole text.
    free_text: bool = False


SHORTENED = ("digest", "instant")  # kinds shown shortened, copied whole


def format_value(value: Any, kind: str) -> str:
    """Text for a cell, by kind."""
    if value is None:
        return "–"
    if kind == "date" and isinstance(value, datetime | date):
        return f"{value:%Y-%m-%d}"
    if kind == "digest":
        return str(value)[:12]
    if kind == "instant":
        return str(value)[:19].replace("T", " ")
    if kind == "percent":
        return f"{value:.1%}"
    if kind == "days":
        return f"{value:.1f}"
    if kind == "hours":
        return f"{value / 24:.1f} d" if value >= 48 else f"{value:.0f} h"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, date):
        return f"{value:%Y-%m-%d}"
    return str(value)


class FrameTableModel(QAbstractTableModel):
    """Rows come from a DataFrame; set_frame() resets the model in one step."""

    def __init__(self, columns: list[Column], parent=None) -> None:
        super().__init__(parent)
        self.columns = columns
        self.frame = pl.DataFrame()
        self._rows: list[dict[str, Any]] = []

    def set_frame(self, frame: pl.DataFrame, columns: list[Column] | None = None) -> None:
        """Replace all rows (and, if given, the columns)."""
        self.beginResetModel()
        if columns is not None:
            self.columns = columns
        self.frame = frame
        self._rows = frame.to_dicts() if frame.height else []
        self.endResetModel()

    def rowCount(self, parent: Index = _ROOT) -> int:  # Qt API name
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.columns)

    def row(self, index: int) -> dict[str, Any]:
        """The underlying record of a row."""
        return self._rows[index]

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        col = self.columns[index.column()]
        record = self._rows[index.row()]
        value = record.get(col.key)
        if role == Qt.ItemDataRole.DisplayRole:
            return format_value(value, col.kind)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col.tooltip:
                return col.tooltip(record)
            return format_value(value, col.kind) if col.free_text else None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            align = Qt.AlignmentFlag.AlignRight if numeric else Qt.AlignmentFlag.AlignLeft
            return int(align | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return value
        if role == Qt.ItemDataRole.BackgroundRole and col.background:
            colour = col.background(record)
            return QColor(colour) if colour else None
        if role == Qt.ItemDataRole.ForegroundRole and col.background and col.background(record):
            return QColor("#1a1a1a")  # status colours are pale: dark text on them in the dark theme too
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section].header
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(self.columns):
            return
        key = self.columns[column].key
        if not self.frame.height or key not in self.frame.columns:
            return
        self.layoutAboutToBeChanged.emit()
        ranked = self.frame.with_row_index("__row").sort(key, descending=order == Qt.SortOrder.DescendingOrder,
                                                         nulls_last=True, maintain_order=True)
        new_of_old = {old: new for new, old in enumerate(ranked["__row"].to_list())}
        self.frame = ranked.drop("__row")
        self._rows = self.frame.to_dicts()
        # Selections and current items are persistent indexes: move them with their records, so a selected
        # request or alert stays selected after a sort instead of pointing at whatever row took its place.
        moved = self.persistentIndexList()
        self.changePersistentIndexList(moved, [self.index(new_of_old[i.row()], i.column()) for i in moved])
        self.layoutChanged.emit()

    def shown_frame(self) -> pl.DataFrame:
        """The shown columns in the shown order, with full values (not the screen's rounding), headed as on
        screen; lists and structs as JSON text, so every value fits a CSV cell."""
        keys = [c for c in self.columns if c.key in self.frame.columns]
        frame = self.frame.select([c.key for c in keys])
        nested = [k for k, t in frame.schema.items() if t.is_nested()]
        if nested:
            frame = frame.with_columns(pl.col(k).map_elements(lambda v: json.dumps(
                v.to_list() if hasattr(v, "to_list") else v, default=str), return_dtype=pl.Utf8) for k in nested)
        headers: dict[str, str] = {}
        for c in keys:  # two columns with one header (Δ, ×) keep apart with their key
            headers[c.key] = c.header if c.header and c.header not in headers.values() else f"{c.header} {c.key}".strip()
        return frame.rename(headers)

    def as_tsv(self, rows: list[int] | None = None) -> str:
        """Rows as tab-separated text with a header, for the clipboard."""
        picked = range(len(self._rows)) if rows is None else rows
        lines = ["\t".join(c.header for c in self.columns)]
        lines += ["\t".join(format_value(self._rows[r].get(c.key), "auto" if c.kind in SHORTENED else c.kind)
                            for c in self.columns) for r in picked]
        return "\n".join(lines)
