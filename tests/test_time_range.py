"""#27 item 7: one time range for the whole window that Slices, Drift, Alerts and Reviews follow, each able to
override it. The core part is checked on hand-worked days; the window part on the sample, as a user would."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from app.core.analysis.drift import default_windows
from app.core.analysis.time_range import TimeRange, drift_windows, resolve, review_period

FIRST, LAST = date(2026, 5, 4), date(2026, 11, 1)


def test_presets_count_back_from_the_newest_record():
    assert resolve("all", FIRST, LAST) == TimeRange(FIRST, LAST, "all")
    assert resolve("7d", FIRST, LAST) == TimeRange(date(2026, 10, 26), LAST, "7d")  # 26 Oct .. 1 Nov: 7 days
    assert resolve("30d", FIRST, LAST) == TimeRange(date(2026, 10, 3), LAST, "30d")
    assert resolve("90d", date(2026, 10, 1), LAST).start == date(2026, 10, 1)  # clipped to the log
    assert resolve("custom", FIRST, LAST, date(2026, 7, 9), date(2026, 7, 1)) == TimeRange(
        date(2026, 7, 1), date(2026, 7, 9), "custom")  # given backwards: swapped
    assert TimeRange(date(2026, 7, 1), date(2026, 7, 9)).bounds() == (datetime(2026, 7, 1), datetime(2026, 7, 10))
    with pytest.raises(ValueError, match="Unknown time range"):
        resolve("yesterday", FIRST, LAST)


def test_the_range_is_the_drift_current_window_and_the_reference_stops_where_it_starts():
    assert drift_windows(None, FIRST, LAST) == default_windows(FIRST, LAST)
    assert drift_windows(resolve("all", FIRST, LAST), FIRST, LAST) == default_windows(FIRST, LAST)
    reference, current = drift_windows(resolve("30d", FIRST, LAST), FIRST, LAST)
    assert current == (date(2026, 10, 3), date(2026, 11, 2))  # end exclusive, as the drift queries count it
    assert reference == (FIRST, FIRST + timedelta(weeks=12))
    # A range that starts two weeks in: the reference is cut there, so the windows never overlap.
    reference, current = drift_windows(TimeRange(date(2026, 5, 18), date(2026, 6, 30)), FIRST, LAST)
    assert reference == (FIRST, date(2026, 5, 18)) and current == (date(2026, 5, 18), date(2026, 7, 1))
    # Nothing before the range to compare with: the screen keeps its default windows.
    assert drift_windows(TimeRange(FIRST, date(2026, 6, 1)), FIRST, LAST) == default_windows(FIRST, LAST)


def test_reviews_take_the_newest_whole_period_in_the_range():
    months = [(f"2026-{m:02d}", date(2026, m, 1), date(2026 + (m == 12), m % 12 + 1, 1)) for m in range(11, 4, -1)]
    assert review_period(resolve("all", FIRST, LAST), months) is None  # the screen's own default
    assert review_period(TimeRange(date(2026, 7, 15), date(2026, 10, 20)), months) == "2026-09"
    assert review_period(TimeRange(date(2026, 10, 3), LAST), months) == "2026-11"  # no whole month: the last day's
    assert review_period(TimeRange(date(2026, 8, 1), date(2026, 8, 31)), months) == "2026-08"


def test_the_screens_follow_the_window_range_and_one_can_keep_its_own(qtbot, window, sample_folder: Path):
    from app.core.analysis.slices import compute_slices, logged_span

    assert not window.time_bar.isEnabled() and window.time_bar.start.text() == "–"  # no project: no made-up day
    assert window.open_project(sample_folder, read_only=True)
    qtbot.waitUntil(lambda: window.last_overview is not None, timeout=30_000)
    first, last = (d.date() for d in logged_span(window.project))
    assert window.time_bar.range == TimeRange(first, last, "all")
    window.nav.setCurrentRow(1)  # Slices: the whole log, as before the toolbar existed
    assert window.slices.follow.isChecked() and not window.slices.use_dates.isChecked()
    drift, alerts, reviews = window.drift, window.alerts, window.reviews

    chosen = window.time_bar.choose("30d")
    assert chosen == TimeRange(last - timedelta(days=29), last, "30d")
    query = window.slices.query()
    assert (query.start, query.end) == chosen.bounds()
    assert not window.slices.start_edit.isEnabled()  # its own days wait while it follows
    with qtbot.waitSignal(window.slices._task.done, timeout=60_000) as shown:
        pass
    expected = compute_slices(window.project, query)  # the table shown is the one for these days
    assert shown.args[0].slices["n"].to_list() == expected.slices["n"].to_list()
    full = compute_slices(window.project, query.__class__(query.version_id, query.by))
    assert expected.slices["n"].sum() < full.slices["n"].sum()
    assert drift.query().current == chosen.bounds() and drift.query().reference[1] <= chosen.bounds()[0]
    assert (alerts.cur_from.date().toPython(), alerts.cur_to.date().toPython()) == (chosen.start,
                                                                                     chosen.end + timedelta(days=1))
    assert reviews.chosen_period().start.date() <= chosen.end < reviews.chosen_period().end.date()

    drift.follow.setChecked(False)  # Drift keeps its own window from now on
    assert drift.cur_from.isEnabled()
    own = drift.query()
    window.time_bar.choose("custom", date(2026, 7, 1), date(2026, 9, 30))
    assert drift.query() == own
    assert window.slices.query().start == datetime(2026, 7, 1) and window.slices.query().end == datetime(2026, 10, 1)
    assert reviews.chosen_period().label == "2026-09"
    drift.follow.setChecked(True)  # and back: it takes the range again
    assert drift.query().current == (datetime(2026, 7, 1), datetime(2026, 10, 1))
    window.time_bar.choose("all")
    assert not window.slices.use_dates.isChecked() and window.slices.query().start is None
    # The whole log is no window for Drift, Alerts or Reviews: their default windows, theirs to change.
    assert drift.query().current == tuple(datetime.combine(d, datetime.min.time())
                                          for d in default_windows(first, last)[1])
    assert drift.cur_from.isEnabled() and alerts.cur_from.isEnabled() and reviews.period.isEnabled()
    assert not window.slices.start_edit.isEnabled()  # Slices follow "All data": no date limit
