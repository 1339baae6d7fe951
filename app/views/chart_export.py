"""Every chart saves as PNG: right click > Save chart as PNG… (pyqtgraph's ImageExporter). pyqtgraph's own Export
dialog is replaced: its SVG exporter crashes on these charts, and a shop-floor user wants a picture for a report."""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMessageBox

EXPORT_WIDTH = 1600  # pixels: sharp in a printed report, whatever the size on screen


def save_chart_png(plot: pg.PlotWidget, path: Path | str, width: int = EXPORT_WIDTH) -> Path:
    """Write the chart (axes, legend and all) to a PNG file `width` pixels wide; returns the path."""
    from pyqtgraph.exporters import ImageExporter

    path = Path(path).with_suffix(".png") if Path(path).suffix.lower() != ".png" else Path(path)
    exporter = ImageExporter(plot.getPlotItem())
    exporter.parameters()["width"] = width
    exporter.export(str(path))
    return path


def enable_png_export(plot: pg.PlotWidget, name: str) -> QAction:
    """Give the chart's right-click menu "Save chart as PNG…" in place of pyqtgraph's Export dialog."""
    action = QAction("Save chart as PNG…", plot)

    def ask() -> None:
        target, _ = QFileDialog.getSaveFileName(plot, "Save chart as PNG", f"{name}.png", "PNG images (*.png)")
        if not target:
            return
        try:
            save_chart_png(plot, target)
        except OSError as exc:  # a folder that cannot be written: say so, never a traceback
            QMessageBox.warning(plot, "Save chart", f"{target} could not be written: {exc}.\n"
                                                    "Choose another folder; nothing was saved.")
    action.triggered.connect(ask)
    plot.scene().contextMenu = [action]
    return action
