"""The maintenance windows page: list, create from the form (MaintenanceIn rules), delete."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from alarms import service
from alarms.models import MaintenanceWindow
from alarms.schemas import MaintenanceIn
from faultloop import clock
from faultloop.audit.models import AuditEntry

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WINDOW_ROW = re.compile(r'data-testid="window-row" data-window-id="(\d+)" data-active="(true|false)"')


@pytest.fixture
def frozen():
    c = clock.FrozenClock(NOW)
    with clock.use(c):
        yield c


def windows(html):
    return {int(i): active == "true" for i, active in WINDOW_ROW.findall(html)}


def add(session, name, start_h, end_h=None, **kw):
    data = MaintenanceIn(
        name=name,
        starts_at=NOW + timedelta(hours=start_h),
        ends_at=None if end_h is None else NOW + timedelta(hours=end_h),
        devices=kw.pop("devices", ["r1"]),
        **kw,
    )
    window = service.create_window(session, data, actor="test")
    session.commit()
    return window.id


def count(session):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(MaintenanceWindow))


def test_lists_current_and_future_windows_and_past_on_request(web, session, frozen):
    past = add(session, "last week", -200, -190)
    now_on = add(session, "night works", -1, 2, sites=["pop1"], reason="fibre splice")
    later = add(session, "sundays", 24, rrule="FREQ=WEEKLY;BYDAY=SU", duration_s=7200)
    viewer = web("viewer")
    html = viewer.get("/ui/maintenance").text
    assert windows(html) == {now_on: True, later: False}
    assert "FREQ=WEEKLY;BYDAY=SU" in html and "each occurrence 2h 00m" in html and "fibre splice" in html
    assert "sites:</span> pop1" in html
    assert 'href="/ui/maintenance?include_past=true"' in html
    html = viewer.get("/ui/maintenance?include_past=true").text
    assert windows(html) == {past: False, now_on: True, later: False}
    # viewers see no form and no delete button
    assert 'data-testid="window-form"' not in html and 'data-testid="delete-window"' not in html
    html = web("noc").get("/ui/maintenance").text
    assert 'data-testid="window-form"' in html and html.count('data-testid="delete-window"') == 2


def test_create_one_off_rrule_and_cron_windows_from_the_form(web, session, frozen):
    noc = web("noc")
    r = noc.post(
        "/ui/maintenance",
        data={"name": "swap card", "kind": "once", "starts_at": "2026-03-01T11:00", "ends_at": "2026-03-01T13:00",
              "devices": "r1, r2", "interfaces": "r3:Gi0/1", "reason": "RMA", "rrule": "ignored for one-off"},
        headers={"hx-request": "true"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert "<html" not in r.text and 'data-testid="window-form"' in r.text  # the body again, a fresh form
    w = session.scalar(select(MaintenanceWindow).where(MaintenanceWindow.name == "swap card"))
    assert (w.starts_at, w.ends_at, w.rrule) == (NOW - timedelta(hours=1), NOW + timedelta(hours=1), None)
    assert (w.devices, w.interfaces, w.reason, w.created_by) == (["r1", "r2"], ["r3:Gi0/1"], "RMA", "web-noc")
    assert windows(r.text)[w.id] is True

    r = noc.post(
        "/ui/maintenance",
        data={"name": "weekly", "kind": "rrule", "starts_at": "2026-03-01T02:00:00+00:00",
              "rrule": "FREQ=WEEKLY;BYDAY=SU", "duration_s": "3600", "sites": "pop1\npop2", "cron": "not used"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    w = session.scalar(select(MaintenanceWindow).where(MaintenanceWindow.name == "weekly"))
    assert (w.rrule, w.cron, w.duration_s, w.sites, w.ends_at) == (
        "FREQ=WEEKLY;BYDAY=SU",
        None,
        3600,
        ["pop1", "pop2"],
        None,
    )

    r = noc.post(
        "/ui/maintenance",
        data={"name": "nightly", "kind": "cron", "starts_at": "2026-03-01T00:00", "cron": "0 2 * * *",
              "duration_s": "1800", "tags": "lab"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    w = session.scalar(select(MaintenanceWindow).where(MaintenanceWindow.name == "nightly"))
    assert (w.cron, w.rrule, w.tags) == ("0 2 * * *", None, ["lab"])
    assert (
        session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "maintenance.create"))
        == 3
    )


BAD_FORMS = [
    ({"name": ""}, "name:"),
    ({"starts_at": ""}, "starts_at:"),
    ({"starts_at": "tomorrow"}, "starts_at:"),
    ({"ends_at": ""}, "ends_at is required for a one-off window"),
    ({"ends_at": "2026-03-01T09:00"}, "ends_at must be after starts_at"),
    ({"devices": ""}, "give at least one of devices, sites, tags, interfaces"),
    ({"interfaces": "r1-Gi0/1"}, "interfaces: expected hostname:interface"),
    ({"kind": "rrule", "rrule": "", "duration_s": "600"}, "rrule: required"),
    ({"kind": "rrule", "rrule": "FREQ=SOMETIMES", "duration_s": "600"}, "rrule: not a valid RRULE"),
    ({"kind": "rrule", "rrule": "FREQ=DAILY"}, "duration_s is required for a recurring window"),
    ({"kind": "cron", "cron": "61 * * * *", "duration_s": "600"}, "cron: not a valid cron expression"),
    ({"kind": "cron", "cron": "0 2 * * *", "duration_s": "10"}, "duration_s:"),
    ({"kind": "cron", "cron": "0 2 * * *", "duration_s": "ten"}, "duration_s:"),
    ({"kind": "weekly"}, "kind:"),
]


def test_bad_form_input_is_422_naming_the_field_and_stores_nothing(web, session, frozen):
    noc = web("noc")
    before = count(session)
    for form, expected in BAD_FORMS:
        data = {"name": "w", "kind": "once", "starts_at": "2026-03-01T10:00", "ends_at": "2026-03-01T14:00",
                "devices": "r1", **form}  # fmt: skip
        r = noc.post("/ui/maintenance", data=data, headers={"hx-request": "true"})
        assert r.status_code == 422, (form, r.text)
        assert expected in r.text, (form, r.text)
        assert r.headers["hx-retarget"] == "#flash"
    assert count(session) == before


def test_delete_window(web, session, frozen):
    keep = add(session, "keep", 1, 2)
    gone = add(session, "gone", 1, 2)
    noc = web("noc")
    r = noc.delete(f"/ui/maintenance/{gone}", headers={"hx-request": "true"})
    assert r.status_code == 200 and windows(r.text) == {keep: False}
    session.expire_all()
    assert session.get(MaintenanceWindow, gone) is None
    assert noc.delete(f"/ui/maintenance/{gone}").status_code == 404
    # the past toggle survives a delete
    r = noc.delete(f"/ui/maintenance/{keep}?include_past=true", headers={"hx-request": "true"})
    assert 'data-testid="toggle-past">hide past windows' in r.text


@pytest.mark.parametrize("role", ["viewer", "technician", "provisioner"])
def test_only_operators_create_and_delete(web, session, frozen, role):
    wid = add(session, "keep", 1, 2)
    client = web(role)
    data = {
        "name": "w",
        "kind": "once",
        "starts_at": "2026-03-01T10:00",
        "ends_at": "2026-03-01T14:00",
        "devices": "r1",
    }
    assert client.post("/ui/maintenance", data=data).status_code == 403
    assert client.delete(f"/ui/maintenance/{wid}").status_code == 403
    assert count(session) == 1


def test_create_and_delete_need_the_csrf_header(web, session, frozen):
    wid = add(session, "keep", 1, 2)
    noc = web("noc")
    del noc.headers["X-CSRF-Token"]
    data = {
        "name": "w",
        "kind": "once",
        "starts_at": "2026-03-01T10:00",
        "ends_at": "2026-03-01T14:00",
        "devices": "r1",
    }
    r = noc.post("/ui/maintenance", data=data)
    assert r.status_code == 403 and "CSRF" in r.text
    assert noc.delete(f"/ui/maintenance/{wid}").status_code == 403
    assert count(session) == 1


def test_hostile_window_fields_render_escaped(web, session, frozen):
    script, img = "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>'
    add(session, script, 1, 2, devices=[img], reason=img, tags=[script])
    html = web("noc").get("/ui/maintenance").text
    assert script not in html and img not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
