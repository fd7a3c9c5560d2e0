"""Both centrals consume the shared results consumer (issue 14, scale bench): two ResultsIntakes
applying poll results of the same devices at once on PostgreSQL must neither collide
(IntegrityError on a device's first poll state or interface rows, deadlocks between batches
taking devices in different orders) nor lose a result, and a result both were handed (a
redelivery) is stored once."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from cryptography.fernet import Fernet
from sqlalchemy import func, select

from collectors.models import DevicePollState
from collectors.remote import PollRecord, ResultsIntake
from collectors.snmp_poll import InterfaceState, Snapshot
from faultloop import clock
from faultloop.broker import BrokerLink, Delivery
from faultloop.db import make_engine, make_sessionmaker, transaction
from faultloop.settings import Settings
from faultloop.vault import Vault
from inventory import queries
from inventory import service as inventory
from inventory.schemas import DeviceIn
from tests.collectors.cli_lab import RecordingSink
from tests.faultloop.natslab import SHARED_URL
from tests.pgdb import needs_postgresql, scratch_database

pytestmark = needs_postgresql

DEVICES = 30
POLLS = 4  # results per device
PORTS = 12


def record(device_id: int, hostname: str, poll: int) -> PollRecord:
    when = clock.now() - timedelta(seconds=(POLLS - poll) * 10)
    ports = {
        i: InterfaceState(if_index=i, name=f"Gi0/{i}", oper_status="up" if (i + poll) % 3 else "down", speed_bps=10**9)
        for i in range(1, PORTS + 1)
    }
    snap = Snapshot(sys_descr="lab", sys_name=hostname, uptime_cs=1000 + poll, interfaces=ports)
    return PollRecord(device_id=device_id, device=hostname, ok=True, time=when, duration_s=0.01, reachable=True,
                      snapshot=snap)  # fmt: skip


def test_two_intakes_apply_the_same_devices_results_at_once_without_collisions(tmp_path, caplog):
    secret = Fernet.generate_key().decode()
    with scratch_database() as url:
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        devices = []
        with transaction(sessions, write=True) as session:
            for n in range(DEVICES):
                d = inventory.create_device(
                    session, Vault([secret.encode()]),
                    DeviceIn(hostname=f"race-{n}", address=f"127.44.0.{n + 1}", role="access"), actor="test",
                )  # fmt: skip
                devices.append((d.id, d.hostname))
        settings = Settings(data_dir=tmp_path / "var", secret_key=secret, database_url=url, nats_url=SHARED_URL)
        intakes = [
            ResultsIntake(BrokerLink(settings, client_name=f"central-{i}"), sessions, RecordingSink(), settings)
            for i in range(2)
        ]
        # each central gets every device's polls, one device order ascending, the other descending;
        # every result has its own message id except poll 0, which both are handed (a redelivery)
        batches: list[list[list[Delivery[PollRecord]]]] = [[], []]
        for poll in range(POLLS):
            for i, order in enumerate((devices, devices[::-1])):
                deliveries = [
                    Delivery("x", f"r-{did}-{poll}" + ("" if poll == 0 else f"-{i}"), record(did, name, poll))
                    for did, name in order
                ]
                for start in range(0, len(deliveries), 10):
                    batches[i].append(deliveries[start : start + 10])
        errors: list[BaseException] = []
        barrier = threading.Barrier(2)

        def run(i: int) -> None:
            barrier.wait()
            for batch in batches[i]:
                try:
                    intakes[i].apply(batch)
                except BaseException as exc:  # what the consumer would nak: redelivered, counted here
                    errors.append(exc)

        caplog.set_level(logging.ERROR, logger="faultloop")
        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        stored_failures = [r.getMessage() for r in caplog.records if "storing the poll" in r.getMessage()]
        assert errors == [] and stored_failures == []
        # poll 0 of each device stored once (the other intake found it claimed); the rest by each
        assert sum(x.applied for x in intakes) == DEVICES * (1 + 2 * (POLLS - 1))
        assert sum(x.duplicates for x in intakes) == DEVICES
        with transaction(sessions) as session:
            assert session.scalar(select(func.count()).select_from(DevicePollState)) == DEVICES
            for did, _name in devices:
                assert len(queries.interfaces(session, did)) == PORTS
        engine.dispose()


class FakeLeadership:
    """What ResultsIntake reads of a leadership: whether it leads and its epoch."""

    def __init__(self) -> None:
        self.leading = True
        self.epoch = 1


def snapshot_record(device_id: int, hostname: str, seconds_ago: float, port1: str) -> PollRecord:
    ports = {
        i: InterfaceState(if_index=i, name=f"Gi0/{i}", oper_status=port1 if i == 1 else "up", speed_bps=10**9)
        for i in range(1, 4)
    }
    snap = Snapshot(sys_descr="lab", sys_name=hostname, uptime_cs=1000, interfaces=ports)
    return PollRecord(device_id=device_id, device=hostname, ok=True, time=clock.now() - timedelta(seconds=seconds_ago),
                      duration_s=0.01, reachable=True, snapshot=snap)  # fmt: skip


def test_the_leaders_intake_writes_unchanged_polls_the_short_way_and_never_from_a_stale_memory(tmp_path):
    """As the single process's poller: an unchanged poll leaves the interface rows alone. Two polls of
    one device in one batch, and a moved epoch (another leader wrote meanwhile), are written in full."""
    from collectors import jobs

    secret = Fernet.generate_key().decode()
    with scratch_database() as url:
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        with transaction(sessions, write=True) as session:
            d = inventory.create_device(
                session, Vault([secret.encode()]), DeviceIn(hostname="memo-1", address="127.45.0.1", role="access"),
                actor="test",
            )  # fmt: skip
            did, name = d.id, d.hostname
        settings = Settings(data_dir=tmp_path / "var", secret_key=secret, database_url=url, nats_url=SHARED_URL)
        leadership = FakeLeadership()
        intake = ResultsIntake(BrokerLink(settings, client_name="central"), sessions, RecordingSink(), settings,
                               leadership=leadership)  # type: ignore[arg-type]  # fmt: skip

        def port1() -> str:
            with transaction(sessions) as session:
                return next(i.oper_status for i in queries.interfaces(session, did) if i.if_index == 1)

        def left() -> int | None:
            memo = intake.writer._stored.get(did)
            return None if memo is None else memo.left

        # the first poll creates the interface rows, which moves the inventory's revision: the second
        # is written in full too, the third is the first the short way
        intake.apply([Delivery("x", "m-0", snapshot_record(did, name, 60, "up"))])
        intake.apply([Delivery("x", "m-1", snapshot_record(did, name, 50, "up"))])
        assert left() == jobs.FULL_WRITE_EVERY and port1() == "up"
        intake.apply([Delivery("x", "m-2", snapshot_record(did, name, 40, "up"))])
        assert left() == jobs.FULL_WRITE_EVERY - 1  # unchanged: the short way
        # down then up again in one batch: the second equals the memory from before the batch, but the
        # first has changed the rows since, so it is written in full
        intake.apply([Delivery("x", "m-3", snapshot_record(did, name, 30, "down")),
                      Delivery("x", "m-4", snapshot_record(did, name, 20, "up"))])  # fmt: skip
        assert port1() == "up"
        assert left() == jobs.FULL_WRITE_EVERY
        intake.apply([Delivery("x", "m-5", snapshot_record(did, name, 15, "up"))])
        assert left() == jobs.FULL_WRITE_EVERY - 1
        # another leader led meanwhile (the epoch moved): what this one remembers may be stale
        intake_b = ResultsIntake(BrokerLink(settings, client_name="central-b"), sessions, RecordingSink(), settings)
        intake_b.apply([Delivery("x", "m-6", snapshot_record(did, name, 10, "down"))])
        assert port1() == "down"
        leadership.epoch = 2
        intake.apply([Delivery("x", "m-7", snapshot_record(did, name, 5, "up"))])
        assert port1() == "up"  # written in full: the memory of epoch 1 was dropped
        assert left() == jobs.FULL_WRITE_EVERY
        leadership.leading = False
        assert not intake.takes_results()
        assert intake.applied == 7
        engine.dispose()
