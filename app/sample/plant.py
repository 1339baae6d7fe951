"""A seeded weld-seam plant: layout, process features, defects, a firmware rollout and late labels.

Everything is vectorised numpy; the same seed and scale give the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

SEED = 20260504
START = datetime(2026, 5, 4)  # a Monday; 26 weeks of production follow
WEEKS = 26
END = START + timedelta(weeks=WEEKS)
LINES_PER_PLANT = {"P1": 5, "P2": 4, "P3": 3}
ALUMINIUM_LINE = "P1-L04"  # aluminium wire: porosity from humidity, missing from v2's training pull
FIRMWARE_LINE = "P2-L02"  # sensor firmware 5.0 reports tip temperature 25 K low from week 18
FIRMWARE_WEEK = 18
SILENT_ASSET = "P3-L02-R05"  # no data at all in week 21
SILENT_WEEK = 21
TOOLING_LINE = "P1-L03"  # a new torch tooling from week 22: operators start overriding the model, and rightly
TOOLING_WEEK = 22
TOOLING_AT = START + timedelta(weeks=TOOLING_WEEK - 1, hours=6)  # Monday 2026-09-28, the early shift
OLD_FW, NEW_FW = "4.2.1", "5.0.0"
FEATURES = ("current_a", "voltage_v", "wire_feed_m_min", "travel_speed_mm_s", "gas_flow_l_min",
            "contact_tip_temp_c", "ambient_temp_c", "humidity_pct", "wire_diameter_mm", "seam_length_mm",
            "arc_stability", "spatter_index")
MODEL_FEATURES = FEATURES  # the models read every numeric feature, in this order


@dataclass(frozen=True)
class Layout:
    """Plants, lines and robots (assets)."""

    lines: tuple[str, ...]
    line_plant: tuple[str, ...]
    assets: tuple[str, ...]
    asset_line: np.ndarray  # index into lines


def layout(seed: int = SEED) -> Layout:
    """About 200 robots on 12 lines in 3 plants."""
    rng = np.random.default_rng(seed)
    lines, plants = [], []
    for plant, n in LINES_PER_PLANT.items():
        for i in range(1, n + 1):
            lines.append(f"{plant}-L{i:02d}")
            plants.append(plant)
    assets, asset_line = [], []
    for li, line in enumerate(lines):
        for r in range(1, int(rng.integers(14, 21)) + 1):
            assets.append(f"{line}-R{r:02d}")
            asset_line.append(li)
    return Layout(tuple(lines), tuple(plants), tuple(assets), np.array(asset_line))


def _process(rng: np.random.Generator, n: int, line_idx: np.ndarray, lay: Layout, week: np.ndarray
             ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """True process values and the defect label they cause."""
    aluminium = np.array([ln == ALUMINIUM_LINE for ln in lay.lines])[line_idx]
    line_offset = np.sin(line_idx * 1.7) * 4.0  # each line runs a slightly different current
    season = np.sin(2 * np.pi * week / 52.0)
    f = {
        "current_a": 220 + line_offset * 2 + rng.normal(0, 12, n),
        "voltage_v": 24 + line_offset * 0.2 + rng.normal(0, 1.2, n),
        "wire_feed_m_min": 9 + rng.normal(0, 0.8, n),
        "travel_speed_mm_s": 12 + rng.normal(0, 1.5, n),
        "gas_flow_l_min": 15 + rng.normal(0, 1.6, n),
        "contact_tip_temp_c": 180 + rng.normal(0, 22, n),
        "ambient_temp_c": 21 + 5 * season + rng.normal(0, 2, n),
        "humidity_pct": 50 + 12 * season + rng.normal(0, 9, n),
        "wire_diameter_mm": np.where(aluminium, 1.6, 1.2),
        "seam_length_mm": rng.uniform(40, 400, n),
        "arc_stability": rng.beta(8, 2, n),
        "spatter_index": rng.gamma(2.0, 0.5, n),
    }
    z = (-5.6
         + 0.9 * ((f["current_a"] - 220 - line_offset * 2) / 12) ** 2
         + 1.1 * np.clip((14 - f["gas_flow_l_min"]) / 1.6, 0, None)
         + 1.0 * (f["contact_tip_temp_c"] - 180) / 22
         + 0.6 * np.abs(f["travel_speed_mm_s"] - 12) / 1.5
         + 1.4 * (0.8 - f["arc_stability"]) / 0.12
         + 0.35 * f["spatter_index"]
         + np.where(aluminium, 1.3 * (f["humidity_pct"] - 58) / 9, 0.0))
    defect = rng.random(n) < 1 / (1 + np.exp(-z))
    return f, defect.astype(np.int8)


def simulate(n: int, seed: int, id_prefix: str = "W") -> pl.DataFrame:
    """n seams over the 26 production weeks, with the true defect label and when it becomes known."""
    rng = np.random.default_rng(seed)
    lay = layout()
    asset = rng.integers(0, len(lay.assets), n)
    seconds = np.sort(rng.integers(0, WEEKS * 7 * 86400, n))
    week = seconds // (7 * 86400) + 1
    keep = ~((np.array(lay.assets)[asset] == SILENT_ASSET) & (week == SILENT_WEEK))
    asset, seconds, week = asset[keep], seconds[keep], week[keep]
    n = len(asset)
    ts = np.datetime64(START, "s") + seconds.astype("timedelta64[s]")
    line_idx = lay.asset_line[asset]
    feats, defect = _process(rng, n, line_idx, lay, week)
    # Firmware 5.0 rolls out over week 18 on one line, robot by robot; it logs tip temperature 25 K low.
    fw_line = np.array([ln == FIRMWARE_LINE for ln in lay.lines])[line_idx]
    rollout = (FIRMWARE_WEEK - 1) * 7 * 86400 + rng.integers(0, 6 * 86400, len(lay.assets))[asset]
    upgraded = fw_line & (seconds >= rollout)
    feats["contact_tip_temp_c"] = np.where(upgraded, feats["contact_tip_temp_c"] - 25.0, feats["contact_tip_temp_c"])
    hour = (seconds % 86400) // 3600
    shift = np.where(hour < 6, "night", np.where(hour < 14, "early", np.where(hour < 22, "late", "night")))
    # 75% of seams are inspected; the verdict arrives 1-3 weeks after the weld.
    labelled_at = ts + (rng.uniform(7, 21, n) * 86400).astype("timedelta64[s]")
    inspected = rng.random(n) < 0.75
    return pl.DataFrame({
        "record_id": np.char.add(id_prefix, np.char.zfill((np.arange(n) + 1).astype(str), 9)),
        "ts": ts.astype("datetime64[us]"),
        "plant": np.array(lay.line_plant)[line_idx], "line": np.array(lay.lines)[line_idx],
        "asset": np.array(lay.assets)[asset], "shift": shift,
        "firmware": np.where(upgraded, NEW_FW, OLD_FW),
        **{k: np.round(feats[k], 3) for k in FEATURES},
        "label": defect.astype(np.int64),
        "labelled_at": labelled_at.astype("datetime64[us]"),
        "inspected": inspected,
    })


def production_log(scale: float = 1.0, seed: int = SEED) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray]:
    """(prediction log without scores, labels that have arrived by the end, every seam's true label, which the
    operators at the line partly see); ~2M rows at scale 1."""
    full = simulate(int(2_000_000 * scale), seed + 1)
    labels = full.filter(pl.col("inspected") & (pl.col("labelled_at") < END)).select(
        "record_id", "label", "labelled_at")
    return full.drop("label", "labelled_at", "inspected"), labels, full["label"].to_numpy()


def operator_decisions(log: pl.DataFrame, decided: np.ndarray, truth: np.ndarray, seed: int = SEED) -> pl.DataFrame:
    """The operator's final decision per seam, and a reason code where it overrides the model.

    Operators look at the seam: they override a wrong decision more often than a right one, but less often than
    they should (about 2% of decisions, right in about 40% of them). From the tooling change on TOOLING_LINE the
    new torch leaves marks the model misreads and the operators see through: they override far more often, and
    they are right in most of those overrides (the model's own error rate does not change).
    """
    rng = np.random.default_rng(seed + 29)  # its own stream: the rest of the sample stays as it was
    wrong = decided != truth
    changed = (log["line"].to_numpy() == TOOLING_LINE) & (log["ts"].to_numpy() >= np.datetime64(TOOLING_AT, "us"))
    p_wrong = np.where(changed, 0.55, 0.08)
    p_right = np.where(changed, 0.03, 0.013)
    override = rng.random(len(decided)) < np.where(wrong, p_wrong, p_right)
    operator = np.where(override, 1 - decided, decided)
    reasons = np.where(operator == 1, rng.choice(["R1 porosity seen", "R2 undercut seen"], len(decided)),
                       rng.choice(["R7 cosmetic only", "R8 torch marks, seam sound"], len(decided)))
    return pl.DataFrame({"operator_decision": operator.astype(np.int32),
                         "override_reason": np.where(override, reasons, None)})


def training_set(n: int, seed: int, exclude_line: str | None = None) -> pl.DataFrame:
    """Historic labelled data from the year before the production period (old firmware everywhere)."""
    rng = np.random.default_rng(seed)
    lay = layout()
    asset = rng.integers(0, len(lay.assets), n)
    line_idx = lay.asset_line[asset]
    feats, defect = _process(rng, n, line_idx, lay, rng.integers(-52, 0, n))
    frame = pl.DataFrame({"record_id": np.char.add(f"T{seed}-", np.arange(n).astype(str)),
                          "line": np.array(lay.lines)[line_idx], **{k: np.round(feats[k], 3) for k in FEATURES},
                          "label": defect.astype(np.int64)})
    return frame.filter(pl.col("line") != exclude_line) if exclude_line else frame


def validation_set(n: int, seed: int = SEED + 7) -> pl.DataFrame:
    """A held-out, fully labelled set from the production period, never used for training."""
    return simulate(n, seed, id_prefix="V").drop("labelled_at", "inspected")
