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


def _keep(_device_id: int) -> None:
    """No SSH host key pins in these tests."""


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


# ---- ports identified by ifIndex (names repeat on real equipment) --------------------------------


def test_ports_that_repeat_a_name_get_one_row_each_with_a_stable_display_name(session, vault):
    dev = _device(session, vault, "mx1", "127.0.5.9", [InterfaceIn(name="lo0", description="loopback (operator)")])
    observed = [
        ObservedInterface(16, "lo0", "router id", "up", "up", None),
        ObservedInterface(22, "lo0", "mgmt vrf", "up", "up", None),
        ObservedInterface(3, "ge-0/0/0", "uplink", "up", "up", 1_000_000_000),
    ]
    got = service.sync_interfaces(session, device_id=dev, observed=observed)
    assert got.names == {3: "ge-0/0/0", 16: "lo0", 22: "lo0#22"} and got.refused == 0
    rows = {i.name: i for i in queries.interfaces(session, dev)}
    assert {n: (r.if_index, r.alias) for n, r in rows.items()} == {
        "ge-0/0/0": (3, "uplink"),
        "lo0": (16, "router id"),  # the imported port learned its ifIndex
        "lo0#22": (22, "mgmt vrf"),
    }
    assert rows["lo0"].description == "loopback (operator)"

    # the next polls: the same rows, the same names, whatever order the walk lists them in
    again = service.sync_interfaces(session, device_id=dev, observed=list(reversed(observed)))
    assert again.names == got.names
    assert session.scalar(select(func.count()).select_from(Interface).where(Interface.device_id == dev)) == 3
    # a third lo0 with a lower ifIndex appears later: the names already given stay
    third = service.sync_interfaces(
        session, device_id=dev, observed=[*observed, ObservedInterface(2, "lo0", "", "up", "up")]
    )
    assert third.names == {**got.names, 2: "lo0#2"}
    # a poll that read only part of the table takes over no port it did not read
    part = service.sync_interfaces(
        session, device_id=dev, observed=[ObservedInterface(5, "lo0", "", "up", "up")], complete=False
    )
    assert part.names == {5: "lo0#5"}
    assert {i.name: i.if_index for i in queries.interfaces(session, dev)}["lo0"] == 16


def test_a_renumbered_port_keeps_its_row_when_the_poll_read_the_whole_table(session, pair):
    a, _b = pair
    got = service.sync_interfaces(session, device_id=a, observed=[ObservedInterface(41, "Gi0/1", "", "up", "up")])
    assert got.names == {41: "Gi0/1"}  # ifIndex 1 is gone: the device renumbered it (reboot)
    assert [(i.name, i.if_index) for i in queries.interfaces(session, a) if i.name == "Gi0/1"] == [("Gi0/1", 41)]


def test_the_device_ifalias_is_kept_in_sync_for_imported_ports_too(session, pair):
    a, _b = pair
    for alias in ("cust-42 circuit A", "cust-42 circuit B", ""):
        service.sync_interfaces(session, device_id=a, observed=[ObservedInterface(1, "Gi0/1", alias, "up", "up")])
        gi1 = next(i for i in queries.interfaces(session, a) if i.name == "Gi0/1")
        assert (gi1.alias, gi1.description) == (alias, "to pe2 (operator)")


def test_a_poll_creates_no_interface_rows_beyond_the_cap(session, pair):
    a, _b = pair  # two rows already: Gi0/1 (ifIndex 1) and Gi0/2
    observed = [ObservedInterface(i, f"ge-{i}", "", "up", "up") for i in range(1, 2001)]
    got = service.sync_interfaces(session, device_id=a, observed=observed, max_interfaces=5)
    assert got.refused == 2000 - 4  # Gi0/1 matched, three new rows, the rest refused
    assert session.scalar(select(func.count()).select_from(Interface).where(Interface.device_id == a)) == 5
    assert sorted(got.names) == [1, 2, 3, 4]
    # known ports are still updated when the device is full
    again = service.sync_interfaces(
        session, device_id=a, observed=[ObservedInterface(4, "ge-4", "", "down", "down")], max_interfaces=5
    )
    assert again.refused == 0 and again.names == {4: "ge-4"}
    assert session.scalar(select(func.count()).select_from(Interface).where(Interface.device_id == a)) == 5


