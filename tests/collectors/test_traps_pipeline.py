"""The receivers as wired by ``faultloop.cmd.app.build_pipeline``: one shared device directory
loaded from the inventory, trap and syslog receivers feeding the sink they were given."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.orm import sessionmaker

from collectors.receiver import DeviceDirectory
from collectors.syslog import SyslogReceiverService
from collectors.traps import TrapReceiverService
from faultloop.cmd.app import Pipeline, build_pipeline
from faultloop.db import make_engine
from faultloop.runtime import Runtime
from faultloop.settings import Settings
from inventory import service as inventory
from inventory.schemas import DeviceIn, InterfaceIn

from ..snmpwire.packets import v2c_trap
from .receivers import CollectingSink, random_loopback, udp_from
from .test_traps import net_snmp


async def test_build_pipeline_wires_directory_and_both_receivers(tmp_path, db_engine, session, sessions, vault):
    source = random_loopback(47)
    inventory.create_device(
        session,
        vault,
        DeviceIn(
            hostname="pe1",
            address=source,
            role="core",
            interfaces=[InterfaceIn(name="xe-0/0/1", if_index=511)],
        ),
        actor="test",
    )
    session.flush()
    settings = Settings(
        data_dir=tmp_path / "var",
        trap_host=random_loopback(48),
        trap_port=0,
        syslog_host=random_loopback(48),
        syslog_port=0,
    )
    rt = Runtime(settings=settings, engine=db_engine, sessions=sessions, vault=vault)
    sink = CollectingSink()
    wired = build_pipeline(rt, sink=sink).services
    mine = [s for s in wired if isinstance(s, DeviceDirectory | TrapReceiverService | SyslogReceiverService)]
    assert [s.name for s in mine] == ["device directory", "trap receiver", "syslog receiver"]
    directory, traps, syslog = mine
    assert isinstance(traps, TrapReceiverService) and isinstance(syslog, SyslogReceiverService)
    assert traps.directory is directory and syslog.directory is directory
    pipeline = Pipeline(list(mine))
    await pipeline.start()
    try:
        assert isinstance(directory, DeviceDirectory) and directory.device_for(source) == "pe1"
        host, port = traps.receiver.address
        rc, out = await net_snmp(
            tmp_path,
            "snmptrap",
            "-v2c",
            "-c",
            "public",
            f"{host}:{port}",
            "",
            "1.3.6.1.6.3.1.1.5.4",
            "1.3.6.1.2.1.2.2.1.1.511",
            "i",
            "511",
            source=source,
        )
        assert rc == 0, out
        with udp_from(source) as s:
            s.sendto(b"<189>mgd[77]: UI_COMMIT: User 'noc' requested 'commit' operation", syslog.receiver.address)
        events = await sink.wait_for(lambda ev: len(ev) >= 2)
    finally:
        await pipeline.stop()
    by_source = {e.source: e for e in events}
    assert (by_source["trap"].device, by_source["trap"].event_type, by_source["trap"].managed_object) == (
        "pe1",
        "linkUp",
        "interface:xe-0/0/1",
    )
    assert (by_source["syslog"].device, by_source["syslog"].event_type) == ("pe1", "config_changed")


def test_receivers_are_not_wired_when_disabled(tmp_path, db_engine, sessions, vault):
    settings = Settings(data_dir=tmp_path / "var", trap_enabled=False, syslog_enabled=False)
    rt = Runtime(settings=settings, engine=db_engine, sessions=sessions, vault=vault)
    services = build_pipeline(rt, sink=CollectingSink()).services
    assert not [s for s in services if isinstance(s, DeviceDirectory | TrapReceiverService | SyslogReceiverService)]


async def test_directory_survives_database_outage_and_keeps_last_map(caplog):
    caplog.set_level(logging.WARNING, logger="collectors.receiver")
    dead = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 2})
    directory = DeviceDirectory(sessionmaker(bind=dead), refresh_s=3600)
    directory.by_address = {"127.49.0.1": "kept"}
    await directory.start()  # does not raise: the receivers must keep running
    try:
        assert await directory.refresh() is False
    finally:
        await directory.stop()
        dead.dispose()
    assert directory.device_for("127.49.0.1") == "kept"
    assert "device directory refresh failed: OperationalError" in caplog.text


async def test_trap_and_syslog_queues_are_separate(tmp_path):
    settings = Settings(
        data_dir=tmp_path, trap_host=random_loopback(48), trap_port=0, syslog_host=random_loopback(48), syslog_port=0
    )
    sink = CollectingSink()
    directory = DeviceDirectory(None)
    traps = TrapReceiverService(settings=settings, sink=sink, directory=directory)
    syslog = SyslogReceiverService(settings=settings, sink=sink, directory=directory)
    await traps.start()
    await syslog.start()
    try:
        with udp_from(random_loopback(49)) as s:
            # a syslog line sent to the trap port first: same socket, so it is handled before the trap
            s.sendto(b"<189>%SYS-5-CONFIG_I: Configured from console", traps.receiver.address)
            s.sendto(v2c_trap("1.3.6.1.6.3.1.1.5.1", "t"), traps.receiver.address)
            s.sendto(b"<189>%SYS-5-CONFIG_I: Configured from console", syslog.receiver.address)
        await sink.wait_for(lambda ev: len(ev) >= 2)
    finally:
        await traps.stop()
        await syslog.stop()
    assert sorted(e.source for e in sink.events) == ["syslog", "trap"]
    assert traps.receiver.stats["malformed"] == 1


async def test_trap_to_alarm_through_the_alarm_engine(tmp_path, runtime, session, vault):
    """linkDown trap -> receiver -> the real alarm engine (the sink build_pipeline wires) -> an
    active alarm on the interface; linkUp clears it."""
    from sqlalchemy import select

    from alarms.bus import AlarmBus
    from alarms.models import Alarm
    from alarms.runner import AlarmEngine

    source = random_loopback(50)
    inventory.create_device(
        session,
        vault,
        DeviceIn(
            hostname="agg3", address=source, role="distribution", interfaces=[InterfaceIn(name="Gi0/3", if_index=3)]
        ),
        actor="test",
    )
    session.flush()
    engine = AlarmEngine(runtime, AlarmBus())
    engine.load()
    directory = DeviceDirectory(runtime.sessions)
    directory.load()
    settings = Settings(data_dir=tmp_path / "var", trap_host=random_loopback(48), trap_port=0)
    traps = TrapReceiverService(settings=settings, sink=engine, directory=directory)
    await traps.start()
    host, port = traps.receiver.address
    try:
        for trap_oid in ("1.3.6.1.6.3.1.1.5.3", "1.3.6.1.6.3.1.1.5.4"):
            args = ["-v2c", "-c", "public", f"{host}:{port}", "", trap_oid, "1.3.6.1.2.1.2.2.1.1.3", "i", "3"]
            rc, out = await net_snmp(tmp_path, "snmptrap", *args, source=source)
            assert rc == 0, out
            while traps.receiver.stats["events"] < (1 if trap_oid.endswith(".3") else 2):
                await asyncio.sleep(0.005)
            engine.run_once()
            alarms = session.scalars(select(Alarm).where(Alarm.device == "agg3")).all()
            assert [(a.alarm_type, a.managed_object, a.source) for a in alarms] == [
                ("link_down", "interface:Gi0/3", "trap")
            ]
            session.expire_all()
    finally:
        await traps.stop()
    [alarm] = session.scalars(select(Alarm).where(Alarm.device == "agg3")).all()
    assert alarm.cleared_at is not None  # the linkUp trap cleared it


def test_cli_receivers_check(tmp_path):
    import os
    import subprocess
    import sys

    from .test_traps import AUTH_PASS, USERS

    users = tmp_path / "users.yaml"
    users.write_text(USERS)
    users.chmod(0o600)
    bad = tmp_path / "bad-rules.yaml"
    bad.write_text("rules: [{name: r, pattern: '(', event_type: x, severity: major}]")
    env = {**os.environ, "FAULTLOOP_DATA_DIR": str(tmp_path / "var"), "COLUMNS": "300"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "faultloop.cmd", "receivers", "check", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)

    ok = run("--users", str(users))
    assert (ok.returncode, ok.stdout.strip()) == (0, "ok: 15 trap mappings, 3 SNMPv3 users, 12 syslog rules")
    assert AUTH_PASS not in ok.stdout + ok.stderr
    failed = run("--syslog-rules", str(bad))
    assert failed.returncode == 2
    assert failed.stderr.startswith(f"error: {bad}: rules entry 1 (r): field 'pattern': not a valid regular expression")
    assert len(failed.stderr.strip().splitlines()) == 1 and "Traceback" not in failed.stderr
