"""Slice tables as text, CSV and JSON (CLI output and the GUI's CSV export)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from app.core.analysis.slices import LOWER_IS_BETTER, METRIC_LABELS, SliceTable


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ranked(table: SliceTable, metric: str) -> pl.DataFrame:
    """The slices worst first by `metric`, every column kept (the CSV export)."""
    return table.worst(metric)


def slices_text(table: SliceTable, metric: str, limit: int = 40) -> str:
    """A terminal table: overall first, then the slices worst first."""
    q = table.query
    worst = table.worst(metric)
    keys = list(q.keys)
    direction = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
    label = METRIC_LABELS.get(metric, metric)
    o = table.overall.row(0, named=True)
    lines = [f"{q.version_id}  {label} ({direction}), {q.confidence:.0%} intervals, threshold {table.threshold:g}, "
             f"minimum support {q.min_support} labelled",
             f"overall: {_fmt(o[metric])} [{_fmt(o.get(metric + '_low'))}, {_fmt(o.get(metric + '_high'))}]  "
             f"{o['labelled']:,} of {o['n']:,} labelled", ""]
    header = ["#", *keys, "rows", "labelled", label, "interval", "vs overall", "status"]
    body = []
    for r in worst.head(limit).iter_rows(named=True):
        low, high = r.get(metric + "_low"), r.get(metric + "_high")
        interval = f"[{_fmt(low)}, {_fmt(high)}]" if low is not None else "–"
        delta = r["vs_overall"]
        body.append([str(r["rank"]), *[_fmt(r[k]) for k in keys], _fmt(r["n"]), _fmt(r["labelled"]),
                     _fmt(r[metric]), interval, f"{delta:+.3f}" if delta is not None else "–",
                     "" if r["status"] == "ok" else r["status"]])
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(header)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in body]
    if worst.height > limit:
        lines.append(f"... {worst.height - limit:,} more slices (use --format csv for all)")
    if not body:
        lines.append("(no slices: no predictions match the filters)")
    return "\n".join(lines)


def slices_json(table: SliceTable, metric: str) -> str:
    """Overall and ranked slices as JSON."""
    def rows(frame: pl.DataFrame) -> list[dict]:
        return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
                for r in frame.iter_rows(named=True)]
    q = table.query
    return json.dumps({"version_id": q.version_id, "task": table.task, "threshold": table.threshold,
                       "by": list(q.by), "window": q.window, "metric": metric, "confidence": q.confidence,
                       "min_support": q.min_support, "notes": list(table.notes),
                       "overall": rows(table.overall)[0], "slices": rows(table.worst(metric))}, indent=2)


def write_slices_csv(table: SliceTable, metric: str, path: Path | str) -> Path:
    """Write the ranked slice table as CSV (atomically) and return the path."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".partial")
    ranked(table, metric).write_csv(tmp)
    tmp.replace(path)
    return path
