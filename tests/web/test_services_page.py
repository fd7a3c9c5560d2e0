"""The dashboard's services page: each customer service with its operational state from the state
history (worst first), the filter by state, device text rendered inert, who sees the causing alarm."""

from __future__ import annotations

from datetime import timedelta

from alarms.models import ServiceStatePeriod
from faultloop import clock
from tests.ticketing.conftest import frozen, make_device  # noqa: F401 - the fixture
from tests.ticketing.test_fault_reports import make_service

XSS = '<script>window.__xss=1</script>'


def test_services_page_shows_states_worst_first_and_filters(web, session, frozen):  # noqa: F811
    dev = make_device(session, "svc-pe")
    up = make_service(session, "Alpha", dev.id, "Gi0/1")
    down = make_service(session, XSS, dev.id, "Gi0/2")
    degraded = make_service(session, "Bravo", dev.id, "Gi0/3")
    since = clock.now() - timedelta(minutes=5)
    session.add_all([
        ServiceStatePeriod(service_id=down, customer=XSS, state="down", started_at=since, alarm_id=4242),
        ServiceStatePeriod(service_id=degraded, customer="Bravo", state="degraded", started_at=since),
        ServiceStatePeriod(service_id=up, customer="Alpha", state="down", started_at=since - timedelta(hours=1),
                           ended_at=since),  # over: up again
    ])  # fmt: skip
    session.commit()
    noc = web("noc")
    r = noc.get("/ui/services")
    assert r.status_code == 200, r.text
    html = r.text
    order = [html.index(f'<td>{sid}</td>') for sid in (down, degraded, up)]
    assert order == sorted(order)  # down, degraded, up
    assert 'data-oper-state="down"' in html and 'data-oper-state="degraded"' in html and 'data-oper-state="up"' in html
    assert '<a href="/ui/alarms/4242">alarm 4242</a>' in html
    assert "down (1)</option>" in html and "up (1)</option>" in html
    assert "<script>window.__xss" not in html and "&lt;script&gt;" in html
    assert 'href="/ui/services"' in html  # in the navigation
    assert f'<tr id="service-{down}" data-testid="service-row"' in html  # the anchor impact tables link to
    only = noc.get("/ui/services", params={"oper_state": "degraded"}).text
    assert only.count('data-testid="service-row"') == 1 and "Bravo" in only
    bad = noc.get("/ui/services", params={"oper_state": "sideways"}, headers={"hx-request": "true"})
    assert bad.status_code == 422 and "oper_state" in bad.text
    desk = web("servicedesk").get("/ui/services", params={"customer": "Bravo"})
    assert desk.status_code == 200 and desk.text.count('data-testid="service-row"') == 1
    assert "/ui/alarms/" not in desk.text  # the service desk never sees alarms
