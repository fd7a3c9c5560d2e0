"""Unplanned changes: a configuration change seen by a backup that no service order explains.

The wiring module wraps the SSH collectors' sink with ``UnplannedChangeSink``: each
``config_changed`` event from a backup passes through unchanged, and when no order is
executing on that device, nor finished within the grace period, an ``unplanned_change``
event (source "provisioning") follows it. Orders store their own post-change backup, so the
next scheduled backup of a provisioned device finds nothing new; what it does find was
changed by someone outside the order process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from faultloop import clock
from faultloop.db import transaction
from faultloop.events import Event, ObservationSink, Sample
from inventory import queries
from provisioning import policy
from provisioning.models import OrderItem, ServiceOrder

log = logging.getLogger("faultloop.provisioning")


def explained_by_order(session: Session, hostname: str, *, grace_s: float) -> bool:
    device = queries.device_by_hostname(session, hostname)
    if device is None:  # an order item always names an inventory device
        return False
    since = clock.now() - timedelta(seconds=grace_s)
    found = session.scalar(
        select(ServiceOrder.id)
        .join(OrderItem, OrderItem.order_id == ServiceOrder.id)
        .where(
            OrderItem.device_id == device.id,
            or_(ServiceOrder.state.in_(policy.ACTIVE), ServiceOrder.finished_at >= since),
        )
        .limit(1)
    )
    return found is not None


def unplanned_event(changed: Event) -> Event:
    raw = changed.raw
    return Event(
        source="provisioning",
        device=changed.device,
        event_type="unplanned_change",
        severity="warning",
        time=changed.time,
        specific_problem="configuration change outside any service order",
        description=f"configuration of {changed.device} changed with no service order executing or recent "
        f"(+{raw.get('lines_added', '?')} -{raw.get('lines_removed', '?')} lines)",
        raw={k: raw[k] for k in ("backup_id", "previous_backup_id", "lines_added", "lines_removed") if k in raw},
    )


class UnplannedChangeSink:
    def __init__(self, inner: ObservationSink, sessions: sessionmaker[Session], *, grace_s: float) -> None:
        self.inner = inner
        self.sessions = sessions
        self.grace_s = grace_s

    def submit_events(self, events: Sequence[Event]) -> bool:
        extra: list[Event] = []
        for event in events:
            if event.source != "backup" or event.event_type != "config_changed":
                continue
            try:
                with transaction(self.sessions) as session:
                    explained = explained_by_order(session, event.device, grace_s=self.grace_s)
            except SQLAlchemyError as exc:  # the change itself is still reported
                log.warning("cannot check orders for %s: %s", event.device, type(exc).__name__)
                continue
            if not explained:
                extra.append(unplanned_event(event))
        return self.inner.submit_events([*events, *extra])

    def submit_samples(self, samples: Sequence[Sample]) -> bool:
        return self.inner.submit_samples(samples)
