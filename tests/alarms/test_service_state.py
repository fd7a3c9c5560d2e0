"""A customer service's operational state (up / degraded / down) derived by the real engine from the
active alarms' impact, its history rows (service, state, from, to), the restart, an operator's clear
and severity change, and the service API showing it; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from alarms import queries
from alarms import service as alarm_service
from alarms.bus import AlarmBus
from alarms.models import Alarm, ServiceStatePeriod
from alarms.runner import AlarmEngine
from faultloop import clock

from .test_impact import alarm_of, build_network, ev, source


@pytest.fixture
def net(runtime, session, frozen):
    made = build_network(session)
    engine = AlarmEngine(runtime, AlarmBus(), services=source)
    engine.load()
    return engine, made


def history(session, service_id):
    """[(state, from offset s, to offset s or None, alarm id)] oldest first, offsets from ``T0``."""
    session.expire_all()
    rows = session.scalars(
        select(ServiceStatePeriod).where(ServiceStatePeriod.service_id == service_id).order_by(ServiceStatePeriod.id)
    )
    return [(r.state, r.started_at, r.ended_at, r.alarm_id) for r in rows]


def test_states_follow_the_alarms_and_every_change_is_a_history_row(net, session, frozen):
    engine, s = net
    t0 = clock.now()
    # a minor alarm on the service's port: degraded
    engine.submit_events([ev("crc_errors", "acc1", "interface:Gi0/5", severity="minor")])
    engine.run_once()
    crc = alarm_of(session, "acc1", "crc_errors")
    assert queries.current_states(session)[s["s1"]].state == "degraded"
    # the port goes down (major): down, the degraded period ends at that moment
    frozen.advance(300)
    engine.submit_events([ev("linkDown", "acc1", "interface:Gi0/5")])
    engine.run_once()
    link = alarm_of(session, "acc1", "link_down")
    # back up: degraded again while the CRC alarm lasts; then up
    frozen.advance(600)
    engine.submit_events([ev("linkUp", "acc1", "interface:Gi0/5", severity="cleared")])
    engine.run_once()
    assert queries.current_states(session, [s["s1"]])[s["s1"]].state == "degraded"
    frozen.advance(300)
    engine.submit_events([ev("crc_errors", "acc1", "interface:Gi0/5", severity="cleared")])
    engine.run_once()
    at = lambda seconds: t0 + timedelta(seconds=seconds)  # noqa: E731
    assert history(session, s["s1"]) == [
        ("degraded", at(0), at(300), crc.id),
        ("down", at(300), at(900), link.id),
        ("degraded", at(900), at(1200), crc.id),
    ]
    assert queries.current_states(session) == {}
    # the other services never left up
    assert all(history(session, s[name]) == [] for name in ("s2", "s3", "s4"))


def test_a_failed_device_takes_down_what_hangs_behind_it_not_the_dual_homed_device(net, session, frozen):
    engine, s = net
    engine.submit_events([ev("device_unreachable", "agg", severity="critical")])
    engine.run_once()
    agg = alarm_of(session, "agg", "device_down")
    states = queries.current_states(session)
    assert {sid: (p.state, p.alarm_id) for sid, p in states.items()} == {
        s["s3"]: ("down", agg.id), s["s1"]: ("down", agg.id), s["s4"]: ("down", agg.id),
    }  # fmt: skip
    assert s["s2"] not in states  # acc2 is still reached over its link to core
    frozen.advance(120)
    engine.submit_events([ev("device_reachable", "agg", severity="cleared")])
    engine.run_once()
    assert queries.current_states(session) == {}
    periods = queries.state_history(session, service_ids=[s["s1"], s["s3"], s["s4"]])
    assert len(periods) == 3 and {(p.ended_at - p.started_at).total_seconds() for p in periods} == {120.0}


def test_restart_keeps_the_open_period_and_a_later_clear_closes_it(net, session, runtime, frozen):
    engine, s = net
    t0 = clock.now()
    engine.submit_events([ev("linkDown", "acc2", "interface:Gi0/5")])
    engine.run_once()
    again = AlarmEngine(runtime, AlarmBus(), services=source)
    again.load()
    again.run_once()
    assert [h[:3] for h in history(session, s["s2"])] == [("down", t0, None)]  # no second row
    frozen.advance(60)
    again.submit_events([ev("linkUp", "acc2", "interface:Gi0/5", severity="cleared")])
    again.run_once()
    assert [h[:3] for h in history(session, s["s2"])] == [("down", t0, t0 + timedelta(seconds=60))]


def test_operator_severity_change_and_clear_move_the_state(net, session, frozen):
    engine, s = net
    t0 = clock.now()
    engine.submit_events([ev("crc_errors", "acc1", "interface:Gi0/5", severity="warning")])
    engine.run_once()
    alarm = alarm_of(session, "acc1", "crc_errors")
    frozen.advance(60)
    alarm_service.set_severity(session, alarm.id, actor="op", severity="critical")
    session.commit()
    engine.run_once()
    assert queries.current_states(session)[s["s1"]].state == "down"
    frozen.advance(60)
    alarm_service.clear(session, alarm.id, actor="op", reason="fixed")
    session.commit()
    engine.run_once()
    assert [h[:3] for h in history(session, s["s1"])] == [
        ("degraded", t0, t0 + timedelta(seconds=60)),
        ("down", t0 + timedelta(seconds=60), t0 + timedelta(seconds=120)),
    ]


def test_one_open_period_per_service_is_enforced_by_the_database(net, session):
    _engine, s = net
    now = clock.now()
    session.add(ServiceStatePeriod(service_id=s["s1"], customer="acme", state="down", started_at=now))
    session.flush()
    session.add(ServiceStatePeriod(service_id=s["s1"], customer="acme", state="degraded", started_at=now))
    with pytest.raises(Exception, match="(?i)unique"):
        session.flush()
    session.rollback()


def test_service_api_shows_the_state_its_history_and_filters_by_it(net, session, client, auth, frozen):
    engine, s = net
    t0 = clock.now()
    engine.submit_events([ev("linkDown", "acc1", "interface:Gi0/5")])
    engine.run_once()
    link = alarm_of(session, "acc1", "link_down")
    h = auth("servicedesk")
    listed = {x["id"]: x for x in client.get("/api/v1/services", headers=h).json()}
    assert (listed[s["s1"]]["oper_state"], listed[s["s1"]]["oper_state_alarm_id"]) == ("down", link.id)
    assert listed[s["s2"]]["oper_state"] == "up" and listed[s["s2"]]["oper_state_since"] is None
    down = client.get("/api/v1/services", params={"oper_state": "down"}, headers=h).json()
    assert [x["id"] for x in down] == [s["s1"]]
    frozen.advance(90)
    engine.submit_events([ev("linkUp", "acc1", "interface:Gi0/5", severity="cleared")])
    engine.run_once()
    detail = client.get(f"/api/v1/services/{s['s1']}", headers=auth("viewer")).json()
    assert detail["oper_state"] == "up"
    assert detail["state_history"] == [{
        "state": "down", "from": t0.isoformat().replace("+00:00", "Z"),
        "to": (t0 + timedelta(seconds=90)).isoformat().replace("+00:00", "Z"), "alarm_id": link.id,
    }]  # fmt: skip
    bad = client.get("/api/v1/services", params={"oper_state": "sideways"}, headers=h)
    assert bad.status_code == 422 and "oper_state" in bad.text


def test_a_cleared_alarm_counts_for_nothing(net, session):
    engine, s = net
    engine.submit_events([ev("linkDown", "acc1", "interface:Gi0/5")])
    engine.run_once()
    session.expire_all()
    link = alarm_of(session, "acc1", "link_down")
    assert session.get(Alarm, link.id).services_affected == 1
    engine.submit_events([ev("linkUp", "acc1", "interface:Gi0/5", severity="cleared")])
    engine.run_once()
    assert s["s1"] not in queries.current_states(session)


def test_impaired_services_metric(net, frozen):
    from alarms.runner import ACTIVE
    from faultloop.metrics import REGISTRY

    engine, _s = net
    engine.submit_events([ev("device_unreachable", "agg", severity="critical"),
                          ev("crc_errors", "acc2", "interface:Gi0/5", severity="minor")])  # fmt: skip
    engine.run_once()
    ACTIVE.core = engine.core
    assert REGISTRY.get_sample_value("faultloop_services_impaired", {"state": "down"}) == 3
    assert REGISTRY.get_sample_value("faultloop_services_impaired", {"state": "degraded"}) == 1
