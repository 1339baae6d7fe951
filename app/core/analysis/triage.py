"""Drift triage: is a drifted (feature, slice) cell plant-wide or local, and what likely caused it.

- plant-wide: the slice moved like its peers (the other slices of the same dimension) in the same window, as a
  season or a material lot moves every line; such cells become one grouped notice per feature;
- local: the slice differs from its peers now (its shift, less its peers' median shift, is at least
  LOCAL_SHIFT reference standard deviations, or its spread changed unlike theirs, or it froze);
- a likely cause where one fits: a version change (firmware, hardware) or a stored event on that slice within
  the window, and the shape of the change: a constant offset (spread unchanged), a scale factor, missing values,
  or a frozen value.

Row work is one SQL pass for moments (count, mean, standard deviation, min, max) per slice, window and feature;
everything else works on the drift table and those moments.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import polars as pl

from app.core.analysis.drift import DriftTable
from app.core.analysis.events import detect_version_changes, version_like_columns
from app.core.store.project import Project
from app.core.store.sources import sql_ident, sql_literal

LOCAL_SHIFT = 0.5  # a slice whose shift differs from its peers' by this many reference std is local
SPREAD_CHANGE = 0.25  # a spread ratio this far (relative) from the peers' is a change of shape
SAME_SHAPE = 0.10  # spread within 10% of the peers': an offset with the same shape
# A spread ratio from fewer rows than this in either window is too noisy (heavy-tailed sensors) to call a change
# of shape on its own; the mean shift, far steadier, still decides.
SPREAD_MIN_ROWS = 1000
MISSING_JUMP = 0.05  # missing share up by 5 points: missing values are a cause
EVENT_LEAD = timedelta(days=7)  # at least the week before the current window counts as "since the reference"
UNITS = {"_c": "K", "_k": "K", "_pct": "pp", "_mm_s": "mm/s", "_mm": "mm", "_m_min": "m/min", "_l_min": "l/min",
         "_a": "A", "_v": "V", "_s": "s", "_ms": "ms", "_bar": "bar", "_hz": "Hz"}


@dataclass(frozen=True)
class Triage:
    """Triage of every drifted cell of a drift table, and the plant-wide notices they group into."""

    cells: pl.DataFrame  # keys, feature, triage, cause, event, offset, scale, excess_shift
    notices: pl.DataFrame  # feature, slices, of_slices, message

    def local(self) -> pl.DataFrame:
        """The local cells: each one an alert."""
        return self.cells.filter(pl.col("triage") == "local")


def with_triage(project: Project, drift: DriftTable) -> DriftTable:
    """The drift table with `triage` and `cause` beside each drifted cell (empty for the others)."""
    triage = triage_drift(project, drift)
    keys = [*drift.query.by, "feature"]
    if not drift.rows.height:
        return drift
    rows = drift.rows.join(triage.cells.select(*keys, "triage", "cause"), on=keys, how="left")
    return replace(drift, rows=rows)


def unit_of(feature: str) -> str:
    """The unit a feature's name ends in (contact_tip_temp_c -> K for a difference), or ''."""
    name = feature.lower()
    return next((u for suffix, u in sorted(UNITS.items(), key=lambda kv: -len(kv[0])) if name.endswith(suffix)), "")


def triage_drift(project: Project, drift: DriftTable) -> Triage:
    """Classify each drifted cell of `drift` as plant-wide or local, with its likely cause."""
    query = drift.query
    keys = list(query.by)
    rows = drift.rows
    empty = Triage(pl.DataFrame(schema={**{k: pl.Utf8 for k in keys}, "feature": pl.Utf8, "triage": pl.Utf8,
                                        "cause": pl.Utf8, "event": pl.Utf8, "offset": pl.Float64,
                                        "scale": pl.Float64, "excess_shift": pl.Float64}),
                   pl.DataFrame(schema={"feature": pl.Utf8, "slices": pl.Int64, "of_slices": pl.Int64,
                                        "message": pl.Utf8}))
    if not rows.height or not rows["drifted"].fill_null(False).any():
        return empty
    drifted = rows.filter(pl.col("drifted").fill_null(False))
    numeric = drifted.filter(pl.col("kind") == "numeric")["feature"].unique().to_list()
    moments = _moments(project, drift, sorted(numeric)) if numeric and query.reference_dataset is None else None
    shapes = _shapes(moments, keys) if moments is not None else None
    share = rows.group_by("feature").agg(pl.col("drifted").fill_null(False).mean().alias("peer_share"),
                                         pl.len().alias("of_slices"))
    cells = drifted.join(share, on="feature", how="left")
    if shapes is not None:
        cells = cells.join(shapes, on=[*keys, "feature"], how="left")
    else:
        cells = cells.with_columns(*(pl.lit(None, pl.Float64).alias(c) for c in (
            "excess_shift", "offset", "spread_change", "frozen_at", "ref_mean", "cur_mean")))
    # the drift compares the current window with the reference: an event between the two can explain it
    since = min(query.reference[1], query.current[0] - EVENT_LEAD) if query.reference_dataset is None \
        else query.current[0] - EVENT_LEAD
    events = events_between(project, keys, (since, query.current[1]), log=query.log, engine=query.engine)
    out = []
    for r in cells.iter_rows(named=True):
        out.append(_classify(r, keys, events))
    table = pl.DataFrame(out, schema=empty.cells.schema)
    wide = table.filter(pl.col("triage") == "plant-wide").group_by("feature").agg(pl.len().alias("slices"))
    wide = wide.join(share.select("feature", "of_slices"), on="feature").sort("feature")
    dim = " x ".join(keys) or "slice"
    notices = wide.with_columns(pl.format("{} drifted on {} of {} {}s, each moving like its peers (plant-wide: "
                                          "a season, a material lot; one notice, not an alert per slice)",
                                          pl.col("feature"), pl.col("slices"), pl.col("of_slices"),
                                          pl.lit(dim)).alias("message"))
    return Triage(table, notices.select("feature", "slices", "of_slices", "message"))


