"""Availability from the service state history: per service and per customer per calendar month, the
minutes inside maintenance windows covering the service excluded (a one-off window on the device and a
daily RRULE window on the service's port, evaluated as the engine does; a window on another port does not
count), over a month boundary with exact minutes; the service report per SLA class with the history's
columns; CSV; bad months name the field; who may read it. The outage is made by the real alarm engine."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from alarms.bus import AlarmBus
from alarms.models import MaintenanceWindow
from alarms.runner import AlarmEngine
from faultloop import clock
from faultloop.events import Event
from provisioning import queries as services_read
from provisioning.models import ServiceInstance, ServiceResource

from .conftest import make_device

SLA = {"business_internet": "gold", "l2_vlan": "silver", "interface_state": "bronze"}
T_DOWN = datetime(2026, 1, 31, 23, 0, tzinfo=UTC)


def _service(session, customer, device_id, interface, *, created_at, service_type="business_internet"):
    svc = ServiceInstance(service_type=service_type, customer=customer, state="active", params={},
                          created_at=created_at, updated_at=created_at)  # fmt: skip
    session.add(svc)
    session.flush()
    session.add(ServiceResource(service_id=svc.id, device_id=device_id, interface=interface, vlan=None))
    return svc.id


def _window(session, name, *, starts_at, ends_at=None, rrule=None, duration_s=None, devices=(), interfaces=()):
    session.add(MaintenanceWindow(name=name, starts_at=starts_at, ends_at=ends_at, rrule=rrule, duration_s=duration_s,
                                  devices=list(devices), interfaces=list(interfaces), sites=[], tags=[],
                                  created_by="test", created_at=starts_at))  # fmt: skip


@pytest.fixture
def outage(runtime, session):
    """ACME's port av-1 Gi0/1 (created 2026-01-01) down from Jan 31 23:00 to Feb 1 01:00 (the real engine).
    Maintenance: av-1 from Jan 31 23:30 to Feb 1 00:20 (one-off); av-1:Gi0/1 daily 00:40-00:50 from Jan 15
    (RRULE); av-1:Gi0/2 the whole of February (another port: not ACME's). ACME's second service (av-2,
    l2_vlan) exists from Feb 10 and never fails; Globex's formula-looking name is on av-2 too."""
    c = clock.FrozenClock(T_DOWN)
    with clock.use(c):
        dev = make_device(session, "av-1")
        other = make_device(session, "av-2", site="pop-2")
        jan1 = datetime(2026, 1, 1, tzinfo=UTC)
        one = _service(session, "ACME", dev.id, "Gi0/1", created_at=jan1)
        two = _service(session, "ACME", other.id, "Gi0/3", created_at=datetime(2026, 2, 10, tzinfo=UTC),
                       service_type="l2_vlan")  # fmt: skip
        _service(session, "=HYPERLINK(\"x\")", other.id, "Gi0/4", created_at=jan1, service_type="l2_vlan")
        _window(session, "swap", starts_at=datetime(2026, 1, 31, 23, 30, tzinfo=UTC),
                ends_at=datetime(2026, 2, 1, 0, 20, tzinfo=UTC), devices=["av-1"])  # fmt: skip
        _window(session, "nightly", starts_at=datetime(2026, 1, 15, 0, 40, tzinfo=UTC),
                rrule="FREQ=DAILY;BYHOUR=0;BYMINUTE=40", duration_s=600, interfaces=["av-1:Gi0/1"])  # fmt: skip
        _window(session, "other port", starts_at=datetime(2026, 2, 1, tzinfo=UTC),
                ends_at=datetime(2026, 3, 1, tzinfo=UTC), interfaces=["av-1:Gi0/2"])  # fmt: skip
        session.commit()
        engine = AlarmEngine(runtime, AlarmBus(), services=lambda s: services_read.footprints(s, sla_classes=SLA))
        engine.load()

        def event(event_type, severity, device="av-1", port="Gi0/1"):
            return Event(source="trap", device=device, event_type=event_type, severity=severity, time=clock.now(),
                         managed_object=f"interface:{port}")  # fmt: skip

        engine.submit_events([event("linkDown", "major")])
        engine.run_once()
        for _ in range(4):  # the engine's rounds through the night (maintenance edges)
            c.advance(900)
            engine.run_once()
        c.advance(7200 - 4 * 900)
        engine.submit_events([event("linkUp", "cleared")])
        engine.run_once()
        # the second service's port: CRC errors (minor) for 45 minutes on Feb 15: degraded, still available
        c.advance((datetime(2026, 2, 15, 10, 0, tzinfo=UTC) - clock.now()).total_seconds())
        engine.submit_events([event("crc_errors", "minor", "av-2", "Gi0/3")])
        engine.run_once()
        c.advance(45 * 60)
        engine.submit_events([event("crc_errors", "cleared", "av-2", "Gi0/3")])
        engine.run_once()
        c.advance((datetime(2026, 3, 1, tzinfo=UTC) - clock.now()).total_seconds())  # both months are over
        yield {"one": one, "two": two, "clock": c}


def _get(client, headers, path="/api/v1/reports/availability", **params):
    return client.get(path, params=params, headers=headers)


JAN_MIN = 31 * 1440
FEB_MIN = 28 * 1440


def test_per_service_per_month_with_maintenance_excluded(client, auth, outage):
    r = _get(client, auth("viewer"), start="2026-01", end="2026-02", by="service")
    assert r.status_code == 200, r.text
    rows = {(row["month"], row["key"]): row for row in r.json()}
    one = str(outage["one"])
    jan, feb = rows[("2026-01", one)], rows[("2026-02", one)]
    # January: 60 min down from 23:00, of which 23:30-24:00 in the one-off window; maintenance: those 30 min
    # plus the daily 10 min from Jan 15 to Jan 31 (17 days)
    assert (jan["service_minutes"], jan["maintenance_minutes"], jan["down_minutes"]) == (JAN_MIN, 30 + 170, 30)
    assert jan["availability_pct"] == round(100 * (1 - 30 / (JAN_MIN - 200)), 4) == 99.9325
    # February: 00:00-01:00 down, 00:00-00:20 (one-off) and 00:40-00:50 (daily) in maintenance; the window
    # on another port of the device does not count
    assert (feb["service_minutes"], feb["maintenance_minutes"], feb["down_minutes"]) == (FEB_MIN, 20 + 280, 30)
    assert feb["availability_pct"] == round(100 * (1 - 30 / (FEB_MIN - 300)), 4) == 99.925
    assert (feb["customer"], feb["service_type"], feb["sla_class"], feb["degraded_minutes"]) == (
        "ACME", "business_internet", "gold", 0)  # fmt: skip
    # the second service exists from Feb 10 only and was always up
    assert ("2026-01", str(outage["two"])) not in rows
    two = rows[("2026-02", str(outage["two"]))]
    assert (two["service_minutes"], two["down_minutes"], two["availability_pct"]) == (19 * 1440, 0, 100.0)
    assert two["degraded_minutes"] == 45 and two["sla_class"] == "silver"


def test_per_customer_per_month_and_csv(client, auth, outage):
    rows = _get(client, auth("noc"), start="2026-01", end="2026-02", by="customer", customer="ACME").json()
    assert [(r["month"], r["key"], r["services"]) for r in rows] == [("2026-01", "ACME", 1), ("2026-02", "ACME", 2)]
    feb = rows[1]
    assert (feb["service_minutes"], feb["maintenance_minutes"], feb["down_minutes"]) == (FEB_MIN + 19 * 1440, 300, 30)
    assert feb["availability_pct"] == round(100 * (1 - 30 / (FEB_MIN - 300 + 19 * 1440)), 4) == 99.9555
    assert feb["service_type"] is None and feb["sla_class"] is None and feb["degraded_minutes"] == 45

    r = _get(client, auth("admin"), start="2026-02", end="2026-02", by="customer", format="csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == 'attachment; filename="availability-customer-202602-202602.csv"'
    table = list(csv.reader(io.StringIO(r.text)))
    assert table[0] == ["month", "key", "customer", "services", "service_type", "sla_class", "service_minutes",
                        "maintenance_minutes", "down_minutes", "degraded_minutes", "availability_pct"]  # fmt: skip
    by_key = {row[1]: row for row in table[1:]}
    assert (by_key["ACME"][8], by_key["ACME"][9], by_key["ACME"][10]) == ("30.0", "45.0", "99.9555")
    assert "'=HYPERLINK(\"x\")" in by_key  # a formula is never a formula in the spreadsheet


def test_service_report_per_sla_class_carries_the_state_history(client, auth, outage):
    start, end = "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"
    r = _get(client, auth("viewer"), "/api/v1/reports/services", by="sla_class", start=start, end=end)
    assert r.status_code == 200, r.text
    rows = {row["key"]: row for row in r.json()}
    assert set(rows) == {"gold", "silver"}
    gold = rows["gold"]
    assert (gold["services"], gold["service_s"], gold["maintenance_s"], gold["down_s"]) == (
        1, FEB_MIN * 60.0, 300 * 60.0, 30 * 60.0)  # fmt: skip
    assert gold["service_availability_pct"] == 99.925
    silver = rows["silver"]
    assert (silver["services"], silver["degraded_s"], silver["service_availability_pct"]) == (2, 45 * 60.0, 100.0)
    csv_text = _get(client, auth("noc"), "/api/v1/reports/services", by="sla_class", start=start, end=end,
                    format="csv").text  # fmt: skip
    table = list(csv.reader(io.StringIO(csv_text)))
    assert {row[0] for row in table[1:]} == {"gold", "silver"} and table[0][-1] == "service_availability_pct"


@pytest.mark.parametrize(
    "params,field,detail",
    [
        ({"start": "2026-13"}, "start", "start: expected a month as YYYY-MM"),
        ({"end": "March"}, "end", "end: expected a month as YYYY-MM"),
        ({"start": "2026-03", "end": "2026-01"}, "start", "start: expected a month at or before end"),
        ({"start": "2025-01", "end": "2026-01"}, "start", "start: expected at most 12 months"),
        ({"start": "2026-01-01"}, "start", "start: String should have at most 7 characters"),
        ({"by": "site"}, "by", "by: Input should be 'service' or 'customer'"),
        ({"format": "xlsx"}, "format", "format: Input should be 'json' or 'csv'"),
        ({"customer": ""}, "customer", "customer: String should have at least 1 character"),
    ],
)
def test_bad_months_name_the_field(client, auth, params, field, detail):
    r = _get(client, auth("noc"), **params)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert detail in problem["detail"]
    fields = {e["field"] for e in problem.get("errors", [])} | ({problem["field"]} if "field" in problem else set())
    assert field in fields


def test_a_year_of_months_is_accepted_and_defaults_to_this_month(client, auth, frozen):
    assert _get(client, auth("noc"), start="2025-04", end="2026-03").status_code == 200
    r = _get(client, auth("noc"))
    assert r.status_code == 200 and r.json() == []  # no services at all


@pytest.mark.parametrize("role,status", [("admin", 200), ("noc", 200), ("viewer", 200), ("technician", 403),
                                         ("provisioner", 403), ("servicedesk", 403)])  # fmt: skip
def test_who_reads_availability(client, auth, frozen, role, status):
    assert _get(client, auth(role)).status_code == status
    assert client.get("/api/v1/reports/availability").status_code == 401


def test_the_current_month_counts_up_to_now(client, auth, outage, session):
    """Asked on Feb 1 at 02:00, February has two hours of service time so far, not 28 days."""
    c = outage["clock"]
    c.advance(-(28 * 86400) + 7200)  # from Mar 1 00:00 back to Feb 1 02:00 (the outage ended at 01:00)
    r = _get(client, auth("noc"), start="2026-02", end="2026-02", by="service")
    row = {x["key"]: x for x in r.json()}[str(outage["one"])]
    # the month so far: 120 min of service, 20 + 10 min maintenance, down 00:00-01:00 less those 30 min
    assert (row["service_minutes"], row["maintenance_minutes"], row["down_minutes"]) == (120, 30, 30)
    assert row["availability_pct"] == round(100 * (1 - 30 / 90), 4)
    assert timedelta(minutes=row["service_minutes"]) == timedelta(hours=2)
