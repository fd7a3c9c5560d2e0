"""``maintenance.intervals``: the stretches a window is active over a period agree with ``active_at`` (the
engine's own evaluation) at every sampled instant, for one-off, RRULE (weekly, hourly with an interval,
monthly last day, COUNT) and cron windows, and stay cut to the period and the window's end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alarms.maintenance import Window, intervals

START = datetime(2026, 1, 20, tzinfo=UTC)
END = datetime(2026, 3, 20, tzinfo=UTC)


def window(**changes) -> Window:
    base = dict(id=1, name="w", starts_at=datetime(2026, 1, 3, 1, 30, tzinfo=UTC), ends_at=None, rrule=None,
                cron=None, duration_s=None, devices=frozenset(), sites=frozenset(), tags=frozenset(),
                interfaces=frozenset())  # fmt: skip
    return Window(**{**base, **changes})


CASES = {
    "weekly": window(rrule="FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=0", duration_s=7200),
    "hourly every 5 h": window(rrule="FREQ=HOURLY;INTERVAL=5", duration_s=4000),
    "last day of the month, ends mid-March": window(rrule="FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=23", duration_s=7200,
                                                     ends_at=datetime(2026, 3, 15, tzinfo=UTC)),
    "count from January 28": window(rrule="FREQ=DAILY;COUNT=5", duration_s=900,
                                    starts_at=datetime(2026, 1, 28, 6, 0, tzinfo=UTC)),
    "cron daily": window(cron="15 3 * * *", duration_s=2700),
    "one-off": window(ends_at=datetime(2026, 2, 1, 5, 0, tzinfo=UTC)),
    "longer than its period": window(rrule="FREQ=DAILY;BYHOUR=12", duration_s=30 * 3600),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_intervals_agree_with_active_at(name):
    w = CASES[name]
    found = intervals(w, START, END)
    assert found, name
    assert all(START <= a < b <= END for a, b in found)
    assert all(b < c for (_a, b), (c, _d) in zip(found, found[1:], strict=False))  # merged, in order
    for a, b in found:  # the edges exactly
        assert w.active_at(a) and w.active_at(b - timedelta(seconds=1)), (name, a, b)
        assert b == END or not w.active_at(b), (name, b)
        assert a == START or not w.active_at(a - timedelta(seconds=1)), (name, a)
    t = START
    while t < END:
        assert any(a <= t < b for a, b in found) == w.active_at(t), (name, t)
        t += timedelta(minutes=17)


def test_exact_stretches_of_a_weekly_window_cut_to_the_period():
    w = window(rrule="FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=0", duration_s=7200)
    # Sunday Feb 1 02:00-04:00 and Feb 8 02:00-04:00; the period ends inside the second
    found = intervals(w, datetime(2026, 2, 1, 3, 0, tzinfo=UTC), datetime(2026, 2, 8, 3, 0, tzinfo=UTC))
    assert found == [(datetime(2026, 2, 1, 3, 0, tzinfo=UTC), datetime(2026, 2, 1, 4, 0, tzinfo=UTC)),
                     (datetime(2026, 2, 8, 2, 0, tzinfo=UTC), datetime(2026, 2, 8, 3, 0, tzinfo=UTC))]  # fmt: skip


def test_a_window_outside_the_period_or_out_of_bounds_gives_nothing():
    assert intervals(window(ends_at=datetime(2026, 1, 10, tzinfo=UTC)), START, END) == []
    assert intervals(window(starts_at=END), START, END) == []
    assert intervals(window(rrule="FREQ=MINUTELY", duration_s=60), START, END) == []  # refused by the bounds
    assert intervals(window(rrule="FREQ=DAILY", duration_s=0), START, END) == []
