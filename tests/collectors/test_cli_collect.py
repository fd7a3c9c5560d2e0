"""CLI show collection over SSH against the lab, the bounded pool, and the command table."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from collectors import cli_collect
from collectors.backup import backup_device
from collectors.backup_models import CliResult, ConfigBackup
from collectors.cli_collect import CliCollectorService, collect_device, run_cycle, ssh_device_ids
from collectors.cli_commands import CommandTableError, command_table, parse_command_table
from devices.models import SshHostKey
from devices.ssh import DeviceBusy, device_session
from faultloop import clock
from faultloop.clock import FrozenClock
from faultloop.db import transaction
from faultloop.metrics import exposition
from inventory import service as inventory
from inventory.models import Device
from tests.collectors import cli_lab
from tests.collectors.cli_lab import HungServer, add_to_inventory

bg, host_key, lab_ssh, sink = cli_lab.bg, cli_lab.host_key, cli_lab.lab_ssh, cli_lab.sink
file_runtime = cli_lab.file_runtime


def test_collect_ios_parses_with_textfsm_and_keeps_latest_only(lab_ssh, sink, runtime, session, vault):
    lab = lab_ssh.new_device("cisco_ios", "cl-ios1")
    device_id = add_to_inventory(session, vault, lab)
    outcome = collect_device(runtime, device_id, sink=sink)
    assert outcome.commands == len(command_table()["cisco_ios"].commands)

    version = cli_collect.latest_result(session, device_id=device_id, command="show version")
    assert "Cisco IOS Software" in version.output
    assert version.parsed is not None and version.parsed[0]["hostname"] == "cl-ios1"
    brief = cli_collect.latest_result(session, device_id=device_id, command="show ip interface brief")
    assert brief.parsed is not None
    assert [(r["interface"], r["ip_address"]) for r in brief.parsed][0] == ("GigabitEthernet0/0", "10.1.0.1")

    first_at = version.taken_at
    with clock.use(FrozenClock(first_at.replace(year=first_at.year + 1))):
        collect_device(runtime, device_id, sink=sink)
    session.expire_all()
    rows = session.scalars(select(CliResult).where(CliResult.device_id == device_id)).all()
    assert len(rows) == outcome.commands  # latest per command, not history
    assert all(r.taken_at.year == first_at.year + 1 for r in rows)


def test_collect_junos_keeps_raw_text_when_no_template_matches(lab_ssh, sink, runtime, session, vault):
    lab = lab_ssh.new_device("juniper_junos", "cl-jnp1")
    device_id = add_to_inventory(session, vault, lab)
    collect_device(runtime, device_id, sink=sink)
    terse = cli_collect.latest_result(session, device_id=device_id, command="show interfaces terse")
    assert "ge-0/0/0.0" in terse.output
    assert cli_collect.parse("juniper_junos", "show no-such-command", terse.output) is None


def test_latest_result_bad_inputs(session, vault):
    with pytest.raises(Exception, match="device 999999 not found"):
        cli_collect.latest_result(session, device_id=999999, command="show version")
    device_id = add_to_inventory(session, vault, cli_lab.make_lab_device("cisco_ios", "cl-none1"))
    with pytest.raises(Exception, match="no result of 'show version' collected from 'cl-none1' yet"):
        cli_collect.latest_result(session, device_id=device_id, command="show version")


def test_devices_without_ssh_or_driver_are_not_scheduled(session, vault):
    with_ssh = add_to_inventory(session, vault, cli_lab.make_lab_device("cisco_ios", "cl-sched1"))
    no_driver = add_to_inventory(session, vault, cli_lab.make_lab_device("cisco_ios", "cl-sched2"))
    session.get(Device, no_driver).device_type = "huawei_vrp_unknown"
    session.get(Device, no_driver).platform = ""
    session.commit()
    ids = ssh_device_ids(session)
    assert with_ssh in ids and no_driver not in ids


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "expected a mapping of device_type -> commands"),
        ({"cisco_ios": {"commands": []}}, "cisco_ios: field 'backup': expected a command"),
        ({"cisco_ios": {"backup": "show run", "privileged": "yes"}}, "field 'privileged': expected true or false"),
        ({"cisco_ios": {"backup": "show run", "commands": "show version"}}, "field 'commands': expected a list"),
        ({"cisco_ios": {"backup": "show run", "commands": ["show version | i x"]}}, "one line, no pipes"),
        ({"cisco_ios": {"backup": "show run", "commands": ["show a", "show a"]}}, "a command is listed twice"),
        ({"cisco_ios": {"backup": "show run", "extra": 1}}, "unknown field(s) extra"),
    ],
)
def test_command_table_rejects_bad_entries(doc, message):
    with pytest.raises(CommandTableError) as caught:
        parse_command_table(doc, where="t.yaml")
    assert message in str(caught.value)


# ---- the bounded pool: a hung device does not block the others -----------------------


async def test_hung_device_does_not_block_backups_of_others(lab_ssh, sink, file_runtime):
    rt = file_runtime
    hung = HungServer()
    try:
        healthy = [lab_ssh.new_device("cisco_ios", "pool-ios1"), lab_ssh.new_device("juniper_junos", "pool-jnp1")]
        hung_lab = cli_lab.make_lab_device("cisco_ios", "pool-hung1")
        hung_lab.address, hung_lab.ssh_port = hung.address, hung.port
        with transaction(rt.sessions) as session:
            # the hung device first, so it takes a worker before the healthy ones queue
            hung_id = add_to_inventory(session, rt.vault, hung_lab)
            healthy_ids = [add_to_inventory(session, rt.vault, d) for d in healthy]

        service = CliCollectorService(rt, sink=sink)
        await service.start()
        try:
            results = await asyncio.get_running_loop().run_in_executor(None, service.run_backups)
        finally:
            await service.stop()
    finally:
        hung.close()

    by_id = {r.device_id: r for r in results}
    assert set(by_id) == {hung_id, *healthy_ids}
    assert by_id[hung_id].error == f"pool-hung1 ({hung.address}:{hung.port}): SSH timed out (connect, banner or read)"
    assert hung.accepted  # it did accept TCP: the banner wait is what timed out
    for device_id in healthy_ids:
        assert by_id[device_id].ok, by_id[device_id].error
        assert by_id[device_id].value.status == "first_version"
    with transaction(rt.sessions) as session:
        stored = session.scalars(select(ConfigBackup.device_id)).all()
    assert sorted(stored) == sorted(healthy_ids)


async def test_service_schedule_is_decided_on_the_injected_clock(file_runtime, sink):
    frozen = FrozenClock()
    with clock.use(frozen):
        service = CliCollectorService(file_runtime, sink=sink)
        await service.start()
        try:
            assert service.due() == []  # first runs are jittered within the first minute
            frozen.advance(61)
            assert sorted(service.due()) == ["backup", "cli"]
            assert service.due() == []
            frozen.advance(file_runtime.settings.cli_interval_s)
            assert service.due() == ["cli"]
            frozen.advance(file_runtime.settings.backup_interval_s)
            assert sorted(service.due()) == ["backup", "cli"]
        finally:
            await service.stop()


def test_a_cycle_ends_at_once_when_the_pool_shuts_down_under_it():
    """shutdown(cancel_futures=True) cancels the queued sessions; the cycle waiting for them must
    notice at once, not wait out its deadline (the stopping demo hung on it for minutes)."""
    import concurrent.futures
    import threading
    import time

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    started = threading.Event()

    def session(device_id: int) -> str:
        started.set()
        time.sleep(0.3)
        return f"config of {device_id}"

    out: list = []

    def backups() -> None:
        out.extend(run_cycle(pool, [1, 2, 3], session, kind="backup", deadline_s=60))

    cycle = threading.Thread(target=backups)
    cycle.start()
    assert started.wait(5)
    pool.shutdown(wait=False, cancel_futures=True)  # what CliCollectorService.stop does
    cycle.join(5)
    assert not cycle.is_alive(), "the cycle waited for cancelled sessions"
    assert [(r.device_id, r.ok) for r in out] == [(1, True), (2, False), (3, False)]
    assert out[0].value == "config of 1" and "not started (the service is stopping)" in out[1].error


async def test_stop_lets_running_sessions_finish_and_drops_queued_ones(file_runtime, sink):
    """A session left running after stop() would outlive the loop, talk to a device that is gone
    (the demo stops its lab next) and hold up the process's exit (seen as a killed demo)."""
    import threading
    import time

    service = CliCollectorService(file_runtime, sink=sink, tick_s=3600)
    await service.start()
    assert service.pool is not None
    started, finished, queued = threading.Event(), [], []

    def session() -> None:
        started.set()
        time.sleep(0.5)
        finished.append(True)

    workers = file_runtime.settings.ssh_workers
    running = [service.pool.submit(session) for _ in range(workers)]
    never = service.pool.submit(queued.append, True)  # waits behind the busy workers
    assert started.wait(5)
    await service.stop()
    assert len(finished) == workers and all(f.done() for f in running)
    assert never.cancelled() and queued == []