def _classify(r: dict, keys: list[str], events: dict) -> dict:
    unit = unit_of(r["feature"])
    in_unit = f" {unit}" if unit else ""
    causes: list[str] = []
    local = False
    excess, spread = r.get("excess_shift"), r.get("spread_change")
    steady = min(r.get("n_ref") or 0, r.get("n_cur") or 0) >= SPREAD_MIN_ROWS
    if r.get("frozen_at") is not None:
        local = True
        causes.append(f"frozen at {r['frozen_at']:g}{in_unit}")
    elif spread is not None and steady and abs(spread - 1) >= SPREAD_CHANGE:
        local = True
        ref_mean, cur_mean = r.get("ref_mean"), r.get("cur_mean")
        means = cur_mean / ref_mean if ref_mean else None
        if means is not None and abs(means - spread) <= SAME_SHAPE * spread:
            causes.append(f"scale factor x{spread:.2f} (mean and spread alike: a unit or gain change)")
        else:
            causes.append(f"spread x{spread:.2f}, shift {r['offset']:+.1f}{in_unit}")
    elif excess is not None and abs(excess) >= LOCAL_SHIFT:
        local = True
        shape = "same shape" if spread is not None and abs(spread - 1) <= SAME_SHAPE else f"spread x{spread:.2f}"
        causes.append(f"offset {r['offset']:+.1f}{in_unit}, {shape}")
    if (r.get("missing_cur") or 0) - (r.get("missing_ref") or 0) >= MISSING_JUMP:
        local = local or r["peer_share"] < 0.5
        causes.append(f"missing values {r['missing_cur']:.0%} (was {r['missing_ref']:.0%})")
    if r["kind"] == "categorical":
        local = r["peer_share"] < 0.5
        if r.get("new_categories"):
            causes.append(f"new categories: {r['new_categories']}")
    elif excess is None and not causes:  # no moments (a dataset reference): peers decide
        local = r["peer_share"] < 0.5
    event = events.get(tuple(r[k] for k in keys))
    if event and local:
        causes.insert(0, f"event {event}")
    return {**{k: r[k] for k in keys}, "feature": r["feature"], "triage": "local" if local else "plant-wide",
            "cause": "; ".join(causes) if local else "moved like its peers",
            "event": event if local else None, "offset": r.get("offset"),
            "scale": spread, "excess_shift": excess}


