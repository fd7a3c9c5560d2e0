"""A database outage while events flow: the engine keeps every event it accepted, backing off,
and writes them once the database is back (before: a batch was dropped after three quick tries,
so a lock held longer than about 15 s lost events)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, select

from alarms.bus import AlarmBus
from alarms.models import Alarm, EventRecord
from alarms.runner import AlarmEngine
from faultloop.events import Event
from faultloop.metrics import REGISTRY
from tests.collectors.cli_lab import file_runtime  # noqa: F401 - a runtime on its own SQLite file

pytestmark = pytest.mark.slow
LOCK_S = 30


def _count(rt, what) -> int:
    with rt.sessions() as session:
        return session.scalar(select(func.count()).select_from(what)) or 0


def test_a_30s_sqlite_lock_loses_no_event_that_was_accepted(file_runtime):  # noqa: F811
    rt = file_runtime
    rt.settings.alarm_tick_s = 0.2
    # The database refuses at once, as a PostgreSQL server that is down does (SQLite would otherwise
    # wait 5 s per try for the lock): every try in the 30 s fails quickly.
    rt.engine.dispose()
    event.listen(rt.engine, "connect", lambda conn, _record: conn.execute("PRAGMA busy_timeout=50"))
    engine = AlarmEngine(rt, AlarmBus())
    dropped_before = sum(
        REGISTRY.get_sample_value("faultloop_alarm_observations_dropped_total", {"reason": r}) or 0
        for r in ("database_error", "queue_full", "shutdown")
    )
    accepted: list[Event] = []
    stop_sending = threading.Event()

    def send() -> None:  # a trap receiver handing over what it decoded, 20 events a second
        n = 0
        while not stop_sending.is_set():
            n += 1
            event = Event("trap", f"r{n % 5}", "linkDown", "major", datetime.now(UTC),
                          managed_object=f"interface:Gi0/{n % 7}")  # fmt: skip
            if engine.submit_events([event]):
                accepted.append(event)
            stop_sending.wait(0.05)

    async def scenario() -> None:
        await engine.start()
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        other = sqlite3.connect(str(rt.engine.url.database), isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock for LOCK_S
            await asyncio.sleep(LOCK_S)
            locked_through = _count(rt, EventRecord)
            other.execute("ROLLBACK")
        finally:
            other.close()
        stop_sending.set()
        sender.join()
        deadline = time.monotonic() + 60
        while _count(rt, EventRecord) < len(accepted) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await engine.stop()
        assert locked_through < len(accepted)  # the lock really held events back

    asyncio.run(scenario())
    assert len(accepted) > 400
    assert _count(rt, EventRecord) == len(accepted)  # every accepted event stored, once
    with rt.sessions() as session:
        counts = session.execute(select(Alarm.device, Alarm.managed_object, Alarm.count)).all()
    assert len(counts) == 35  # one alarm per key: 5 devices x 7 interfaces
    assert sum(c for _d, _m, c in counts) == len(accepted)
    dropped_after = sum(
        REGISTRY.get_sample_value("faultloop_alarm_observations_dropped_total", {"reason": r}) or 0
        for r in ("database_error", "queue_full", "shutdown")
    )
    assert dropped_after == dropped_before
