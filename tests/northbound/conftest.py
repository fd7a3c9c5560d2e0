from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alarms import service as alarm_service
from alarms.models import Alarm, AlarmServiceImpact
from faultloop import clock
from northbound import alarm as tmf_alarm

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def frozen():
    c = clock.FrozenClock(T0)
    with clock.use(c):
        yield c


@pytest.fixture
def operator_hook() -> Iterator[list[int]]:
    """The TMF hub's writer for operator actions, registered as the pipeline registers it; the list
    counts the after-commit wake-ups."""
    woken: list[int] = []
    alarm_service.OUTBOX["tmf-hub"] = tmf_alarm.operator_outbox(lambda: woken.append(1))
    try:
        yield woken
    finally:
        alarm_service.OUTBOX.pop("tmf-hub", None)


def make_alarm(session, **kw: Any) -> Alarm:
    """One alarm row as the engine writes it (defaults: an active major link_down on r1)."""
    device = kw.pop("device", "r1")
    mo = kw.pop("managed_object", "interface:Gi0/1")
    alarm_type = kw.pop("alarm_type", "link_down")
    severity = kw.pop("severity", "major")
    services = kw.pop("services", [])
    at = kw.pop("at", T0)
    row = Alarm(
        reduction_key=kw.pop("reduction_key", f"{alarm_type}:{device}:{mo}"),
        clear_key=f"{alarm_type}:{device}:{mo}",
        alarm_type=alarm_type,
        source=kw.pop("source", "trap"),
        device=device,
        managed_object=mo,
        probable_cause=kw.pop("probable_cause", "lossOfSignal"),
        specific_problem=kw.pop("specific_problem", ""),
        description=kw.pop("description", "link down"),
        first_occurrence=at,
        last_occurrence=kw.pop("last", at),
        count=kw.pop("count", 1),
        original_severity=kw.pop("original_severity", severity),
        severity=severity,
        state=kw.pop("state", "active"),
        services_affected=len(services),
        customers_affected=1 if services else 0,
        **kw,
    )
    session.add(row)
    session.flush()
    for service_id in services:
        session.add(AlarmServiceImpact(alarm_id=row.id, service_id=service_id, customer="acme",
                                       service_type="l3vpn", how="direct", level="down"))  # fmt: skip
    session.commit()
    return row


def later(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)
