"""Maintenance windows as pure logic: one-off, RRULE, cron; scope by device, site, tag, interface."""

from datetime import UTC, datetime, timedelta

from alarms.maintenance import Window, covering, validate_recurrence

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
