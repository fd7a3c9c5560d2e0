"""An SNMP Inform is acknowledged only once its event is durable (the alarm engine's queue,
``alarm_events``, committed): net-snmp's snmpinform against the real receiver and a real SQLite
file whose write lock another connection holds."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

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
from snmpwire import ber, pdu

from ..snmpwire.packets import UPTIME
from .receivers import random_loopback, udp_from

COLD_START = "1.3.6.1.6.3.1.1.5.1"


@pytest.fixture
async def durable_rx(tmp_path: Path) -> AsyncIterator[tuple[TrapReceiverService, Runtime, Path]]:
    """The trap receiver wired as build_pipeline wires it: the alarm engine (not started) as its
    durable sink, on a SQLite file of its own with real commits."""
    db = tmp_path / "informs.db"
    engine = make_engine(f"sqlite:///{db}")
    migrate.upgrade(engine)
    settings = Settings(data_dir=tmp_path / "var", trap_host=random_loopback(61), trap_port=0)
    vault = Vault([Fernet.generate_key()])
    rt = Runtime(settings=settings, engine=engine, sessions=make_sessionmaker(engine), vault=vault)
    alarm_engine = AlarmEngine(rt, AlarmBus())
    rx = TrapReceiverService(
        settings=settings, sink=alarm_engine, directory=DeviceDirectory(None), sessions=rt.sessions
    )
    await rx.start()
    try:
        yield rx, rt, db
    finally:
        await rx.stop()
        engine.dispose()


def stored_informs(rt: Runtime) -> int:
    with rt.sessions() as session:
        return session.scalar(
            select(func.count()).select_from(EventRecord).where(EventRecord.event_type == "coldStart")
        ) or 0  # fmt: skip


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout_s} s: {what}")
        await asyncio.sleep(0.02)


async def test_an_inform_is_answered_only_after_its_event_is_committed(durable_rx, tmp_path):
    rx, rt, db = durable_rx
    stats = rx.receiver.stats
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # another process holds the database's write lock
    host, port = rx.receiver.address
    env = {"MIBS": "", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SNMP_PERSISTENT_DIR": str(tmp_path / "snmp")}
    sender = await asyncio.create_subprocess_exec(
        "snmpinform", "-v2c", "-c", "public", "-t", "1", "-r", "60", f"{host}:{port}", "", COLD_START,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        # the sender got no answer and sent the Inform again (not stored a second time)
        await until(lambda: stats["inform_retransmitted"] >= 2, "two retransmissions of the Inform")
        assert sender.returncode is None  # still waiting for its Response
        assert stats["inform_acknowledged"] == 0 and stored_informs(rt) == 0
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    out, _ = await asyncio.wait_for(sender.communicate(), 60)
    assert sender.returncode == 0, out.decode()  # answered at last
    assert stored_informs(rt) == 1  # exactly once
    assert stats["inform_acknowledged"] == 1


def v2c_inform(request_id: int, marker: str) -> bytes:
    vbs = [
        UPTIME,
        pdu.varbind(ber.enc_oid(pdu.SNMP_TRAP_OID_0), ber.enc_oid(ber.parse_oid_str(COLD_START))),
        pdu.varbind(ber.enc_oid((1, 3, 6, 1, 4, 1, 99999, 9)), ber.enc_octets(marker.encode())),
    ]
    return pdu.encode_community(1, b"public", pdu.encode_pdu(ber.INFORM, request_id, 0, 0, vbs))


async def test_a_retransmitted_inform_already_stored_is_answered_again_not_stored_again(durable_rx):
    """The Response was lost on the way back: the sender's retry gets the same Response."""
    rx, rt, _db = durable_rx
    loop = asyncio.get_running_loop()
    with udp_from(random_loopback(62)) as s:
        s.setblocking(False)
        datagram = v2c_inform(4242, "once")
        s.sendto(datagram, rx.receiver.address)
        first = await asyncio.wait_for(loop.sock_recv(s, 65535), 10)
        s.sendto(datagram, rx.receiver.address)
        second = await asyncio.wait_for(loop.sock_recv(s, 65535), 10)
        other = v2c_inform(4243, "twice")  # another Inform from the same sender is its own event
        s.sendto(other, rx.receiver.address)
        third = await asyncio.wait_for(loop.sock_recv(s, 65535), 10)
    assert first == second != third
    assert pdu.decode_response(first)[2] == 4242 and pdu.decode_response(third)[2] == 4243
    assert stored_informs(rt) == 2
    assert rx.receiver.stats["inform_retransmitted"] == 1
