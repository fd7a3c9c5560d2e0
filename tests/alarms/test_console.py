"""alarms.service.console: the dashboard's alarm query (filters, folding, counts, fixed statement count)."""

from __future__ import annotations

from sqlalchemy import event

from alarms import service
from faultloop import clock
from faultloop.events import Event


def ev(device, event_type="linkDown", mo="interface:Gi0/1", severity="major"):
    return Event(source="trap", device=device, event_type=event_type, severity=severity, time=clock.now(),
                 managed_object=mo)  # fmt: skip


def test_console_pages_folds_counts_and_escapes_like_wildcards(engine, session, connection):
    engine.submit_events([ev(f"r{i}", mo=f"interface:Gi0/{i}") for i in range(5)])
    engine.submit_events([ev("r9", "device_unreachable", "", "critical")])
    engine.run_once()
    page = service.console(session, filters=service.ConsoleFilter(), limit=2, offset=0)
    assert (page.total, page.matching, len(page.rows)) == (6, 6, 2)
    assert page.rows[0].alarm.severity == "critical"  # severity first
    assert page.by_severity == {"critical": 1, "major": 5, "minor": 0, "warning": 0, "indeterminate": 0}
    nxt = service.console(session, filters=service.ConsoleFilter(), limit=2, offset=2)
    assert not {r.alarm.id for r in page.rows} & {r.alarm.id for r in nxt.rows}

    # fold: r1..r4 under r0's alarm (the engine does it from topology; here the parent is set directly)
    root = service.console(session, filters=service.ConsoleFilter(device="r0"), limit=5).rows[0].alarm
    for row in service.console(session, filters=service.ConsoleFilter(severity="major"), limit=10).rows:
        if row.alarm.id != root.id:
            row.alarm.parent_id = root.id
    session.flush()
    page = service.console(session, filters=service.ConsoleFilter(), limit=10, expand=[root.id])
    assert page.total == 2 and page.matching == 6
    assert {r.alarm.id: r.children for r in page.rows}[root.id] == 4
    assert len(page.children[root.id]) == 4
    alone = service.console(session, filters=service.ConsoleFilter(device="r3"), limit=10)
    assert [r.alarm.device for r in alone.rows] == ["r3"]  # its parent filtered out: stands alone

    assert service.console(session, filters=service.ConsoleFilter(q="Gi0/_"), limit=10).matching == 0
    assert service.console(session, filters=service.ConsoleFilter(q="gi0/3"), limit=10).matching == 1

    seen: list[str] = []
    event.listen(connection, "before_cursor_execute", lambda *a: seen.append(a[2]))
    service.console(session, filters=service.ConsoleFilter(), limit=2, expand=[root.id])
    small = len(seen)
    seen.clear()
    service.console(session, filters=service.ConsoleFilter(), limit=50, expand=[root.id])
    assert len(seen) == small == 4  # counts and total, page, expanded children, children counts
