"""One time range for the whole window (as in Grafana): presets relative to the newest record, and what each screen
makes of it (Slices limit their rows, Drift and Alerts take it as the current window, Reviews pick a period in it).

Presets count back from the newest logged record, not from today: a shop-floor PC's log often ends weeks before the
day someone looks at it, and "last 30 days" of an empty month would show nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from app.core.analysis.drift import Window, default_windows

# key -> (label, days back from the newest record; None: the whole log)
PRESETS: dict[str, tuple[str, int | None]] = {
    "all": ("All data", None),
    "7d": ("Last 7 days", 7),
    "30d": ("Last 30 days", 30),
    "6w": ("Last 6 weeks", 42),
    "90d": ("Last 90 days", 90),
    "custom": ("Custom", None),
}


@dataclass(frozen=True)
class TimeRange:
    """Days [start, end] inclusive, and the preset that made them."""

    start: date
    end: date
    preset: str = "custom"

    @property
    def whole_log(self) -> bool:
        """The range puts no limit on the log (the 'All data' preset)."""
        return self.preset == "all"

    @property
    def label(self) -> str:
        """'Last 30 days (2026-08-03 – 2026-09-01)'."""
        name = PRESETS.get(self.preset, ("Custom", None))[0]
        return f"{name} ({self.start:%Y-%m-%d} – {self.end:%Y-%m-%d})"

    def bounds(self) -> tuple[datetime, datetime]:
        """[start, end) as datetimes: the end is the day after the last day, as every query here counts it."""
        return datetime.combine(self.start, datetime.min.time()), \
            datetime.combine(self.end + timedelta(days=1), datetime.min.time())


def resolve(preset: str, first: date, last: date, start: date | None = None, end: date | None = None) -> TimeRange:
    """The days a preset covers in a log from `first` to `last` (custom: `start`..`end`, clipped to nothing)."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown time range {preset!r}: choose one of {', '.join(PRESETS)}.")
    if preset == "custom":
        if start is None or end is None:
            raise ValueError("A custom time range needs a first and a last day.")
        return TimeRange(min(start, end), max(start, end), "custom")
    days = PRESETS[preset][1]
    if days is None:
        return TimeRange(first, last, preset)
    return TimeRange(max(first, last - timedelta(days=days - 1)), last, preset)


def drift_windows(time_range: TimeRange | None, first: date, last: date) -> tuple[Window, Window]:
    """Reference and current windows (end exclusive) for Drift and Alerts: the range is the current window and the
    reference is the log's first 12 weeks, cut where the current window starts. The whole log, or a range that
    starts with the log (nothing before it to compare with), keeps the default windows."""
    default = default_windows(first, last)
    if time_range is None or time_range.whole_log:
        return default
    current = (time_range.start, time_range.end + timedelta(days=1))
    reference = (first, min(first + timedelta(weeks=12), current[0]))
    if reference[1] <= reference[0]:
        return default
    return reference, current


def review_period(time_range: TimeRange | None, periods: list[tuple[str, date, date]]) -> str | None:
    """The review period to show for a range: the newest period (label, first day, day after) that lies whole in the
    range, else the newest one that holds the range's last day; None leaves the screen's own default."""
    if time_range is None or time_range.whole_log:
        return None
    inside = [p for p in periods if p[1] >= time_range.start and p[2] <= time_range.end + timedelta(days=1)]
    holding = [p for p in periods if p[1] <= time_range.end < p[2]]
    chosen = max(inside or holding, key=lambda p: p[1], default=None)
    return chosen[0] if chosen else None
