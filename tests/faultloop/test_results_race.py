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
