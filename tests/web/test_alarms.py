"""The alarm console (the landing page), an alarm's detail and the operator actions, on SQLite
and PostgreSQL. Alarms come through the real path: POST /api/v1/events, then the engine."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, insert, select

from alarms.bus import AlarmBus
from alarms.models import Alarm, AlarmJournal
from alarms.runner import AlarmEngine
from faultloop import clock
from inventory.models import Device, Site, device_dependencies

XSS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')


@pytest.fixture
def frozen():
    c = clock.FrozenClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    with clock.use(c):
        yield c


@pytest.fixture
def engine(runtime, frozen):
    eng = AlarmEngine(runtime, AlarmBus())
    eng.load()
    return eng


def ev(device="r1", event_type="linkDown", obj="interface:Gi0/1", **kw):
    severity = kw.pop("severity", "major")
    return {"device": device, "event_type": event_type, "severity": severity, "managed_object": obj, **kw}


def raise_events(client, engine, *events):
    r = client.post("/api/v1/events", json={"events": list(events)})
    assert r.status_code == 202, r.text
    engine.run_once()


def site_device(session, hostname, site, *, role="access", parents=()):
    now = clock.now()
    row = session.scalar(select(Site).where(Site.name == site))
    if row is None:
        row = Site(name=site, description="", created_at=now)
        session.add(row)
        session.flush()
    dev = Device(hostname=hostname, address="127.0.0.1", role=role, site_id=row.id, tags=[], created_at=now,
                 updated_at=now)  # fmt: skip
    session.add(dev)
    session.flush()
    for parent in parents:
        parent_id = session.scalar(select(Device.id).where(Device.hostname == parent))
        session.execute(insert(device_dependencies).values(child_id=dev.id, parent_id=parent_id))
    return dev


def alarm_id(session, device, alarm_type=None):
    query = select(Alarm.id).where(Alarm.device == device)
    if alarm_type:
        query = query.where(Alarm.alarm_type == alarm_type)
    return session.scalar(query)


ROW = re.compile(r'data-testid="alarm-row" data-alarm-id="(\d+)" data-severity="(\w+)"')


def rows(html):
    """(alarm id, severity) of the console's rows, in order."""
    return [(int(i), sev) for i, sev in ROW.findall(html)]


def ids(html):
    return [i for i, _ in rows(html)]


def count(html, severity):
    match = re.search(rf'data-testid="count-{severity}" data-count="(\d+)"', html)
    assert match, f"no count for {severity}"
    return int(match.group(1))


@pytest.fixture
def storm(web, engine, session):
    """r1..r3 (site pop1, r3 unknown to the inventory) with alarms of several severities."""
    site_device(session, "r1", "pop1")
    site_device(session, "r2", "pop2")
    session.commit()
    noc = web("noc")
    raise_events(
        noc,
        engine,
        ev("r1", "linkDown", "interface:Gi0/1"),  # link_down: major
        ev("r1", "device_unreachable", "", severity="critical", source="poll"),  # device_down: critical
        ev("r2", "authenticationFailure", "", severity="minor", description="bad community 100%_match"),
        ev("r3", "linkDown", "interface:Gi0/9", description="carrier fibre cut"),
    )
    return noc


# ---- the console ----------------------------------------------------------------------------------


def test_console_lists_active_alarms_with_hooks_counts_links_and_live_stream(storm, session):
    r = storm.get("/")
    assert r.status_code == 200
    html = r.text
    got = rows(html)
    assert len(got) == 4
    assert got[0] == (alarm_id(session, "r1", "device_down"), "critical")  # severity first by default
    assert count(html, "critical") == 1 and count(html, "major") == 2 and count(html, "minor") == 1
    assert count(html, "warning") == 0
    # the device links to its page when the inventory knows it; r3 is plain text
    r1 = session.scalar(select(Device.id).where(Device.hostname == "r1"))
    assert f'href="/ui/devices/{r1}" data-testid="device-link">r1</a>' in html
    assert 'class="device">r3</td>' in html
    assert '<td class="site hide-narrow">pop1</td>' in html
    # live updates: the SSE extension connects to the alarm stream, the table refreshes from its own URL
    assert 'hx-ext="sse" sse-connect="/api/v1/alarms/stream"' in html
    assert 'hx-trigger="sse:alarm"' in html
    assert 'hx-get="/ui/alarms/rows" hx-trigger="alarms-refresh, alarms-changed from:body"' in html
    assert '<script src="/static/js/alarms.js" defer></script>' in html
    for hook in ('data-testid="ack"', 'data-testid="clear"', 'data-testid="comment"'):
        assert html.count(hook) == 4


