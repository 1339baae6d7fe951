"""Find what a user would see cut on screen: labels, fields, buttons and table columns narrower than their text."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QComboBox,
    QLabel,
    QLineEdit,
    QTableView,
    QWidget,
)

SLACK = 2  # pixels of rounding a style may eat without any glyph being hidden


def _name(w: QWidget) -> str:
    text = ""
    for attr in ("text", "currentText", "placeholderText"):
        if hasattr(w, attr) and callable(getattr(w, attr)):
            text = getattr(w, attr)() or text
            if text:
                break
    path = []
    p = w
    while p is not None and len(path) < 3:
        path.append(p.objectName() or type(p).__name__)
        p = p.parentWidget()
    return f"{type(w).__name__} {text[:50]!r} in {'/'.join(reversed(path))}"


def _visible(w: QWidget) -> bool:
    return w.isVisible() and w.width() > 0 and w.height() > 0 and not w.visibleRegion().isEmpty()


def _label_cut(w: QLabel) -> bool:
    if w.wordWrap() or not w.text() or w.pixmap() is not None and not w.pixmap().isNull():
        return False
    if w.textFormat() == Qt.TextFormat.RichText or "<" in w.text():
        return w.sizeHint().width() > w.width() + SLACK and w.minimumSizeHint().width() > w.width() + SLACK
    lines = w.text().splitlines() or [""]
    needed = max(w.fontMetrics().horizontalAdvance(line) for line in lines)
    return needed > w.contentsRect().width() + SLACK


def _field_cut(w: QWidget) -> bool:
    if isinstance(w, QComboBox):
        text = w.currentText()
        if not text:
            return False
        # the combo's text area: its width minus the arrow and frame, as the style reports in the size hint
        frame = w.sizeHint().width() - w.fontMetrics().horizontalAdvance(max(
            (w.itemText(i) for i in range(w.count())), key=w.fontMetrics().horizontalAdvance, default=""))
        return w.fontMetrics().horizontalAdvance(text) + max(frame, 0) > w.width() + SLACK
    if isinstance(w, QLineEdit):
        text = w.text() or w.placeholderText()
        return bool(text) and w.fontMetrics().horizontalAdvance(text) + 8 > w.width() + SLACK
    if isinstance(w, QAbstractButton):
        return bool(w.text()) and w.sizeHint().width() > w.width() + SLACK
    return False


def _columns_cut(view: QTableView) -> list[str]:
    """Columns whose header or visible cells are wider than the column (Qt elides them with '…')."""
    model = view.model()
    if model is None or model.rowCount() == 0 and model.columnCount() == 0:
        return []
    cut = []
    for c in range(model.columnCount()):
        if view.isColumnHidden(c) or getattr(model, "columns", None) and getattr(model.columns[c], "free_text", False):
            continue  # a free-text column gives way by design; its tooltip shows the whole text
        title = str(model.headerData(c, Qt.Orientation.Horizontal) or "")
        width = view.columnWidth(c)
        title_needed = max((view.fontMetrics().horizontalAdvance(t) for t in title.splitlines()), default=0) + 12
        cells_needed = view.sizeHintForColumn(c) if model.rowCount() else 0
        if max(title_needed, cells_needed) > width + SLACK:
            cut.append(f"column {title.splitlines()[0] if title else c!r} of {_name(view)} "
                       f"({width}px < {max(title_needed, cells_needed)}px)")
    return cut


def cut_widgets(root: QWidget) -> list[str]:
    """Every visible label, field, button or table column under `root` too narrow for its text."""
    found: list[str] = []
    for w in root.findChildren(QWidget):
        if not _visible(w):
            continue
        if isinstance(w, QLabel) and _label_cut(w):
            found.append(f"{_name(w)} ({w.width()}px)")
        elif isinstance(w, (QComboBox, QLineEdit, QAbstractButton)) and not isinstance(w.parentWidget(),
                                                                                    QAbstractItemView) \
                and _field_cut(w):
            found.append(f"{_name(w)} ({w.width()}px)")
        elif isinstance(w, QTableView):
            found += _columns_cut(w)
    return found


def hidden_columns(view: QTableView) -> list[str]:
    """Columns a user has to scroll sideways to see at all."""
    if view.horizontalScrollBar().maximum() == 0:
        return []
    right = view.viewport().width()
    header = view.horizontalHeader()
    model = view.model()
    return [str(model.headerData(c, Qt.Orientation.Horizontal)).splitlines()[0] for c in range(model.columnCount())
            if not view.isColumnHidden(c) and header.sectionViewportPosition(c) + view.columnWidth(c) > right]
