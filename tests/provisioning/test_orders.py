"""Order lifecycle without devices: state table, four-eyes, VLAN pools, bad inputs write nothing.
Runs on SQLite and, with FAULTLOOP_TEST_DATABASE_URL, on PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select
from sqlalchemy.exc import OperationalError

from faultloop.audit.models import AuditEntry
from faultloop.db import make_sessionmaker, transaction
from faultloop.errors import Conflict, Forbidden, InvalidInput
from inventory import service as inventory
from inventory.schemas import DeviceIn
from provisioning import policy
from provisioning import service as orders
from provisioning.models import OrderItem, ServiceInstance, ServiceOrder, VlanAllocation, VlanPool
from provisioning.schemas import VlanPoolIn


def _device(session, vault, name: str, device_type: str = "cisco_ios") -> int:
    row = inventory.create_device(
        session,
        vault,
        DeviceIn.model_validate(
            {
                "hostname": name,
                "address": "127.0.0.9",
                "role": "access",
                "device_type": device_type,
                "ssh": {"username": "u", "password": "p"},
            }
        ),
        actor="test",
    )
    session.flush()
    return row.id


def _body(*devices: str, **extra: Any) -> dict[str, Any]:
    return {
        "service_type": "business_internet",
        "customer": "ACME",
        "params": {"description": "ACME 1"},
        "targets": [{"device": d, "params": {"interface": "GigabitEthernet0/1"}} for d in devices],
        "vlan_pool": "pool-a",
        **extra,
    }


def _count(session, model) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def pool(session) -> VlanPool:
    return orders.create_pool(session, VlanPoolIn(name="pool-a", vlan_min=100, vlan_max=102), actor="t")


def test_lifecycle_plan_renders_from_pool_and_four_eyes_approval(session, vault, pool) -> None:
    _device(session, vault, "r1")
    order = orders.create_order(session, orders.parse_order(_body("r1")), actor="pat")
    assert order.state == "draft"
    orders.act(session, order.id, "plan", actor="pat", role="provisioner", four_eyes=True, vault=vault)
    item = orders.items(session, order.id)[0]
    assert item.params["vlan"] == 100  # first free VLAN of the pool
    assert item.commands[:3] == ["vlan 100", " name BIA-100", "interface GigabitEthernet0/1"]
    assert "no vlan 100" in item.inverse
    assert orders.item_diff(vault, item).startswith("# no config backup of r1 yet")
    assert item.diff == "" and item.diff_encrypted is not None  # stored encrypted (issue 15 item 6)
    with pytest.raises(Forbidden, match="four-eyes"):
        orders.act(session, order.id, "approve", actor="pat", role="admin", four_eyes=True, vault=vault)
    with pytest.raises(Forbidden, match="role 'provisioner' may not approve"):
        orders.act(session, order.id, "approve", actor="sam", role="provisioner", four_eyes=True, vault=vault)
    orders.act(session, order.id, "approve", actor="nina", role="noc", four_eyes=True, vault=vault)
    assert (order.state, order.approved_by) == ("approved", "nina")
    with pytest.raises(
        Conflict, match=r"'plan' is not allowed on an order in state 'approved'; allowed: cancel, execute"
    ):
        orders.act(session, order.id, "plan", actor="pat", role="provisioner", four_eyes=True, vault=vault)
    orders.act(session, order.id, "cancel", actor="pat", role="provisioner", four_eyes=True, vault=vault)
    # a cancelled activation gives its VLAN back
    assert _count(session, VlanAllocation) == 0
    assert session.get(ServiceInstance, order.service_id).state == "cancelled"
    assert [e.action for e in orders.timeline(session, order.id)] == [
        "order.create",
        "order.plan",
        "order.approve",
        "order.cancel",
    ]


def test_four_eyes_off_lets_the_author_approve(session, vault, pool) -> None:
    _device(session, vault, "r1")
    order = orders.create_order(session, orders.parse_order(_body("r1")), actor="adm")
    orders.act(session, order.id, "plan", actor="adm", role="admin", four_eyes=False, vault=vault)
    orders.act(session, order.id, "approve", actor="adm", role="admin", four_eyes=False, vault=vault)
    assert order.state == "approved"


def test_vlan_pool_conflicts_and_exhaustion(session, vault, pool) -> None:
    _device(session, vault, "r1")
    vlans = []
    for _ in range(3):
        order = orders.create_order(session, orders.parse_order(_body("r1")), actor="pat")
        orders.act(session, order.id, "validate", actor="pat", role="provisioner", four_eyes=True, vault=vault)
        vlans.append(orders.items(session, order.id)[0].params["vlan"])
    assert vlans == [100, 101, 102]
    order = orders.create_order(session, orders.parse_order(_body("r1")), actor="pat")
    audits = _count(session, AuditEntry)
    with pytest.raises(Conflict, match="pool 'pool-a' has no free VLAN"), session.begin_nested():
        orders.act(session, order.id, "validate", actor="pat", role="provisioner", four_eyes=True, vault=vault)
    session.expire_all()
    assert orders.get_order(session, order.id).state == "draft"
    assert (_count(session, OrderItem), _count(session, AuditEntry)) == (3, audits)

    taken = orders.create_order(
        session, orders.parse_order(_body("r1", params={"description": "x", "vlan": 101})), actor="pat"
    )
    with pytest.raises(Conflict, match="VLAN 101 of pool 'pool-a' is already allocated"), session.begin_nested():
        orders.act(session, taken.id, "validate", actor="pat", role="provisioner", four_eyes=True, vault=vault)
    outside = orders.create_order(
        session, orders.parse_order(_body("r1", params={"description": "x", "vlan": 7})), actor="pat"
    )
    with pytest.raises(InvalidInput, match="7 is outside pool 'pool-a' \\(100-102\\)"), session.begin_nested():
        orders.act(session, outside.id, "validate", actor="pat", role="provisioner", four_eyes=True, vault=vault)
    assert _count(session, VlanAllocation) == 3


@pytest.mark.parametrize(
    ("change", "message", "field"),
    [
        ({"service_type": "teleport"}, "service_type: expected one of", "service_type"),
        (
            {"targets": [{"device": "nope", "params": {}}]},
            "targets[0].device: no device named 'nope'",
            "targets[0].device",
        ),
        ({"vlan_pool": "nope"}, "vlan_pool: no VLAN pool named 'nope'", "vlan_pool"),
        ({"service_id": 5}, "service_id: an activation creates a new service", "service_id"),
        ({"action": "terminate"}, "service_id: required to terminate", "service_id"),
        ({"targets": []}, "targets: give at least one device", "targets"),
        ({"window_start": "2026-01-01T00:00:00"}, "timezone-aware", "window_start"),
        ({"customer": ""}, "at least 1 character", "customer"),
        ({"surprise": 1}, "Extra inputs are not permitted", "surprise"),
    ],
)
def test_bad_orders_name_the_field_and_write_nothing(session, vault, pool, change, message, field) -> None:
    _device(session, vault, "r1")
    audits = _count(session, AuditEntry)
    with pytest.raises(InvalidInput) as info:
        orders.create_order(session, orders.parse_order({**_body("r1"), **change}), actor="pat")
    assert message in info.value.detail
    assert info.value.field == field
    assert (_count(session, ServiceOrder), _count(session, AuditEntry)) == (0, audits)


def test_validate_refuses_a_device_without_a_template_for_its_platform(session, vault, pool) -> None:
    _device(session, vault, "fw1", device_type="linux")
    order = orders.create_order(session, orders.parse_order(_body("fw1")), actor="pat")
    with pytest.raises(InvalidInput, match="business_internet has templates for cisco_ios"), session.begin_nested():
        orders.act(session, order.id, "validate", actor="pat", role="provisioner", four_eyes=True, vault=vault)
    assert _count(session, VlanAllocation) == 0 and orders.get_order(session, order.id).state == "draft"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([*{t.action for t in policy.TRANSITIONS}, "bogus"]),
            st.sampled_from(["admin", "noc", "provisioner", "viewer", "technician", "system"]),
        ),
        max_size=12,
    )
)
def test_state_table_never_accepts_an_unlisted_move(moves) -> None:
    state = "draft"
    for action, role in moves:
        allowed = {(t.from_state, t.action): t for t in policy.TRANSITIONS}
        try:
            new = policy.transition(state, action, role=role, actor="a", author="b", four_eyes=True)
        except (Conflict, Forbidden):
            assert (state, action) not in allowed or role not in allowed[(state, action)].roles
            continue
        assert allowed[(state, action)].to_state == new and role in allowed[(state, action)].roles
        state = new
    assert state in policy.STATES


def test_vlan_allocation_holds_under_concurrent_orders(db_engine) -> None:
    """Eight writers race for a 40-VLAN pool with real commits (SQLite file / PostgreSQL); the unique
    (pool, vlan) constraint lets no VLAN go twice."""
    factory = make_sessionmaker(db_engine)
    name = f"race-{uuid.uuid4().hex[:8]}"
    with transaction(factory) as session:
        race_pool = VlanPool(name=name, vlan_min=200, vlan_max=239)  # no audit row: the audit log is append-only
        session.add(race_pool)
        session.flush()
        pool_id = race_pool.id
        services = []
        for i in range(48):
            s = ServiceInstance(
                service_type="l2_vlan",
                customer=f"c{i}",
                state="pending",
                params={},
                created_at=pool_created(),
                updated_at=pool_created(),
            )
            session.add(s)
            session.flush()
            services.append(s.id)
    got: list[int] = []
    refused: list[str] = []
    lock = threading.Lock()

    def worker(ids: list[int]) -> None:
        for sid in ids:
            # SQLite: a writer that lost the lock retries with back-off, as a job would, until a deadline
            deadline = time.monotonic() + 120
            attempt = 0
            while True:
                try:
                    with transaction(factory) as session:
                        p = session.get(VlanPool, pool_id)
                        assert p is not None
                        vlan = orders.allocate_vlan(session, pool=p, service_id=sid)
                    with lock:
                        got.append(vlan)
                    break
                except OperationalError:
                    attempt += 1
                    if time.monotonic() > deadline:
                        with lock:
                            refused.append(f"service {sid}: still locked out after {attempt} attempts")
                        break
                    time.sleep(min(0.2, 0.005 * attempt))
                except Conflict as exc:
                    with lock:
                        refused.append(exc.detail)
                    break

    try:
        threads = [threading.Thread(target=worker, args=(services[i::8],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(got) == 40 and len(set(got)) == 40 and set(got) == set(range(200, 240))
        assert len(refused) == 8 and all("no free VLAN" in r for r in refused)
    finally:  # real commits: leave the shared test database as it was
        with transaction(factory) as session:
            session.execute(delete(VlanAllocation).where(VlanAllocation.pool_id == pool_id))
            session.execute(delete(ServiceInstance).where(ServiceInstance.id.in_(services)))
            session.execute(delete(VlanPool).where(VlanPool.id == pool_id))


def pool_created():
    from faultloop import clock

    return clock.now()


def test_readme_shows_the_order_state_table_as_enforced() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert policy.table_markdown() in readme


def test_a_site_pool_serves_only_that_sites_devices(session, vault) -> None:
    from inventory.schemas import SiteIn

    site = inventory.create_site(session, SiteIn.model_validate({"name": "metro-east"}), actor="t")
    orders.create_pool(session, VlanPoolIn(name="east", site="metro-east", vlan_min=10, vlan_max=20), actor="t")
    _device(session, vault, "r-elsewhere")
    order = orders.create_order(session, orders.parse_order({**_body("r-elsewhere"), "vlan_pool": "east"}), actor="p")
    with (
        pytest.raises(InvalidInput, match="r-elsewhere is not at the site of VLAN pool 'east'"),
        session.begin_nested(),
    ):
        orders.act(session, order.id, "validate", actor="p", role="provisioner", four_eyes=True, vault=vault)
    assert _count(session, VlanAllocation) == 0
    assert site.id is not None
