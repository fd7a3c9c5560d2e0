"""Inventory, poll results, samples and backups for the dashboard's device pages, made
through the domain services (inventory, collectors) the way the poller and the API do."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count

from sqlalchemy.orm import Session

from collectors import backup
from collectors import service as collectors
from collectors.snmp_poll import InterfaceState, Neighbor, PollResult, Snapshot
from faultloop import clock
from faultloop.events import Sample
from faultloop.vault import Vault
from inventory import service as inventory
from inventory.models import Device, Link, Site
from inventory.schemas import DeviceIn, InterfaceIn, LinkIn, SiteIn

_addresses = count(1)


def _address() -> str:
    n = next(_addresses)
    return f"198.18.{n // 250 % 250}.{n % 250 + 1}"


def site(session: Session, name: str) -> Site:
    return inventory.create_site(session, SiteIn(name=name), actor="test")


def device(
    session: Session,
    vault: Vault,
    hostname: str,
    *,
    role: str = "access",
    site: str | None = None,
    ports: int = 2,
    vendor: str = "cisco",
    platform: str = "ios",
    address: str | None = None,
) -> Device:
    interfaces = [InterfaceIn(name=f"Gi0/{n}", if_index=n, speed_mbps=1000) for n in range(1, ports + 1)]
    data = DeviceIn(
        hostname=hostname,
        address=address or _address(),
        site=site,
        role=role,
        vendor=vendor,
        platform=platform,
        interfaces=interfaces,
    )
    return inventory.create_device(session, vault, data, actor="test")


def link(session: Session, a: str, a_itf: str, b: str, b_itf: str) -> Link:
    return inventory.create_link(
        session, LinkIn(a_device=a, a_interface=a_itf, b_device=b, b_interface=b_itf), actor="test"
    )


def discovered_link(session: Session, dev: Device, local: str, if_index: int, remote: str, remote_port: str) -> Link:
    [found] = collectors.apply_neighbors(
        session,
        device_id=dev.id,
        neighbors=[Neighbor(local_if_index=if_index, local_port=local, remote_name=remote, remote_port=remote_port)],
        now=clock.now(),
    )
    return session.get_one(Link, found)


def poll(
    session: Session,
    dev: Device,
    *,
    interfaces: list[InterfaceState] | None = None,
    sys_name: str = "",
    sys_descr: str = "",
    sys_location: str = "",
    uptime_cs: int | None = 360_000,
    at: datetime | None = None,
) -> None:
    """A successful poll as the poller records it (state, interfaces)."""
    snap = Snapshot(
        sys_descr=sys_descr,
        sys_name=sys_name or dev.hostname,
        sys_location=sys_location,
        sys_object_id="1.3.6.1.4.1.9.1.1208",
        uptime_cs=uptime_cs,
        interfaces={i.if_index: i for i in (interfaces or [])},
        cpu_percent=12.0,
        memory_percent=40.0,
    )
    result = PollResult(device=dev.hostname, ok=True, time=at or clock.now(), duration_s=0.05, snapshot=snap)
    collectors.record_poll(session, device_id=dev.id, result=result, reachable=True, failures=0)


def failed_poll(session: Session, dev: Device, *, failures: int = 3) -> None:
    result = PollResult(device=dev.hostname, ok=False, time=clock.now(), duration_s=2.0, error="timeout", timeout=True)
    collectors.record_poll(session, device_id=dev.id, result=result, reachable=False, failures=failures)


def traffic(session: Session, dev: Device, interface: str, *, in_bps: float, out_bps: float, minutes: int = 30) -> None:
    """One sample per minute of in/out bit rates, ending now (as the poller stores them)."""
    now = clock.now()
    samples = []
    for m in range(minutes, -1, -1):
        t = now - timedelta(minutes=m)
        labels = {"interface": interface}
        ramp = (minutes - m + 1) / (minutes + 1)  # rising, so the last value is the given rate
        samples.append(Sample(dev.hostname, "interface_in_bits_per_second", in_bps * ramp, t, labels))
        samples.append(Sample(dev.hostname, "interface_out_bits_per_second", out_bps * ramp, t, labels))
    result = PollResult(device=dev.hostname, ok=True, time=now, duration_s=0.0, samples=samples)
    collectors.add_samples(session, device_id=dev.id, result=result)


def config(session: Session, vault: Vault, dev: Device, text: str, actor: str = "test") -> int:
    row, _previous, _created = backup.store_backup(
        session, vault, device=dev, text=text, trigger="on_demand", actor=actor
    )
    return row.id
