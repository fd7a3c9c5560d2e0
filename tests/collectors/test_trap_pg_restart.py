"""Issue 15 item 11: a PostgreSQL restart with traps and v2c Informs flowing loses nothing that was
acknowledged. The trap receiver and the alarm engine run as build_pipeline wires them, on a
PostgreSQL server of the test's own (the shared one on 5432 is never restarted); net-snmp's
snmptrap and snmpinform send over real UDP while that server is stopped and started again.

Every Inform the sender saw acknowledged is stored once, every trap sent before, during and after
the outage is stored once (the engine keeps what it accepted and retries with back-off), and an
Inform sent while the database is down is not answered until it is stored."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from alarms.bus import AlarmBus
from alarms.models import EventRecord
from alarms.runner import AlarmEngine
from collectors.receiver import DeviceDirectory
from collectors.traps import TrapReceiverService
from faultloop import migrate
from faultloop.db import make_engine, make_sessionmaker
from faultloop.runtime import Runtime
from faultloop.settings import Settings
from faultloop.vault import Vault
from tests.faultloop.own_postgres import needs_pg_binaries
from tests.faultloop.test_database_restart import server  # noqa: F401 - the test's own PostgreSQL server

from .receivers import random_loopback

pytestmark = [pytest.mark.slow, needs_pg_binaries]

COLD_START = "1.3.6.1.6.3.1.1.5.1"
MARKER_OID = "1.3.6.1.4.1.99999.9"


def _stored(rt: Runtime) -> Counter[str]:
    """How many times each marker is stored in the alarm engine's event table."""
    with rt.sessions() as session:
        raws = session.scalars(select(EventRecord.raw).where(EventRecord.source == "trap")).all()
    return Counter(str(raw.get("varbinds", {}).get(MARKER_OID)) for raw in raws)


async def _until(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout_s} s: {what}")
        await asyncio.sleep(0.1)


async def test_a_postgresql_restart_with_traps_and_informs_flowing_loses_nothing_acknowledged(
    server,  # noqa: F811
    tmp_path: Path,
) -> None:
    engine = make_engine(server.url)
    migrate.upgrade(engine)
    settings = Settings(data_dir=tmp_path / "var", trap_host=random_loopback(63), trap_port=0, alarm_tick_s=0.2)
    rt = Runtime(
        settings=settings, engine=engine, sessions=make_sessionmaker(engine), vault=Vault([Fernet.generate_key()])
    )
    alarm_engine = AlarmEngine(rt, AlarmBus())
    await alarm_engine.start()
    rx = TrapReceiverService(
        settings=settings, sink=alarm_engine, directory=DeviceDirectory(None), sessions=rt.sessions
    )
    await rx.start()
    host, port = rx.receiver.address
    stats = rx.receiver.stats

    def env(marker: str) -> dict[str, str]:  # a persistent dir per sender: concurrent ones do not share files
        return {"MIBS": "", "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "SNMP_PERSISTENT_DIR": str(tmp_path / "snmp" / marker)}  # fmt: skip

    traps: dict[str, list[str]] = {"before": [], "during": [], "after": []}
    informs: dict[str, asyncio.subprocess.Process] = {}

    async def trap(phase: str) -> None:
        marker = f"pgr-trap-{phase}-{len(traps[phase])}"
        proc = await asyncio.create_subprocess_exec(
            "snmptrap", "-v2c", "-c", "public", f"{host}:{port}", "", COLD_START, MARKER_OID, "s", marker,
            env=env(marker),
        )  # fmt: skip
        assert await proc.wait() == 0  # handed to the socket (a trap has no answer)
        traps[phase].append(marker)

    async def inform(phase: str) -> None:
        marker = f"pgr-inform-{phase}-{sum(m.startswith(f'pgr-inform-{phase}') for m in informs)}"
        # one try a second for 90 s: longer than the outage, as a real sender configured for it
        informs[marker] = await asyncio.create_subprocess_exec(
            "snmpinform", "-v2c", "-c", "public", "-t", "1", "-r", "90", f"{host}:{port}", "", COLD_START,
            MARKER_OID, "s", marker, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env(marker),
        )  # fmt: skip

    try:
        for _ in range(10):
            await trap("before")
        for _ in range(3):
            await inform("before")
        before = list(informs)
        await _until(lambda: all(informs[m].returncode is not None for m in before), "the first Informs answered")
        await _until(lambda: sum(_stored(rt)[m] for m in traps["before"]) == 10, "the first traps stored")

        engine.dispose()
        await asyncio.to_thread(server.stop)
        for _ in range(3):
            await inform("during")
        for _ in range(10):
            await trap("during")
            await asyncio.sleep(0.1)
        # the outage really held work back: Inform stores were refused (each retry is a new try)
        await _until(lambda: stats["dropped:store_failed"] >= 6, "Inform stores refused while the database is down")
        await asyncio.sleep(2)  # a few more retries and engine back-offs against the stopped server
        during = [m for m in informs if "-during-" in m]
        assert all(informs[m].returncode is None for m in during)  # none answered while nothing is stored
        await asyncio.to_thread(server.start)

        for _ in range(10):
            await trap("after")
        for _ in range(3):
            await inform("after")
        for marker, proc in informs.items():
            out, _ = await asyncio.wait_for(proc.communicate(), 120)
            assert proc.returncode == 0, f"{marker} was never acknowledged: {out.decode()}"
        everything = [m for phase in traps.values() for m in phase] + list(informs)
        await _until(lambda: all(_stored(rt)[m] >= 1 for m in everything), "every trap and Inform stored")
        await asyncio.sleep(1)  # a late duplicate would show now
        stored = _stored(rt)
        assert {m: stored[m] for m in everything} == dict.fromkeys(everything, 1)  # each exactly once
        assert stats["inform_acknowledged"] == len(informs)
        print(f"PostgreSQL restart: {stats['dropped:store_failed']} Inform store(s) refused, "
              f"{len(everything)} notifications stored once")  # fmt: skip
    finally:
        for proc in informs.values():
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await rx.stop()
        try:
            await alarm_engine.stop()
        except Exception as exc:  # the database is down when the test failed in the outage: keep its error
            print(f"alarm engine stop: {type(exc).__name__}")
        engine.dispose()
