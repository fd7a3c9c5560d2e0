"""End to end with the lab: a fault injected in a lab device becomes the right alarm from one trap.

Real parts only: the lab network's SNMP agents send real v2c traps over UDP on loopback to
the collectors' trap receiver, whose sink is the alarm engine; the engine writes to the
test database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy import select

from alarms.bus import AlarmBus
from alarms.models import Alarm
from alarms.runner import AlarmEngine
from collectors.receiver import DeviceDirectory
from collectors.traps import TrapReceiverService
from faultloop.events import Event, Sample
from faultloop.settings import Settings
from lab.network import LabNetwork

from ..lab.conftest import FakeClock, small_topology


class Signalling:
    """The engine's sink, plus an asyncio signal so the test waits on events, not on time."""

    def __init__(self, engine: AlarmEngine) -> None:
        self.engine = engine
        self.events: list[Event] = []
        self.changed = asyncio.Event()

    def submit_events(self, events: Sequence[Event]) -> bool:
        self.events.extend(events)
        self.changed.set()
        return self.engine.submit_events(events)

    def submit_samples(self, samples: Sequence[Sample]) -> bool:
        return self.engine.submit_samples(samples)

    async def until(self, predicate, timeout: float = 15.0) -> None:
        async def wait() -> None:
            while not predicate(self.events):
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout)


async def test_lab_link_fault_becomes_link_alarms_and_clears(runtime, session, tmp_path):
    topology = small_topology()
    engine = AlarmEngine(runtime, AlarmBus())
    engine.load()
    sink = Signalling(engine)
    directory = DeviceDirectory(None)
    directory.by_address = {d.address: d.name for d in topology.devices}
    directory.hostnames = set(directory.by_address.values())
    directory.interfaces = {(d.name, i.if_index): i.name for d in topology.devices for i in d.interfaces}
    receiver = TrapReceiverService(
        settings=Settings(data_dir=tmp_path / "var", trap_host="127.0.0.1", trap_port=0), sink=sink, directory=directory
    )
    await receiver.start()
    net = LabNetwork(topology, ssh=False, now=FakeClock(), fresh_boot=True, trap_receivers=[receiver.receiver.address])
    await net.start()
    try:
        net.faults.apply("link_down", {"device": "core1", "interface": "GigabitEthernet0/1"})
        await sink.until(lambda ev: sum(e.event_type == "linkDown" for e in ev) >= 2)
        engine.run_once()
        active = {a.reduction_key: a for a in session.scalars(select(Alarm).where(Alarm.state == "active"))}
        assert "link_down:core1:interface:GigabitEthernet0/1" in active
        assert "link_down:dist1:interface:GigabitEthernet0/1" in active
        assert {active[k].severity for k in active if k.startswith("link_down:")} == {"major"}
        assert {active[k].source for k in active if k.startswith("link_down:")} == {"trap"}

        net.faults.apply("link_up", {"device": "core1", "interface": "GigabitEthernet0/1"})
        await sink.until(lambda ev: sum(e.event_type == "linkUp" for e in ev) >= 2)
        engine.run_once()
        rows = session.execute(select(Alarm.reduction_key, Alarm.state).where(Alarm.alarm_type == "link_down")).all()
        states = {key: state for key, state in rows}
        assert states == {
            "link_down:core1:interface:GigabitEthernet0/1": "cleared",
            "link_down:dist1:interface:GigabitEthernet0/1": "cleared",
        }
    finally:
        await net.stop()
        await receiver.stop()


async def test_lab_faults_become_alarms_within_two_poll_intervals(runtime, session):
    """Poll path: the real SNMP poller polls lab devices; its findings go to the engine."""
    import random
    from datetime import UTC, datetime

    from collectors.jobs import PollerService
    from faultloop import clock as fl_clock
    from inventory import service as inventory
    from inventory.schemas import InventoryDoc
    from lab.inventory_out import inventory_dict

    start = 1_800_000_000.0
    lab_clock = FakeClock(start)
    fl = fl_clock.FrozenClock(datetime.fromtimestamp(start, UTC))
    net = LabNetwork(small_topology(port=random.randint(20000, 60000)), ssh=False, now=lab_clock, fresh_boot=True)
    await net.start()
    inventory.import_inventory(
        session,
        runtime.vault,
        InventoryDoc.model_validate(inventory_dict(net.topology)),
        actor="t",
        forget_host_key=lambda _device_id: None,
    )
    session.commit()
    runtime.settings.poll_interval_s = 60
    runtime.settings.poll_timeout_s = 0.2
    runtime.settings.poll_retries = 0
    runtime.settings.unreachable_after = 2
    engine = AlarmEngine(runtime, AlarmBus())
    poller = PollerService(runtime, engine)

    async def poll_interval() -> None:
        lab_clock.advance(60)
        fl.advance(60)
        for device_id in list(poller.devices):
            await poller.poll_job(device_id)
        await poller.flush()
        engine.run_once()

    def active() -> dict[str, Alarm]:
        session.expire_all()
        return {a.reduction_key: a for a in session.scalars(select(Alarm).where(Alarm.state == "active"))}

    with fl_clock.use(fl):
        engine.load()
        await poller.open()
        try:
            await poll_interval()  # baseline
            assert active() == {}
            net.faults.apply("link_down", {"device": "dist1", "interface": "GigabitEthernet0/2"})
            await poll_interval()  # one poll interval
            assert {"link_down:dist1:interface:GigabitEthernet0/2", "link_down:acc1:interface:ge-0/0/0"} <= set(
                active()
            )
            net.faults.apply("link_up", {"device": "dist1", "interface": "GigabitEthernet0/2"})
            await poll_interval()
            assert not [k for k in active() if k.startswith("link_down:")]

            net.faults.apply("crash", {"device": "dist1"})
            await poll_interval()
            await poll_interval()  # two poll intervals: unreachable_after = 2
            now_active = active()
            down = now_active["device_down:dist1:"]
            assert (down.severity, down.source, down.parent_id, down.root_cause) == ("critical", "poll", None, True)
            # core1's port facing the dead box, and acc1 behind it (its uplink port went down), under dist1
            facing = now_active["link_down:core1:interface:GigabitEthernet0/1"]
            assert (facing.parent_id, facing.correlation_reason) == (down.id, "neighbor device dist1 unreachable")
            behind = now_active["link_down:acc1:interface:ge-0/0/0"]
            assert (behind.parent_id, behind.correlation_reason) == (down.id, "upstream device dist1 unreachable")
            assert facing.muted and behind.muted and not down.muted
        finally:
            await poller.stop()
            await net.stop()
