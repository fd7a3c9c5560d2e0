"""Leader election and fencing on a real PostgreSQL: one leader at a time, a paused leader loses
the lease, and a stale leader's write transaction aborts with nothing written."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from alarms import service as alarm_service
from alarms.bus import AlarmBus
from alarms.models import Alarm, EventRecord
from alarms.notify import Notifier, parse_config
from alarms.runner import AlarmEngine
from faultloop import clock
from faultloop.db import make_engine, make_sessionmaker, transaction
from faultloop.events import Event
from faultloop.leader import LocalLeadership, NotLeader, PgLeadership, fenced_transaction
from faultloop.runtime import Runtime
from faultloop.settings import Settings
from faultloop.vault import Vault
from provisioning import service as orders
from provisioning.jobs import ProvisioningService
from tests.alarms.test_notify import Hook, config, ev
from tests.collectors import cli_lab
from tests.pgdb import needs_postgresql, scratch_database
from tests.provisioning.lab import add_device, lab_device

pytestmark = needs_postgresql

LEASE_S = 2.0


@pytest.fixture(scope="module")
def url():
    with scratch_database() as u:
        yield u


@pytest.fixture
def engine(url):
    e = make_engine(url)
    with e.begin() as conn:  # each test starts with no epoch and no alarm
        conn.execute(text("DELETE FROM leader_epochs"))
        conn.execute(text("DELETE FROM alarm_notifications"))
        conn.execute(text("DELETE FROM alarm_events"))
        conn.execute(text("DELETE FROM alarms"))
        conn.execute(text("CREATE TABLE IF NOT EXISTS ha_probe (written_by text)"))
        conn.execute(text("DELETE FROM ha_probe"))
    yield e
    e.dispose()


@pytest.fixture
def pair(engine):
    a = PgLeadership(engine, lease_s=LEASE_S, holder="a")
    b = PgLeadership(engine, lease_s=LEASE_S, holder="b")
    yield a, b
    for leader in (a, b):
        leader.release()


def until(condition, what, deadline_s=15.0):
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {deadline_s} s: {what}"
        time.sleep(0.1)


def epoch_row(engine):
    with engine.connect() as conn:
        return conn.execute(text("SELECT epoch, holder FROM leader_epochs WHERE name = 'central'")).one()


def test_one_leader_at_a_time_and_a_clean_release_hands_over(engine, pair):
    a, b = pair
    a.step()
    b.step()
    assert (a.leading, a.epoch, b.leading) == (True, 1, False)
    assert tuple(epoch_row(engine)) == (1, "a")
    b.step()
    a.step()  # holding: touches the lease, keeps the epoch
    assert (a.epoch, b.leading) == (1, False)
    a.release()
    b.step()
    assert (a.leading, b.leading, b.epoch) == (False, True, 2)
    assert a.status() == {"election": "postgresql", "leader": False, "epoch": None}
    assert b.status() == {"election": "postgresql", "leader": True, "epoch": 2}


def test_a_paused_leader_loses_the_lease_and_then_writes_nothing(engine, pair):
    a, b = pair
    a.step()
    assert a.leading
    # a is "paused": it stops touching its lease; the server ends its idle session after LEASE_S
    until(lambda: (b.step(), b.leading)[1], "b takes over from the silent leader")
    assert b.epoch == 2
    sessions = make_sessionmaker(engine)
    # a wakes up believing it leads (its election thread has not run yet): its write aborts
    assert a.leading
    with (
        pytest.raises(NotLeader, match="leadership lost: epoch 2, this instance had 1"),
        fenced_transaction(sessions, a) as session,
    ):
        write(session, "stale")
    assert not a.leading
    with transaction(sessions) as session:
        assert written(session) == []
    with fenced_transaction(sessions, b) as session:  # the new leader writes
        write(session, "fresh")
    with transaction(sessions) as session:
        assert written(session) == ["fresh"]


def test_a_leader_paused_inside_a_write_loses_it_and_the_next_waits_for_that(engine, pair):
    a, b = pair
    a.step()
    sessions = make_sessionmaker(engine)
    session = sessions()
    a.fence(session)  # the epoch row is held FOR SHARE by a's open transaction
    write(session, "half-written")
    # a is paused mid-transaction: its lease ends, then its open transaction is ended by the server
    until(lambda: (b.step(), b.leading)[1], "b takes over from a leader paused inside a transaction")
    with pytest.raises(DBAPIError, match="idle-in-transaction timeout"):
        session.commit()  # a wakes and tries to finish: the server already ended that session
    session.close()
    with transaction(sessions) as check:
        assert written(check) == []
    assert tuple(epoch_row(engine)) == (2, "b")


def test_a_follower_engine_hands_submitted_events_to_the_leader(engine, pair, settings, vault):
    a, b = pair
    a.step()
    b.step()
    sessions = make_sessionmaker(engine)
    rt = Runtime(settings=settings, engine=engine, sessions=sessions, vault=vault)
    follower = AlarmEngine(rt, AlarmBus(), leadership=b)
    event = Event(source="api", device="r1", event_type="device_unreachable", severity="critical", time=clock.now())
    assert follower.submit_events([event])
    assert follower.run_once() == []
    with transaction(sessions) as session:
        assert session.scalar(select(func.count()).select_from(Alarm)) == 0  # the follower wrote no alarm
        assert session.scalar(select(func.count()).where(EventRecord.processed.is_(False))) == 1  # queued durably
    leader = AlarmEngine(rt, AlarmBus(), leadership=a)
    changes = leader.run_once()
    assert [(c.kind, c.device) for c in changes] == [("raised", "r1")]


def test_the_election_thread_follows_the_lock(engine, pair):
    a, b = pair

    async def scenario():
        await a.start()
        await b.start()
        assert a.leading and not b.leading
        await a.stop()  # a clean stop releases the lock: b leads within one turn
        await asyncio.to_thread(until, lambda: b.leading, "b leads after a stopped")
        await b.stop()

    asyncio.run(scenario())
    assert not a.leading and not b.leading


def test_sqlite_has_one_process_which_always_leads(session):
    local = LocalLeadership()
    local.fence(session)
    assert local.leading and local.status() == {"election": "local", "leader": True, "epoch": 0}


def write(session, who):
    session.execute(text("INSERT INTO ha_probe (written_by) VALUES (:w)"), {"w": who})


def written(session):
    return list(session.scalars(text("SELECT written_by FROM ha_probe ORDER BY written_by")))


bg, host_key, lab_ssh = cli_lab.bg, cli_lab.host_key, cli_lab.lab_ssh


def test_a_stale_leader_does_not_start_a_due_order_and_the_new_leader_does(engine, pair, lab_ssh, bg, tmp_path):
    key = Fernet.generate_key().decode()
    settings = Settings(
        data_dir=tmp_path / "var", secret_key=key, ssh_workers=2, ssh_timeout_s=15,
        provisioning_check_timeout_s=5, poll_timeout_s=1,
    )  # fmt: skip
    rt = Runtime(settings=settings, engine=engine, sessions=make_sessionmaker(engine), vault=Vault([key.encode()]))
    lab, transport = lab_device(lab_ssh, bg, f"pv-ha{uuid.uuid4().hex[:6]}")
    try:
        with transaction(rt.sessions) as session:
            add_device(session, rt.vault, lab)
        body = {
            "service_type": "interface_state", "customer": "ACME", "params": {"state": "down"},
            "targets": [{"device": lab.name, "params": {"interface": lab.interfaces[2].name}}],
            "window_start": (clock.now() - timedelta(minutes=1)).isoformat(),
            "window_end": (clock.now() + timedelta(hours=1)).isoformat(),
        }  # fmt: skip
        with transaction(rt.sessions) as session:
            order = orders.create_order(session, orders.parse_order(body), actor="pat")
            orders.act(session, order.id, "plan", actor="pat", role="provisioner", four_eyes=True, vault=rt.vault)
            orders.act(session, order.id, "approve", actor="nina", role="noc", four_eyes=True, vault=rt.vault)
            order_id = order.id
        a, b = pair
        a.step()
        until(lambda: (b.step(), b.leading)[1], "b takes over from the silent leader")
        assert a.leading  # a has not noticed yet: stale
        assert ProvisioningService(rt, leadership=a).tick() == []
        assert not a.leading
        with transaction(rt.sessions) as session:
            assert orders.get_order(session, order_id).state == "approved"  # claimed by nobody
        assert lab.interfaces[2].admin_up is True  # nothing was pushed
        outcomes = ProvisioningService(rt, leadership=b).tick()
        assert [(o.order_id, o.state) for o in outcomes] == [(order_id, "completed")], outcomes
        assert lab.interfaces[2].admin_up is False
    finally:
        transport.close()


def test_a_stale_leader_delivers_no_notification_and_the_new_leader_does(engine, pair, settings, vault):
    hook = Hook()
    try:
        rt = Runtime(settings=settings, engine=engine, sessions=make_sessionmaker(engine), vault=vault)
        a, b = pair
        a.step()
        until(lambda: (b.step(), b.leading)[1], "b takes over from the silent leader")
        bus = AlarmBus()
        stale = Notifier(rt, parse_config(config(hook.url), file="notify.yaml"), leadership=a)
        leader = Notifier(rt, parse_config(config(hook.url), file="notify.yaml"), leadership=b)
        bus.subscribe("notifications", leader.on_alarm_changes)
        alarms = AlarmEngine(rt, bus, leadership=b)
        alarms.add_outbox("notifications", leader.enqueue)
        alarms.submit_events([ev("device_unreachable", device="r9")])
        assert [c.kind for c in alarms.run_once()] == ["raised"]  # its outbox row is written with the change
        assert stale.run_once() == (0, 0) and not a.leading  # fenced: nothing sent, nothing marked
        assert hook.requests == []
        assert leader.run_once() == (1, 0)
        assert len(hook.requests) == 1
    finally:
        hook.close()


def test_a_leader_whose_rounds_outlast_the_idle_timeout_shrinks_them_and_drains_the_durable_queue(
    engine, pair, settings, vault
):
    """Scale bench, issue 14: during a flood the leader's round of a full batch spent longer between
    two statements than the fence's idle_in_transaction_session_timeout (twice the lease); the server
    ended the session ("the connection is lost"), the batch rolled back, and the next round tried
    the same batch again: the durable queue never drained. A round that fails now retries with
    half the batch, so the leader keeps leading and processes everything, each event once."""
    a, _b = pair
    a.step()
    assert a.leading
    settings.alarm_batch_size = 2000
    sessions = make_sessionmaker(engine)
    rt = Runtime(settings=settings, engine=engine, sessions=sessions, vault=vault)
    alarms = AlarmEngine(rt, AlarmBus(), leadership=a)

    def slow_hook(session, changes):  # work between statements: 3 ms per change, 6 s for a full batch
        time.sleep(0.003 * len(changes))

    alarms.add_outbox("slow", slow_hook)
    flood = [
        Event("syslog", "r1", "link_down", "major", clock.now(), managed_object=f"Gi0/{i}") for i in range(2000)
    ]
    with transaction(sessions, write=True) as session:
        alarm_service.store_events(session, flood, now=clock.now())

    def pending():
        with transaction(sessions) as session:
            return session.scalar(select(func.count()).where(EventRecord.processed.is_(False)))

    for _ in range(5):
        alarms.run_once()
        if pending() == 0:
            break
    assert pending() == 0, "the durable queue did not drain"
    assert a.leading
    with transaction(sessions) as session:
        assert session.scalar(select(func.count()).select_from(Alarm).where(Alarm.state == "active")) == 2000
