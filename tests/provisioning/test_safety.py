"""Injection attempts are rejected before rendering; the template sandbox holds; the catalog
refuses broken service types at load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError
from sqlalchemy import func, select

from faultloop.audit.models import AuditEntry
from faultloop.errors import InvalidInput
from provisioning import service as orders
from provisioning.models import OrderItem, ServiceOrder
from provisioning.render import PACKAGED_CATALOG, CatalogError, load_catalog, sandbox_render, service_type

PAYLOADS = [
    ("Gi0/1\nreload", "control characters"),
    ("ACME\r\nusername evil privilege 15 secret x", "control characters"),
    ("ACME\rend", "control characters"),
    ("ACME\x00", "control characters"),
    ("ACME\x1b[2J", "control characters"),
    ("ACME\tX", "control characters"),
    ("ACME\u2028do reload", "control characters"),
    ("ACME\x85end", "control characters"),
    ("ACME; reload", "';' is not allowed"),
    ("ACME | include secret", "'|' is not allowed"),
    ("{{ 7*7 }}", "'{{' is not allowed"),
    ("{% for x in range(9) %}x{% endfor %}", "'{%' is not allowed"),
    ("{# comment #}", "'{#' is not allowed"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "'{{' is not allowed"),
    ("x`reload`", "'`' is not allowed"),
    ("x$(reboot)", "'$(' is not allowed"),
    ('x" delete interfaces', "'\"' is not allowed"),
]


def _count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.mark.parametrize(("payload", "message"), PAYLOADS)
def test_injection_in_order_is_rejected_before_anything_is_stored_or_rendered(session, payload, message) -> None:
    audits = _count(session, AuditEntry)
    body = {
        "service_type": "business_internet",
        "customer": "ACME",
        "params": {"vlan": 120, "description": payload},
        "targets": [{"device": "r1", "params": {"interface": "GigabitEthernet0/1"}}],
    }
    with pytest.raises(InvalidInput, match=re.escape(message)) as info:
        orders.parse_order(body)
    assert info.value.field == "params.description"
    assert (_count(session, ServiceOrder), _count(session, OrderItem), _count(session, AuditEntry)) == (0, 0, audits)


@pytest.mark.parametrize(("payload", "message"), PAYLOADS)
def test_injection_in_params_is_rejected_by_the_service_type_gate(payload, message) -> None:
    st = service_type("l2_vlan")
    with pytest.raises(InvalidInput, match=re.escape(message)) as info:
        st.validate_params({"interface": "Gi0/1", "vlan": 10, "vlan_name": payload, "description": "x"}, path="p")
    assert info.value.field == "p.vlan_name"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("interface", "Gi0/1 shutdown", "String should match pattern"),
        ("interface", "../../etc", "String should match pattern"),
        ("vlan", 4095, "less than or equal to 4094"),
        ("vlan", 1, "greater than or equal to 2"),
        ("vlan", "120 ", "valid integer"),
        ("vlan_name", "two words", "String should match pattern"),
        ("description", "x" * 81, "at most 80 characters"),
        ("description", " leading-space", "String should match pattern"),
        ("extra", "x", "Extra inputs are not permitted"),
    ],
)
def test_schema_names_the_field_and_what_was_expected(field, value, message) -> None:
    st = service_type("l2_vlan")
    params = {"interface": "Gi0/1", "vlan": 10, "vlan_name": "V10", "description": "ok", field: value}
    with pytest.raises(InvalidInput, match=message) as info:
        st.validate_params(params, path="params")
    assert info.value.field == f"params.{field}"


@pytest.mark.parametrize(
    "escape",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ().__class__.__bases__[0].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ ''.format.__globals__ }}",
        "{% set x = ''.__class__ %}{{ x.__subclasses__() }}",
    ],
)
def test_known_sandbox_escapes_raise(escape) -> None:
    with pytest.raises(SecurityError):
        sandbox_render(escape)


def test_strict_undefined_raises_instead_of_rendering_an_empty_line() -> None:
    st = service_type("business_internet")
    with pytest.raises(Exception, match="undefined"):
        st.templates["cisco_ios"].render(interface="Gi0/1")


def _catalog(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    folder = tmp_path / "catalog" / name
    folder.mkdir(parents=True)
    for fname, text in files.items():
        (folder / fname).write_text(text)
    return tmp_path / "catalog"


SCHEMA = "fields:\n  interface: {type: interface, required: true}\n"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"schema.yaml": SCHEMA, "cisco_ios.j2": "interface {{ interface }}\n"}, "must both exist"),
        (
            {"schema.yaml": SCHEMA, "cisco_ios.j2": "{{ intreface }}", "cisco_ios.remove.j2": "x"},
            "undeclared fields ['intreface']",
        ),
        (
            {
                "schema.yaml": SCHEMA,
                "cisco_ios.j2": "{{ ''.__class__.__mro__ }}{{ interface }}",
                "cisco_ios.remove.j2": "x",
            },
            "does not render with sample values",
        ),
        ({"schema.yaml": SCHEMA, "cisco_ios.j2": "{% if %}", "cisco_ios.remove.j2": "x"}, "cisco_ios.j2"),
        (
            {"schema.yaml": "fields:\n  x: {type: shell}\n", "cisco_ios.j2": "", "cisco_ios.remove.j2": ""},
            "type must be",
        ),
        ({"schema.yaml": "fields: {}\n"}, "non-empty 'fields'"),
        ({"schema.yaml": SCHEMA}, "no <platform>.j2 template"),
    ],
)
def test_catalog_is_validated_at_load(tmp_path, files, message) -> None:
    with pytest.raises(CatalogError, match=re.escape(message)):
        load_catalog(_catalog(tmp_path, "bad", files))


def test_packaged_catalog_loads_with_both_platforms() -> None:
    types = load_catalog(PACKAGED_CATALOG)
    assert set(types) >= {"business_internet", "l2_vlan", "interface_state"}
    for st in types.values():
        assert st.platforms == ["cisco_ios", "juniper_junos"]
        assert st.remove_templates.keys() == st.templates.keys()