def test_ticket_link_when_the_alarm_has_a_ticket(storm, session):
    aid = alarm_id(session, "r2")
    session.get(Alarm, aid).ticket_id = 77  # ticketing links it; the console only shows it
    session.commit()
    html = storm.get("/").text
    assert 'href="/ui/tickets/77" data-testid="ticket-link">#77</a>' in html
    assert 'href="/ui/tickets/77" data-testid="detail-ticket"' in storm.get(f"/ui/alarms/{aid}").text


def test_filters_by_severity_site_device_text_and_state(storm, session, engine):
    assert [s for _, s in rows(storm.get("/?severity=major").text)] == ["major", "major"]
    # the counts honour every filter but the severity itself (they are the severity chips)
    html = storm.get("/?severity=major&site=pop1").text
    assert ids(html) == [alarm_id(session, "r1", "link_down")]
    assert count(html, "critical") == 1 and count(html, "major") == 1 and count(html, "minor") == 0
    assert ids(storm.get("/?device=r2").text) == [alarm_id(session, "r2")]
    assert ids(storm.get("/?q=FIBRE").text) == [alarm_id(session, "r3")]  # any case
    assert ids(storm.get("/?q=Gi0/9").text) == [alarm_id(session, "r3")]
    # LIKE wildcards are literal: '%' and '_' match only themselves
    assert ids(storm.get("/ui/alarms/rows", params={"q": "100%_m"}).text) == [alarm_id(session, "r2")]
    assert ids(storm.get("/ui/alarms/rows", params={"q": "%"}).text) == [alarm_id(session, "r2")]
    assert ids(storm.get("/ui/alarms/rows", params={"q": "r_"}).text) == []  # not r1, r2, r3
    assert ids(storm.get("/?q=nothing-like-this").text) == []
    assert 'data-testid="alarm-empty"' in storm.get("/?q=nothing-like-this").text

    acked = alarm_id(session, "r1", "link_down")
    assert storm.post(f"/ui/alarms/{acked}/ack").status_code == 200
    cleared = alarm_id(session, "r3")
    assert storm.post(f"/ui/alarms/{cleared}/clear", data={"reason": "fixed"}).status_code == 200
    assert ids(storm.get("/?state=acknowledged").text) == [acked]
    assert acked not in ids(storm.get("/?state=unacknowledged").text)
    assert len(ids(storm.get("/?state=unacknowledged").text)) == 2
    assert ids(storm.get("/?state=cleared").text) == [cleared]
    assert len(ids(storm.get("/?state=all").text)) == 4
    assert len(ids(storm.get("/").text)) == 3


def test_hide_muted(storm, session):
    aid = alarm_id(session, "r2")
    alarm = session.get(Alarm, aid)
    alarm.muted, alarm.suppression_reason = True, "maintenance: night works"
    session.commit()
    html = storm.get("/").text
    assert aid in ids(html) and "maintenance: night works" in html
    assert aid not in ids(storm.get("/?hide_muted=true").text)


def test_sort_by_severity_time_device_and_count(storm, session, frozen, engine):
    frozen.advance(60)
    raise_events(storm, engine, ev("r2", "authenticationFailure", ""))  # r2's alarm: count 2, latest
    r2 = alarm_id(session, "r2")
    sev = [s for _, s in rows(storm.get("/?sort=severity&order=asc").text)]
    assert sev == ["minor", "major", "major", "critical"]
    assert ids(storm.get("/?sort=time").text)[0] == r2
    assert ids(storm.get("/?sort=time&order=asc").text)[-1] == r2
    devices = re.findall(r'class="device">(?:<a [^>]*>)?(r\d)', storm.get("/?sort=device&order=asc").text)
    assert devices == ["r1", "r1", "r2", "r3"]
    devices = re.findall(r'class="device">(?:<a [^>]*>)?(r\d)', storm.get("/?sort=device&order=desc").text)
    assert devices == ["r3", "r2", "r1", "r1"]
    assert ids(storm.get("/?sort=count").text)[0] == r2
    # a sorted column's header links to the other direction, keeping the filters
    html = storm.get("/?sort=device&order=asc&severity=major").text
    assert 'href="/?severity=major&amp;sort=device" hx-get="/ui/alarms/rows?severity=major&amp;sort=device"' in html


