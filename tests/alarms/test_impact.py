"""Customer service impact of alarms, through the real engine on SQLite and PostgreSQL: direct (the
alarmed interface / VLAN / device), through the topology (devices reachable only through the failed
element), redundancy (a dual-homed device with one uplink left is not impacted), the root cause's
union, and the stored rows following the alarm as it changes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from alarms import queries
from alarms.bus import AlarmBus
from alarms.models import Alarm
from alarms.runner import AlarmEngine
from faultloop import clock
from faultloop.events import Event
from inventory import queries as inventory_queries
from inventory import service as inventory
from inventory.schemas import SketchDevice, SketchLink
from provisioning import queries as services_read
from provisioning.models import ServiceInstance, ServiceResource

SLA = {"business_internet": "gold", "l2_vlan": "silver"}


def source(session):
    return services_read.footprints(session, sla_classes=SLA)


def build_network(session) -> dict[str, int]:
    """core -- agg -- acc1 (single-homed); acc2 hangs under agg AND core (dual-homed).
    Services: s1 (acme) on acc1 Gi0/5, s4 (zeta) on acc1 Gi0/6.120, s2 (bolt) on acc2 Gi0/5,
    s3 (acme) on agg Gi0/9 VLAN 300."""
    inventory.sketch_topology(
        session,
        devices=[SketchDevice("core", "core"), SketchDevice("agg", "aggregation"),
                 SketchDevice("acc1", "access"), SketchDevice("acc2", "access")],
        links=[SketchLink(("core", "p1"), ("agg", "u")), SketchLink(("agg", "d1"), ("acc1", "u")),
               SketchLink(("agg", "d2"), ("acc2", "u")), SketchLink(("core", "p2"), ("acc2", "u2"))],
    )  # fmt: skip
    ids = {d.hostname: d.id for d in inventory_queries.devices(session)}
    now = clock.now()
    made: dict[str, int] = {}
    for name, customer, stype, device, iface, vlan in (
        ("s1", "acme", "business_internet", "acc1", "Gi0/5", None),
        ("s4", "zeta", "l2_vlan", "acc1", "Gi0/6.120", 120),
        ("s2", "bolt", "business_internet", "acc2", "Gi0/5", None),
        ("s3", "acme", "l2_vlan", "agg", "Gi0/9", 300),
    ):
        service = ServiceInstance(service_type=stype, customer=customer, state="active", params={},
                                  created_at=now, updated_at=now)  # fmt: skip
        session.add(service)
        session.flush()
        session.add(ServiceResource(service_id=service.id, device_id=ids[device], interface=iface, vlan=vlan))
        made[name] = service.id
    terminated = ServiceInstance(service_type="l2_vlan", customer="gone", state="terminated", params={},
                                 created_at=now, updated_at=now)  # fmt: skip
    session.add(terminated)
    session.flush()
    session.add(ServiceResource(service_id=terminated.id, device_id=ids["acc1"], interface="Gi0/5", vlan=None))
    session.commit()
    return made


@pytest.fixture
def net(runtime, session, frozen):
    made = build_network(session)
    engine = AlarmEngine(runtime, AlarmBus(), services=source)
    engine.load()
    return engine, made


def ev(event_type, device, mo="", severity="major"):
    return Event(source="trap", device=device, event_type=event_type, severity=severity, time=clock.now(),
                 managed_object=mo)  # fmt: skip


def alarm_of(session, device, alarm_type):
    session.expire_all()
    return session.scalars(
        select(Alarm).where(Alarm.device == device, Alarm.alarm_type == alarm_type).order_by(Alarm.id.desc())
    ).first()


def impact_of(session, alarm) -> dict[int, tuple[str, str]]:
    return {r.service_id: (r.how, r.level) for r in queries.impact(session, [alarm.id])}


def test_direct_impact_on_the_alarmed_interface_only(net, session):
    engine, s = net
    engine.submit_events([ev("linkDown", "acc1", "interface:Gi0/5"), ev("linkDown", "acc2", "interface:Gi0/7")])
    engine.run_once()
    on_port = alarm_of(session, "acc1", "link_down")
    assert impact_of(session, on_port) == {s["s1"]: ("direct", "down")}  # not the terminated service there
    assert (on_port.services_affected, on_port.customers_affected) == (1, 1)
    record = queries.alarm(session, on_port.id)
    assert record is not None and record.services_affected == 1
    (row,) = queries.impact(session, [on_port.id])
    assert (row.customer, row.service_type, row.sla_class) == ("acme", "business_internet", "gold")
    idle_port = alarm_of(session, "acc2", "link_down")
    assert impact_of(session, idle_port) == {} and idle_port.services_affected == 0


def test_parent_port_takes_its_subinterfaces_and_a_vlan_alarm_its_vlan(net, session):
    engine, s = net
    engine.submit_events([ev("linkDown", "acc1", "interface:Gi0/6"), ev("vlan_down", "agg", "vlan:300"),
                          ev("vlan_down", "agg", "vlan:301")])  # fmt: skip
    engine.run_once()
    assert impact_of(session, alarm_of(session, "acc1", "link_down")) == {s["s4"]: ("direct", "down")}
    vlan_alarms = {a.managed_object: a for a in session.scalars(select(Alarm).where(Alarm.device == "agg"))}
    assert set(impact_of(session, vlan_alarms["vlan:300"])) == {s["s3"]}
    assert impact_of(session, vlan_alarms["vlan:301"]) == {}


def test_failed_device_impacts_what_is_behind_it_but_not_the_dual_homed_device(net, session):
    engine, s = net
    engine.submit_events([ev("device_unreachable", "agg", severity="critical")])
    engine.run_once()
    agg = alarm_of(session, "agg", "device_down")
    # its own port's service directly; acc1's services through the topology; acc2 still reached over core
    assert impact_of(session, agg) == {
        s["s3"]: ("direct", "down"), s["s1"]: ("topology", "down"), s["s4"]: ("topology", "down"),
    }  # fmt: skip
    assert (agg.services_affected, agg.customers_affected) == (3, 2)
    assert s["s2"] not in impact_of(session, agg)


def test_failed_link_impacts_the_far_side_and_redundant_path_keeps_service(net, session):
    engine, s = net
    engine.submit_events([ev("linkDown", "agg", "interface:d2")])  # acc2 keeps its uplink to core
    engine.run_once()
    assert impact_of(session, alarm_of(session, "agg", "link_down")) == {}
    engine.submit_events([ev("linkDown", "agg", "interface:d1")])  # acc1's only uplink
    engine.run_once()
    assert impact_of(session, alarm_of(session, "agg", "link_down")) == {
        s["s1"]: ("topology", "down"), s["s4"]: ("topology", "down"),
    }  # fmt: skip
    engine.submit_events([ev("linkDown", "core", "interface:p2")])  # now acc2 lost both
    engine.run_once()
    both = {a.managed_object: impact_of(session, a) for a in session.scalars(select(Alarm).where(
        Alarm.alarm_type == "link_down"))}  # fmt: skip
    assert s["s2"] in both["interface:p2"] or s["s2"] in both["interface:d2"]


def test_root_cause_carries_its_childrens_impact_and_changes_follow_the_alarm(net, session):
    engine, s = net
    published = []
    engine.bus.subscribe("test", published.extend)
    engine.submit_events([ev("device_unreachable", "agg", severity="critical"),
                          ev("device_unreachable", "acc1", severity="critical")])  # fmt: skip
    engine.run_once()
    agg, acc1 = alarm_of(session, "agg", "device_down"), alarm_of(session, "acc1", "device_down")
    assert acc1.parent_id == agg.id and agg.root_cause
    assert impact_of(session, acc1) == {s["s1"]: ("direct", "down"), s["s4"]: ("direct", "down")}
    assert set(impact_of(session, agg)) == {s["s1"], s["s3"], s["s4"]}
    # agg comes back: acc1 is no longer a symptom and keeps its own impact; agg keeps what it had
    published.clear()
    engine.submit_events([ev("device_reachable", "agg", severity="cleared")])
    engine.run_once()
    acc1 = alarm_of(session, "acc1", "device_down")
    assert acc1.parent_id is None and set(impact_of(session, acc1)) == {s["s1"], s["s4"]}
    agg = alarm_of(session, "agg", "device_down")
    assert agg.state == "cleared" and agg.services_affected == 3  # the history stays with the alarm


def test_a_new_service_is_picked_up_when_the_engine_reloads_its_topology(net, session, runtime):
    engine, s = net
    engine.submit_events([ev("linkDown", "acc2", "interface:Gi0/7")])
    engine.run_once()
    alarm = alarm_of(session, "acc2", "link_down")
    assert alarm.services_affected == 0
    now = clock.now()
    added = ServiceInstance(service_type="l2_vlan", customer="new", state="active", params={}, created_at=now,
                            updated_at=now)  # fmt: skip
    session.add(added)
    session.flush()
    acc2 = inventory_queries.device_by_hostname(session, "acc2")
    assert acc2 is not None
    session.add(ServiceResource(service_id=added.id, device_id=acc2.id, interface="Gi0/7", vlan=None))
    session.commit()
    published = []
    engine.bus.subscribe("test", published.extend)
    engine._in_transaction(engine._reload_topology)
    engine.run_once()
    assert impact_of(session, alarm_of(session, "acc2", "link_down")) == {added.id: ("direct", "down")}
    assert [(c.kind, c.alarm_id) for c in published] == [("impact", alarm.id)]


def test_restart_keeps_the_stored_impact_without_rewriting_it(net, session, runtime):
    engine, s = net
    engine.submit_events([ev("linkDown", "acc1", "interface:Gi0/5")])
    engine.run_once()
    published = []
    again = AlarmEngine(runtime, AlarmBus(), services=source)
    again.bus.subscribe("test", published.extend)
    again.load()
    again.run_once()
    assert published == []  # the impact read back equals the one recomputed: no change announced
    assert alarm_of(session, "acc1", "link_down").services_affected == 1


def test_api_shows_affected_services_counts_and_filters_by_customer_and_service(net, session, client, auth):
    engine, s = net
    engine.submit_events(
        [ev("device_unreachable", "agg", severity="critical"), ev("linkDown", "acc2", "interface:Gi0/5")]
    )
    engine.run_once()
    h = auth("viewer")
    agg = alarm_of(session, "agg", "device_down")
    detail = client.get(f"/api/v1/alarms/{agg.id}", headers=h).json()
    assert (detail["services_affected"], detail["customers_affected"]) == (3, 2)
    assert {(a["service_id"], a["customer"], a["how"]) for a in detail["affected_services"]} == {
        (s["s3"], "acme", "direct"), (s["s1"], "acme", "topology"), (s["s4"], "zeta", "topology"),
    }  # fmt: skip
    by_customer = client.get("/api/v1/alarms", params={"customer": "bolt"}, headers=h).json()
    assert [a["device"] for a in by_customer["items"]] == ["acc2"] and by_customer["total"] == 1
    by_service = client.get("/api/v1/alarms", params={"service_id": s["s4"]}, headers=h).json()
    assert [a["id"] for a in by_service["items"]] == [agg.id]
    assert client.get("/api/v1/alarms", params={"customer": "nobody"}, headers=h).json()["total"] == 0
    bad = client.get("/api/v1/alarms", params={"service_id": 0}, headers=h)
    assert bad.status_code == 422 and "service_id" in bad.text
    bad = client.get("/api/v1/alarms", params={"customer": "x" * 121}, headers=h)
    assert bad.status_code == 422 and "customer" in bad.text
