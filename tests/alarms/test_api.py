"""Alarm API: ingest (all-or-nothing), Alertmanager receiver, operator actions, maintenance windows."""

from sqlalchemy import func, select

from alarms.models import Alarm, AlarmJournal, EventRecord, MaintenanceWindow
from faultloop.audit.models import AuditEntry


def _count(session, model):
    return session.scalar(select(func.count()).select_from(model))


def _event(**kw):
    return {"device": "r1", "event_type": "linkDown", "severity": "major", "managed_object": "interface:Gi0/1", **kw}


def test_event_batch_is_stored_then_processed(client, auth, session, engine, published):
    r = client.post(
        "/api/v1/events",
        json={"events": [_event(), _event(), _event(managed_object="interface:Gi0/2")]},
        headers=auth("noc"),
    )
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 3
    # Acknowledged means committed: the events are in the durable queue before the engine sees them.
    assert session.scalar(select(func.count()).where(EventRecord.processed.is_(False))) == 3
    engine.run_once()
    assert session.scalar(select(func.count()).where(EventRecord.processed.is_(False))) == 0
    counts = dict(session.execute(select(Alarm.managed_object, Alarm.count)).all())
    assert counts == {"interface:Gi0/1": 2, "interface:Gi0/2": 1}
    assert sorted(c.kind for c in published) == ["raised", "raised"]


def test_malformed_event_names_index_and_field_and_stores_nothing(client, auth, session):
    before = _count(session, EventRecord)
    body = {"events": [_event(), _event(), _event(severity="loud")]}
    r = client.post("/api/v1/events", json=body, headers=auth("noc"))
    assert r.status_code == 422
    problem = r.json()
    assert problem["errors"][0]["field"] == "events.2.severity"
    assert "events.2.severity" in problem["detail"]
    assert _count(session, EventRecord) == before

    r = client.post("/api/v1/events", json={"events": [_event(time="2026-01-01T00:00:00")]}, headers=auth("noc"))
    assert r.status_code == 422
    assert "events.0.time" in r.json()["detail"] and "timezone-aware" in r.json()["detail"]
    r = client.post("/api/v1/events", json={"events": [_event(event_type="link down; drop")]}, headers=auth("noc"))
    assert r.status_code == 422 and "events.0.event_type" in r.json()["detail"]
    r = client.post("/api/v1/events", json={"events": []}, headers=auth("noc"))
    assert r.status_code == 422 and "events" in r.json()["detail"]
    assert _count(session, EventRecord) == before


def _am(status, alerts, version="4"):
    return {"version": version, "status": status, "receiver": "faultloop", "groupKey": "{}:{}", "alerts": alerts}


def _alert(status, **labels):
    return {
        "status": status,
        "labels": {"alertname": "HighLatency", "instance": "r1:9100", "severity": "warning", **labels},
        "annotations": {"summary": "latency above 200 ms"},
        "startsAt": "2026-03-01T11:59:00Z",
        "endsAt": "2026-03-01T12:05:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "fingerprint": "abc123",
    }


def test_alertmanager_firing_raises_and_resolved_clears(client, auth, session, engine):
    r = client.post("/api/v1/alertmanager", json=_am("firing", [_alert("firing")]), headers=auth("noc"))
    assert r.status_code == 202, r.text
    engine.run_once()
    (alarm,) = session.scalars(select(Alarm)).all()
    assert (alarm.alarm_type, alarm.device, alarm.severity, alarm.source) == (
        "HighLatency",
        "r1",
        "warning",
        "alertmanager",
    )
    assert alarm.managed_object == "alert:abc123" and alarm.state == "active"
    r = client.post("/api/v1/alertmanager", json=_am("resolved", [_alert("resolved")]), headers=auth("noc"))
    assert r.status_code == 202
    engine.run_once()
    session.refresh(alarm)
    assert alarm.state == "cleared"


def test_alertmanager_unknown_version_is_422_and_stores_nothing(client, auth, session):
    before = _count(session, EventRecord)
    r = client.post("/api/v1/alertmanager", json=_am("firing", [_alert("firing")], version="3"), headers=auth("noc"))
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "version"
    r = client.post(
        "/api/v1/alertmanager", json=_am("firing", [{"status": "firing", "labels": {}}]), headers=auth("noc")
    )
    assert r.status_code == 422 and "alertname" in r.json()["detail"]
    assert _count(session, EventRecord) == before