def test_server_side_pagination_counts_the_whole_set(web, engine, session):
    noc = web("noc")
    raise_events(noc, engine, *[ev("r1", "linkDown", f"interface:Gi0/{i}") for i in range(7)])
    raise_events(noc, engine, ev("r2", "device_unreachable", "", source="poll"))
    first = noc.get("/?limit=3").text
    second = noc.get("/?limit=3&offset=3").text
    last = noc.get("/?limit=3&offset=6").text
    assert len(ids(first)) == 3 and len(ids(second)) == 3 and len(ids(last)) == 2
    assert len(set(ids(first) + ids(second) + ids(last))) == 8  # no overlap, nothing missing
    assert count(first, "major") == 7 and count(first, "critical") == 1  # the set, not the page
    assert "rows 1–3 of 8" in first and 'data-testid="page-next"' in first and "page-prev" not in first
    assert 'href="/?limit=3&amp;offset=3"' in first
    assert "rows 7–8 of 8" in last and "page-next" not in last
    assert 'href="/?limit=3&amp;offset=3" hx-get="/ui/alarms/rows?limit=3&amp;offset=3" data-testid="page-prev"' in last


BAD_QUERIES = [
    ("sort=name", "sort"),
    ("sort=severity;drop", "sort"),
    ("order=up", "order"),
    ("state=open", "state"),
    ("severity=huge", "severity"),
    ("limit=0", "limit"),
    ("limit=100000", "limit"),
    ("offset=-1", "offset"),
    ("expand=abc", "expand"),
    ("hide_muted=perhaps", "hide_muted"),
    ("q=" + "x" * 201, "q"),
]


def test_bad_console_parameters_are_422_naming_the_field(web):
    noc = web("noc")
    for query, field in BAD_QUERIES:
        for path in ("/", "/ui/alarms/rows"):
            r = noc.get(f"{path}?{query}")
            assert r.status_code == 422, (path, query, r.status_code)
            assert f"{field}:" in r.text or f"{field}." in r.text, r.text
            r = noc.get(f"{path}?{query}", headers={"hx-request": "true"})
            assert r.status_code == 422 and r.headers["hx-retarget"] == "#flash" and field in r.text


def test_rows_fragment_keeps_the_state_in_the_url(storm):
    r = storm.get("/ui/alarms/rows?severity=major&sort=device&order=asc&limit=2", headers={"hx-request": "true"})
    assert r.status_code == 200
    assert r.headers["hx-replace-url"] == "/?severity=major&sort=device&order=asc&limit=2"
    assert r.text.lstrip().startswith('<div id="alarm-table"')
    assert 'hx-get="/ui/alarms/rows?severity=major&amp;sort=device&amp;order=asc&amp;limit=2"' in r.text
    # the form's hidden sort/order/limit follow out of band, so a filter change keeps them
    assert '<span id="alarm-state" class="hidden-state" hx-swap-oob="true">' in r.text
    assert '<input type="hidden" name="sort" value="device">' in r.text
    assert "<html" not in r.text


# ---- correlation: root causes fold their children ------------------------------------------------------


@pytest.fixture
def outage(web, engine, session):
    """agg1 dies: acc1..acc3 behind it become its correlated children."""
    site_device(session, "core1", "core", role="core")
    site_device(session, "agg1", "pop1", role="distribution", parents=["core1"])
    for i in (1, 2, 3):
        site_device(session, f"acc{i}", "pop2", parents=["agg1"])
    session.commit()
    engine.load()
    noc = web("noc")
    raise_events(
        noc,
        engine,
        ev("agg1", "device_unreachable", "", severity="critical", source="poll"),
        *[ev(f"acc{i}", "device_unreachable", "", severity="critical", source="poll") for i in (1, 2, 3)],
        ev("r9", "linkDown", "interface:Gi0/1"),
    )
    root = alarm_id(session, "agg1")
    children = {alarm_id(session, f"acc{i}") for i in (1, 2, 3)}
    assert {a.parent_id for a in session.scalars(select(Alarm).where(Alarm.id.in_(children)))} == {root}
    return noc, root, children


def test_root_cause_folds_its_children_and_expands(outage):
    noc, root, children = outage
    html = noc.get("/").text
    assert ids(html).count(root) == 1 and not children & set(ids(html))
    assert len(ids(html)) == 2  # the root and r9's link
    assert count(html, "critical") == 4  # the counts include the folded children
    assert "5 alarms · 2 rows, correlated children folded" in html
    assert f'href="/?expand={root}" hx-get="/ui/alarms/rows?expand={root}"' in html
    assert 'data-testid="root-cause"' in html

    expanded = noc.get(f"/ui/alarms/rows?expand={root}", headers={"hx-request": "true"}).text
    assert set(ids(expanded)) == {root, *children} | set(ids(html))
    assert expanded.count(f'data-parent-id="{root}"') == 3
    assert 'aria-expanded="true"' in expanded
    assert f'<input type="hidden" name="expand" value="{root}">' in expanded
    # the toggle collapses again
    assert 'href="/" hx-get="/ui/alarms/rows"' in expanded


