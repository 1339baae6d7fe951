"""#27 item 6: every heatmap carries a colour legend, and where a threshold exists (recall below the alert rule's
minimum, PSI above 0.2) the colours sit on a fixed scale with the threshold in the middle, not on "worst shown"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.core.analysis.drift import DriftThresholds
from app.views.heatmap_widget import Heatmap, Scale

pytestmark = pytest.mark.gui


def _rgb(heatmap: Heatmap, row: int, col: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in heatmap.image.image[row, col, :3])


def _show(heatmap: Heatmap, values: list[float], **kwargs) -> None:
    v = np.array([values])
    heatmap.set_data(v, np.full(v.shape, 2, dtype=np.int8), ["L1"], [f"c{i}" for i in range(len(values))],
                     [["" for _ in values]], **kwargs)


def test_a_fixed_scale_colours_a_value_the_same_whatever_else_is_shown(qtbot):
    heatmap = Heatmap()
    qtbot.addWidget(heatmap)
    scale = Scale(0.0, 1.0, threshold=0.5, name="Recall", threshold_text="alert < 0.5")
    _show(heatmap, [0.5, 0.9], lower_is_better=False, scale=scale)
    at_threshold = _rgb(heatmap, 0, 0)
    _show(heatmap, [0.5, 0.52], lower_is_better=False, scale=scale)
    assert _rgb(heatmap, 0, 0) == at_threshold  # fixed: the neighbours do not move it
    assert at_threshold == (254, 224, 139)  # the colour map's middle (yellow) is the threshold
    _show(heatmap, [0.0, 1.0], lower_is_better=False, scale=scale)
    assert _rgb(heatmap, 0, 0) == (215, 48, 39) and _rgb(heatmap, 0, 1) == (26, 152, 80)  # red .. green
    assert heatmap.legend.texts() == ["Recall", "0", "alert < 0.5", "1", "too few rows", "no rows"]
    # Without a threshold the colours span what is shown, and the legend says so (its tooltip).
    _show(heatmap, [0.5, 0.9], lower_is_better=False, name="Precision")
    relative = _rgb(heatmap, 0, 0)
    _show(heatmap, [0.5, 0.52], lower_is_better=False, name="Precision")
    assert relative == _rgb(heatmap, 0, 0) == (215, 48, 39)  # the worst shown is red either way
    assert "scale of the cells shown" in heatmap.legend.toolTip()
    heatmap.legend.grab()  # it paints


def test_drift_scales_put_their_threshold_in_the_middle_and_ks_has_none():
    from app.views.drift_view import drift_scale

    t = DriftThresholds()
    psi = drift_scale("psi", t)
    assert (psi.low, psi.threshold, psi.high, psi.lower_is_better) == (0.0, 0.2, 0.4, True)
    assert psi.normalise(np.array([0.0, 0.2, 0.4, 3.0])).tolist() == [1.0, 0.5, 0.0, 0.0]  # 1 = best (green)
    assert drift_scale("wasserstein_norm", t).threshold == t.wasserstein
    assert drift_scale("js", DriftThresholds(jensen_shannon=0.05)).high == pytest.approx(0.1)
    assert drift_scale("ks_d", t) is None


def test_the_screens_heatmaps_carry_legends_on_the_project_thresholds(qtbot, sample_copy: Path):
    from app.core.store.project import Project
    from app.views.drift_view import DriftView
    from app.views.slices_view import SlicesView

    manifest = sample_copy / "lineproof.toml"
    manifest.write_text(manifest.read_text() + "\n[alerts]\nrecall_min = 0.6\n")
    project = Project.open(sample_copy, read_only=True)
    try:
        slices = SlicesView()
        qtbot.addWidget(slices)
        slices.show()
        slices.set_project(project)
        qtbot.waitUntil(lambda: slices.table is not None, timeout=60_000)
        assert slices.heatmap.scale.threshold == 0.6 and slices.heatmap.legend.isVisible()
        assert "alert < 0.6" in slices.heatmap.legend.texts()
        drift = DriftView()
        qtbot.addWidget(drift)
        drift.show()
        drift.set_project(project)
        qtbot.waitUntil(lambda: drift.table is not None, timeout=60_000)
        assert drift.heatmap.scale.threshold == 0.2 and "0.2 significant" in drift.heatmap.legend.texts()
        drift.stop_jobs()
        slices.stop_jobs()
    finally:
        project.close()


def test_twelve_lines_all_keep_their_label_at_laptop_width(qtbot):
    """#27 item 9: the Drift heatmap labelled every other line at 1366 px; now the labels stagger on two lines."""
    heatmap = Heatmap()
    qtbot.addWidget(heatmap)
    heatmap.resize(520, 300)
    heatmap.show()
    lines = [f"P{p}-L0{n}" for p in (1, 2, 3) for n in (1, 2, 3, 4)]
    v = np.zeros((3, len(lines)))
    heatmap.set_data(v, np.full(v.shape, 2, dtype=np.int8), ["a", "b", "c"], lines,
                     [["" for _ in lines] for _ in range(3)], lower_is_better=True)
    ticks = heatmap.plot.getAxis("bottom")._tickLevels[0]
    assert [text.strip() for _pos, text in ticks] == lines
    assert sum(text.startswith("\n") for _pos, text in ticks) == 6  # every other one on the second line
