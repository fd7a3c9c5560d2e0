"""Hypothesis properties of the engine on a real (in-memory SQLite) database."""

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alarms.engine import AlarmCore, EngineConfig
from alarms.models import Alarm, EventRecord
from alarms.rules import load_ruleset
from faultloop.cmd.models import all_metadata
from faultloop.db import make_engine
from faultloop.events import Event

all_metadata()
ENGINE = make_engine("sqlite:///:memory:")
CONN = ENGINE.connect()
all_metadata().create_all(CONN)
CONN.commit()
RULES = load_ruleset()
START = datetime(2026, 1, 1, tzinfo=UTC)

steps = st.lists(
    st.tuples(
        st.integers(0, 3),  # which interface
        st.booleans(),  # raise (True) or clear
        st.integers(1, 5),  # how many events in this step
        st.integers(0, 400),  # seconds since the previous step
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, st.integers(1, 6), st.sampled_from([60.0, 600.0]))
def test_dedup_count_equals_raising_events_and_every_active_alarm_has_its_raise(plan, flap_threshold, window):
    tx = CONN.begin()
    try:
        session = Session(bind=CONN, join_transaction_mode="create_savepoint")
        core = AlarmCore(RULES, EngineConfig(flap_threshold=flap_threshold, flap_window_s=window))
        now = START
        core.load(session, now)
        raises: dict[str, int] = {}
        submitted = 0
        for iface, is_raise, n, gap in plan:
            now += timedelta(seconds=gap)
            mo = f"interface:Gi0/{iface}"
            key = f"link_down:r1:{mo}"
            batch = [
                Event("trap", "r1", "linkDown" if is_raise else "linkUp", "major" if is_raise else "cleared", now, mo)
                for _ in range(n)
            ]
            core.process(session, batch, now)
            core.tick(session, now)
            submitted += n
            if is_raise:
                raises[key] = raises.get(key, 0) + n
        session.flush()
        rows = session.execute(select(Alarm.reduction_key, func.sum(Alarm.count)).group_by(Alarm.reduction_key)).all()
        totals = {k: int(v) for k, v in rows}
        assert totals == raises
        assert session.scalar(select(func.count()).select_from(EventRecord)) == submitted
        active = session.scalars(select(Alarm).where(Alarm.state == "active")).all()
        assert len({a.reduction_key for a in active}) == len(active)
        for alarm in active:
            raising = session.scalar(
                select(func.count()).where(EventRecord.alarm_id == alarm.id, EventRecord.action == "raise")
            )
            assert raising == 1
        # The in-memory index and the database agree.
        assert {k: a.id for k, a in core.active.items()} == {a.reduction_key: a.id for a in active}
        session.close()
    finally:
        tx.rollback()