async def test_concurrent_backups_and_collection_on_sqlite_all_succeed(lab_ssh, sink, file_runtime):
    # regression: writers in the pool's threads used to fail with "database is locked" on SQLite
    rt = file_runtime
    rt.settings.ssh_workers = 4
    labs = [lab_ssh.new_device("cisco_ios" if i % 2 else "juniper_junos", f"conc-{i}") for i in range(6)]
    with transaction(rt.sessions) as session:
        ids = [add_to_inventory(session, rt.vault, d) for d in labs]
    service = CliCollectorService(rt, sink=sink)
    await service.start()
    try:
        loop = asyncio.get_running_loop()
        backups = await loop.run_in_executor(None, service.run_backups)
        collected = await loop.run_in_executor(None, service.run_cli)
    finally:
        await service.stop()
    assert [(r.device_id, r.error) for r in backups] == [(i, None) for i in ids]
    assert [(r.device_id, r.error) for r in collected] == [(i, None) for i in ids]
    with transaction(rt.sessions) as session:
        assert sorted(session.scalars(select(ConfigBackup.device_id)).all()) == ids
        assert len(session.scalars(select(CliResult.id)).all()) == sum(
            len(command_table()[d.device_type].commands) for d in labs
        )


async def test_due_work_runs_on_tick_and_device_lock_serializes_sessions(lab_ssh, sink, file_runtime):
    rt = file_runtime
    lab = lab_ssh.new_device("cisco_ios", "tick-ios1")
    with transaction(rt.sessions) as session:
        device_id = add_to_inventory(session, rt.vault, lab)
    frozen = FrozenClock(datetime.now(UTC))
    with clock.use(frozen):
        service = CliCollectorService(rt, sink=sink, tick_s=3600)  # the background loop stays asleep
        await service.start()
        try:
            assert await service.tick() == {}
            frozen.advance(61)
            ran = await service.tick()
            assert sorted(ran) == ["backup", "cli"]
            assert [(r.device_id, r.ok) for r in ran["backup"] + ran["cli"]] == [(device_id, True)] * 2

            # a job holding the device's session: another one waits, then gives up as busy
            with device_session(rt, device_id, sink=sink):
                with pytest.raises(DeviceBusy, match=f"device {device_id} is busy with another SSH session"):
                    with device_session(rt, device_id, sink=sink, lock_timeout_s=0.05):
                        pass
        finally:
            await service.stop()
    families = {f.name: f for f in text_string_to_metric_families(exposition().decode())}
    results = {s.labels["result"] for s in families["faultloop_config_backups"].samples}
    assert "new_version" in results
    assert any(s.labels.get("result") == "ok" for s in families["faultloop_ssh_sessions"].samples)


def test_deleting_a_device_deletes_its_backups_results_and_key(lab_ssh, sink, runtime, session, vault):
    lab = lab_ssh.new_device("juniper_junos", "del-jnp1")
    device_id = add_to_inventory(session, vault, lab)
    backup_device(runtime, device_id, sink=sink)
    collect_device(runtime, device_id, sink=sink)
    inventory.delete_device(session, device_id, actor="test")
    session.commit()
    session.expire_all()
    for model in (ConfigBackup, CliResult, SshHostKey):
        assert session.scalars(select(model).where(model.device_id == device_id)).all() == []
