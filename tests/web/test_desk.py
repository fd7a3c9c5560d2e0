"""The service desk's dashboard: the fault-report form and status lookup (customer terms only,
customer text escaped), and the service reports page with its SVG charts; roles per page."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from faultloop import clock
from tests.ticketing.conftest import frozen, make_device  # noqa: F401 - the fixture
from tests.ticketing.test_fault_reports import make_service
from ticketing.models import FaultReport, Ticket

HX = {"hx-request": "true"}
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=1">'


def _count(session, model):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


def test_the_desk_lands_on_its_form_and_sees_no_noc_pages(web, session, frozen):  # noqa: F811
    desk = web("servicedesk")
    r = desk.get("/", follow_redirects=False)
    assert r.status_code == 403
    html = desk.get("/ui/fault-reports").text
    assert 'data-testid="report-form"' in html and 'data-testid="status-form"' in html
    assert 'href="/ui/fault-reports"' in html and 'href="/ui/tickets"' not in html and 'href="/ui/topology"' not in html
    for path in ("/ui/tickets", "/ui/devices", "/ui/reports", "/ui/maintenance"):
        assert desk.get(path).status_code == 403, path
    assert web("viewer").get("/ui/fault-reports").status_code == 403


def test_report_from_the_form_and_look_it_up(web, session, frozen):  # noqa: F811
    dev = make_device(session, "web-cpe")
    sid = make_service(session, "ACME", dev.id)
    desk = web("servicedesk")
    form = {"customer": "ACME", "service_id": str(sid), "symptom": XSS, "contact": "Ann", "channel": "email"}
    r = desk.post("/ui/fault-reports", data=form, headers=HX)
    assert r.status_code == 201, r.text
    assert "<html" not in r.text and 'data-testid="report-ref"' in r.text
    assert "<script>window.__xss" not in r.text and "&lt;script&gt;window.__xss=1&lt;/script&gt;" in r.text
    assert "opened for diagnosis" in r.text and "no automatic test ran" in r.text
    ref = session.scalar(select(FaultReport.ref).where(FaultReport.customer == "ACME"))
    assert f'data-ref="{ref}"' in r.text and 'data-status="received"' in r.text

    r = desk.get("/ui/fault-reports/status", params={"customer": "ACME", "ref": ref}, headers=HX)
    assert r.status_code == 200 and 'data-status="received"' in r.text and "Received" in r.text
    assert "web-cpe" not in r.text  # no device, no ticket: customer terms only
    r = desk.get("/ui/fault-reports/status", params={"customer": "Globex", "ref": ref}, headers=HX)
    assert r.status_code == 404 and f"fault report {ref} not found" in r.text


def test_bad_form_input_names_the_field_and_writes_nothing(web, session, frozen):  # noqa: F811
    dev = make_device(session, "web-cpe2")
    sid = make_service(session, "ACME", dev.id)
    desk = web("servicedesk")
    cases = [
        ({"customer": "Nobody", "service_id": str(sid)}, "customer: no customer"),
        ({"service_id": "12a"}, "service_id: expected a service number"),
        ({"service_id": str(sid), "channel": "fax"}, "channel: expected one of"),
        ({"service_id": str(sid), "customer": ""}, "customer:"),
    ]
    before = _count(session, Ticket)
    for override, expected in cases:
        form = {"customer": "ACME", "symptom": "down", "contact": "Ann", "channel": "phone", **override}
        r = desk.post("/ui/fault-reports", data=form, headers=HX)
        assert r.status_code == 422, (override, r.text)
        assert 'data-testid="flash"' in r.text and expected in r.text, r.text
    assert (_count(session, FaultReport), _count(session, Ticket)) == (0, before)


def test_reports_page_draws_svg_bars_and_links_the_csv(web, session, frozen):  # noqa: F811
    start = clock.now() - timedelta(days=2)
    dev = make_device(session, "web-rep", site="pop-9")
    make_service(session, "ACME", dev.id, created_at=start)
    make_service(session, XSS, dev.id, "Gi0/2", created_at=start)
    noc = web("noc")
    r = noc.get("/ui/reports", params={"start": f"{start:%Y-%m-%d}"})
    assert r.status_code == 200, r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    html = r.text
    for chart in ("availability", "state", "sla", "mttr"):
        assert f'data-testid="chart-{chart}"' in html
    assert 'class="bar state" x="160" y="0" width="360.0"' in html  # never down in its state history
    # two customers over the two months the period touches (Feb 28 to Mar 2)
    assert html.count('data-testid="availability-row"') == 4 and 'data-testid="availability-csv"' in html
    assert "<td>2026-02</td>" in html and "<td>2026-03</td>" in html
    assert "/api/v1/reports/availability?by=customer&amp;start=" in html
    assert html.count('data-testid="report-row"') == 2
    assert "<script>window.__xss" not in html and "&lt;script&gt;" in html
    assert 'class="bar availability" x="160" y="0" width="360.0"' in html  # 100 % of the bar
    assert "100.000 %" in html and 'data-testid="report-csv"' in html
    assert "/api/v1/reports/services?by=customer" in html and "format=csv" in html
    assert "<script" not in html.split("</head>")[1]  # nothing inline: the CSP stays intact
    r = noc.get("/ui/reports", params={"by": "site"})
    assert r.status_code == 200 and ">pop-9<" in r.text
    r = noc.get("/ui/reports", params={"start": "next week"}, headers=HX)
    assert r.status_code == 422 and "start: expected a date" in r.text
    csv_text = noc.get("/api/v1/reports/services", params={"format": "csv", "start": start.isoformat()}).text
    assert csv_text.splitlines()[0].startswith("key,services,tickets")


def test_reports_page_per_service_class(web, session, frozen):  # noqa: F811
    start = clock.now() - timedelta(days=2)
    dev = make_device(session, "web-cls", site="pop-8")
    make_service(session, "ACME", dev.id, created_at=start)  # business_internet: gold in the packaged catalog
    viewer = web("viewer")
    r = viewer.get("/ui/reports", params={"by": "sla_class", "start": f"{start:%Y-%m-%d}"})
    assert r.status_code == 200, r.text
    assert '<option value="sla_class" selected>' in r.text and "<th>service class</th>" in r.text
    assert ">gold<" in r.text and r.text.count('data-testid="report-row"') == 1
    r = viewer.get("/ui/reports", params={"by": "device"}, headers=HX)
    assert r.status_code == 422 and "by" in r.text
