"""The engine through its sink interface, on SQLite and PostgreSQL: dedup, clear, escalation,
thresholds, publication after commit, restart safety."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from alarms.bus import AlarmBus
from alarms.models import Alarm, AlarmJournal, EventRecord
from alarms.runner import AlarmEngine
from faultloop import clock
from faultloop.events import Event, Sample


def ev(event_type, device="r1", mo="", severity="major", **kw):
    return Event(
        source="trap",
        device=device,
        event_type=event_type,
        severity=severity,
        time=clock.now(),
        managed_object=mo,
        **kw,
    )


def alarms(session, **where):
    q = select(Alarm).order_by(Alarm.id)
    for k, v in where.items():
        q = q.where(getattr(Alarm, k) == v)
    return list(session.scalars(q))


def test_dedup_counts_and_keeps_first_and_last(engine, session, frozen, published):
    assert engine.submit_events([ev("linkDown", mo="interface:Gi0/1")])
    engine.run_once()
    frozen.advance(30)
    assert engine.submit_events([ev("linkDown", mo="interface:Gi0/1"), ev("linkDown", mo="interface:Gi0/1")])
    engine.run_once()
    (alarm,) = alarms(session)
    assert alarm.reduction_key == "link_down:r1:interface:Gi0/1"
    assert alarm.count == 3 and alarm.state == "active" and alarm.severity == "major"
    assert alarm.last_occurrence - alarm.first_occurrence == timedelta(seconds=30)
    assert [c.kind for c in published] == ["raised"]
    stored = session.scalars(select(EventRecord.action).order_by(EventRecord.id)).all()
    assert stored == ["raise", "dedup", "dedup"]


def test_clear_event_closes_the_matching_alarm_only(engine, session, published):
    engine.submit_events([ev("linkDown", mo="interface:Gi0/1"), ev("linkDown", mo="interface:Gi0/2")])
    engine.run_once()
    engine.submit_events([ev("linkUp", mo="interface:Gi0/1", severity="cleared")])
    engine.run_once()
    states = {a.managed_object: a.state for a in alarms(session)}
    assert states == {"interface:Gi0/1": "cleared", "interface:Gi0/2": "active"}
    assert published[-1].kind == "cleared" and published[-1].managed_object == "interface:Gi0/1"
    # A clear with nothing to clear is stored and ignored.
    engine.submit_events([ev("linkUp", mo="interface:Gi0/9", severity="cleared")])
    engine.run_once()
    assert session.scalar(select(EventRecord.action).order_by(EventRecord.id.desc()).limit(1)) == "ignored"
    # The same key raises a new alarm after its clear; the old row stays as history.
    engine.submit_events([ev("linkDown", mo="interface:Gi0/1")])
    engine.run_once()
    rows = alarms(session, managed_object="interface:Gi0/1")
    assert [r.state for r in rows] == ["cleared", "active"]


def test_escalation_by_count_and_by_duration(engine, session, frozen):
    engine.submit_events([ev("authenticationFailure", severity="minor") for _ in range(99)])
    engine.run_once()
    (auth,) = alarms(session, alarm_type="snmp_auth_failure")
    assert (auth.severity, auth.count) == ("minor", 99)
    engine.submit_events([ev("authenticationFailure", severity="minor")])
    engine.run_once()
    session.refresh(auth)
    assert (auth.severity, auth.original_severity, auth.count) == ("major", "minor", 100)

    engine.submit_events([ev("linkDown", mo="interface:Gi0/1")])
    engine.run_once()
    frozen.advance(3599)
    engine.run_once()
    (link,) = alarms(session, alarm_type="link_down")
    assert link.severity == "major"
    frozen.advance(2)
    engine.run_once()
    session.refresh(link)
    assert link.severity == "critical"
    actions = session.scalars(select(AlarmJournal.detail).where(AlarmJournal.action == "escalated")).all()
    assert {d["by"] for d in actions} == {"count", "duration"}


def test_threshold_rule_with_for_and_hysteresis(runtime, session, frozen, tmp_path, published):
    rules = tmp_path / "cpu.yaml"
    rules.write_text(
        "thresholds:\n"
        "  - {name: cpu_high, metric: cpu_percent, labels: {cpu: '0'}, op: '>', value: 90, for_s: 60,"
        " clear_value: 70, severity: major}\n"
    )
    runtime.settings.alarm_rules_file = rules
    eng = AlarmEngine(runtime, AlarmBus())
    eng.load()

    def sample(value):
        eng.submit_samples(
            [Sample(device="r1", metric="cpu_percent", value=value, time=clock.now(), labels={"cpu": "0"})]
        )
        eng.run_once()
        frozen.advance(30)

    sample(95)
    sample(96)
    assert alarms(session) == []  # above for 30 s only
    sample(97)
    (a,) = alarms(session)
    assert (a.alarm_type, a.severity, a.managed_object) == ("threshold:cpu_high", "major", "cpu=0")
    sample(80)  # below the threshold but above the clear value: hysteresis keeps it
    assert alarms(session, state="active")
    sample(65)
    assert alarms(session, state="active") == []
    sample(50)
    sample(95)  # pending again, not firing: `for` restarts
    assert len(alarms(session)) == 1


def test_changes_are_published_only_after_commit(runtime, frozen):
    seen = []

    def subscriber(changes):
        # Runs after the commit: the alarm is visible from a fresh session.
        with runtime.sessions() as s:
            seen.append(s.scalar(select(func.count()).select_from(Alarm).where(Alarm.id == changes[0].alarm_id)))

    bus = AlarmBus()
    bus.subscribe("check", subscriber)
    bus.subscribe("broken", lambda changes: 1 / 0)  # a failing subscriber stops nobody
    eng = AlarmEngine(runtime, bus)
    eng.submit_events([ev("linkDown", mo="interface:Gi0/1")])
    eng.run_once()
    assert seen == [1]


def test_restart_rebuilds_the_index_from_the_database(runtime, session, frozen):
    first = AlarmEngine(runtime, AlarmBus())
    first.submit_events(
        [ev("linkDown", mo="interface:Gi0/1"), ev("device_unreachable", device="r2", severity="critical")]
    )
    first.run_once()
    second = AlarmEngine(runtime, AlarmBus())  # a new process: empty memory
    second.submit_events([ev("linkDown", mo="interface:Gi0/1")])
    second.run_once()
    (link,) = alarms(session, alarm_type="link_down")
    assert link.count == 2
    assert len(second.core.active) == 2


def test_one_active_alarm_per_reduction_key_is_enforced_by_the_database(session, frozen):
    now = clock.now()
    row = dict(
        reduction_key="k",
        clear_key="k",
        alarm_type="t",
        source="api",
        first_occurrence=now,
        last_occurrence=now,
        original_severity="major",
        severity="major",
    )
    session.add(Alarm(state="active", **row))
    session.add(Alarm(state="cleared", **row))
    session.add(Alarm(state="cleared", **row))
    session.flush()
    nested = session.begin_nested()
    with pytest.raises(IntegrityError):
        session.add(Alarm(state="active", **row))
        session.flush()
    nested.rollback()
    assert session.scalar(text("SELECT count(*) FROM alarms WHERE reduction_key = 'k'")) == 3


def test_full_queue_refuses_and_counts(runtime, frozen):
    runtime.settings.alarm_queue_size = 100
    eng = AlarmEngine(runtime, AlarmBus())
    assert eng.submit_events([ev("linkDown", mo=f"interface:{i}") for i in range(100)])
    assert not eng.submit_events([ev("linkDown", mo="interface:x")])
    from faultloop.metrics import REGISTRY

    assert REGISTRY.get_sample_value("faultloop_alarm_observations_dropped_total", {"reason": "queue_full"}) >= 1
    eng.run_once()
    assert eng.submit_events([ev("linkDown", mo="interface:x")])


def test_active_alarms_metric_by_severity(engine, frozen):
    from alarms.runner import ACTIVE
    from faultloop.metrics import REGISTRY

    engine.submit_events([ev("linkDown", mo="interface:Gi0/1"), ev("device_unreachable", severity="critical")])
    engine.run_once()
    ACTIVE.core = engine.core
    assert REGISTRY.get_sample_value("faultloop_alarms_active", {"severity": "critical"}) == 1
    assert REGISTRY.get_sample_value("faultloop_alarms_active", {"severity": "major"}) == 1


def test_event_retention_purges_old_processed_events_only(engine, session, frozen):
    from alarms import service
    from alarms.schemas import EventIn

    engine.submit_events([ev("linkDown", mo="interface:Gi0/1")])
    engine.run_once()
    frozen.advance(31 * 86400)
    service.store_events(session, [EventIn(device="r1", event_type="linkDown", severity="major")], now=clock.now())
    engine.submit_events([ev("linkDown", mo="interface:Gi0/2")])
    engine.run_once()
    service.store_events(session, [EventIn(device="r9", event_type="x", severity="major")], now=clock.now())
    cutoff = service.retention_cutoff(clock.now(), 30)
    assert service.purge_events(session, older_than=cutoff) == 1
    left = session.execute(select(EventRecord.device, EventRecord.processed).order_by(EventRecord.id)).all()
    assert [tuple(r) for r in left] == [("r1", True), ("r1", True), ("r9", False)]
    (alarm,) = alarms(session, managed_object="interface:Gi0/1")  # the alarm outlives its events
    assert alarm.count == 1


def test_a_refused_batch_is_retried_with_back_off_until_the_database_takes_it(engine, session, frozen, monkeypatch):
    from sqlalchemy.exc import OperationalError


    real = engine.core.process
    failures = {"left": 1}

    def flaky(*args, **kwargs):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return real(*args, **kwargs)

    monkeypatch.setattr(engine.core, "process", flaky)
    engine.submit_events([ev("linkDown", mo="interface:Gi0/1"), ev("linkDown", mo="interface:Gi0/1")])
    engine.run_once()  # rolled back, indexes rebuilt, batch put back
    assert alarms(session) == []
    engine.run_once()  # inside the back-off (0.5 s): not tried yet
    assert alarms(session) == []
    frozen.advance(0.5)
    engine.run_once()
    (alarm,) = alarms(session)
    assert alarm.count == 2  # nothing lost, nothing doubled

    # a long outage: the batch waits, backing off, for as long as it lasts, and is never dropped
    failures["left"] = 10
    engine.submit_events([ev("linkDown", mo="interface:Gi0/2")])
    tries = 0
    while failures["left"] > 0:
        before = failures["left"]
        engine.run_once()
        tries += before - failures["left"]
        assert engine._queued == 1  # still waiting, never dropped
        engine.run_once()  # inside the back-off: no new attempt
        assert failures["left"] == before - 1 or failures["left"] == 0
        frozen.advance(15)
    assert tries == 10
    engine.run_once()
    assert engine._queued == 0
    assert [a.managed_object for a in alarms(session)] == ["interface:Gi0/1", "interface:Gi0/2"]