def test_a_filter_never_hides_a_matching_child(outage):
    noc, root, children = outage
    (acc2,) = [c for c in children if f'"{c}"' in noc.get("/ui/alarms/rows?device=acc2").text]
    html = noc.get("/?device=acc2").text
    assert ids(html) == [acc2]  # its parent is filtered out, so it stands on its own
    assert f'under <a href="/ui/alarms/{root}"' in html
    html = noc.get("/?site=pop2").text
    assert set(ids(html)) == children


def test_detail_shows_journal_children_parent_and_actions(outage, session):
    noc, root, children = outage
    r = noc.get(f"/ui/alarms/{root}", headers={"hx-request": "true"})
    assert r.status_code == 200 and "<html" not in r.text
    assert r.text.count('data-testid="child-row"') == 3
    assert "of 3 correlated alarms" in r.text
    assert 'data-testid="journal-entry" data-action="raised"' in r.text or 'data-testid="journal-entry"' in r.text
    child = min(children)
    r = noc.get(f"/ui/alarms/{child}")
    assert r.status_code == 200 and "<html" in r.text  # a page without htmx
    assert f'href="/ui/alarms/{root}"' in r.text and "upstream device agg1 unreachable" in r.text
    assert noc.get("/ui/alarms/999999").status_code == 404


# ---- actions, roles, CSRF -----------------------------------------------------------------------------


def test_operator_actions_journal_and_refresh_the_table(storm, session):
    aid = alarm_id(session, "r2")
    r = storm.post(f"/ui/alarms/{aid}/ack", headers={"hx-request": "true"})
    assert r.status_code == 200 and r.headers["hx-trigger"] == "alarms-changed"
    assert "acknowledged by web-noc" in r.text and 'data-testid="detail-ack"' not in r.text
    r = storm.post(f"/ui/alarms/{aid}/ack", headers={"hx-request": "true"})
    assert r.status_code == 409 and "already acknowledged by web-noc" in r.text and r.headers["hx-retarget"] == "#flash"
    r = storm.post(f"/ui/alarms/{aid}/comments", data={"text": "carrier informed"}, headers={"hx-request": "true"})
    assert r.status_code == 200 and "carrier informed" in r.text
    r = storm.post(f"/ui/alarms/{aid}/clear", data={"reason": "community fixed"}, headers={"hx-request": "true"})
    assert r.status_code == 200 and 'data-testid="detail-state">cleared' in r.text
    assert "reason=community fixed" in r.text
    actions = session.scalars(select(AlarmJournal.action).where(AlarmJournal.alarm_id == aid)).all()
    assert {"acknowledged", "comment", "cleared"} <= set(actions)
    assert storm.post(f"/ui/alarms/{aid}/clear", data={"reason": "again"}).status_code == 409
    # a cleared, acknowledged alarm offers no ack/clear any more
    html = storm.get("/?state=cleared").text
    assert 'data-testid="ack"' not in html and 'data-testid="clear"' not in html


def test_bad_action_input_is_422_naming_the_field_and_changes_nothing(storm, session):
    aid = alarm_id(session, "r2")
    before = session.scalar(select(func.count()).select_from(AlarmJournal).where(AlarmJournal.alarm_id == aid))
    r = storm.post(f"/ui/alarms/{aid}/comments", data={"text": ""}, headers={"hx-request": "true"})
    assert r.status_code == 422 and "text" in r.text
    r = storm.post(f"/ui/alarms/{aid}/comments", data={})
    assert r.status_code == 422 and "text" in r.text
    r = storm.post(f"/ui/alarms/{aid}/clear", data={"reason": "x" * 501})
    assert r.status_code == 422 and "reason" in r.text
    assert storm.post("/ui/alarms/999999/ack").status_code == 404
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(AlarmJournal).where(AlarmJournal.alarm_id == aid)) == before
    assert session.get(Alarm, aid).state == "active"


