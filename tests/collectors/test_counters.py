"""Counter math properties: wrap, reboot, discontinuity, width change, clamping to link speed."""

from hypothesis import given
from hypothesis import strategies as st

from collectors.counters import MOD32, MOD64, Outcome, Reading, rate, uptime_went_back

counter32 = st.integers(0, MOD32 - 1)
counter64 = st.integers(0, MOD64 - 1)
elapsed = st.floats(1.0, 3600.0)
uptime = st.integers(0, 2**31)


@given(start=counter32, delta=st.integers(0, MOD32 - 1), dt=elapsed, up=uptime)
def test_32bit_wrap_gives_the_true_rate(start, delta, dt, up):
    prev = Reading(start, 32, 1000.0, up)
    cur = Reading((start + delta) % MOD32, 32, 1000.0 + dt, up + int(dt * 100))
    r = rate(prev, cur)
    assert r.valid
    assert r.per_second is not None and abs(r.per_second - delta / dt) <= 1e-6 * max(1.0, delta / dt)
    assert r.outcome == (Outcome.wrapped if start + delta >= MOD32 else Outcome.ok)


@given(start=counter64, delta=st.integers(0, 10**15), dt=elapsed)
def test_64bit_increase_is_exact_and_decrease_is_a_reset(start, delta, dt):
    cur_value = start + delta
    if cur_value < MOD64:
        r = rate(Reading(start, 64, 0.0), Reading(cur_value, 64, dt))
        assert r.outcome is Outcome.ok and r.per_second == delta / dt
    if delta > 0 and start >= delta:
        r = rate(Reading(start, 64, 0.0), Reading(start - delta, 64, dt))
        assert r.outcome is Outcome.reset and r.per_second is None


@given(a=counter32, b=counter32, dt=elapsed, up_prev=uptime, back=st.integers(1, 2**20))
def test_reboot_never_yields_a_rate(a, b, dt, up_prev, back):
    prev = Reading(a, 32, 0.0, up_prev + back)
    cur = Reading(b, 32, dt, up_prev)
    r = rate(prev, cur)
    assert r.outcome is Outcome.reboot and r.per_second is None
    assert uptime_went_back(up_prev + back, up_prev)


@given(a=counter64, b=counter64, dt=elapsed, d1=uptime, d2=uptime)
def test_discontinuity_never_yields_a_rate(a, b, dt, d1, d2):
    r = rate(Reading(a, 64, 0.0, 10, d1), Reading(b, 64, dt, 20, d2))
    if d1 != d2:
        assert r.outcome is Outcome.discontinuity and r.per_second is None
    else:
        assert r.outcome in (Outcome.ok, Outcome.reset)


@given(a=counter32, b=counter32, dt=elapsed, speed=st.floats(1e3, 1e11))
def test_rates_never_exceed_the_link_and_are_never_negative(a, b, dt, speed):
    cap = speed / 8
    r = rate(Reading(a, 32, 0.0), Reading(b, 32, dt), max_per_second=cap)
    if r.valid:
        assert r.per_second is not None and 0 <= r.per_second <= cap * 1.01
    else:
        assert r.outcome is Outcome.above_speed and r.per_second is None


def test_a_32bit_reset_seen_as_a_huge_wrap_is_dropped_as_above_speed():
    # 1 Gb/s link, 60 s: a drop from 4e9 to 10 would be a wrap of ~296 MB -> 39 Mb/s: plausible, kept;
    # on a 10 Mb/s link the same wrap is impossible -> the sample is dropped.
    prev, cur = Reading(4_000_000_000, 32, 0.0), Reading(10, 32, 60.0)
    assert rate(prev, cur, max_per_second=1e9 / 8).outcome is Outcome.wrapped
    assert rate(prev, cur, max_per_second=10e6 / 8).outcome is Outcome.above_speed


def test_first_reading_width_change_and_no_time():
    cur = Reading(5, 64, 10.0)
    assert rate(None, cur).outcome is Outcome.first
    assert rate(Reading(1, 32, 0.0), cur).outcome is Outcome.width_changed
    assert rate(Reading(1, 64, 10.0), cur).outcome is Outcome.no_time
