"""Maintenance windows as pure logic: one-off, RRULE, cron; scope by device, site, tag, interface."""

from datetime import UTC, datetime, timedelta

import dateutil.rrule
import pytest
from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from alarms.maintenance import Window, covering, horizon_problem, validate_recurrence

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)  # a Sunday


def window(**kw):
    base = dict(
        id=1,
        name="w",
        starts_at=T0,
        ends_at=None,
        rrule=None,
        cron=None,
        duration_s=None,
        devices=frozenset(),
        sites=frozenset(),
        tags=frozenset(),
        interfaces=frozenset(),
    )
    base.update(kw)
    return Window(**base)


def test_one_off_is_half_open():
    w = window(ends_at=T0 + timedelta(hours=2))
    assert not w.active_at(T0 - timedelta(seconds=1))
    assert w.active_at(T0) and w.active_at(T0 + timedelta(hours=2) - timedelta(seconds=1))
    assert not w.active_at(T0 + timedelta(hours=2))


def test_rrule_weekly_sunday_two_hours_until_end():
    w = window(rrule="FREQ=WEEKLY;BYDAY=SU;BYHOUR=2", duration_s=7200, ends_at=T0 + timedelta(days=10))
    assert not w.active_at(T0 + timedelta(hours=1))
    assert w.active_at(T0 + timedelta(hours=3, minutes=59))
    assert not w.active_at(T0 + timedelta(hours=4))
    assert not w.active_at(T0 + timedelta(days=3, hours=3))  # Wednesday
    assert w.active_at(T0 + timedelta(days=7, hours=2))  # next Sunday
    assert not w.active_at(T0 + timedelta(days=14, hours=2))  # after ends_at


def test_cron_daily_at_0130_for_30_minutes():
    w = window(cron="30 1 * * *", duration_s=1800)
    assert w.active_at(T0 + timedelta(hours=1, minutes=30))
    assert w.active_at(T0 + timedelta(days=5, hours=1, minutes=59))
    assert not w.active_at(T0 + timedelta(days=5, hours=2))
    assert not w.active_at(T0 + timedelta(hours=1, minutes=29))


def test_scope_by_device_site_tag_interface():
    windows = [
        window(id=1, name="dev", ends_at=T0 + timedelta(days=1), devices=frozenset({"r1"})),
        window(id=2, name="site", ends_at=T0 + timedelta(days=1), sites=frozenset({"pop1"})),
        window(id=3, name="tag", ends_at=T0 + timedelta(days=1), tags=frozenset({"lab"})),
        window(id=4, name="itf", ends_at=T0 + timedelta(days=1), interfaces=frozenset({"r9:Gi0/1"})),
    ]
    at = T0 + timedelta(hours=1)

    def name(device, mo="", site=None, tags=()):
        w = covering(windows, at, device=device, managed_object=mo, site=site, tags=tags)
        return w.name if w else None

    assert name("r1") == "dev"
    assert name("r2", site="pop1") == "site"
    assert name("r3", tags=["core", "lab"]) == "tag"
    assert name("r9", mo="interface:Gi0/1") == "itf"
    assert name("r9", mo="interface:Gi0/2") is None
    assert name("r9") is None


def test_recurrence_validation_messages():
    assert validate_recurrence(rrule="FREQ=DAILY", cron=None, starts_at=T0) is None
    assert "not a valid RRULE" in validate_recurrence(rrule="FREQ=SOMETIMES", cron=None, starts_at=T0)
    assert "not a valid cron expression" in validate_recurrence(rrule=None, cron="61 * * * *", starts_at=T0)


# ---- bounded recurrence (issue 15, item 2) -----------------------------------------------------


@pytest.fixture
def steps(monkeypatch):
    """How many occurrences dateutil generates (the work ``before`` does), counted at its iterator."""
    counted = [0]
    original = dateutil.rrule.rrule._iter

    def counting(self):
        for occurrence in original(self):
            counted[0] += 1
            yield occurrence

    monkeypatch.setattr(dateutil.rrule.rrule, "_iter", counting)
    return counted


@pytest.mark.parametrize(
    ("rule", "duration_s"),
    [("FREQ=HOURLY", 600), ("FREQ=DAILY;BYHOUR=2", 3600), ("FREQ=WEEKLY;INTERVAL=2;BYDAY=SU,WE", 7200)],
)
def test_evaluation_does_not_walk_the_history_of_an_old_window(steps, rule, duration_s):
    old = window(starts_at=datetime(2000, 1, 1, tzinfo=UTC), rrule=rule, duration_s=duration_s)
    young = window(starts_at=T0 - timedelta(days=30), rrule=rule, duration_s=duration_s)
    at = T0 + timedelta(days=3, hours=2, minutes=5)
    for w in (old, young):  # the one-off check of the rule (at most 400 yearly steps) is cached per rule
        assert validate_recurrence(rrule=rule, cron=None, starts_at=w.starts_at) is None
    steps[0] = 0
    old.active_at(at)
    old_steps = steps[0]
    steps[0] = 0
    young.active_at(at)
    # A window 26 years old costs what a window one month old costs: the periods around t, not its history.
    assert old_steps <= steps[0] + 8, (old_steps, steps[0])
    assert old_steps < 50


def _naive_active(w, t):
    """The old evaluation (dateutil walking from DTSTART): the oracle for young windows."""
    if t < w.starts_at or (w.ends_at is not None and t >= w.ends_at):
        return False
    start = rrulestr(w.rrule, dtstart=w.starts_at).before(t, inc=True)
    return start is not None and t < start + timedelta(seconds=w.duration_s)