@pytest.mark.parametrize("role", ["viewer", "technician", "provisioner"])
def test_non_operators_see_no_buttons_and_are_refused(storm, web, session, role):
    aid = alarm_id(session, "r2")
    client = web(role)
    html = client.get("/").text
    assert len(ids(html)) == 4
    for hook in ('data-testid="ack"', 'data-testid="clear"', 'data-testid="comment"', "hx-post"):
        assert hook not in html.split('<div id="alarm-table"')[1]
    detail = client.get(f"/ui/alarms/{aid}").text
    assert "detail-actions" not in detail and "comment-form" not in detail
    assert client.post(f"/ui/alarms/{aid}/ack").status_code == 403
    assert client.post(f"/ui/alarms/{aid}/comments", data={"text": "hi"}).status_code == 403
    assert client.post(f"/ui/alarms/{aid}/clear", data={"reason": "no"}).status_code == 403
    session.expire_all()
    alarm = session.get(Alarm, aid)
    assert (alarm.acknowledged, alarm.state) == (False, "active")
    assert not session.scalars(
        select(AlarmJournal).where(AlarmJournal.alarm_id == aid, AlarmJournal.action != "raised")
    ).all()


def test_actions_need_the_csrf_header(storm, session):
    aid = alarm_id(session, "r2")
    del storm.headers["X-CSRF-Token"]
    for path, data in (("ack", None), ("comments", {"text": "x"}), ("clear", {"reason": "x"})):
        r = storm.post(f"/ui/alarms/{aid}/{path}", data=data)
        assert r.status_code == 403 and "CSRF" in r.text
        r = storm.post(f"/ui/alarms/{aid}/{path}", data=data, headers={"X-CSRF-Token": "0" * 64})
        assert r.status_code == 403
    session.expire_all()
    alarm = session.get(Alarm, aid)
    assert (alarm.acknowledged, alarm.state) == (False, "active")
    assert session.scalars(select(AlarmJournal.action).where(AlarmJournal.alarm_id == aid)).all() == ["raised"]


def test_login_required(client):
    r = client.get("/", headers={"accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/"
    r = client.get("/ui/alarms/rows", headers={"hx-request": "true"}, follow_redirects=False)
    assert r.status_code == 401 and r.headers["hx-redirect"].startswith("/login")


# ---- hostile strings ----------------------------------------------------------------------------------------


def test_hostile_alarm_fields_render_escaped(web, engine, session):
    noc = web("noc")
    script, img = XSS
    raise_events(
        noc,
        engine,
        ev(
            img, "linkDown", f"interface:{script}", description=img, specific_problem=script, probable_cause=img
        ),  # fmt: skip
    )
    aid = alarm_id(session, img)
    noc.post(f"/ui/alarms/{aid}/comments", data={"text": script + img})
    pages = [
        noc.get("/").text,
        noc.get("/ui/alarms/rows", params={"q": "img"}, headers={"hx-request": "true"}).text,
        noc.get(f"/ui/alarms/{aid}").text,
        noc.get(f"/ui/alarms/{aid}", headers={"hx-request": "true"}).text,
    ]
    for html in pages:
        assert aid in ids(html) or f'data-alarm-id="{aid}"' in html
        assert script not in html and img not in html and "<img" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script>" not in pages[0].replace('<script src="', "")  # only the page's own script files


# ---- no N+1 ---------------------------------------------------------------------------------------------------------


@contextmanager
def statements(connection) -> Iterator[list[str]]:
    seen: list[str] = []

    def count_it(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(connection, "before_cursor_execute", count_it)
    try:
        yield seen
    finally:
        event.remove(connection, "before_cursor_execute", count_it)


def test_statement_count_does_not_grow_with_the_rows(web, engine, session, connection):
    noc = web("noc")
    for i in range(4):
        site_device(session, f"d{i}", f"site{i % 2}")
    session.commit()
    raise_events(noc, engine, *[ev(f"d{i}", "linkDown", "interface:Gi0/1") for i in range(3)])

    def measure(path):
        with statements(connection) as seen:
            r = noc.get(path, headers={"hx-request": "true"})
            assert r.status_code == 200
        return len(seen), len(ids(r.text))

    few, shown_few = measure("/ui/alarms/rows?limit=100")
    raise_events(noc, engine, *[ev(f"d{i % 4}", "linkDown", f"interface:Gi1/{i}") for i in range(90)])
    many, shown_many = measure("/ui/alarms/rows?limit=100")
    assert (shown_few, shown_many) == (3, 93)
    assert many == few, (few, many)
    page_few, _ = measure("/?limit=100")
    assert page_few == many + 1  # the full page also lists the sites for the filter
