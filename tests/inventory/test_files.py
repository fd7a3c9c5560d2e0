"""Inventory files: every error names file, line and field; imports are all or nothing."""

import csv
import io

import pytest
from sqlalchemy import func, select

from inventory import files, service
from inventory.errors import ImportFailed, InvalidInput
from inventory.models import Device, Link

GOOD = """\
sites:
  - name: pop1
    description: first pop
devices:
  - hostname: core1
    address: 127.0.1.1
    site: pop1
    role: core
    device_type: cisco_ios
    snmp: {version: v2c, port: 16100, community: public}
    ssh: {port: 2222, username: admin, password: lab-admin}
    interfaces:
      - {name: Gi0/1, if_index: 1, speed_mbps: 1000}
  - hostname: acc1
    address: 127.0.1.2
    site: pop1
    role: access
    parents: [core1]
    snmp: {version: v3, user: labv3, auth_protocol: SHA-256, auth_key: lab-auth-pass,
           priv_protocol: AES-128, priv_key: lab-priv-pass}
    interfaces:
      - {name: Gi0/1, if_index: 1}
links:
  - {a_device: core1, a_interface: Gi0/1, b_device: acc1, b_interface: Gi0/1}
"""


def _count(session, model):
    return session.scalar(select(func.count()).select_from(model))


def test_yaml_import_round_trip(session, vault):
    doc = files.parse_yaml(GOOD, source="good.yaml")
    counts = service.import_inventory(session, vault, doc, actor="t", forget_host_key=lambda _device_id: None)
    assert counts == {"sites": 1, "devices_created": 2, "devices_updated": 0, "links": 1}
    acc = service.device_by_hostname(session, "acc1")
    assert [p.hostname for p in acc.parents] == ["core1"]
    assert vault.decrypt(acc.snmp_auth_key_enc) == "lab-auth-pass"
    # importing again updates in place
    counts = service.import_inventory(session, vault, doc, actor="t", forget_host_key=lambda _device_id: None)
    assert counts["devices_updated"] == 2 and counts["links"] == 0
    exported = service.export_inventory(session, vault, with_secrets=True)
    again = files.parse_yaml(files.dump_yaml(exported), source="export.yaml")
    assert [d.hostname for d in again.devices] == ["acc1", "core1"]
    redacted = files.dump_yaml(service.export_inventory(session, vault, with_secrets=False))
    assert "lab-auth-pass" not in redacted and "<redacted>" in redacted


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            "devices:\n  - hostname: r1\n    address: 10.0.0.1\n    role: core\n    snmp:\n      version: v5\n",
            "x.yaml line 6: devices[0] (r1) field 'snmp.version'",
        ),
        (
            "devices:\n  - hostname: r1\n    address: nope\n    role: core\n",
            "x.yaml line 3: devices[0] (r1) field 'address': expected an IPv4 or IPv6 address",
        ),
        ("devices:\n  - hostname: r1\n    address: 10.0.0.1\n", "devices[0] (r1) field 'role'"),
        (
            "devices:\n  - hostname: r1\n    address: 10.0.0.1\n    role: core\n    colour: red\n",
            "x.yaml line 5: devices[0] (r1) field 'colour': Extra inputs",
        ),
        ("devices: [\n", "x.yaml line 2: not valid YAML"),
        ("- just\n- a list\n", "x.yaml line 1: expected a mapping"),
        ("", "x.yaml: the file is empty"),
    ],
)
def test_yaml_errors_name_line_and_field(text, expected):
    with pytest.raises(ImportFailed) as exc:
        files.parse_yaml(text, source="x.yaml")
    assert expected in str(exc.value)


def test_bad_reference_imports_nothing(session, vault):
    text = GOOD.replace("parents: [core1]", "parents: [core9]")
    doc = files.parse_yaml(text, source="x.yaml")
    before = (_count(session, Device), _count(session, Link))
    nested = session.begin_nested()
    with pytest.raises(InvalidInput) as exc:
        service.import_inventory(session, vault, doc, actor="t", forget_host_key=lambda _device_id: None)
    nested.rollback()
    assert "devices[1] (acc1): parents: unknown device(s) core9" in str(exc.value)
    assert (_count(session, Device), _count(session, Link)) == before


