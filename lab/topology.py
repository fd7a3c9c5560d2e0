"""Lab topologies: load and validate a YAML file, or generate a large one.

File format (see ``lab/data/demo.yaml``)::

    snmp_port: 16100            # optional, default 161
    ssh_port: 2222              # optional, default 22
    sites:                      # optional: descriptions for the sites devices name
      - {name: lab-core, description: "Core PoP"}
    devices:
      - name: core1
        address: 127.0.1.1
        role: core              # core | distribution | access | cpe
        device_type: cisco_ios  # cisco_ios | juniper_junos
        site: lab-core
        location: "Rack 1"      # optional sysLocation
        parents: []             # optional; derived from links and roles when absent
        interfaces:
          - {name: GigabitEthernet0/1, speed_mbps: 10000, description: "to core2",
             in_bps: 2.0e8, out_bps: 1.5e8}
    links:
      - {a_device: core1, a_interface: GigabitEthernet0/1,
         b_device: core2, b_interface: GigabitEthernet0/1}

Every validation error names the entry and the field, e.g.
``devices[3] (dist2): field 'role': expected one of core, distribution, access, cpe, got 'edge'``.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from lab.mib import interface_mac
from lab.model import LabDevice, LabInterface

ROLES = ("core", "distribution", "access", "cpe")
ROLE_RANK = {r: i for i, r in enumerate(ROLES)}


@dataclass(frozen=True)
class DeviceType:
    vendor: str
    platform: str
    sys_object_id: str
    sys_descr: str
    if_prefix: str  # interface name for port N: if_prefix.format(n=N)


DEVICE_TYPES: dict[str, DeviceType] = {
    "cisco_ios": DeviceType(
        "cisco",
        "ios",
        "1.3.6.1.4.1.9.1.1208",
        "Cisco IOS Software, C2960X Software (C2960X-UNIVERSALK9-M), Version 15.2(7)E8, "
        "RELEASE SOFTWARE (fc1) [faultloop lab]",
        "GigabitEthernet0/{n}",
    ),
    "juniper_junos": DeviceType(
        "juniper",
        "junos",
        "1.3.6.1.4.1.2636.1.1.1.2.57",
        "Juniper Networks, Inc. ex4300-48t Ethernet Switch, kernel JUNOS 21.4R3-S4, "
        "Build date: 2023-06-01 [faultloop lab]",
        "ge-0/0/{m}",
    ),
}


class TopologyError(ValueError):
    """A topology file (or generator request) is invalid; the message names entry and field."""


@dataclass
class Topology:
    devices: list[LabDevice]
    links: list[tuple[str, str, str, str]]  # (a_dev, a_if, b_dev, b_if)
    sites: dict[str, str] = field(default_factory=dict)  # name -> description

    def device(self, name: str) -> LabDevice | None:
        for d in self.devices:
            if d.name == name:
                return d
        return None


# ------------------------------------------------------------------ loading

_DEVICE_FIELDS = {
    "name",
    "address",
    "role",
    "device_type",
    "vendor",
    "platform",
    "site",
    "location",
    "contact",
    "parents",
    "interfaces",
    "snmp_port",
    "ssh_port",
    "cpu_load",
    "temperature_c",
}
_INTERFACE_FIELDS = {
    "name",
    "speed_mbps",
    "description",
    "in_bps",
    "out_bps",
    "ip_address",
    "admin_up",
    "mac",
}
_LINK_FIELDS = {"a_device", "a_interface", "b_device", "b_interface"}


def _type_name(v: Any) -> str:
    return type(v).__name__ if v is not None else "nothing"


def _str(where: str, m: dict, key: str, *, required: bool = True, default: str = "") -> str:
    v = m.get(key)
    if v is None:
        if required:
            raise TopologyError(f"{where}: field '{key}': required")
        return default
    if not isinstance(v, str) or not v.strip():
        raise TopologyError(f"{where}: field '{key}': expected a non-empty string, got {v!r}")
    return v.strip()


def _num(where: str, m: dict, key: str, default: float, *, integer: bool = False, positive: bool = False) -> Any:
    v = m.get(key, default)
    ok = isinstance(v, int | float) and not isinstance(v, bool)
    if ok and integer:
        ok = isinstance(v, int)
    if ok:
        ok = v > 0 if positive else v >= 0
    if not ok:
        what = "integer" if integer else "number"
        sign = "positive" if positive else "non-negative"
        raise TopologyError(f"{where}: field '{key}': expected a {sign} {what}, got {v!r}")
    return v


def _port(where: str, m: dict, key: str, default: int) -> int:
    v = m.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 65535:
        raise TopologyError(f"{where}: field '{key}': expected a port number 1-65535, got {v!r}")
    return v


def _unknown(where: str, m: dict, allowed: set[str]) -> None:
    extra = sorted(set(m) - allowed)
    if extra:
        raise TopologyError(f"{where}: field '{extra[0]}': unknown field (allowed: {', '.join(sorted(allowed))})")


def load_topology(path: Path) -> Topology:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TopologyError(f"{path}: cannot read topology file: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TopologyError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return topology_from_dict(data)
    except TopologyError as exc:
        raise TopologyError(f"{path}: {exc}") from None


def topology_from_dict(data: Any) -> Topology:
    if not isinstance(data, dict):
        raise TopologyError(f"top level: expected a mapping with 'devices' and 'links', got {_type_name(data)}")
    _unknown("top level", data, {"snmp_port", "ssh_port", "sites", "devices", "links"})
    snmp_port = _port("top level", data, "snmp_port", 161)
    ssh_port = _port("top level", data, "ssh_port", 22)

    sites: dict[str, str] = {}
    raw_sites = data.get("sites") or []
    if not isinstance(raw_sites, list):
        raise TopologyError(f"top level: field 'sites': expected a list, got {_type_name(raw_sites)}")
    for i, s in enumerate(raw_sites):
        where = f"sites[{i}]"
        if not isinstance(s, dict):
            raise TopologyError(f"{where}: expected a mapping, got {_type_name(s)}")
        _unknown(where, s, {"name", "description"})
        name = _str(where, s, "name")
        if name in sites:
            raise TopologyError(f"{where} ({name}): field 'name': duplicate site name")
        sites[name] = _str(where, s, "description", required=False)

    raw_devices = data.get("devices")
    if not isinstance(raw_devices, list) or not raw_devices:
        raise TopologyError(f"top level: field 'devices': expected a non-empty list, got {raw_devices!r}")
    devices: list[LabDevice] = []
    names: set[str] = set()
    endpoints: dict[tuple[str, int], str] = {}
    explicit_parents: set[str] = set()
    for i, raw in enumerate(raw_devices):
        d = _device(i, raw, snmp_port, ssh_port)
        where = f"devices[{i}] ({d.name})"
        if d.name in names:
            raise TopologyError(f"{where}: field 'name': duplicate device name")
        names.add(d.name)
        key = (d.address, d.snmp_port)
        if key in endpoints:
            raise TopologyError(
                f"{where}: field 'address': {d.address}:{d.snmp_port} already used by device '{endpoints[key]}'"
            )
        endpoints[key] = d.name
        if "parents" in raw:
            explicit_parents.add(d.name)
        devices.append(d)
    by_name = {d.name: d for d in devices}
    for i, d in enumerate(devices):
        for p in d.parents:
            if p not in by_name:
                raise TopologyError(f"devices[{i}] ({d.name}): field 'parents': unknown device '{p}'")
        sites.setdefault(d.site, "")

    raw_links = data.get("links") or []
    if not isinstance(raw_links, list):
        raise TopologyError(f"top level: field 'links': expected a list, got {_type_name(raw_links)}")
    links: list[tuple[str, str, str, str]] = []
    used: dict[tuple[str, str], int] = {}
    for i, raw in enumerate(raw_links):
        where = f"links[{i}]"
        if not isinstance(raw, dict):
            raise TopologyError(f"{where}: expected a mapping with a_device, a_interface, b_device, b_interface")
        _unknown(where, raw, _LINK_FIELDS)
        ends = []
        for side in ("a", "b"):
            dev_name = _str(where, raw, f"{side}_device")
            if_name = _str(where, raw, f"{side}_interface")
            dev = by_name.get(dev_name)
            if dev is None:
                raise TopologyError(f"{where}: field '{side}_device': unknown device '{dev_name}'")
            itf = dev.interface(if_name)
            if itf is None:
                raise TopologyError(
                    f"{where}: field '{side}_interface': device '{dev_name}' has no interface '{if_name}'"
                )
            if (dev.name, itf.name) in used:
                raise TopologyError(
                    f"{where}: field '{side}_interface': {dev.name} {itf.name} "
                    f"is already in links[{used[(dev.name, itf.name)]}]"
                )
            ends.append((dev, itf))
        if ends[0][0] is ends[1][0]:
            raise TopologyError(f"{where}: field 'b_device': a link must join two different devices")
        for dev, itf in ends:
            used[(dev.name, itf.name)] = i
        links.append((ends[0][0].name, ends[0][1].name, ends[1][0].name, ends[1][1].name))

    topo = Topology(devices=devices, links=links, sites=sites)
    finish_topology(topo, derive_parents_for={n for n in names if n not in explicit_parents})
    return topo


def _device(i: int, raw: Any, snmp_port: int, ssh_port: int) -> LabDevice:
    if not isinstance(raw, dict):
        raise TopologyError(f"devices[{i}]: expected a mapping, got {_type_name(raw)}")
    where = f"devices[{i}]"
    name = _str(where, raw, "name")
    where = f"devices[{i}] ({name})"
    _unknown(where, raw, _DEVICE_FIELDS)
    address = _str(where, raw, "address")
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        raise TopologyError(f"{where}: field 'address': expected an IPv4 address, got {address!r}") from None
    role = raw.get("role")
    if role not in ROLES:
        raise TopologyError(f"{where}: field 'role': expected one of {', '.join(ROLES)}, got {role!r}")
    dtype_name = raw.get("device_type")
    if dtype_name not in DEVICE_TYPES:
        raise TopologyError(
            f"{where}: field 'device_type': expected one of {', '.join(DEVICE_TYPES)}, got {dtype_name!r}"
        )
    dtype = DEVICE_TYPES[dtype_name]
    parents = raw.get("parents", [])
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise TopologyError(f"{where}: field 'parents': expected a list of device names, got {parents!r}")
    raw_ifs = raw.get("interfaces")
    if not isinstance(raw_ifs, list) or not raw_ifs:
        raise TopologyError(f"{where}: field 'interfaces': expected a non-empty list, got {raw_ifs!r}")
    interfaces: list[LabInterface] = []
    seen: set[str] = set()
    for j, r in enumerate(raw_ifs):
        iw = f"{where}.interfaces[{j}]"
        if not isinstance(r, dict):
            raise TopologyError(f"{iw}: expected a mapping, got {_type_name(r)}")
        if_name = _str(iw, r, "name")
        iw = f"{iw} ({if_name})"
        _unknown(iw, r, _INTERFACE_FIELDS)
        if if_name.lower() in seen:
            raise TopologyError(f"{iw}: field 'name': duplicate interface name on {name}")
        seen.add(if_name.lower())
        admin_up = r.get("admin_up", True)
        if not isinstance(admin_up, bool):
            raise TopologyError(f"{iw}: field 'admin_up': expected true or false, got {admin_up!r}")
        ip = r.get("ip_address")
        if ip is not None:
            try:
                ipaddress.IPv4Interface(ip)
            except ValueError:
                raise TopologyError(f"{iw}: field 'ip_address': expected an address/prefix, got {ip!r}") from None
        interfaces.append(
            LabInterface(
                if_index=j + 1,
                name=if_name,
                speed_mbps=_num(iw, r, "speed_mbps", 1000, integer=True, positive=True),
                alias=_str(iw, r, "description", required=False),
                admin_up=admin_up,
                ip_address=ip,
                in_rate_bps=float(_num(iw, r, "in_bps", 0)),
                out_rate_bps=float(_num(iw, r, "out_bps", 0)),
                mac=_str(iw, r, "mac", required=False, default="00:00:00:00:00:00"),
            )
        )
    for itf in interfaces:
        if itf.in_rate_bps > itf.speed_mbps * 1e6 or itf.out_rate_bps > itf.speed_mbps * 1e6:
            raise TopologyError(
                f"{where}.interfaces[{itf.if_index - 1}] ({itf.name}): field 'in_bps'/'out_bps': "
                f"rate exceeds speed_mbps {itf.speed_mbps}"
            )
    cpu = _num(where, raw, "cpu_load", 5, integer=True)
    if cpu > 100:
        raise TopologyError(f"{where}: field 'cpu_load': expected 0-100, got {cpu}")
    return LabDevice(
        name=name,
        address=address,
        role=role,
        vendor=raw.get("vendor") or dtype.vendor,
        platform=raw.get("platform") or dtype.platform,
        device_type=dtype_name,
        site=_str(where, raw, "site", required=False, default="lab"),
        interfaces=interfaces,
        snmp_port=_port(where, raw, "snmp_port", snmp_port),
        ssh_port=_port(where, raw, "ssh_port", ssh_port),
        sys_object_id=dtype.sys_object_id,
        sys_descr=dtype.sys_descr,
        sys_contact=_str(where, raw, "contact", required=False, default="noc@example.net"),
        sys_location=_str(where, raw, "location", required=False),
        cpu_load=cpu,
        temperature_c=_num(where, raw, "temperature_c", 38, integer=True),
        parents=list(parents),
    )


def finish_topology(topo: Topology, *, derive_parents_for: set[str] | None = None) -> None:
    """Wire neighbours, MACs, point-to-point addresses, mirrored rates and parents."""
    by_name = {d.name: d for d in topo.devices}
    for d in topo.devices:
        for itf in d.interfaces:
            if itf.mac == "00:00:00:00:00:00":
                mac = interface_mac(d.name, itf.if_index)
                itf.mac = ":".join(f"{b:02x}" for b in mac)
    derive = derive_parents_for if derive_parents_for is not None else set(by_name)
    for n, (ad, ai, bd, bi) in enumerate(topo.links):
        a, b = by_name[ad], by_name[bd]
        aif, bif = a.interface(ai), b.interface(bi)
        assert aif is not None and bif is not None
        aif.neighbor = (b.name, bif.name)
        bif.neighbor = (a.name, aif.name)
        if aif.ip_address is None and bif.ip_address is None:
            net = ipaddress.IPv4Network(("10.255.0.0", 30)).network_address + 4 * n
            aif.ip_address = f"{net + 1}/30"
            bif.ip_address = f"{net + 2}/30"
        # a link carries the same traffic seen from both ends
        if not (bif.in_rate_bps or bif.out_rate_bps):
            bif.in_rate_bps, bif.out_rate_bps = aif.out_rate_bps, aif.in_rate_bps
        elif not (aif.in_rate_bps or aif.out_rate_bps):
            aif.in_rate_bps, aif.out_rate_bps = bif.out_rate_bps, bif.in_rate_bps
        ra, rb = ROLE_RANK[a.role], ROLE_RANK[b.role]
        if ra < rb and b.name in derive and a.name not in b.parents:
            b.parents.append(a.name)
        elif rb < ra and a.name in derive and b.name not in a.parents:
            a.parents.append(b.name)
    for d in topo.devices:
        topo.sites.setdefault(d.site, "")


def default_demo_topology() -> Topology:
    ref = resources.files("lab").joinpath("data/demo.yaml")
    with resources.as_file(ref) as p:
        return load_topology(Path(p))


# ------------------------------------------------------------------ generator


def address_at(base_address: str, i: int) -> str:
    """The i-th lab address after ``base_address``, skipping .0 and .255 host octets."""
    a, b, c, d = (int(x) for x in base_address.split("."))
    pos = (d - 1) + i
    c += pos // 254
    d = pos % 254 + 1
    b += c // 256
    c %= 256
    if b > 255:
        raise TopologyError(f"generator: field 'n_devices': too many devices for base address {base_address}")
    return f"{a}.{b}.{c}.{d}"


def generate_topology(
    n_devices: int, *, base_address: str = "127.0.1.1", snmp_port: int = 161, ssh_port: int = 22
) -> Topology:
    """A realistic hierarchical network: a core ring, distribution pairs (two uplinks
    each, plus a link inside the pair), access switches with one or two uplinks, and
    CPEs hanging off access switches. Deterministic for a given ``n_devices``."""
    if not isinstance(n_devices, int) or n_devices < 4:
        raise TopologyError(f"generator: field 'n_devices': expected an integer >= 4, got {n_devices!r}")
    try:
        ipaddress.IPv4Address(base_address)
    except ValueError:
        raise TopologyError(
            f"generator: field 'base_address': expected an IPv4 address, got {base_address!r}"
        ) from None
    rng = random.Random(n_devices)
    n_core = 2 if n_devices < 40 else 4 if n_devices < 400 else 6
    rest = n_devices - n_core
    n_pairs = max(1, round(rest / 16))
    n_dist = 2 * n_pairs
    rest -= n_dist
    n_access = max(1, rest * 2 // 3) if rest > 0 else 0
    n_cpe = max(0, rest - n_access)

    devices: list[LabDevice] = []
    next_port: dict[str, int] = {}
    sites: dict[str, str] = {"lab-core": "Core PoP"}

    def new(name: str, role: str, dtype_name: str, site: str) -> LabDevice:
        dt = DEVICE_TYPES[dtype_name]
        d = LabDevice(
            name=name,
            address=address_at(base_address, len(devices)),
            role=role,
            vendor=dt.vendor,
            platform=dt.platform,
            device_type=dtype_name,
            site=site,
            snmp_port=snmp_port,
            ssh_port=ssh_port,
            sys_object_id=dt.sys_object_id,
            sys_descr=dt.sys_descr,
            sys_location=f"{site}, rack {len(devices) % 8 + 1}",
            cpu_load=rng.randint(3, 25),
            temperature_c=rng.randint(30, 48),
        )
        devices.append(d)
        next_port[name] = 1
        return d

    def port(d: LabDevice, speed: int, alias: str) -> LabInterface:
        n = next_port[d.name]
        next_port[d.name] = n + 1
        fmt = DEVICE_TYPES[d.device_type].if_prefix
        itf = LabInterface(if_index=n, name=fmt.format(n=n, m=n - 1), speed_mbps=speed, alias=alias)
        d.interfaces.append(itf)
        return itf

    links: list[tuple[str, str, str, str]] = []

    def link(a: LabDevice, b: LabDevice, speed: int, rate_bps: float) -> None:
        ai = port(a, speed, f"to {b.name}")
        bi = port(b, speed, f"to {a.name}")
        ai.out_rate_bps = rate_bps
        ai.in_rate_bps = rate_bps * rng.uniform(0.3, 0.9)
        links.append((a.name, ai.name, b.name, bi.name))

    cores = [new(f"core{i + 1}", "core", "cisco_ios", "lab-core") for i in range(n_core)]
    for i in range(n_core if n_core > 2 else 1):
        link(cores[i], cores[(i + 1) % n_core], 10000, rng.uniform(1e9, 3e9))
    dists = []
    for k in range(n_pairs):
        site = f"lab-pop{k + 1}"
        sites[site] = f"PoP {k + 1}"
        pair = [new(f"dist{2 * k + j + 1}", "distribution", "cisco_ios", site) for j in range(2)]
        for j, d in enumerate(pair):
            link(cores[(k + j) % n_core], d, 10000, rng.uniform(2e8, 8e8))
            link(cores[(k + j + 1) % n_core], d, 10000, rng.uniform(1e8, 4e8))
        link(pair[0], pair[1], 10000, rng.uniform(1e7, 5e7))
        dists.append(pair)
    access = []
    for j in range(n_access):
        pair = dists[j % n_pairs]
        dtype = "juniper_junos" if j % 3 == 2 else "cisco_ios"
        a = new(f"acc{j + 1}", "access", dtype, pair[0].site)
        link(pair[0], a, 1000, rng.uniform(2e7, 2e8))
        if j % 2 == 0:
            link(pair[1], a, 1000, rng.uniform(1e7, 1e8))
        access.append(a)
    for m in range(n_cpe):
        up = access[m % len(access)] if access else dists[m % n_pairs][0]
        dtype = "juniper_junos" if m % 2 else "cisco_ios"
        c = new(f"cpe{m + 1}", "cpe", dtype, up.site)
        link(up, c, 100, rng.uniform(1e6, 5e7))
    for d in devices:
        # one spare, unconnected port per device, shut down like a real spare
        port(d, 1000, "").admin_up = False
    topo = Topology(devices=devices, links=links, sites=sites)
    finish_topology(topo)
    return topo
