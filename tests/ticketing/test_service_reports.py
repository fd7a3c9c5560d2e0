"""Service assurance reports: MTTA, MTTR, SLA compliance and availability per customer and per
site over a period, as JSON and CSV; which tickets hurt which service; bad periods name the field."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from faultloop import clock
from ticketing import service
from ticketing.service import SYSTEM

from .conftest import make_alarm, make_device
from .test_fault_reports import _record, _report, make_service

H = 3600.0


@pytest.fixture
def scenario(session, frozen, policy):
    """A 10-hour period ending now; ACME at pop-1 down 2 h, Globex at pop-2 down 8 h (still open)."""
    end = clock.now()
    start = end - timedelta(hours=10)
    a = make_device(session, "rep-a", site="pop-1")
    b = make_device(session, "rep-b", site="pop-2")
    since = start - timedelta(days=1)
    make_service(session, "ACME", a.id, "Gi0/1", created_at=since)
    make_service(session, "Globex", b.id, "Gi0/1", created_at=since)
    # a customer name a spreadsheet would run
    make_service(session, "=cmd|' /C calc'!A0", b.id, "Gi0/8", created_at=since)
    # ACME's port: created +1 h, acknowledged +1 h 10 min, resolved +3 h
    hit = make_alarm(session, device="rep-a")  # interface:Gi0/1
    t1 = service.open_for_alarm(session, policy=policy, alarm=_record(session, hit.id), now=start + timedelta(hours=1))
    t1.acknowledged_at = start + timedelta(hours=1, minutes=10)
    t1.resolved_at = start + timedelta(hours=3)
    t1.state = "resolved"
    # another port of ACME's device: not ACME's
    other = make_alarm(session, device="rep-a")
    other.managed_object = "interface:Gi0/9"
    session.flush()
    other_row = _record(session, other.id)
    service.open_for_alarm(session, policy=policy, alarm=other_row, now=start + timedelta(hours=2))
    # Globex's device: a manual ticket from +2 h, restore clock breached, still open
    t3 = service.create_manual(session, policy=policy, actor=SYSTEM, title="rep-b down", device="rep-b",
                               now=start + timedelta(hours=2))  # fmt: skip
    t3.restore_breached = True
    # before the period: resolved before it started, counts nowhere
    old = service.create_manual(session, policy=policy, actor=SYSTEM, title="old", device="rep-a",
                                now=start - timedelta(hours=5))  # fmt: skip
    old.resolved_at = start - timedelta(hours=4)
    # cancelled: hurts nothing
    gone = service.create_manual(session, policy=policy, actor=SYSTEM, title="false alarm", device="rep-a",
                                 now=start + timedelta(hours=4))  # fmt: skip
    gone.state = "cancelled"
    session.commit()
    return {"start": start, "end": end}


def _get(client, headers, **params):
    return client.get("/api/v1/reports/services", params=params, headers=headers)


def _iso(value):
    return value.isoformat().replace("+00:00", "Z")


def test_per_customer(client, auth, scenario):
    r = _get(client, auth("viewer"), by="customer", start=_iso(scenario["start"]), end=_iso(scenario["end"]))
    assert r.status_code == 200, r.text
    rows = {row["key"]: row for row in r.json()}
    assert set(rows) == {"ACME", "Globex", "=cmd|' /C calc'!A0"}
    acme = rows["ACME"]
    assert (acme["services"], acme["tickets"], acme["acknowledged"], acme["mtta_s"], acme["resolved"],
            acme["mttr_s"]) == (1, 1, 1, 600.0, 1, 2 * H)  # fmt: skip
    assert (acme["sla_met"], acme["sla_decided"], acme["sla_compliance_pct"]) == (1, 1, 100.0)
    assert (acme["downtime_s"], acme["service_s"], acme["availability_pct"]) == (2 * H, 10 * H, 80.0)
    globex = rows["Globex"]
    assert (globex["tickets"], globex["mtta_s"], globex["mttr_s"]) == (1, None, None)
    assert (globex["sla_met"], globex["sla_decided"], globex["sla_compliance_pct"]) == (0, 1, 0.0)
    assert (globex["downtime_s"], globex["availability_pct"]) == (8 * H, 20.0)
    # a manual ticket on a device hurts every service on it
    assert rows["=cmd|' /C calc'!A0"]["availability_pct"] == 20.0


def test_per_site_and_csv(client, auth, scenario):
    params = {"by": "site", "start": _iso(scenario["start"]), "end": _iso(scenario["end"])}
    rows = {row["key"]: row for row in _get(client, auth("noc"), **params).json()}
    assert set(rows) == {"pop-1", "pop-2"}
    assert (rows["pop-1"]["availability_pct"], rows["pop-1"]["mttr_s"]) == (80.0, 2 * H)
    assert (rows["pop-2"]["services"], rows["pop-2"]["tickets"], rows["pop-2"]["availability_pct"]) == (2, 1, 20.0)

    r = _get(client, auth("admin"), **{**params, "by": "customer", "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith('attachment; filename="service-report-customer-')
    table = list(csv.reader(io.StringIO(r.text)))
    assert table[0][:3] == ["key", "services", "tickets"] and table[0][-1] == "service_availability_pct"
    assert "availability_pct" in table[0] and "down_s" in table[0]
    by_key = {row[0]: dict(zip(table[0], row, strict=True)) for row in table[1:]}
    assert by_key["ACME"]["availability_pct"] == "80.0" and by_key["Globex"]["mtta_s"] == ""
    assert "'=cmd|' /C calc'!A0" in by_key  # a formula is never a formula in the spreadsheet


def test_a_customer_report_counts_for_its_service_only(client, auth, session, frozen):
    dev = make_device(session, "rep-c", site="pop-3")
    start = clock.now() - timedelta(hours=1)
    sid = make_service(session, "Initech", dev.id, "Gi0/1", created_at=start)
    make_service(session, "Hooli", dev.id, "Gi0/2", created_at=start)
    assert _report(client, auth("servicedesk"), customer="Initech", service_id=sid).status_code == 201
    frozen.advance(1800)
    rows = {row["key"]: row for row in _get(client, auth("noc"), start=_iso(start)).json()}
    assert (rows["Initech"]["tickets"], rows["Initech"]["downtime_s"]) == (1, 1800.0)
    assert (rows["Hooli"]["tickets"], rows["Hooli"]["downtime_s"], rows["Hooli"]["availability_pct"]) == (0, 0.0, 100.0)


@pytest.mark.parametrize(
    "params,field,detail",
    [
        ({"start": "2026-03-01T00:00:00"}, "start", "start: expected a timezone-aware time"),
        ({"end": "2026-03-01T00:00:00"}, "end", "end: expected a timezone-aware time"),
        ({"start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"}, "start", "expected a time before end"),
        ({"start": "2024-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}, "start", "at most 366 days"),
        ({"by": "device"}, "by", "by: Input should be 'customer', 'site' or 'sla_class'"),
        ({"format": "xlsx"}, "format", "format: Input should be 'json' or 'csv'"),
        ({"start": "yesterday"}, "start", "start: Input should be a valid datetime"),
    ],
)
def test_bad_periods_name_the_field(client, auth, frozen, params, field, detail):
    r = _get(client, auth("noc"), **params)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert detail in problem["detail"]
    fields = {e["field"] for e in problem.get("errors", [])} | ({problem["field"]} if "field" in problem else set())
    assert field in fields
