"""Packet charts drawn with reportlab graphics from the result data (never grabbed from a widget)."""

from __future__ import annotations

from typing import Any

from reportlab.graphics.shapes import Circle, Drawing, Line, Polygon, String
from reportlab.lib import colors

from app.core.packet.fonts import REGULAR

CANDIDATE, CHAMPION, FAILED = colors.HexColor("#c55a11"), colors.HexColor("#1f4e79"), colors.HexColor("#c00000")
GRID = colors.HexColor("#d9d9d9")


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


def slice_chart(rows: list[dict[str, Any]], keys: list[str], metric: str, title: str, failed: set[str],
                width: float = 480, height: float = 190) -> Drawing:
    """Candidate vs champion per slice with interval bars; failed slices marked with a red triangle."""
    d = Drawing(width, height)
    left, bottom, top = 42, 34, height - 18
    plot_w = width - left - 8
    values = [v for r in rows for role in ("cand", "champ") for s in ("", "_low", "_high")
              if (v := _num(r.get(f"{role}_{metric}{s}"))) is not None]
    d.add(String(left, height - 10, title, fontName=REGULAR, fontSize=8.5))
    if not rows or not values:
        d.add(String(left, height / 2, "no data", fontName=REGULAR, fontSize=8))
        return d
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or 0.01
    lo, hi = lo - pad, hi + pad

    def y(v: float) -> float:
        return bottom + (v - lo) / (hi - lo) * (top - bottom)

    for i in range(5):  # grid and y labels
        v = lo + (hi - lo) * i / 4
        d.add(Line(left, y(v), left + plot_w, y(v), strokeColor=GRID, strokeWidth=0.4))
        d.add(String(left - 3, y(v) - 3, f"{v:.3f}", fontName=REGULAR, fontSize=6.5, textAnchor="end"))
    step = plot_w / max(len(rows), 1)
    for i, r in enumerate(rows):
        x = left + step * (i + 0.5)
        label = ", ".join(str(r.get(k)) for k in keys)
        d.add(String(x, bottom - 10, label[:14], fontName=REGULAR, fontSize=6, textAnchor="middle"))
        for offset, role, colour in ((-step * 0.15, "cand", CANDIDATE), (step * 0.15, "champ", CHAMPION)):
            v, low, high = (_num(r.get(f"{role}_{metric}{s}")) for s in ("", "_low", "_high"))
            if v is None:
                continue
            if low is not None and high is not None:
                d.add(Line(x + offset, y(low), x + offset, y(high), strokeColor=colour, strokeWidth=0.9))
                for end in (low, high):
                    d.add(Line(x + offset - 2, y(end), x + offset + 2, y(end), strokeColor=colour, strokeWidth=0.9))
            d.add(Circle(x + offset, y(v), 2.2, fillColor=colour, strokeColor=colour))
        if label in failed:
            d.add(Polygon([x - 4, bottom + 1, x + 4, bottom + 1, x, bottom + 8], fillColor=FAILED,
                          strokeColor=FAILED))
    legend_y = 8
    for j, (text, colour) in enumerate((("candidate", CANDIDATE), ("champion", CHAMPION),
                                        ("criterion failed", FAILED))):
        lx = left + j * 90
        d.add(Circle(lx, legend_y + 2, 2.2, fillColor=colour, strokeColor=colour))
        d.add(String(lx + 6, legend_y, text, fontName=REGULAR, fontSize=6.5))
    return d