def test_sync_refuses_a_negative_cap_and_writes_nothing(session, pair):
    a, _b = pair
    before = queries.interfaces(session, a)
    with pytest.raises(InvalidInput) as exc:
        service.sync_interfaces(
            session, device_id=a, observed=[ObservedInterface(9, "Gi0/9", "", "up", "up")], max_interfaces=-1
        )
    assert (exc.value.field, str(exc.value.detail)) == ("max_interfaces", "max_interfaces: expected a number >= 0")
    session.expire_all()
    assert queries.interfaces(session, a) == before


def test_one_interface_per_ifindex_through_the_inventory_writers(session, vault, pair):
    a, _b = pair
    from inventory.errors import Conflict
    from inventory.schemas import InterfaceUpdate

    before = queries.interfaces(session, a)
    with pytest.raises(Conflict) as exc:
        service.create_interface(session, device_id=a, data=InterfaceIn(name="lo0", if_index=1), actor="t")
    assert str(exc.value.detail) == "if_index: 1 is already interface 'Gi0/1' of pe1"
    gi2 = next(i for i in before if i.name == "Gi0/2")
    with pytest.raises(Conflict) as exc:
        service.update_interface(session, gi2.id, InterfaceUpdate(if_index=1), actor="t")
    assert exc.value.field == "if_index"
    session.expire_all()
    assert queries.interfaces(session, a) == before

    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"interfaces\[1\]: duplicate if_index 4 \(one interface per ifIndex\)"):
        DeviceIn(
            hostname="x",
            address="127.0.5.7",
            role="core",
            interfaces=[InterfaceIn(name="lo0", if_index=4), InterfaceIn(name="lo1", if_index=4)],
        )


def test_an_import_that_gives_a_port_another_ports_ifindex_is_refused_whole(session, vault, pair):
    from inventory.schemas import InventoryDoc

    a, _b = pair
    before = queries.interfaces(session, a)
    doc = {
        "devices": [
            {"hostname": "pe1", "address": "127.0.5.1", "role": "core",
             "interfaces": [{"name": "Gi0/2", "description": "renamed"}, {"name": "lo0", "if_index": 1}]},
        ]
    }  # fmt: skip
    nested = session.begin_nested()  # the caller's transaction, rolled back on the error
    with pytest.raises(InvalidInput) as exc:
        service.import_inventory(session, vault, InventoryDoc.model_validate(doc), actor="t", forget_host_key=_keep)
    assert str(exc.value.detail) == "devices[0] (pe1): interfaces[1]: if_index 1 is already interface 'Gi0/1' of pe1"
    nested.rollback()
    assert queries.interfaces(session, a) == before


def test_an_import_may_swap_the_ifindexes_of_two_ports(session, vault, pair):
    from inventory.schemas import InventoryDoc

    a, _b = pair
    service.sync_interfaces(session, device_id=a, observed=[ObservedInterface(2, "Gi0/2", "", "up", "up")])
    doc = {
        "devices": [
            {"hostname": "pe1", "address": "127.0.5.1", "role": "core",
             "interfaces": [{"name": "Gi0/1", "if_index": 2}, {"name": "Gi0/2", "if_index": 1}]},
        ]
    }  # fmt: skip
    service.import_inventory(session, vault, InventoryDoc.model_validate(doc), actor="t", forget_host_key=_keep)
    assert {i.name: i.if_index for i in queries.interfaces(session, a)} == {"Gi0/1": 2, "Gi0/2": 1}