def test_operator_actions_are_journaled_audited_and_published(client, auth, session, engine, published):
    client.post("/api/v1/events", json={"events": [_event()]}, headers=auth("noc"))
    engine.run_once()
    alarm_id = session.scalar(select(Alarm.id))
    h = auth("noc")
    r = client.post(f"/api/v1/alarms/{alarm_id}/ack", headers=h)
    assert r.status_code == 200 and r.json()["acknowledged"] and r.json()["ack_by"] == "noc-user"
    r = client.post(f"/api/v1/alarms/{alarm_id}/ack", headers=h)
    assert r.status_code == 409 and "already acknowledged by noc-user" in r.json()["detail"]
    assert client.post(f"/api/v1/alarms/{alarm_id}/unack", headers=h).json()["acknowledged"] is False
    r = client.post(f"/api/v1/alarms/{alarm_id}/comments", json={"text": "fibre cut, carrier informed"}, headers=h)
    assert r.status_code == 201
    r = client.put(f"/api/v1/alarms/{alarm_id}/severity", json={"severity": "critical"}, headers=h)
    assert r.json()["severity"] == "critical"
    r = client.put(f"/api/v1/alarms/{alarm_id}/severity", json={"severity": "huge"}, headers=h)
    assert r.status_code == 422 and "severity" in r.json()["detail"]
    r = client.post(f"/api/v1/alarms/{alarm_id}/clear", json={"reason": "repaired"}, headers=h)
    assert r.json()["state"] == "cleared"
    r = client.post(f"/api/v1/alarms/{alarm_id}/clear", json={}, headers=h)
    assert r.status_code == 409
    detail = client.get(f"/api/v1/alarms/{alarm_id}", headers=auth("viewer")).json()
    assert [j["action"] for j in detail["journal"]] == [
        "raised",
        "acknowledged",
        "unacknowledged",
        "comment",
        "severity_changed",
        "cleared",
    ]
    assert detail["journal"][3]["detail"]["text"] == "fibre cut, carrier informed"
    audited = session.scalars(select(AuditEntry.action).where(AuditEntry.object_type == "alarm")).all()
    assert sorted(audited) == sorted(
        ["alarm.acknowledged", "alarm.unacknowledged", "alarm.comment", "alarm.severity_changed", "alarm.cleared"]
    )
    # The engine publishes the operators' changes after their commit and forgets the cleared alarm.
    published.clear()
    engine.run_once()
    assert [(c.kind, c.actor) for c in published][-1] == ("cleared", "noc-user")
    client.post("/api/v1/events", json={"events": [_event()]}, headers=h)
    engine.run_once()
    assert [a.state for a in session.scalars(select(Alarm).order_by(Alarm.id))] == ["cleared", "active"]


def test_alarm_list_filters_and_404(client, auth, session, engine):
    client.post(
        "/api/v1/events",
        json={
            "events": [
                _event(),
                _event(device="r2", event_type="device_unreachable", severity="critical", managed_object=""),
            ]
        },
        headers=auth("noc"),
    )
    engine.run_once()
    h = auth("viewer")
    page = client.get("/api/v1/alarms", headers=h).json()
    assert page["total"] == 2
    page = client.get("/api/v1/alarms", params={"severity": "critical"}, headers=h).json()
    assert [a["device"] for a in page["items"]] == ["r2"]
    assert client.get("/api/v1/alarms", params={"state": "cleared"}, headers=h).json()["total"] == 0
    r = client.get("/api/v1/alarms/999999", headers=h)
    assert r.status_code == 404 and "alarm 999999 not found" in r.json()["detail"]
    assert client.post("/api/v1/alarms/999999/ack", headers=auth("noc")).status_code == 404


def _window(**kw):
    return {
        "name": "pop1 upgrade",
        "starts_at": "2026-03-01T12:00:00Z",
        "ends_at": "2026-03-01T14:00:00Z",
        "sites": ["pop1"],
        **kw,
    }


def test_maintenance_window_crud_and_effect(client, auth, session, engine, frozen):
    h = auth("noc")
    r = client.post("/api/v1/maintenance", json=_window(devices=["r1"]), headers=h)
    assert r.status_code == 201, r.text
    window = r.json()
    assert window["active_now"] is True
    r = client.post(
        "/api/v1/maintenance",
        json=_window(name="weekly", ends_at=None, rrule="FREQ=WEEKLY;BYDAY=SU", duration_s=7200),
        headers=h,
    )
    assert r.status_code == 201
    assert len(client.get("/api/v1/maintenance", headers=auth("viewer")).json()) == 2
    client.post("/api/v1/events", json={"events": [_event()]}, headers=h)
    engine.run_once()
    (alarm,) = session.scalars(select(Alarm)).all()
    assert alarm.muted and "pop1 upgrade" in alarm.suppression_reason
    assert client.delete(f"/api/v1/maintenance/{window['id']}", headers=h).status_code == 204
    engine.run_once()
    session.refresh(alarm)
    assert not alarm.muted and alarm.state == "active"  # the window is gone: the alarm comes alive
    assert client.get(f"/api/v1/maintenance/{window['id']}", headers=h).status_code == 404


def test_bad_maintenance_windows_are_refused_and_nothing_stored(client, auth, session):
    h = auth("noc")
    before = _count(session, MaintenanceWindow)
    cases = [
        (_window(sites=[]), "at least one of devices, sites, tags, interfaces"),
        (_window(ends_at="2026-03-01T11:00:00Z"), "ends_at must be after starts_at"),
        (_window(ends_at=None), "ends_at is required"),
        (_window(rrule="FREQ=SOMETIMES", duration_s=600), "rrule"),
        (_window(cron="every sunday", duration_s=600), "cron"),
        (_window(rrule="FREQ=DAILY"), "duration_s is required"),
        (_window(starts_at="2026-03-01T12:00:00"), "timezone-aware"),
        (_window(interfaces=["Gi0/1"]), "hostname:interface"),
        # Issue 15 item 2: unbounded recurrence (one of these stalled the engine for minutes).
        (_window(ends_at=None, rrule="FREQ=SECONDLY", duration_s=600), "rrule: FREQ=SECONDLY is not allowed"),
        (_window(ends_at=None, rrule="FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", duration_s=600), "rrule: BYMONTH"),
        (_window(ends_at=None, cron="* * * * *", duration_s=600), "cron: the cron expression starts 1440"),
        (
            _window(starts_at="2000-01-01T00:00:00Z", ends_at=None, rrule="FREQ=DAILY", duration_s=600),
            "starts_at: a recurring window may start at most 366 days in the past",
        ),
    ]
    for body, message in cases:
        r = client.post("/api/v1/maintenance", json=body, headers=h)
        assert r.status_code == 422, (body, r.text)
        assert message in r.json()["detail"], (message, r.json()["detail"])
        field = message.split(":")[0]
        if field in ("rrule", "cron", "starts_at"):
            assert r.json()["field"] == field, r.json()
    assert _count(session, MaintenanceWindow) == before
    assert _count(session, AlarmJournal) == 0
