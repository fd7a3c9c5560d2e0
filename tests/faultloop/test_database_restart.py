"""A central instance through a PostgreSQL restart (the test's own server): degraded while the
database is down (no leader, /readyz 503, the process stays up), leading again once it is back,
nothing acknowledged lost, no duplicate alarm or ticket."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from alarms.models import Alarm, EventRecord
from faultloop import migrate
from faultloop.db import make_engine, make_sessionmaker
from tests.faultloop.own_postgres import OwnPostgres, needs_pg_binaries
from tests.faultloop.test_failover import cluster_env, invariants, post_events, settled, until

pytestmark = [pytest.mark.slow, needs_pg_binaries]


@pytest.fixture
def server():
    pg = OwnPostgres.scratch()
    try:
        pg.init()
        yield pg
    finally:
        try:
            pg.stop()
        except AssertionError:  # already stopped by the test
            pass
        pg.remove()


def test_postgresql_restart_degrades_then_recovers_with_nothing_lost(server, tmp_path):
    engine = make_engine(server.url)
    migrate.upgrade(engine)
    sessions = make_sessionmaker(engine)
    with cluster_env(server.url, sessions, tmp_path) as (start, token):
        a = start("a")
        a.wait_up()
        until(a.leading, "the lone central leads", 30)
        post_events(a, token, [f"r{i}" for i in range(5)])
        until(settled(sessions, 5), "5 alarms, 5 tickets")

        engine.dispose()
        server.stop()
        until(lambda: a.health() == {"status": "ok", "role": "central", "election": "postgresql", "leader": False,
                                     "epoch": None}, "the central reports it lost the lead", 30)  # fmt: skip
        assert httpx.get(f"{a.base}/readyz").status_code == 503  # degraded, and says so
        refused = httpx.post(
            f"{a.base}/api/v1/events", headers={"Authorization": f"Bearer {token}"},
            json={"events": [{"device": "lost", "event_type": "device_unreachable", "severity": "critical"}]},
        )  # fmt: skip
        _refused_for_the_outage(refused, "POST /api/v1/events")  # nothing acknowledged that is not stored
        assert a.proc.poll() is None

        server.start()
        until(a.leading, "the central leads again once the database is back", 60)
        assert httpx.get(f"{a.base}/readyz").status_code == 200
        post_events(a, token, [f"r{i}" for i in range(3, 8)])
        until(settled(sessions, 8), "8 alarms, 8 tickets after the restart")
        with sessions() as session:
            assert session.scalar(select(func.sum(Alarm.count)).where(Alarm.state == "active")) == 10
            assert session.scalar(select(func.count()).where(Alarm.device == "lost")) == 0
        assert invariants(sessions) == (8, 8, 0)
    engine.dispose()


def _refused_for_the_outage(response: httpx.Response, what: str) -> None:
    """503 problem+json with Retry-After: the client may retry, nothing was stored."""
    assert response.status_code == 503, f"{what}: {response.status_code} {response.text}"
    assert int(response.headers["Retry-After"]) >= 1, what
    assert response.headers["content-type"].startswith("application/problem+json"), what
    body = response.json()
    assert body["status"] == 503 and body["title"] == "Database unavailable", body
    assert "retry" in body["detail"], body
    assert "127.0.0.1" not in response.text and "postgres" not in response.text.lower()  # no driver text


def test_event_intake_answers_503_with_retry_after_while_postgresql_is_down(server, tmp_path):
    """POST /api/v1/events and the Alertmanager webhook during a PostgreSQL outage: 503 with
    Retry-After and a problem+json body (never a 500); once the server is back the same post is
    accepted and its event stored once."""
    engine = make_engine(server.url)
    migrate.upgrade(engine)
    sessions = make_sessionmaker(engine)
    event = {"events": [{"device": "outage-1", "event_type": "device_unreachable", "severity": "critical"}]}
    alert = {
        "version": "4", "status": "firing", "receiver": "faultloop", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://am", "groupKey": "{}:{}",
        "alerts": [{"status": "firing", "labels": {"alertname": "Down", "instance": "outage-2"},
                    "annotations": {}, "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "f1"}],
    }  # fmt: skip
    with cluster_env(server.url, sessions, tmp_path) as (start, token):
        headers = {"Authorization": f"Bearer {token}"}
        a = start("a")
        a.wait_up()
        until(a.leading, "the central leads", 30)

        engine.dispose()
        server.stop()
        refused = httpx.post(f"{a.base}/api/v1/events", headers=headers, json=event, timeout=30)
        _refused_for_the_outage(refused, "POST /api/v1/events")
        refused = httpx.post(f"{a.base}/api/v1/alertmanager", headers=headers, json=alert, timeout=30)
        _refused_for_the_outage(refused, "POST /api/v1/alertmanager")
        refused = httpx.get(f"{a.base}/api/v1/alarms", headers=headers, timeout=30)
        _refused_for_the_outage(refused, "GET /api/v1/alarms")
        assert a.proc.poll() is None

        server.start()
        answers: list[int] = []

        def accepted() -> bool:
            r = httpx.post(f"{a.base}/api/v1/events", headers=headers, json=event, timeout=30)
            answers.append(r.status_code)
            if r.status_code != 202:  # the first request on a connection the restart broke: retry
                _refused_for_the_outage(r, "POST /api/v1/events just after the restart")
            return r.status_code == 202

        until(accepted, "the event is accepted once the database is back", 60)
        assert answers[-1] == 202
        with sessions() as session:
            stored = session.scalars(select(EventRecord.device).where(EventRecord.device == "outage-1")).all()
        assert stored == ["outage-1"]  # stored once: the refused post left nothing behind
    engine.dispose()