CSV_GOOD = """hostname,address,site,role,device_type,tags,snmp_version,snmp_community,ssh_username,ssh_password
r1,127.0.1.1,pop1,core,cisco_ios,lab;core,v2c,public,admin,lab-admin
r2,127.0.1.2,pop2,access,cisco_ios,,v2c,public,,
"""


def test_csv_import(session, vault):
    doc = files.parse_csv(CSV_GOOD, source="x.csv")
    counts = service.import_inventory(session, vault, doc, actor="t", forget_host_key=lambda _device_id: None)
    assert counts["devices_created"] == 2 and counts["sites"] == 2
    assert service.device_by_hostname(session, "r1").tags == ["core", "lab"]
    dumped = files.dump_csv(service.export_inventory(session, vault, with_secrets=True))
    assert files.parse_csv(dumped, source="rt.csv").devices[0].hostname == "r1"


@pytest.mark.parametrize(
    "text,expected",
    [
        (CSV_GOOD.replace("127.0.1.2", "999.1.1.1"), "x.csv line 3: column 'address'"),
        (CSV_GOOD.replace("r1,127.0.1.1,pop1,core", "r1,127.0.1.1,pop1,king"), "x.csv line 2: column 'role'"),
        (CSV_GOOD.replace(",v2c,public,admin", ",v2c,,admin"), "x.csv line 2: column 'snmp'"),
        ("hostname,address,colour\n", "x.csv line 1: unknown column(s) colour"),
        ("hostname,address\n", "x.csv line 1: missing required column 'role'"),
        (CSV_GOOD + "r3,127.0.1.3,pop1,core,,,,,,,extra\n", "x.csv line 4: more values than columns"),
    ],
)
def test_csv_errors_name_line_and_column(text, expected):
    with pytest.raises(ImportFailed) as exc:
        files.parse_csv(text, source="x.csv")
    assert expected in str(exc.value)


def test_unknown_extension_and_missing_file(tmp_path):
    p = tmp_path / "inv.json"
    p.write_text("{}")
    with pytest.raises(ImportFailed, match="expected a .yaml, .yml or .csv"):
        files.parse_file(p)
    with pytest.raises(ImportFailed, match="cannot read"):
        files.parse_file(tmp_path / "missing.yaml")


def test_import_that_moves_a_device_forgets_its_host_key_pin(session, vault):
    doc = files.parse_yaml(GOOD, source="good.yaml")
    forgotten: list[int] = []
    service.import_inventory(session, vault, doc, actor="t", forget_host_key=forgotten.append)
    service.import_inventory(session, vault, doc, actor="t", forget_host_key=forgotten.append)
    assert forgotten == []  # same addresses: pins kept
    moved = files.parse_yaml(GOOD.replace("127.0.1.2", "192.0.2.12"), source="moved.yaml")
    service.import_inventory(session, vault, moved, actor="t", forget_host_key=forgotten.append)
    acc = service.device_by_hostname(session, "acc1")
    assert acc.address == "192.0.2.12" and forgotten == [acc.id]


def test_a_yaml_alias_bomb_is_refused_naming_the_line():
    """A "billion laughs" document: each level repeats the one before ten times; copied out it
    would be 10^6 strings from a few hundred bytes."""
    levels = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 6)]
    text = "\n".join(levels) + "\nsites: []\ndevices: []\n"
    with pytest.raises(ImportFailed) as exc:
        files.parse_yaml(text, source="bomb.yaml")
    assert "bomb.yaml line 2: not valid YAML: aliases (*name) are not accepted in an inventory file" in str(exc.value)


def test_csv_export_neutralises_formula_prefixes_and_reads_back(session, vault):
    hostile = CSV_GOOD.replace(",v2c,public,admin", ",v2c,=HYPERLINK(\"http://x\"),admin").replace(
        "lab;core", "@SUM(1+1);-2+3"
    )
    service.import_inventory(
        session, vault, files.parse_csv(hostile, source="x.csv"), actor="t", forget_host_key=lambda _d: None
    )
    dumped = files.dump_csv(service.export_inventory(session, vault, with_secrets=True))
    cells = [cell for line in csv.reader(io.StringIO(dumped)) for cell in line]
    assert "'=HYPERLINK(\"http://x\")" in cells and "'-2+3;@SUM(1+1)" in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    again = files.parse_csv(dumped, source="rt.csv").devices[0]
    assert again.tags == ["-2+3", "@SUM(1+1)"] and again.snmp.community.get_secret_value() == '=HYPERLINK("http://x")'
