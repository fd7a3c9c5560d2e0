"""The lab writes the faultloop inventory YAML format."""

from __future__ import annotations

from pathlib import Path

import yaml

from lab.network import LabNetwork
from lab.topology import default_demo_topology


def test_demo_inventory_v2c(tmp_path: Path) -> None:
    topo = default_demo_topology()
    net = LabNetwork(topo, ssh=False)
    out = tmp_path / "var" / "lab-inventory.yaml"
    net.write_inventory(out)
    data = yaml.safe_load(out.read_text())
    assert set(data) == {"sites", "devices", "links"}
    assert {s["name"] for s in data["sites"]} == {"lab-core", "lab-north", "lab-south"}
    hosts = {d["hostname"]: d for d in data["devices"]}
    assert len(hosts) == 20
    dist1 = hosts["dist1"]
    assert dist1["address"] == "127.0.1.3" and dist1["role"] == "distribution"
    assert dist1["device_type"] == "cisco_ios" and dist1["vendor"] == "cisco" and dist1["platform"] == "ios"
    assert dist1["parents"] == ["core1", "core2"] and dist1["tags"] == ["lab"]
    assert dist1["snmp"] == {"version": "v2c", "port": 16100, "community": "public"}
    assert dist1["ssh"] == {"port": 2222, "username": "admin", "password": "lab-admin", "host_key_policy": "tofu"}
    assert dist1["interfaces"][0] == {
        "name": "GigabitEthernet0/1",
        "if_index": 1,
        "speed_mbps": 10000,
        "description": "uplink to core1",
    }
    assert hosts["acc3"]["device_type"] == "juniper_junos"
    assert len(data["links"]) == len(topo.links)
    assert data["links"][0] == {
        "a_device": "core1",
        "a_interface": "GigabitEthernet0/1",
        "b_device": "core2",
        "b_interface": "GigabitEthernet0/1",
        "source": "manual",
    }
    all_sites = {s["name"] for s in data["sites"]}
    assert all(d["site"] in all_sites for d in data["devices"])
    assert not list(out.parent.glob(".*.tmp"))  # atomic write left no temp file


def test_inventory_v3(tmp_path: Path) -> None:
    net = LabNetwork(default_demo_topology(), ssh=False)
    out = tmp_path / "inv.yaml"
    net.write_inventory(out, snmp_version="v3")
    snmp = yaml.safe_load(out.read_text())["devices"][0]["snmp"]
    assert snmp == {
        "version": "v3",
        "port": 16100,
        "user": "labv3",
        "auth_protocol": "SHA-256",
        "auth_key": "lab-auth-pass",
        "priv_protocol": "AES-128",
        "priv_key": "lab-priv-pass",
    }
