"""A heatmap of one metric over two slice dimensions (pyqtgraph), with hover tooltips and click-to-drill."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QCursor, QLinearGradient, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QVBoxLayout, QWidget

from app.views.chart_export import enable_png_export
from app.views.theme import chart_background

EMPTY_RGBA = (255, 255, 255, 255)  # no predictions in this cell
INSUFFICIENT_RGBA = (200, 200, 200, 255)  # too few labelled rows to show a number
_GOOD_BAD = pg.ColorMap([0.0, 0.5, 1.0], [(215, 48, 39), (254, 224, 139), (26, 152, 80)])


@dataclass(frozen=True)
class Scale:
    """How values map to colours. With a threshold the scale is fixed and the threshold sits in the middle
    (yellow), so red always means the bad side of it; without one it spans the values shown."""

    low: float
    high: float
    lower_is_better: bool = False
    threshold: float | None = None
    name: str = ""  # "Recall", "PSI"
    threshold_text: str = ""  # "alert rule: recall < 0.5"

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """0 = worst end, 1 = best end, for the colour map."""
        if self.threshold is None or not self.low < self.threshold < self.high:
            norm = (values - self.low) / ((self.high - self.low) or 1.0)
        else:
            t = self.threshold
            norm = np.where(values <= t, 0.5 * (values - self.low) / (t - self.low),
                            0.5 + 0.5 * (values - t) / (self.high - t))
        norm = np.clip(norm, 0.0, 1.0)
        return 1.0 - norm if self.lower_is_better else norm


def _colour(scale: Scale, value: float) -> QColor:
    r, g, b, _a = _GOOD_BAD.map(scale.normalise(np.array([value]))[0], mode="byte")
    return QColor(int(r), int(g), int(b))


class HeatmapLegend(QWidget):
    """The colour bar under a heatmap: its scale with the threshold marked, and what grey and white mean."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scale: Scale | None = None
        self.setMinimumHeight(34)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_scale(self, scale: Scale | None) -> None:
        """Show a scale (None: nothing coloured yet)."""
        self.scale = scale
        if scale is not None:
            kind = "fixed scale" if scale.threshold is not None else "scale of the cells shown"
            self.setToolTip(f"{scale.name}: {kind}, {scale.low:g} to {scale.high:g}"
                            + (f"; yellow at the {scale.threshold_text or f'threshold {scale.threshold:g}'}"
                               if scale.threshold is not None else "")
                            + ".\nGrey: too few rows to show a number; white: no rows.")
        self.update()

    def texts(self) -> list[str]:
        """The labels the legend draws (tests read them)."""
        if self.scale is None:
            return []
        sc = self.scale
        marks = [f"{sc.low:.3g}", f"{sc.high:.3g}" + ("+" if sc.threshold is not None and sc.lower_is_better
                                                      else "")]
        if sc.threshold is not None:
            marks.insert(1, sc.threshold_text or f"{sc.threshold:g}")
        return [sc.name, *marks, "too few rows", "no rows"]

    def paintEvent(self, _event) -> None:  # Qt API name
        if self.scale is None:
            return
        sc = self.scale
        painter = QPainter(self)
        fm = painter.fontMetrics()
        text_h = fm.height()
        name_w = fm.horizontalAdvance(sc.name) + 8
        swatch_w = fm.horizontalAdvance("too few rows") + fm.horizontalAdvance("no rows") + 60
        bar = QRectF(name_w, 2, max(self.width() - name_w - swatch_w - 8, 60), 10)
        gradient = QLinearGradient(bar.left(), 0, bar.right(), 0)
        for i in range(11):
            gradient.setColorAt(i / 10, _colour(sc, sc.low + (sc.high - sc.low) * i / 10))
        painter.fillRect(bar, gradient)
        painter.setPen(QPen(self.palette().windowText().color()))
        painter.drawRect(bar)
        painter.drawText(QRectF(0, 0, name_w, 14), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         sc.name)
        labels = self.texts()[1:-2]
        positions = [bar.left(), bar.right()]
        if sc.threshold is not None:
            positions.insert(1, bar.left() + bar.width() * (sc.threshold - sc.low) / ((sc.high - sc.low) or 1))
        for i, (x, text) in enumerate(zip(positions, labels, strict=True)):
            painter.drawLine(int(x), int(bar.bottom()), int(x), int(bar.bottom()) + 3)
            w = fm.horizontalAdvance(text)
            left = x - w / 2 if 0 < i < len(labels) - 1 else (x if i == 0 else x - w)
            painter.drawText(QRectF(left, bar.bottom() + 3, w + 2, text_h), text)
        x = bar.right() + 16
        for colour, text in ((INSUFFICIENT_RGBA, "too few rows"), (EMPTY_RGBA, "no rows")):
            painter.fillRect(QRectF(x, 2, 12, 10), QColor(*colour))
            painter.drawRect(QRectF(x, 2, 12, 10))
            painter.drawText(QRectF(x + 16, 0, fm.horizontalAdvance(text) + 2, 14),
                             Qt.AlignmentFlag.AlignVCenter, text)
            x += 16 + fm.horizontalAdvance(text) + 14
        painter.end()


