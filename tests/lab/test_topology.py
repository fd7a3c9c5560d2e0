"""Topology loading, validation messages, the generator and the demo file."""

from __future__ import annotations

import copy
import ipaddress
from collections import Counter
from pathlib import Path

import pytest
import yaml

from lab.topology import (
    TopologyError,
    address_at,
    default_demo_topology,
    generate_topology,
    load_topology,
)

BASE = {
    "snmp_port": 16100,
    "devices": [
        {
            "name": "core1",
            "address": "127.0.1.1",
            "role": "core",
            "device_type": "cisco_ios",
            "interfaces": [{"name": "GigabitEthernet0/1"}, {"name": "GigabitEthernet0/2"}],
        },
        {
            "name": "dist1",
            "address": "127.0.1.2",
            "role": "distribution",
            "device_type": "cisco_ios",
            "interfaces": [{"name": "GigabitEthernet0/1", "speed_mbps": 10000}],
        },
        {
            "name": "cpe1",
            "address": "127.0.1.3",
            "role": "cpe",
            "device_type": "juniper_junos",
            "interfaces": [{"name": "ge-0/0/0", "speed_mbps": 100}],
        },
    ],
    "links": [
        {
            "a_device": "core1",
            "a_interface": "GigabitEthernet0/1",
            "b_device": "dist1",
            "b_interface": "GigabitEthernet0/1",
        },
        {"a_device": "core1", "a_interface": "GigabitEthernet0/2", "b_device": "cpe1", "b_interface": "ge-0/0/0"},
    ],
}


def _write(tmp_path: Path, data) -> Path:
    p = tmp_path / "topo.yaml"
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


def test_valid_file_loads_with_neighbours_and_parents(tmp_path: Path) -> None:
    topo = load_topology(_write(tmp_path, BASE))
    assert [d.name for d in topo.devices] == ["core1", "dist1", "cpe1"]
    dist1 = topo.device("dist1")
    assert dist1.parents == ["core1"] and dist1.snmp_port == 16100
    assert dist1.interface("GigabitEthernet0/1").neighbor == ("core1", "GigabitEthernet0/1")
    assert topo.device("cpe1").vendor == "juniper" and topo.device("cpe1").parents == ["core1"]
    assert topo.links[1] == ("core1", "GigabitEthernet0/2", "cpe1", "ge-0/0/0")


def _mutate(path: list, value):
    data = copy.deepcopy(BASE)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ["devices", 1, "role"],
            "edge",
            "devices[1] (dist1): field 'role': expected one of core, distribution, access, cpe, got 'edge'",
        ),
        (["devices", 2, "address"], KeyError, "devices[2] (cpe1): field 'address': required"),
        (["devices", 2, "address"], "127.0.1.300", "devices[2] (cpe1): field 'address': expected an IPv4 address"),
        (["devices", 1, "name"], "core1", "devices[1] (core1): field 'name': duplicate device name"),
        (
            ["devices", 1, "address"],
            "127.0.1.1",
            "devices[1] (dist1): field 'address': 127.0.1.1:16100 already used by device 'core1'",
        ),
        (
            ["devices", 0, "device_type"],
            "cisco_nxos",
            "devices[0] (core1): field 'device_type': expected one of cisco_ios, juniper_junos, got 'cisco_nxos'",
        ),
        (
            ["devices", 1, "interfaces", 0, "speed_mbps"],
            -5,
            "devices[1] (dist1).interfaces[0] (GigabitEthernet0/1): field 'speed_mbps': expected a positive integer",
        ),
        (["devices", 1, "interfaces"], [], "devices[1] (dist1): field 'interfaces': expected a non-empty list"),
        (["devices", 0, "colour"], "red", "devices[0] (core1): field 'colour': unknown field"),
        (
            ["links", 0, "b_interface"],
            "Gi9/9",
            "links[0]: field 'b_interface': device 'dist1' has no interface 'Gi9/9'",
        ),
        (["links", 1, "b_device"], "ghost", "links[1]: field 'b_device': unknown device 'ghost'"),
        (
            ["links", 1, "a_interface"],
            "GigabitEthernet0/1",
            "links[1]: field 'a_interface': core1 GigabitEthernet0/1 is already in links[0]",
        ),
        (["snmp_port"], 70000, "top level: field 'snmp_port': expected a port number 1-65535, got 70000"),
        (["devices", 0, "parents"], ["nobody"], "devices[0] (core1): field 'parents': unknown device 'nobody'"),
    ],
)
def test_invalid_topology_names_entry_and_field(tmp_path: Path, path, value, message) -> None:
    p = _write(tmp_path, _mutate(path, value))
    with pytest.raises(TopologyError) as exc:
        load_topology(p)
    assert message in str(exc.value)
    assert str(exc.value).startswith(str(p))


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="not valid YAML"):
        load_topology(_write(tmp_path, "devices: [unclosed"))
    with pytest.raises(TopologyError, match="top level: expected a mapping"):
        load_topology(_write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(TopologyError, match="cannot read topology file"):
        load_topology(tmp_path / "missing.yaml")


def test_demo_topology() -> None:
    topo = default_demo_topology()
    roles = Counter(d.role for d in topo.devices)
    assert len(topo.devices) == 20
    assert roles["core"] == 2 and roles["distribution"] == 4
    assert {d.device_type for d in topo.devices} == {"cisco_ios", "juniper_junos"}
    assert all(len(d.parents) == 2 for d in topo.devices if d.role == "distribution")
    assert all(d.parents for d in topo.devices if d.role != "core")


def test_generator_500() -> None:
    topo = generate_topology(500, snmp_port=16100, ssh_port=2222)
    assert len(topo.devices) == 500
    names = {d.name for d in topo.devices}
    addresses = [d.address for d in topo.devices]
    assert len(set(addresses)) == 500
    assert all(ipaddress.IPv4Address(a) in ipaddress.IPv4Network("127.0.0.0/8") for a in addresses)
    assert not any(a.endswith((".0", ".255")) for a in addresses)
    by = {d.name: d for d in topo.devices}
    for a, ai, b, bi in topo.links:
        assert a in names and b in names
        assert by[a].interface(ai).neighbor == (b, bi)
    roles = Counter(d.role for d in topo.devices)
    assert roles["core"] >= 2 and roles["distribution"] % 2 == 0 and roles["access"] and roles["cpe"]
    dists = [d for d in topo.devices if d.role == "distribution"]
    assert all(len(d.parents) == 2 for d in dists)
    access_uplinks = Counter(len(d.parents) for d in topo.devices if d.role == "access")
    assert set(access_uplinks) == {1, 2}
    # core ring: every core links to two other cores
    core_links = Counter()
    for a, _, b, _ in topo.links:
        if by[a].role == by[b].role == "core":
            core_links[a] += 1
            core_links[b] += 1
    assert set(core_links.values()) == {2}
    assert generate_topology(500).devices[7].address == topo.devices[7].address  # deterministic


def test_generator_rejects_bad_input() -> None:
    with pytest.raises(TopologyError, match="field 'n_devices'"):
        generate_topology(2)
    with pytest.raises(TopologyError, match="field 'base_address'"):
        generate_topology(10, base_address="not-an-ip")


def test_address_at_skips_network_and_broadcast_octets() -> None:
    assert address_at("127.0.1.1", 0) == "127.0.1.1"
    assert address_at("127.0.1.1", 253) == "127.0.1.254"
    assert address_at("127.0.1.1", 254) == "127.0.2.1"
