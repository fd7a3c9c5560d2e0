"""What a poller observed, written to the inventory's tables by inventory.service (the poller
hands plain values; only inventory writes interfaces and links) and read back through
inventory.queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from inventory import queries, service
from inventory.errors import InvalidInput
from inventory.models import Interface, Link
from inventory.schemas import DeviceIn, InterfaceIn, ObservedInterface, ObservedNeighbor

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _device(session, vault, hostname: str, address: str, interfaces: list[InterfaceIn]) -> int:
    data = DeviceIn(hostname=hostname, address=address, role="core", interfaces=interfaces)
    return service.create_device(session, vault, data, actor="test").id


@pytest.fixture
def pair(session, vault) -> tuple[int, int]:
    a = _device(
        session,
        vault,
        "pe1",
        "127.0.5.1",
        [
            InterfaceIn(name="Gi0/1", if_index=1, description="to pe2 (operator)"),
            InterfaceIn(name="Gi0/2", description="spare"),
        ],
    )
    b = _device(session, vault, "pe2", "127.0.5.2", [InterfaceIn(name="Gi0/1", if_index=1)])
    return a, b


def test_sync_matches_by_ifindex_then_name_and_adds_unknown_ports(session, pair):
    a, _b = pair
    service.sync_interfaces(
        session,
        device_id=a,
        observed=[
            ObservedInterface(1, "GigabitEthernet0/1", "alias from device", "up", "down", 10_000_000_000),
            ObservedInterface(2, "Gi0/2", "", "down", "down", 0),
            ObservedInterface(7, "Gi0/7" + "x" * 120, "new port alias", "up", "up", 1_000_000_000),
        ],
    )
    got = {i.name: i for i in queries.interfaces(session, a)}
    assert set(got) == {"Gi0/1", "Gi0/2", ("Gi0/7" + "x" * 120)[:100]}
    gi1 = got["Gi0/1"]  # matched by ifIndex: the inventory's name and description stay
    assert (gi1.if_index, gi1.admin_status, gi1.oper_status, gi1.speed_mbps) == (1, "up", "down", 10_000)
    assert gi1.description == "to pe2 (operator)"
    gi2 = got["Gi0/2"]  # matched by name: it learns its ifIndex; speed 0 leaves the speed unknown
    assert (gi2.if_index, gi2.admin_status, gi2.speed_mbps, gi2.description) == (2, "down", None, "spare")
    new = got[("Gi0/7" + "x" * 120)[:100]]
    assert (new.if_index, new.description, new.speed_mbps, new.oper_status) == (7, "new port alias", 1000, "up")


@pytest.mark.parametrize("field", ["admin_status", "oper_status"])
def test_sync_refuses_a_status_the_column_cannot_hold_and_writes_nothing(session, pair, field):
    a, _b = pair
    before = queries.interfaces(session, a)
    good = ObservedInterface(1, "Gi0/1", "", "up", "up", 1_000_000_000)
    bad = ObservedInterface(9, "Gi0/9", "", **{"admin_status": "up", "oper_status": "up", field: "lowerLayerDown"})
    with pytest.raises(InvalidInput) as exc:
        service.sync_interfaces(session, device_id=a, observed=[good, bad])
    assert exc.value.field == field
    assert str(exc.value.detail) == (f"{field}: expected one of up, down, testing, unknown, dormant, notPresent")
    session.expire_all()
    assert queries.interfaces(session, a) == before


def test_lldp_links_are_created_refreshed_and_go_stale(session, pair):
    a, b = pair
    seen = [ObservedNeighbor(1, "Gi0/1", "pe2", "Gi0/1")]
    [link_id] = service.record_lldp_links(session, device_id=a, neighbors=seen, now=NOW)
    [link] = queries.links(session)
    assert (link.id, link.source, link.state) == (link_id, "discovered", "active")
    assert {link.a.device_id, link.b.device_id} == {a, b}
    assert link.a.id < link.b.id

    # seen again from the other end (by port name): the same link, last seen later
    later = NOW + timedelta(minutes=5)
    assert service.record_lldp_links(
        session, device_id=b, neighbors=[ObservedNeighbor(99, "Gi0/1", "pe1", "Gi0/1")], now=later
    ) == [link_id]
    assert session.get_one(Link, link_id).last_seen_at == later

    # unknown peers, an empty remote name and a loop to itself are ignored; the link goes stale
    ignored = [
        ObservedNeighbor(1, "Gi0/1", "nowhere", "Gi0/1"),
        ObservedNeighbor(1, "Gi0/1", "", "Gi0/1"),
        ObservedNeighbor(1, "Gi0/1", "pe1", "Gi0/1"),
    ]
    assert service.record_lldp_links(session, device_id=a, neighbors=ignored, now=later) == []
    assert [(lk.id, lk.state) for lk in queries.links(session)] == [(link_id, "stale")]


def test_lldp_links_refuse_a_time_without_timezone_and_write_nothing(session, pair):
    a, _b = pair
    with pytest.raises(InvalidInput) as exc:
        service.record_lldp_links(
            session, device_id=a, neighbors=[ObservedNeighbor(1, "Gi0/1", "pe2", "Gi0/1")], now=datetime(2026, 3, 1)
        )
    assert exc.value.field == "now"
    assert str(exc.value.detail) == "now: expected a timestamp with a timezone"
    assert session.scalar(select(func.count()).select_from(Link)) == 0


def test_directory_and_baseline_snapshots(session, pair):
    a, b = pair
    service.sync_interfaces(session, device_id=b, observed=[ObservedInterface(1, "Gi0/1", "", "up", "down", None)])
    assert sorted(queries.device_addresses(session)) == [("pe1", "127.0.5.1"), ("pe2", "127.0.5.2")]
    # Gi0/2 of pe1 has no ifIndex: a trap cannot name it
    assert sorted(queries.interface_names(session)) == [("pe1", 1, "Gi0/1"), ("pe2", 1, "Gi0/1")]
    # pe1's interfaces were never polled (status unknown): no baseline to compare with
    assert queries.known_oper_status(session) == {b: {1: "down"}}
    assert queries.known_oper_status(session, device_ids=[a]) == {}
    assert queries.known_oper_status(session, device_ids=[]) == {}
    assert queries.existing_device_ids(session, [a, b, 10_000]) == {a, b}
    assert [d.hostname for d in queries.devices_by_name(session)] == ["pe1", "pe2"]
    assert session.scalar(select(func.count()).select_from(Interface)) == 3
