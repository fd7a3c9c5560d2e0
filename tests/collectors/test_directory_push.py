"""Inventory changes reach the receivers' device directory right after they commit: a device
added through the API (this process: the inventory's after-commit signal) or the CLI (another
process: the stored inventory revision) has its very next trap attributed to it, not to a bare
address until the next full refresh (``refresh_s`` is an hour in these tests)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys

from sqlalchemy.orm import sessionmaker

from collectors.receiver import DeviceDirectory
from collectors.traps import TrapReceiverService
from faultloop.db import make_engine
from faultloop.settings import Settings
from faultloop.signals import INVENTORY_CHANGED, ChangeSignal
from inventory import service as inventory
from inventory.schemas import DeviceIn, InterfaceIn

from .receivers import CollectingSink, random_loopback
from .test_traps import IF_INDEX, LINK_DOWN, net_snmp

HOUR = 3600.0


async def until(predicate, what: str, timeout: float = 10.0) -> None:
    """Wait for a condition the code under test makes true (a deadline, not a sleep for a race)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def start_receiver(tmp_path, directory: DeviceDirectory, sink: CollectingSink) -> TrapReceiverService:
    settings = Settings(data_dir=tmp_path / "var", trap_host=random_loopback(52), trap_port=0)
    service = TrapReceiverService(settings=settings, sink=sink, directory=directory)
    await service.start()
    return service


async def send_link_down(tmp_path, service: TrapReceiverService, source: str, if_index: int) -> None:
    host, port = service.receiver.address
    args = ["-v2c", "-c", "public", f"{host}:{port}", "", LINK_DOWN, f"{IF_INDEX}.{if_index}", "i", str(if_index)]
    rc, out = await net_snmp(tmp_path, "snmptrap", *args, source=source)
    assert rc == 0, out


async def test_device_added_through_the_api_is_pushed_to_the_directory(tmp_path, runtime, client, auth):
    directory = DeviceDirectory(runtime.sessions, refresh_s=HOUR, changes=INVENTORY_CHANGED, check_s=HOUR)
    await directory.start()
    sink = CollectingSink()
    service = await start_receiver(tmp_path, directory, sink)
    try:
        loaded = directory.reloads
        address = random_loopback(53)
        body = {
            "hostname": "new-edge",
            "address": address,
            "role": "access",
            "interfaces": [{"name": "Gi0/5", "if_index": 5}],
        }
        r = client.post("/api/v1/devices", json=body, headers=auth("admin"))
        assert r.status_code == 201, r.text
        await until(lambda: directory.reloads > loaded, "the directory to reload after the commit")
        await send_link_down(tmp_path, service, address, 5)
        [event] = await sink.wait_for(lambda ev: len(ev) >= 1)
    finally:
        await service.stop()
        await directory.stop()
    assert (event.device, event.managed_object) == ("new-edge", "interface:Gi0/5")


def test_inventory_changes_are_told_after_commit_and_never_on_rollback(runtime, vault):
    told: list[str] = []

    def record() -> None:
        told.append("changed")

    INVENTORY_CHANGED.subscribe(record)
    try:
        with runtime.sessions() as session:
            inventory.create_device(
                session, vault, DeviceIn(hostname="ghost", address="127.54.0.1", role="access"), actor="test"
            )
            assert told == []  # not before the commit
            session.rollback()
            assert told == []
            inventory.create_device(
                session, vault, DeviceIn(hostname="real", address="127.54.0.2", role="access"), actor="test"
            )
            inventory.create_device(
                session, vault, DeviceIn(hostname="real2", address="127.54.0.3", role="access"), actor="test"
            )
            session.commit()
        assert told == ["changed"]  # once per transaction
    finally:
        INVENTORY_CHANGED.unsubscribe(record)


async def test_device_added_by_the_cli_is_seen_through_the_inventory_revision(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAULTLOOP_")}
    env.update(FAULTLOOP_DATA_DIR=str(tmp_path / "var"), FAULTLOOP_CONFIG=str(tmp_path / "none.toml"))

    def cli(*args: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "faultloop.cmd", *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)

    cli("db", "upgrade")
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'faultloop.db'}")
    directory = DeviceDirectory(sessionmaker(bind=engine), refresh_s=HOUR, changes=ChangeSignal("unused"))
    await directory.start()
    sink = CollectingSink()
    service = await start_receiver(tmp_path, directory, sink)
    try:
        loaded = directory.reloads
        address = random_loopback(55)
        await asyncio.to_thread(cli, "device", "add", "cli-edge", "--address", address, "--role", "cpe")
        await until(lambda: directory.reloads > loaded, "the directory to notice the CLI's commit")
        await send_link_down(tmp_path, service, address, 9)
        [event] = await sink.wait_for(lambda ev: len(ev) >= 1)
    finally:
        await service.stop()
        await directory.stop()
        engine.dispose()
    assert event.device == "cli-edge"


def test_inventory_revision_moves_only_when_devices_or_interfaces_change(session, vault):
    from inventory import queries
    from inventory.schemas import ObservedInterface, SiteIn

    start = queries.revision(session)
    inventory.create_site(session, SiteIn(name="rev-site"), actor="test")
    assert queries.revision(session) == start  # sites do not change what the receivers map
    device = inventory.create_device(
        session,
        vault,
        DeviceIn(hostname="rev1", address="127.56.0.1", role="access", interfaces=[InterfaceIn(name="e0", if_index=1)]),
        actor="test",
    )
    assert queries.revision(session) == start + 1
    session.commit()
    up = ObservedInterface(if_index=1, name="e0", alias="", admin_status="up", oper_status="up", speed_bps=0)
    inventory.sync_interfaces(session, device_id=device.id, observed=[up])
    assert queries.revision(session) == start + 1  # status only: nothing the receivers map
    inventory.sync_interfaces(session, device_id=device.id, observed=[dataclasses.replace(up, if_index=2)])
    assert queries.revision(session) == start + 2
