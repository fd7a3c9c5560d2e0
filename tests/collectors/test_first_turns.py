"""Where a device's first poll falls (issue 14, the scale bench's first-turn burst): spread over the
poll interval, per device and deterministically, in the single process and in the collector role,
while a device taken over from a collector keeps the turn its last poll set. The clock is
``faultloop.clock`` (frozen here); nothing sleeps and nothing is polled."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from collectors.jobs import JITTER, PolledDevice, SnmpPoller, slot_delay
from collectors.remote import PollRecord, RemotePoller
from faultloop import clock
from faultloop.broker import BrokerLink, Publisher, Spool
from faultloop.cmd.collector import GroupShare, Membership, RemoteDirectory, rendezvous_owner

INTERVAL_S = 300.0
T0 = datetime(2026, 12, 7, 14, 0, 7, 250000, tzinfo=UTC)


def device(device_id: int, interval_s: float = INTERVAL_S) -> PolledDevice:
    return PolledDevice(id=device_id, hostname=f"d{device_id}", site="", interval_s=interval_s, timeout_s=2.0,
                        retries=1, address="127.1.0.1", snmp_version="v2c")  # fmt: skip


def busiest_tenth(delays: list[float], interval_s: float = INTERVAL_S) -> int:
    """The most first turns falling in any tenth of the interval."""
    return max(Counter(int(d // (interval_s / 10)) for d in delays).values())


def test_slots_spread_any_set_of_devices_evenly_over_the_interval_and_are_the_same_everywhere():
    now = T0.timestamp()
    delays = {i: slot_delay(i, INTERVAL_S, now) for i in range(1, 10_001)}
    assert all(0 <= d < INTERVAL_S for d in delays.values())
    assert busiest_tenth(list(delays.values())) <= 1002  # 1,000 per 30 s: the sustained rate
    # one collector's share of a group of two (rendezvous): still even
    share = [d for i, d in delays.items() if rendezvous_owner(str(i), ["c1", "c2"]) == "c1"]
    assert 4500 < len(share) < 5500 and busiest_tenth(share) <= 1.1 * len(share) / 10
    # the slot is a time, not a delay: asked 17 s later (another process, a restart), the same instant
    later = now + 17.0
    for i in (1, 2, 977, 10_000):
        assert (now + delays[i] - (later + slot_delay(i, INTERVAL_S, later))) % INTERVAL_S == pytest.approx(0, abs=1e-6)
    # the interval of the device counts, not a global one
    assert all(0 <= slot_delay(i, 20.0, now) < 20.0 for i in range(1, 500))


def test_the_single_process_spreads_its_first_turns_over_one_interval(settings, vault):
    poller = SnmpPoller(settings, vault)
    devices = [device(i) for i in range(1, 10_001)]
    with clock.use(clock.FrozenClock(T0)):
        delays = [poller.first_delay(d) for d in devices]
        again = [poller.first_delay(d) for d in devices]
    assert delays == again  # per device, not drawn at random at each start
    assert min(delays) >= 0 and max(delays) > 0.99 * INTERVAL_S
    assert busiest_tenth(delays) <= 1002


@pytest.fixture
def collector_settings(settings, tmp_path):
    return settings.model_copy(update={
        "nats_url": "nats://127.0.0.1:1", "collector_key": SecretStr(Fernet.generate_key().decode()),
        "collector_group": "east", "collector_name": "c1", "collector_heartbeat_s": 5.0, "poll_timeout_s": 2.0,
        "poll_retries": 1, "poll_interval_s": INTERVAL_S, "data_dir": tmp_path / "collector",
    })  # fmt: skip


def remote_poller(s, vault, tmp_path, last: dict[int, PollRecord]) -> RemotePoller:
    """The collector's poller as ``build_collector`` makes it (never started: no NATS needed), with the
    newest poll result of each device in ``last`` as the results stream would give it."""
    link = BrokerLink(s, client_name="test")
    spool = Spool(tmp_path / "spool.sqlite", max_messages=100)
    share = GroupShare(RemoteDirectory(link, s), Membership(link, s))

    async def last_result(device_id: int) -> PollRecord | None:
        return last.get(device_id)

    return RemotePoller(s, vault, publisher=Publisher(link, spool), sink=None, share=share,  # type: ignore[arg-type]
                        last_result=last_result, collector="c1")  # fmt: skip


def record(device_id: int, at: datetime) -> PollRecord:
    return PollRecord(device_id=device_id, device=f"d{device_id}", collector="c2", ok=True, time=at, duration_s=0.05)


async def first_delays(poller: RemotePoller, devices: dict[int, PolledDevice]) -> dict[int, float]:
    await poller.new_trackers(devices, set(devices))
    return {i: poller.first_delay(d) for i, d in devices.items()}


async def test_a_collector_starting_with_a_group_never_polled_spreads_its_first_turns_over_the_interval(
    collector_settings, vault, tmp_path
):
    poller = remote_poller(collector_settings, vault, tmp_path, {})
    devices = {i: device(i) for i in range(1, 5001)}
    with clock.use(clock.FrozenClock(T0)):
        delays = await first_delays(poller, devices)
    # before: every first turn within a tenth of the interval (10x the demand for 30 s, 18 % timeouts)
    assert max(delays.values()) > 0.99 * INTERVAL_S
    assert busiest_tenth(list(delays.values())) <= 502
    assert delays == {i: slot_delay(i, INTERVAL_S, T0.timestamp()) for i in devices}


async def test_a_collector_taking_devices_over_keeps_their_turns_and_spreads_the_long_unpolled_ones(
    collector_settings, vault, tmp_path
):
    s = collector_settings
    recent = {i: record(i, T0 - timedelta(seconds=10 + i % 250)) for i in range(1, 1001)}
    # a dead member's devices whose turn came while it was being found dead: polled soon, not a
    # slot up to an interval later (the "within one poll interval plus the heartbeat timeout")
    just_due = {i: record(i, T0 - timedelta(seconds=INTERVAL_S + 8)) for i in range(1001, 1101)}
    # a group back after an outage of two intervals: these go to their slots, not all at once
    stale = {i: record(i, T0 - timedelta(seconds=2 * INTERVAL_S)) for i in range(1101, 3101)}
    poller = remote_poller(s, vault, tmp_path, recent | just_due | stale)
    devices = {i: device(i) for i in range(1, 3101)}
    with clock.use(clock.FrozenClock(T0)):
        delays = await first_delays(poller, devices)
    jitter = INTERVAL_S * JITTER
    for i in recent:  # the turn after the previous owner's last poll: no double poll, no gap
        due = INTERVAL_S - (T0 - recent[i].time).total_seconds()
        assert due <= delays[i] <= due + jitter, (i, delays[i], due)
    assert poller.catch_up_s == 4 * s.collector_heartbeat_s  # 2 s x 2 tries + 1 s - 5 s: no grace
    assert all(delays[i] <= jitter for i in just_due)
    assert {i: delays[i] for i in stale} == {i: slot_delay(i, INTERVAL_S, T0.timestamp()) for i in stale}
    assert busiest_tenth([delays[i] for i in stale]) <= 202
    assert poller.taken_over == len(devices)


async def test_a_device_handed_back_by_a_live_member_waits_at_least_for_its_last_poll_to_be_published(
    collector_settings, vault, tmp_path
):
    s = collector_settings.model_copy(update={"poll_timeout_s": 5.0})  # grace: 5 s x 2 + 1 s - 5 s = 6 s
    poller = remote_poller(s, vault, tmp_path, {})
    poller._from_member = {i: "c2" for i in range(1, 201)}
    devices = {i: device(i) for i in range(1, 201)}
    with clock.use(clock.FrozenClock(T0)):
        delays = await first_delays(poller, devices)
    assert poller.dead_grace_s == 6.0
    assert all(d >= 6.0 for d in delays.values())
    assert max(delays.values()) > 0.95 * INTERVAL_S  # and still spread over the interval