def _moments(project: Project, drift: DriftTable, features: list[str]) -> pl.DataFrame:
    """Count, mean, std, min, max per slice, window (reference / current) and feature, in one pass."""
    q = drift.query
    keys = ", ".join(f"coalesce({sql_ident(k)}::VARCHAR, '(missing)') AS {sql_ident(k)}" for k in q.by)

    def between(w: tuple[datetime, datetime]) -> str:
        return f"ts >= {sql_literal(w[0].isoformat(sep=' '))}::TIMESTAMP AND ts < {sql_literal(w[1].isoformat(sep=' '))}::TIMESTAMP"
    aggs = ", ".join(f"count({sql_ident(f)}) AS {sql_ident(f + '|n')}, avg({sql_ident(f)}) AS {sql_ident(f + '|mean')}, "
                     f"stddev_pop({sql_ident(f)}) AS {sql_ident(f + '|std')}, min({sql_ident(f)}) AS {sql_ident(f + '|min')}, "
                     f"max({sql_ident(f)}) AS {sql_ident(f + '|max')}" for f in features)
    group = f"{keys}, " if keys else ""
    sql = f"""SELECT {group}({between(q.current)}) AS _current, {aggs} FROM {q.relation}
              WHERE ({between(q.reference)}) OR ({between(q.current)}) GROUP BY ALL"""
    if q.log:  # the moments are row work: built where the attached log is read
        from app.core.analysis.attached import summary_frame
        wide = summary_frame(project, q.log, q.engine, sql)
    else:
        with project.reading() as con:
            wide = con.sql(sql).pl()
    long = wide.unpivot(index=[*q.by, "_current"], variable_name="_stat", value_name="_value").with_columns(
        pl.col("_stat").str.split_exact("|", 1).struct.rename_fields(["feature", "_moment"])).unnest("_stat")
    return long.pivot(on=["_current", "_moment"], index=[*q.by, "feature"], values="_value")


def _shapes(moments: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Per slice and feature: its shift less its peers' median shift (in reference std), the offset in the
    feature's unit, its spread ratio relative to the peers', and the value it froze at (if it did)."""
    m = moments.rename({c: c.replace('{false,', '_ref_').replace('{true,', '_cur_').rstrip('}').replace('"', '')
                        for c in moments.columns if c.startswith("{")})
    m = m.with_columns((pl.col("_cur_mean") - pl.col("_ref_mean")).alias("_shift"),
                       (pl.col("_cur_std") / pl.col("_ref_std")).alias("_ratio"))
    peers = m.select(*keys, "feature", "_shift", "_ratio").join(
        m.select(*[pl.col(k).alias(f"_peer_{k}") for k in keys], "feature", pl.col("_shift").alias("_p_shift"),
                 pl.col("_ratio").alias("_p_ratio")), on="feature")
    if keys:
        peers = peers.filter(pl.any_horizontal(*(pl.col(k) != pl.col(f"_peer_{k}") for k in keys)))
    peer = peers.group_by(*keys, "feature").agg(pl.col("_p_shift").median().alias("_peer_shift"),
                                                 pl.col("_p_ratio").median().alias("_peer_ratio"))
    out = m.join(peer, on=[*keys, "feature"], how="left").with_columns(
        pl.col("_peer_shift").fill_null(0.0), pl.col("_peer_ratio").fill_null(1.0))
    return out.select(
        *keys, "feature", pl.col("_ref_mean").alias("ref_mean"), pl.col("_cur_mean").alias("cur_mean"),
        pl.when(pl.col("_ref_std") > 0).then((pl.col("_shift") - pl.col("_peer_shift")) / pl.col("_ref_std"))
        .alias("excess_shift"),
        (pl.col("_shift") - pl.col("_peer_shift")).alias("offset"),
        (pl.col("_ratio") / pl.col("_peer_ratio")).alias("spread_change"),
        pl.when((pl.col("_cur_n") > 1) & (pl.col("_cur_max") == pl.col("_cur_min")) & (pl.col("_ref_std") > 0))
        .then(pl.col("_cur_min")).alias("frozen_at"))


def events_between(project: Project, keys: list[str], span: tuple[datetime, datetime], log: str | None = None,
                   engine: str | None = None) -> dict[tuple, str]:
    """The first version change (in the project's log, or the attached `log`) or stored event per slice value
    within `span`."""
    if len(keys) != 1:
        return {}
    dim = keys[0]
    start, end = span
    found: dict[tuple, tuple[datetime, str]] = {}
    for column in version_like_columns(project, log):
        changes = detect_version_changes(project, column, log=log, engine=engine)
        if dim not in ("line", "asset") or not changes.height:
            continue
        where = "line" if dim == "line" else "scope"
        window = changes.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
        for r in window.group_by(where, "old_value", "new_value").agg(pl.col("ts").min()).iter_rows(named=True):
            text = f"{column} {r['old_value']} -> {r['new_value']} (from {r['ts']:%Y-%m-%d})"
            key = (r[where],)
            if key not in found or r["ts"] < found[key][0]:
                found[key] = (r["ts"], text)
    with project.reading() as con:
        stored = con.execute("SELECT ts, dimension, scope, line, description FROM events WHERE source <> 'detected' "
                             "AND ts >= ? AND ts < ? ORDER BY ts", [start, end]).fetchall()
    for ts, dimension, scope, line, description in stored:
        value = scope if dimension == dim else (line if dim == "line" else None)
        if value is not None and (value,) not in found:
            found[(value,)] = (ts, f"{description} ({ts:%Y-%m-%d})")
    return {k: v[1] for k, v in found.items()}
