"""Ticketing fixtures: a frozen clock, the packaged policy, technicians, alarm rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from sqlalchemy.orm import Session

from alarms.models import Alarm
from faultloop import clock
from faultloop.accounts import service as accounts
from inventory.models import Device, Site
from ticketing import dispatch
from ticketing.policy import load_policy

_ids = count(1)


@pytest.fixture
def frozen():
    c = clock.FrozenClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))  # a Monday, in business hours
    with clock.use(c):
        yield c


@pytest.fixture
def policy():
    return load_policy()


def make_user(session: Session, username: str, role: str):
    return accounts.create_user(session, username=username, role=role, password=None, actor="test")


def make_technician(session: Session, username: str, *, skills=("fiber", "router"), sites=("*",), team="",
                    tier=1, on_shift=True):  # fmt: skip
    user = make_user(session, username, "technician")
    dispatch.upsert_profile(session, username=username, skills=list(skills), sites=list(sites), team=team,
                            tier=tier, on_shift=on_shift)  # fmt: skip
    return user


def make_device(session: Session, hostname: str, *, role: str = "access", site: str = "pop-1") -> Device:
    now = clock.now()
    site_row = session.query(Site).filter_by(name=site).one_or_none()
    if site_row is None:
        site_row = Site(name=site, description="", created_at=now)
        session.add(site_row)
        session.flush()
    dev = Device(hostname=hostname, address=f"127.9.{next(_ids) % 250}.1", site_id=site_row.id, role=role,
                 tags=[], created_at=now, updated_at=now)  # fmt: skip
    session.add(dev)
    session.flush()
    return dev


def make_alarm(session: Session, *, device: str, key: str | None = None, severity: str = "major",
               age_s: float = 120, alarm_type: str = "linkDown", parent_id: int | None = None,
               muted: bool = False) -> Alarm:  # fmt: skip
    now = clock.now()
    key = key or f"{alarm_type}:{device}:{next(_ids)}"
    alarm = Alarm(
        reduction_key=key, clear_key=key, alarm_type=alarm_type, source="trap", device=device,
        managed_object="interface:Gi0/1", description="link down", first_occurrence=now - timedelta(seconds=age_s),
        last_occurrence=now, count=1, original_severity=severity, severity=severity, state="active",
        parent_id=parent_id, muted=muted, root_cause=False, flapping=False, acknowledged=False,
    )  # fmt: skip
    session.add(alarm)
    session.flush()
    return alarm