RULES = [
    "FREQ=HOURLY",
    "FREQ=HOURLY;INTERVAL=5;BYMINUTE=30",
    "FREQ=HOURLY;BYDAY=SA,SU",
    "FREQ=DAILY",
    "FREQ=DAILY;INTERVAL=3;BYHOUR=1,13",
    "FREQ=DAILY;BYDAY=MO,FR;BYHOUR=22;BYMINUTE=15",
    "FREQ=WEEKLY",
    "FREQ=WEEKLY;INTERVAL=3;BYDAY=TU,SA;WKST=SU",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=SU;WKST=WE",
    "FREQ=MONTHLY",
    "FREQ=MONTHLY;INTERVAL=5",
    "FREQ=MONTHLY;BYDAY=1SU;BYHOUR=2",
    "FREQ=MONTHLY;INTERVAL=2;BYDAY=-1FR",
    "FREQ=MONTHLY;BYMONTHDAY=-1,15",
    "FREQ=YEARLY",
    "FREQ=YEARLY;INTERVAL=3;BYMONTH=3,9;BYDAY=2SA",
    "FREQ=DAILY;COUNT=40",
    "FREQ=WEEKLY;UNTIL=20270101T000000Z",
]


@settings(max_examples=300, deadline=None)
@given(
    rule=st.sampled_from(RULES),
    start_offset_min=st.integers(0, 3 * 365 * 24 * 60),
    age_min=st.integers(0, 2 * 365 * 24 * 60),
    duration_min=st.integers(1, 3 * 24 * 60),
)
def test_bounded_evaluation_agrees_with_walking_from_dtstart(rule, start_offset_min, age_min, duration_min):
    starts_at = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=start_offset_min)
    w = window(starts_at=starts_at, rrule=rule, duration_s=duration_min * 60)
    assert validate_recurrence(rrule=rule, cron=None, starts_at=starts_at) is None
    t = starts_at + timedelta(minutes=age_min)
    assert w.active_at(t) == _naive_active(w, t), (rule, starts_at, t)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("FREQ=SECONDLY", "FREQ=SECONDLY is not allowed"),
        ("FREQ=MINUTELY;INTERVAL=5", "FREQ=MINUTELY is not allowed"),
        ("FREQ=DAILY;BYSECOND=0,1,2", "BYSECOND not allowed"),
        ("FREQ=YEARLY;BYWEEKNO=1", "BYWEEKNO not allowed"),
        ("FREQ=MONTHLY;BYDAY=1MO;BYSETPOS=1", "BYSETPOS not allowed"),
        ("FREQ=DAILY;BYHOUR=0,1,2,3,4,5,6,7,8,9,10,11,12;BYMINUTE=0,30", "26 occurrences a day"),
        ("FREQ=HOURLY;BYMINUTE=0,30", "48 occurrences a day"),
        ("FREQ=DAILY;INTERVAL=400", "INTERVAL must be 1 to 366"),
        ("FREQ=DAILY;INTERVAL=7;BYDAY=TU", "INTERVAL > 1 cannot be combined with BYDAY"),
        ("FREQ=HOURLY;INTERVAL=5;BYHOUR=3,4", "INTERVAL > 1 cannot be combined with BYHOUR"),
        ("FREQ=YEARLY;INTERVAL=2;BYMONTH=2;BYMONTHDAY=29", "leave some calendar year without an occurrence"),
        ("FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=31", "INTERVAL > 1 cannot be combined with BYMONTHDAY"),
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "leave some calendar year without an occurrence"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "leave some calendar year without an occurrence"),
        ("FREQ=WEEKLY;BYDAY=2MO", "BYDAY ordinals (2MO) only with FREQ=MONTHLY or YEARLY"),
        ("FREQ=DAILY;COUNT=5000", "COUNT must be 1 to 1000"),
        ("FREQ=DAILY\nFREQ=HOURLY", "expected one RRULE line"),
        ("FREQ=DAILY;FREQ=WEEKLY", "FREQ given twice"),
    ],
)
def test_unbounded_rules_are_refused_with_the_reason(rule, message):
    problem = validate_recurrence(rrule=rule, cron=None, starts_at=T0)
    assert problem is not None and message in problem, problem


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("* * * * *", "1440 occurrences a day"),
        ("*/30 2 * * *", None),
        ("0,30 * * * *", "48 occurrences a day"),
        ("0 0 31 2 *", "never matches"),
        ("0 2 * * 0", None),
    ],
)
def test_cron_frequency_is_bounded(cron, message):
    problem = validate_recurrence(rrule=None, cron=cron, starts_at=T0)
    if message is None:
        assert problem is None
    else:
        assert problem is not None and message in problem, problem


def test_a_stored_rule_outside_the_bounds_never_matches_and_costs_nothing(steps):
    # Saved before the bounds existed: the engine and GET /maintenance must not walk it.
    w = window(starts_at=datetime(2000, 1, 1, tzinfo=UTC), rrule="FREQ=SECONDLY", duration_s=60)
    assert not w.active_at(T0)
    assert steps[0] == 0
    assert not window(cron="0 0 31 2 *", duration_s=600).active_at(T0)


def test_recurring_window_start_is_bounded_around_now():
    assert horizon_problem(T0 - timedelta(days=30), T0) is None
    assert "at most 366 days in the past" in horizon_problem(datetime(2000, 1, 1, tzinfo=UTC), T0)
    assert "in the future" in horizon_problem(T0 + timedelta(days=6 * 365), T0)
