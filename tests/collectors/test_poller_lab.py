"""The poller against the lab network over real UDP on loopback: rates, linkDown/linkUp,
reboot, unreachable (exactly one event, healthy devices still polled), recovery, LLDP
discovered links (stale, not deleted), database state and samples, Prometheus output.

The lab's clock and faultloop's clock move together by hand: no sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from collectors.jobs import PollerService, retry_delay
from collectors.models import DevicePollState, InterfaceSample
from faultloop import clock as fl_clock
from faultloop.events import Event, Sample
from faultloop.metrics import REGISTRY, exposition
from inventory import queries
from inventory import service as inventory
from inventory.models import Interface, Link
from inventory.schemas import InventoryDoc
from lab.inventory_out import inventory_dict
from lab.network import LabNetwork
from tests.collectors import cli_lab
from tests.lab.conftest import FakeClock, small_topology

file_runtime = cli_lab.file_runtime

START = 1_800_000_000.0


class ListSink:
    """An ObservationSink that keeps what it gets (the alarm engine's place in these tests)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.samples: list[Sample] = []

    def submit_events(self, events: Sequence[Event]) -> bool:
        self.events.extend(events)
        return True

    def submit_samples(self, samples: Sequence[Sample]) -> bool:
        self.samples.extend(samples)
        return True

    def of(self, event_type: str, device: str | None = None) -> list[Event]:
        return [e for e in self.events if e.event_type == event_type and (device is None or e.device == device)]


class Clocks:
    def __init__(self) -> None:
        self.lab = FakeClock(START)
        self.fl = fl_clock.FrozenClock(datetime.fromtimestamp(START, UTC))

    def advance(self, seconds: float) -> None:
        self.lab.advance(seconds)
        self.fl.advance(seconds)


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
async def lab(clocks: Clocks) -> AsyncIterator[LabNetwork]:
    import random

    port = random.randint(20000, 60000)
    net = LabNetwork(small_topology(port=port), ssh=False, now=clocks.lab, fresh_boot=True)
    await net.start()
    try:
        yield net
    finally:
        await net.stop()


def import_lab(session, rt, lab: LabNetwork) -> None:
    """The lab's devices into the inventory, without its links: in these tests links come from LLDP."""
    doc = inventory_dict(lab.topology)
    doc["links"] = []
    inventory.import_inventory(
        session, rt.vault, InventoryDoc.model_validate(doc), actor="test", forget_host_key=lambda _device_id: None
    )


@pytest.fixture
async def poller(runtime, session, lab: LabNetwork, clocks: Clocks) -> AsyncIterator[tuple[PollerService, ListSink]]:
    import_lab(session, runtime, lab)
    session.commit()
    runtime.settings.poll_timeout_s = 0.2
    runtime.settings.poll_retries = 0
    runtime.settings.unreachable_after = 3
    sink = ListSink()
    svc = PollerService(runtime, sink)
    with fl_clock.use(clocks.fl):
        await svc.open()
        try:
            yield svc, sink
        finally:
            await svc.stop()


async def cycle(svc: PollerService) -> None:
    for device_id in list(svc.devices):
        await svc.poll_job(device_id)
    await svc.flush()


def ids(svc: PollerService) -> dict[str, int]:
    return {d.hostname: i for i, d in svc.devices.items()}


async def test_rates_events_unreachable_recovery_and_links(poller, lab, clocks, session):
    svc, sink = poller
    by_name = ids(svc)
    assert set(by_name) == {"core1", "dist1", "acc1"}

    await cycle(svc)
    assert sink.events == []
    clocks.advance(60)
    await cycle(svc)
    core1 = svc.trackers[by_name["core1"]].last
    assert core1 is not None
    gi01 = next(i for i in core1.interfaces.values() if i.name == "GigabitEthernet0/1")
    assert gi01.in_bps == pytest.approx(8e8, rel=1e-3) and gi01.out_bps == pytest.approx(4e8, rel=1e-3)

    # LLDP: both lab links discovered as topology links
    links = session.scalars(select(Link)).all()
    assert len(links) == 2 and {(lk.source, lk.state) for lk in links} == {("discovered", "active")}

    # a cut cable: linkDown from both ends, one event per interface, and the LLDP link goes stale
    lab.faults.apply("link_down", {"device": "dist1", "interface": "GigabitEthernet0/2"})
    clocks.advance(60)
    await cycle(svc)
    downs = sink.of("linkDown")
    assert sorted((e.device, e.managed_object) for e in downs) == [
        ("acc1", "interface:ge-0/0/0"),
        ("dist1", "interface:GigabitEthernet0/2"),
    ]
    session.expire_all()
    states = {
        (lk.a_interface.device.hostname, lk.b_interface.device.hostname): lk.state
        for lk in session.scalars(select(Link))
    }
    assert sorted(states.values()) == ["active", "stale"]
    assert session.scalar(select(func.count()).select_from(Link)) == 2  # stale, not deleted
    itf = session.scalar(select(Interface).where(Interface.name == "GigabitEthernet0/2", Interface.if_index == 2))
    assert itf is not None
    lab.faults.apply("link_up", {"device": "dist1", "interface": "GigabitEthernet0/2"})
    clocks.advance(60)
    await cycle(svc)
    assert len(sink.of("linkUp")) == 2
    session.expire_all()
    assert {lk.state for lk in session.scalars(select(Link))} == {"active"}

    # acc1 crashes: after 3 failed polls exactly one device_unreachable; the others keep answering
    lab.faults.apply("crash", {"device": "acc1"})
    sink.events.clear()
    for _ in range(5):
        clocks.advance(60)
        await cycle(svc)
    assert len(sink.of("device_unreachable")) == 1
    assert sink.of("device_unreachable")[0].device == "acc1"
    assert sink.of("device_unreachable")[0].severity == "critical"
    assert svc.trackers[by_name["core1"]].reachable and svc.trackers[by_name["dist1"]].reachable
    assert svc.trackers[by_name["core1"]].failures == 0
    row = session.get(DevicePollState, by_name["acc1"])
    session.refresh(row)
    assert row.reachable is False and row.consecutive_failures == 5 and row.last_error

    # it comes back (rebooted): one device_reachable, one device_rebooted, on the next poll
    lab.reboot(lab.devices["acc1"])
    clocks.advance(30)
    await svc.poll_job(by_name["acc1"])
    await svc.flush()
    assert [e.event_type for e in sink.events if e.device == "acc1" and e.event_type.startswith("device_")] == [
        "device_unreachable",
        "device_reachable",
        "device_rebooted",
    ]
    assert sink.of("device_reachable")[0].severity == "cleared"

    # database: latest state and samples; metrics: current state per device and interface
    session.expire_all()
    core_row = session.get(DevicePollState, by_name["core1"])
    assert core_row.reachable is True and core_row.sys_name == "core1" and core_row.cpu_percent is not None
    lab_core = lab.devices["core1"]
    assert core_row.sys_location == (lab_core.sys_location or lab_core.site) != ""
    n_samples = session.scalar(
        select(func.count())
        .select_from(InterfaceSample)
        .where(InterfaceSample.device_id == by_name["core1"], InterfaceSample.metric == "interface_in_bits_per_second")
    )
    assert n_samples >= 2 * 8  # 2 interfaces x every poll after the first
    families = {f.name: f for f in text_string_to_metric_families(exposition().decode())}
    up = {s.labels["device"]: s.value for s in families["faultloop_device_up"].samples}
    assert up == {"core1": 1.0, "dist1": 1.0, "acc1": 1.0}
    bps = {
        (s.labels["device"], s.labels["interface"]): s.value
        for s in families["faultloop_interface_in_bits_per_second"].samples
    }
    assert bps[("core1", "GigabitEthernet0/1")] == pytest.approx(8e8, rel=1e-3)
    assert families["faultloop_poll_errors"].samples[0].name == "faultloop_poll_errors_total"


async def test_ports_and_lldp_links_a_poll_discovers_are_written_through_the_inventory(runtime, session, lab, clocks):
    """core1 is in the inventory without any interface: the poll's IF-MIB adds its ports (ifAlias
    as description) and LLDP its links, through inventory.service, readable by inventory.queries."""
    doc = inventory_dict(lab.topology)
    doc["links"] = []
    [core1_doc] = [d for d in doc["devices"] if d["hostname"] == "core1"]
    core1_doc["interfaces"] = []
    inventory.import_inventory(
        session, runtime.vault, InventoryDoc.model_validate(doc), actor="test", forget_host_key=lambda _device_id: None
    )
    session.commit()
    runtime.settings.poll_timeout_s = 0.2
    runtime.settings.poll_retries = 0
    core1 = queries.device_by_hostname(session, "core1")
    assert core1 is not None and queries.interfaces(session, core1.id) == []
    svc = PollerService(runtime, ListSink())
    with fl_clock.use(clocks.fl):
        await svc.open()
        try:
            await cycle(svc)
        finally:
            await svc.stop()
    session.expire_all()
    ports = {i.name: i for i in queries.interfaces(session, core1.id)}
    assert {"GigabitEthernet0/1", "GigabitEthernet0/2"} <= set(ports)
    gi1 = ports["GigabitEthernet0/1"]
    assert (gi1.description, gi1.speed_mbps, gi1.admin_status, gi1.oper_status) == ("to dist1", 10_000, "up", "up")
    assert gi1.if_index is not None and gi1.id in {e.id for lk in queries.links(session) for e in (lk.a, lk.b)}
    links = queries.links(session)
    assert len(links) == 2 and {(lk.source, lk.state) for lk in links} == {("discovered", "active")}
    assert ("core1", gi1.if_index, "GigabitEthernet0/1") in queries.interface_names(session)


async def test_a_restarted_poller_reports_what_changed_while_it_was_stopped(poller, lab, clocks, runtime):
    """The first poll after a restart compares with what the database knew: a link cut while
    the service was down is a linkDown, a device that came back is a device_reachable (its
    unreachable alarm would otherwise stay active for ever)."""
    svc, sink = poller
    by_name = ids(svc)
    await cycle(svc)
    lab.faults.apply("crash", {"device": "acc1"})
    for _ in range(3):
        clocks.advance(60)
        await cycle(svc)
    assert [e.device for e in sink.of("device_unreachable")] == ["acc1"]
    assert [(e.device, e.managed_object) for e in sink.of("linkDown")] == [("dist1", "interface:GigabitEthernet0/2")]
    await svc.stop()

    # while stopped: a cable is cut, and acc1 is back (with it, dist1's port towards it)
    lab.faults.apply("link_down", {"device": "core1", "interface": "GigabitEthernet0/1"})
    lab.reboot(lab.devices["acc1"])
    clocks.advance(60)
    sink2 = ListSink()
    restarted = PollerService(runtime, sink2)
    await restarted.open()
    try:
        assert restarted.trackers[by_name["acc1"]].reachable is False
        await cycle(restarted)
        assert sorted((e.device, e.event_type, e.managed_object) for e in sink2.events) == [
            ("acc1", "device_reachable", ""),
            ("core1", "linkDown", "interface:GigabitEthernet0/1"),
            ("dist1", "linkDown", "interface:GigabitEthernet0/1"),
            ("dist1", "linkUp", "interface:GigabitEthernet0/2"),
        ]
        assert restarted.trackers[by_name["core1"]].baseline_oper == {}  # only the first poll uses it
        clocks.advance(60)
        await cycle(restarted)
        assert len(sink2.events) == 4  # nothing new on the second poll
    finally:
        await restarted.stop()


async def test_poll_findings_commit_with_the_state_they_changed_and_survive_a_crash(runtime, session, lab, clocks):
    """With the alarm engine as sink, a linkDown goes into its durable queue in the poll's own
    transaction: the process may die before the engine's round, and the restarted poller (which
    compares with the stored state) would not find it again; the restarted engine processes it."""
    from alarms.bus import AlarmBus
    from alarms.models import Alarm, EventRecord
    from alarms.runner import AlarmEngine

    import_lab(session, runtime, lab)
    session.commit()
    runtime.settings.poll_timeout_s, runtime.settings.poll_retries = 0.2, 0
    engine = AlarmEngine(runtime, AlarmBus())  # never started: it dies before its next round
    svc = PollerService(runtime, engine)
    with fl_clock.use(clocks.fl):
        await svc.open()
        try:
            await cycle(svc)
            lab.faults.apply("link_down", {"device": "core1", "interface": "GigabitEthernet0/1"})
            clocks.advance(60)
            await cycle(svc)
        finally:
            await svc.stop()
    pending = session.scalars(select(EventRecord).where(EventRecord.processed.is_(False))).all()
    assert sorted((e.device, e.event_type, e.managed_object) for e in pending) == [
        ("core1", "linkDown", "interface:GigabitEthernet0/1"),
        ("dist1", "linkDown", "interface:GigabitEthernet0/1"),
    ]
    assert svc.stats.dropped_events == 0
    restarted = AlarmEngine(runtime, AlarmBus())
    with fl_clock.use(clocks.fl):
        restarted.run_once()
    session.expire_all()
    active = session.scalars(select(Alarm).where(Alarm.state == "active")).all()
    assert sorted((a.device, a.managed_object) for a in active) == [
        ("core1", "interface:GigabitEthernet0/1"),
        ("dist1", "interface:GigabitEthernet0/1"),
    ]
    assert session.scalar(select(func.count()).select_from(EventRecord).where(EventRecord.processed.is_(False))) == 0


async def test_findings_reach_the_engine_while_the_database_refuses_the_poll_results(lab, clocks, file_runtime):
    """The database is locked by another writer for longer than busy_timeout: the poll results
    are lost (counted), but the linkDown findings still reach the engine's in-memory queue."""
    import sqlite3

    from alarms.bus import AlarmBus
    from alarms.models import Alarm
    from alarms.runner import AlarmEngine
    from faultloop.db import transaction

    rt = file_runtime
    rt.settings.poll_timeout_s, rt.settings.poll_retries = 0.2, 0
    with transaction(rt.sessions) as s:
        import_lab(s, rt, lab)
    engine = AlarmEngine(rt, AlarmBus())
    svc = PollerService(rt, engine)
    other = sqlite3.connect(str(rt.engine.url.database), isolation_level=None)
    try:
        with fl_clock.use(clocks.fl):
            await svc.open()
            try:
                await cycle(svc)
                lab.faults.apply("link_down", {"device": "core1", "interface": "GigabitEthernet0/1"})
                clocks.advance(60)
                for device_id in list(svc.devices):
                    await svc.poll_job(device_id)
                other.execute("BEGIN EXCLUSIVE")  # the database stays unavailable past busy_timeout
                with pytest.raises(OperationalError, match="locked"):
                    await svc.flush()
                other.execute("ROLLBACK")
                assert svc.stats.write_errors == 3 and svc.stats.dropped_events == 0
                engine.run_once()
            finally:
                await svc.stop()
        with transaction(rt.sessions) as s:
            active = s.scalars(select(Alarm).where(Alarm.state == "active")).all()
            assert sorted((a.device, a.managed_object) for a in active) == [
                ("core1", "interface:GigabitEthernet0/1"),
                ("dist1", "interface:GigabitEthernet0/1"),
            ]
    finally:
        other.close()


async def test_a_device_added_to_a_running_poller_starts_from_its_stored_state(runtime, session):
    """A sync that finds a new device reads that device's last known reachability and oper
    status (its own rows only), and leaves the trackers it already has alone."""
    from collectors import service as collectors
    from collectors.snmp_poll import InterfaceState, PollResult, Snapshot
    from inventory.schemas import DeviceIn, InterfaceIn, SnmpIn

    def add(hostname: str, address: str) -> int:
        data = DeviceIn(
            hostname=hostname,
            address=address,
            role="server",
            snmp=SnmpIn(version="v2c", community="public"),
            interfaces=[InterfaceIn(name="eth0", if_index=1)],
        )
        return inventory.create_device(session, runtime.vault, data, actor="t").id

    first = add("s1", "127.0.0.51")
    session.commit()
    svc = PollerService(runtime)
    await svc.sync()
    kept = svc.trackers[first]
    assert kept.reachable is None and kept.baseline_oper == {}

    second = add("s2", "127.0.0.52")
    snap = Snapshot(sys_name="s2", interfaces={1: InterfaceState(1, "eth0", admin_status="up", oper_status="down")})
    polled = PollResult("s2", True, fl_clock.now(), 0.01, snapshot=snap)
    collectors.record_poll(session, device_id=second, result=polled, reachable=False, failures=3)
    session.commit()
    await svc.sync()
    assert svc.trackers[first] is kept
    assert (svc.trackers[second].reachable, svc.trackers[second].baseline_oper) == (False, {1: "down"})


async def test_deleted_device_leaves_metrics_and_the_schedule(poller, session, runtime):
    svc, _sink = poller
    await cycle(svc)
    victim = ids(svc)["acc1"]
    inventory.delete_device(session, victim, actor="test")
    session.commit()
    await svc.sync()
    assert victim not in svc.devices
    text = exposition().decode()
    assert 'device="acc1"' not in text and 'device="core1"' in text


async def test_invalid_rate_above_speed_is_dropped_and_counted(poller, lab, clocks):
    svc, sink = poller
    await cycle(svc)
    # acc1's spare port is 100 Mb/s; pretend it carries 10 Gb/s
    spare = lab.devices["acc1"].interface("ge-0/0/0")
    assert spare is not None
    spare.rebase(clocks.lab())
    spare.in_rate_bps = 1e10  # on a 1 Gb/s port
    clocks.advance(60)
    sink.samples.clear()
    await cycle(svc)
    tracker = svc.trackers[ids(svc)["acc1"]]
    assert tracker.invalid_samples == 1
    assert not [
        s for s in sink.samples if s.metric == "interface_in_bits_per_second" and s.labels["interface"] == "ge-0/0/0"
    ]


def test_retry_delay_backs_off_then_polls_every_interval():
    assert [retry_delay(n, 80) for n in range(6)] == [80, 10, 20, 40, 80, 80]


async def test_start_schedules_one_jittered_turn_per_device(runtime, session):
    from inventory.schemas import DeviceIn

    for i in range(3):
        inventory.create_device(
            session,
            runtime.vault,
            DeviceIn.model_validate(
                {
                    "hostname": f"s{i}",
                    "address": f"127.0.0.{20 + i}",
                    "role": "access",
                    "snmp": {"version": "v2c", "community": "c"},
                }
            ),
            actor="t",
        )
    inventory.create_device(
        session, runtime.vault, DeviceIn(hostname="nosnmp", address="127.0.0.30", role="server"), actor="t"
    )
    session.commit()
    runtime.settings.poll_interval_s = 3600  # nothing fires during the test
    svc = PollerService(runtime)
    await svc.start()
    try:
        assert svc.scheduler is not None
        turns = svc.scheduler.turns()
        assert len(turns) == 3  # the device without SNMP settings is not polled
        for interval, jitter, _next in turns.values():
            assert jitter == pytest.approx(360)
            assert interval == pytest.approx(3600 - 180)
        first_runs = sorted(t[2] for t in turns.values())
        assert first_runs[0] != first_runs[-1]  # spread over the interval, not all at once
        assert all(0 <= t <= 3600 for t in first_runs)
    finally:
        await svc.stop()
    assert svc.scheduler.running is False


async def test_a_turn_that_comes_while_the_previous_poll_runs_is_skipped_and_counted():
    """TurnScheduler: turns every interval (plus jitter) on the event loop's timers; a device whose
    previous run still goes on is skipped (coalesced) and counted, never run twice at once; a moved
    turn comes at its new time; a removed device has no more turns."""
    from collectors.jobs import TurnScheduler

    runs: dict[int, int] = {1: 0, 2: 0, 3: 0}
    in_flight = {1: 0, 2: 0, 3: 0}
    most = {1: 0, 2: 0, 3: 0}
    release = asyncio.Event()
    skipped = []

    async def run(key: int) -> None:
        runs[key] += 1
        in_flight[key] += 1
        most[key] = max(most[key], in_flight[key])
        try:
            if key == 1:  # slow: outlives several of its turns
                await release.wait()
        finally:
            in_flight[key] -= 1

    turns = TurnScheduler(run, on_skip=lambda: skipped.append(1))
    turns.start()
    turns.add(1, interval_s=0.02, jitter_s=0.0, first_delay_s=0.0)
    turns.add(2, interval_s=0.02, jitter_s=0.01, first_delay_s=0.0)
    turns.add(3, interval_s=3600, jitter_s=0.0, first_delay_s=3600)
    turns.move(3, delay_s=0.0)
    while runs[2] < 5 or runs[3] < 1 or len(skipped) < 3:
        await asyncio.sleep(0.01)
    assert runs[1] == 1 and most[1] == 1  # never twice at once: the turns meanwhile were skipped
    assert runs[3] == 1 and 3599 < turns.turns()[3][2] <= 3600  # next turn an interval later
    turns.remove(2)
    seen = runs[2]
    release.set()
    while runs[1] < 2:
        await asyncio.sleep(0.01)
    turns.pause()
    await turns.idle()
    after = dict(runs)
    await asyncio.sleep(0.1)
    assert runs == after and runs[2] in (seen, seen + 1)  # paused: no more turns; removed: none after


async def test_one_unstorable_result_does_not_lose_the_rest_of_the_batch(runtime, session):
    from collectors.jobs import _Pending
    from collectors.snmp_poll import PollResult, Snapshot
    from inventory.schemas import DeviceIn

    ids_ = [
        inventory.create_device(
            session, runtime.vault, DeviceIn(hostname=f"b{i}", address=f"127.0.0.{40 + i}", role="server"), actor="t"
        ).id
        for i in range(3)
    ]
    session.commit()
    now = fl_clock.now()
    good = [
        PollResult(
            f"b{i}",
            True,
            now,
            0.01,
            snapshot=Snapshot(sys_name=f"b{i}"),
            samples=[Sample(f"b{i}", "device_cpu_percent", 5.0, now)],
        )
        for i in range(3)
    ]
    # a naive timestamp cannot be stored: this device's write fails, the others' must not
    good[1].samples.append(Sample("b1", "device_cpu_percent", 1.0, datetime(2026, 1, 1)))
    svc = PollerService(runtime)
    svc._pending = [_Pending(i, r, True, 0) for i, r in zip(ids_, good, strict=True)]
    await svc.flush()
    assert svc.stats.write_errors == 1
    session.expire_all()
    names = {row.device_id: row.sys_name for row in session.scalars(select(DevicePollState))}
    assert names == {ids_[0]: "b0", ids_[2]: "b2"}
    per_device = dict(
        session.execute(select(InterfaceSample.device_id, func.count()).group_by(InterfaceSample.device_id)).all()
    )
    assert per_device == {ids_[0]: 1, ids_[2]: 1}


async def test_dashboard_series_speed_discards_and_poll_histogram(poller, lab, clocks):
    """The series the Grafana dashboards divide and rate: interface speed (utilisation), discards,
    and the fleet-wide poll histogram by result (polls and timeouts per minute)."""

    def polls(result: str) -> float:
        return REGISTRY.get_sample_value("faultloop_snmp_poll_duration_seconds_count", {"result": result}) or 0.0

    svc, _sink = poller
    ok_before, timeout_before = polls("ok"), polls("timeout")
    await cycle(svc)
    clocks.advance(60)
    await cycle(svc)
    assert polls("ok") - ok_before == 6  # 3 devices x 2 cycles
    families = {f.name: f for f in text_string_to_metric_families(exposition().decode())}
    speed = {
        (s.labels["device"], s.labels["interface"]): s.value
        for s in families["faultloop_interface_speed_bits_per_second"].samples
    }
    assert speed[("core1", "GigabitEthernet0/1")] == 10e9  # ifHighSpeed 10000 Mb/s, above ifSpeed's 32 bits
    assert speed[("acc1", "ge-0/0/1")] == 100e6
    for name in ("faultloop_interface_in_discards", "faultloop_interface_out_discards"):
        samples = families[name].samples
        assert {s.name for s in samples} == {f"{name}_total"}
        # the lab agent answers 0 discards on every port, and every polled port is exported
        assert {(s.labels["device"], s.labels["interface"]) for s in samples} == set(speed)
        assert {s.value for s in samples} == {0.0}

    lab.faults.apply("crash", {"device": "acc1"})
    clocks.advance(60)
    await svc.poll_job(ids(svc)["acc1"])
    assert polls("timeout") - timeout_before == 1


def test_discards_are_read_from_their_own_columns():
    from collectors.collection_set import IF_TABLE, IFX_TABLE
    from collectors.snmp_poll import interpret

    def col(table, name: str, value: object) -> tuple[tuple[int, ...], object]:
        return (*table.entry, table.columns[name], 3), value

    walked = dict(
        [
            col(IF_TABLE, "ifDescr", b"xe-0/0/3"),
            col(IF_TABLE, "ifInDiscards", 7),
            col(IF_TABLE, "ifOutDiscards", 9),
            col(IF_TABLE, "ifInErrors", 11),
            col(IF_TABLE, "ifOutErrors", 13),
            col(IFX_TABLE, "ifHighSpeed", 10000),
        ]
    )
    itf = interpret({}, walked).interfaces[3]
    assert (itf.in_discards, itf.out_discards, itf.in_errors, itf.out_errors) == (7, 9, 11, 13)
    assert itf.name == "xe-0/0/3" and itf.speed_bps == 10_000_000_000


async def test_ports_that_repeat_an_ifname_are_kept_apart_by_ifindex(poller, lab, clocks, session):
    """A device with two ``lo0`` (ifIndex 10 and 11): two inventory rows, ``lo0`` and ``lo0#11``;
    the second one's linkDown names ``interface:lo0#11``; metrics never mix them; ifAlias of an
    imported port follows the device while the operator's description stays."""
    from lab.model import LabInterface

    svc, sink = poller
    core = lab.devices["core1"]
    core.interfaces += [
        LabInterface(if_index=10, name="lo0", alias="router id"),
        LabInterface(if_index=11, name="lo0", alias="mgmt vrf"),
    ]
    core_id = ids(svc)["core1"]
    await cycle(svc)
    session.expire_all()
    rows = {i.name: (i.if_index, i.alias) for i in queries.interfaces(session, core_id)}
    assert rows["lo0"] == (10, "router id") and rows["lo0#11"] == (11, "mgmt vrf")
    assert svc.trackers[core_id].names[11] == "lo0#11"
    assert ("core1", 11, "lo0#11") in queries.interface_names(session)  # what a trap's ifIndex maps to

    second = core.interfaces[-1]
    second.rebase(clocks.lab(), was_up=True)
    second.link_up = False
    core.interfaces[0].alias = "to dist1 (changed on the device)"
    clocks.advance(60)
    await cycle(svc)
    assert [(e.device, e.managed_object) for e in sink.of("linkDown")] == [("core1", "interface:lo0#11")]
    session.expire_all()
    gi1 = next(i for i in queries.interfaces(session, core_id) if i.name == "GigabitEthernet0/1")
    assert gi1.alias == "to dist1 (changed on the device)" and gi1.description == "to dist1"

    families = {f.name: f for f in text_string_to_metric_families(exposition().decode())}
    oper = {
        s.labels["interface"]: s.value
        for s in families["faultloop_interface_oper_up"].samples
        if s.labels["device"] == "core1" and s.labels["interface"].startswith("lo0")
    }
    assert oper == {"lo0": 1.0, "lo0#11": 0.0}


async def test_an_agent_listing_more_interfaces_than_the_cap_adds_no_rows_beyond_it(poller, lab, clocks, session):
    """FAULTLOOP_POLL_MAX_INTERFACES: the lowest ifIndexes are kept, the rest never becomes an
    inventory row (nor a metric); counted, one poll_truncated warning, cleared by a whole poll."""
    from collectors.snmp_poll import POLL_TRUNCATED
    from lab.model import LabInterface

    svc, sink = poller
    svc.rt.settings.poll_max_interfaces = 4
    core = lab.devices["core1"]  # two ports, imported
    core.interfaces += [LabInterface(if_index=100 + i, name=f"vlan{i}") for i in range(50)]
    core_id = ids(svc)["core1"]
    before = POLL_TRUNCATED.labels(reason="interfaces")._value.get()
    await svc.poll_job(core_id)
    await svc.flush()
    session.expire_all()
    assert sorted(i.if_index for i in queries.interfaces(session, core_id)) == [1, 2, 100, 101]
    assert POLL_TRUNCATED.labels(reason="interfaces")._value.get() == before + 1
    [warning] = sink.of("poll_truncated", "core1")
    assert (warning.severity, warning.specific_problem) == ("warning", "interfaces")
    assert "FAULTLOOP_POLL_MAX_INTERFACES" in warning.description
    assert len(svc.trackers[core_id].last.interfaces) == 4

    # the same hostile table again: still no rows beyond the cap (a warning per poll, one alarm)
    clocks.advance(60)
    await svc.poll_job(core_id)
    await svc.flush()
    session.expire_all()
    assert len(queries.interfaces(session, core_id)) == 4
    assert [e.severity for e in sink.of("poll_truncated", "core1")] == ["warning", "warning"]

    del core.interfaces[4:]
    clocks.advance(60)
    await svc.poll_job(core_id)
    await svc.flush()
    assert [e.severity for e in sink.of("poll_truncated", "core1")] == ["warning", "warning", "cleared"]


async def test_unchanged_ports_and_lldp_are_written_the_short_way_and_reconciled_when_the_inventory_moves(
    poller, lab, clocks, session
):
    """A poll that reads the same ports and LLDP table as the last stored one leaves the interface
    rows alone and marks its links seen with one UPDATE; a link deleted meanwhile comes back at the
    next poll, a port whose status changed is written, and every FULL_WRITE_EVERY-th poll is full."""
    from collectors import jobs

    svc, _sink = poller
    by_name = ids(svc)
    core = by_name["core1"]
    await cycle(svc)
    clocks.advance(60)
    await cycle(svc)
    memo = svc.writer._stored[core]
    assert memo.link_ids and memo.left == jobs.FULL_WRITE_EVERY - 1  # the second poll took the short way

    def seen_at() -> dict[int, datetime]:
        session.expire_all()
        return {lk.id: lk.last_seen_at for lk in session.scalars(select(Link))}

    before = seen_at()
    clocks.advance(60)
    await cycle(svc)
    after = seen_at()
    assert set(after) == set(before) and all(after[i] > before[i] for i in before)  # still seen each poll

    # the operator deletes a discovered link: the short UPDATE misses it, the full path brings it back
    victim = memo.link_ids[0]
    inventory.delete_link(session, victim, actor="test")
    session.commit()
    clocks.advance(60)
    await cycle(svc)
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Link)) == 2
    assert svc.writer._stored[core].left == jobs.FULL_WRITE_EVERY

    # a port going down is a different read: written (oper status), its LLDP link goes stale
    lab.faults.apply("link_down", {"device": "dist1", "interface": "GigabitEthernet0/2"})
    clocks.advance(60)
    await cycle(svc)
    session.expire_all()
    itf = session.scalar(select(Interface).where(Interface.device_id == by_name["dist1"], Interface.if_index == 2))
    assert itf is not None and itf.oper_status == "down"
    assert sorted(lk.state for lk in session.scalars(select(Link))) == ["active", "stale"]

    # after FULL_WRITE_EVERY short writes a device is reconciled in full again
    start = svc.writer._stored[core].left
    lefts = []
    for _ in range(jobs.FULL_WRITE_EVERY + 1):
        clocks.advance(60)
        await cycle(svc)
        lefts.append(svc.writer._stored[core].left)
    assert all(b == (a - 1 if a > 0 else jobs.FULL_WRITE_EVERY) for a, b in zip([start, *lefts], lefts, strict=False))
    assert lefts.count(jobs.FULL_WRITE_EVERY) == 1  # one full write in the run of short ones
