"""kill -9 in the middle of processing, then a restart: nothing acknowledged is lost, no duplicate
active alarm per reduction key. Runs on the test database of each backend (real commits, cleaned up)."""

import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import delete, func, select

from alarms.bus import AlarmBus
from alarms.models import Alarm, AlarmJournal, EventRecord
from alarms.runner import AlarmEngine
from alarms.schemas import EventIn
from alarms.service import store_events
from faultloop import clock
from faultloop.db import make_sessionmaker, transaction
from faultloop.runtime import Runtime

CHILD = textwrap.dedent(
    """
    import sys
    from alarms.bus import AlarmBus
    from alarms.runner import AlarmEngine
    from faultloop.cmd.app import build_runtime
    from faultloop.settings import Settings

    rt = build_runtime(Settings(database_url=sys.argv[1], data_dir=sys.argv[2], alarm_batch_size=25,
                                alarm_tick_s=0.05))  # a round drains batches for up to one tick
    engine = AlarmEngine(rt, AlarmBus())
    engine.load()
    while True:
        engine.run_once()
        print("progress", flush=True)
    """
)

KEYS = 20
EVENTS = 3000


@pytest.fixture
def committed(db_engine):
    """Real commits on the run's test database, removed afterwards."""
    yield make_sessionmaker(db_engine)
    with db_engine.begin() as conn:
        for table in (AlarmJournal, EventRecord, Alarm):
            conn.execute(delete(table))


def test_kill_9_mid_batch_then_restart(db_engine, committed, settings, vault, tmp_path):
    with transaction(committed) as session:  # acknowledged to the sender: committed
        events = [
            EventIn(device=f"r{i % KEYS}", event_type="device_unreachable", severity="critical") for i in range(EVENTS)
        ]
        store_events(session, events, now=clock.now())
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    url = db_engine.url.render_as_string(hide_password=False)
    child = subprocess.Popen(
        [sys.executable, str(script), url, str(tmp_path / "var")], stdout=subprocess.PIPE, text=True, cwd="."
    )
    try:
        for _ in range(3):
            assert child.stdout.readline().strip() == "progress"
    finally:
        child.kill()  # SIGKILL, mid-batch: the worker never stops between rounds
        child.wait()
    with committed() as session:
        pending_after_kill = session.scalar(select(func.count()).where(EventRecord.processed.is_(False)))
    assert 0 < pending_after_kill < EVENTS

    settings.database_url = url
    rt = Runtime(settings=settings, engine=db_engine, sessions=committed, vault=vault)
    engine = AlarmEngine(rt, AlarmBus())
    engine.load()
    for _ in range(EVENTS // settings.alarm_batch_size + 2):
        engine.run_once()
    with committed() as session:
        assert session.scalar(select(func.count()).where(EventRecord.processed.is_(False))) == 0
        assert session.scalar(select(func.count()).select_from(EventRecord)) == EVENTS
        rows = session.execute(
            select(Alarm.reduction_key, func.count(), func.sum(Alarm.count))
            .where(Alarm.state == "active")
            .group_by(Alarm.reduction_key)
        ).all()
        assert len(rows) == KEYS
        assert all(n == 1 for _key, n, _total in rows)  # one active alarm per key
        assert sum(int(total) for _key, _n, total in rows) == EVENTS  # every acknowledged event counted once
