"""A central instance through a PostgreSQL restart (the test's own server): degraded while the
database is down (no leader, /readyz 503, the process stays up), leading again once it is back,
nothing acknowledged lost, no duplicate alarm or ticket."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from alarms.models import Alarm
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
        assert refused.status_code != 202  # nothing is acknowledged that is not stored
        print(f"POST /api/v1/events with the database down: {refused.status_code}")
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
