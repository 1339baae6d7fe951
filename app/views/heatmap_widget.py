"""A heatmap of one metric over two slice dimensions (pyqtgraph), with hover tooltips and click-to-drill."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Signal
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import QToolTip, QVBoxLayout, QWidget

from app.views.chart_export import enable_png_export
from app.views.theme import chart_background

EMPTY_RGBA = (255, 255, 255, 255)  # no predictions in this cell
INSUFFICIENT_RGBA = (200, 200, 200, 255)  # too few labelled rows to show a number
_GOOD_BAD = pg.ColorMap([0.0, 0.5, 1.0], [(215, 48, 39), (254, 224, 139), (26, 152, 80)])


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
        self.values = np.zeros((0, 0))
        self.tooltips: list[list[str]] = []
        self.plot.scene().sigMouseMoved.connect(self._hover)
        self.plot.scene().sigMouseClicked.connect(self._click)

    def set_data(self, values: np.ndarray, status: np.ndarray, rows: list[str], cols: list[str],
                 tooltips: list[list[str]], lower_is_better: bool, levels: tuple[float, float] | None = None) -> None:
        """values[r, c] (NaN where not shown); status[r, c]: 0 empty, 1 insufficient, 2 ok."""
        self.values = values
        self.tooltips = tooltips
        rgba = np.zeros((*values.shape, 4), dtype=np.ubyte)
        rgba[:] = EMPTY_RGBA
        rgba[status == 1] = INSUFFICIENT_RGBA
        ok = (status == 2) & np.isfinite(values)
        if ok.any():
            low, high = levels or (float(np.nanmin(values[ok])), float(np.nanmax(values[ok])))
            span = (high - low) or 1.0
            norm = np.clip((values[ok] - low) / span, 0, 1)
            if lower_is_better:
                norm = 1 - norm
            rgba[ok] = _GOOD_BAD.map(norm, mode="byte")
        self.image.setImage(rgba, autoLevels=False)
        self.image.setRect(0, 0, max(len(cols), 1), max(len(rows), 1))
        width = max(self.plot.width() - 80, 200)
        longest = max((len(c) for c in cols), default=1)
        step_c = max(1, int(np.ceil(len(cols) * (longest * 7 + 12) / width)))
        step_r = max(1, int(np.ceil(len(rows) * 16 / max(self.plot.height() - 40, 120))))
        self.plot.getAxis("bottom").setTicks([[(i + 0.5, c) for i, c in enumerate(cols) if i % step_c == 0]])
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