class Heatmap(QWidget):
    """Cells coloured by value; grey = insufficient data, white = no data. Emits cellClicked(row, col)."""

    cellClicked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget(background=chart_background())
        enable_png_export(self.plot, "heatmap")
        self.plot.invertY(True)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.getViewBox().setMouseEnabled(x=True, y=True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.bar_text = pg.TextItem(anchor=(0, 0), color="#333")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self.legend = HeatmapLegend()
        layout.addWidget(self.legend)
        self.values = np.zeros((0, 0))
        self.scale: Scale | None = None
        self.tooltips: list[list[str]] = []
        self.plot.scene().sigMouseMoved.connect(self._hover)
        self.plot.scene().sigMouseClicked.connect(self._click)

    def set_data(self, values: np.ndarray, status: np.ndarray, rows: list[str], cols: list[str],
                 tooltips: list[list[str]], lower_is_better: bool, levels: tuple[float, float] | None = None,
                 scale: Scale | None = None, name: str = "") -> None:
        """values[r, c] (NaN where not shown); status[r, c]: 0 empty, 1 insufficient, 2 ok. A `scale` fixes the
        colours (and its threshold sits in the middle); without one they span `levels` or the values shown."""
        self.values = values
        self.tooltips = tooltips
        rgba = np.zeros((*values.shape, 4), dtype=np.ubyte)
        rgba[:] = EMPTY_RGBA
        rgba[status == 1] = INSUFFICIENT_RGBA
        ok = (status == 2) & np.isfinite(values)
        if scale is None and ok.any():
            low, high = levels or (float(np.nanmin(values[ok])), float(np.nanmax(values[ok])))
            scale = Scale(low, high, lower_is_better, name=name)
        if ok.any():
            rgba[ok] = _GOOD_BAD.map(scale.normalise(values[ok]), mode="byte")
        self.scale = scale
        self.legend.set_scale(scale)
        self.image.setImage(rgba, autoLevels=False)
        self.image.setRect(0, 0, max(len(cols), 1), max(len(rows), 1))
        width = max(self.plot.width() - 80, 200)
        longest = max((len(c) for c in cols), default=1)
        step_c = max(1, int(np.ceil(len(cols) * (longest * 7 + 12) / width)))
        step_r = max(1, int(np.ceil(len(rows) * 16 / max(self.plot.height() - 40, 120))))
        bottom = self.plot.getAxis("bottom")
        # Labels that do not fit side by side go on two staggered lines before any is left out: "every other
        # line" hid half the plant's lines at 1366 px.
        stagger = step_c == 2
        bottom.setHeight(44 if stagger else None)
        bottom.setTicks([[(i + 0.5, ("\n" if stagger and i % 2 else "") + c) for i, c in enumerate(cols)
                          if stagger or i % step_c == 0]])
        self.plot.getAxis("left").setTicks([[(i + 0.5, r) for i, r in enumerate(rows) if i % step_r == 0]])
        self.plot.setRange(xRange=(0, max(len(cols), 1)), yRange=(0, max(len(rows), 1)), padding=0.01)

    def cell_at(self, scene_pos: QPointF) -> tuple[int, int] | None:
        """(row, col) under a scene position, or None."""
        if not self.plot.sceneBoundingRect().contains(scene_pos) or not self.values.size:
            return None
        point = self.plot.getViewBox().mapSceneToView(scene_pos)
        row, col = int(np.floor(point.y())), int(np.floor(point.x()))
        if 0 <= row < self.values.shape[0] and 0 <= col < self.values.shape[1]:
            return row, col
        return None

    def _hover(self, pos: QPointF) -> None:
        cell = self.cell_at(pos)
        if cell is None:
            QToolTip.hideText()
            return
        QToolTip.showText(QCursor.pos(), self.tooltips[cell[0]][cell[1]], self.plot)

    def _click(self, event) -> None:
        cell = self.cell_at(event.scenePos())
        if cell is not None:
            self.cellClicked.emit(*cell)
