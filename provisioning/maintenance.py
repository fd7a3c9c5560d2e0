"""An order's own maintenance window, through the alarm engine's service functions.

``open_window`` uses ``alarms.service.create_window``. The alarm package has no "close a
window early" function yet, so ``close_window`` is the smallest wrapper on this side: it
moves ``ends_at`` of the order's own window to now + grace (audited), never touching
windows it did not open.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.orm import Session

from alarms import service as alarms
from alarms.schemas import MaintenanceIn
from faultloop import clock
from faultloop.audit import service as audit
from provisioning.models import ServiceOrder


def open_window(
    session: Session, *, order: ServiceOrder, targets: Sequence[tuple[str, str]], expected_s: float, actor: str
) -> int:
    """Cover the touched interfaces (hostname:interface); a device without an interface parameter as a whole."""
    now = clock.now()
    interfaces = sorted({f"{host}:{itf}" for host, itf in targets if itf})
    devices = sorted({host for host, itf in targets if not itf})
    window = alarms.create_window(
        session,
        MaintenanceIn.model_validate(
            {
                "name": f"service order {order.id}",
                "starts_at": now,
                "ends_at": now + timedelta(seconds=expected_s),
                "devices": devices,
                "interfaces": interfaces,
                "reason": f"service order {order.id}: {order.action} {order.service_type} for {order.customer}",
            }
        ),
        actor=actor,
    )
    return window.id


def close_window(session: Session, window_id: int, *, grace_s: float, actor: str) -> None:
    window = alarms.get_window(session, window_id)
    before = window.ends_at
    window.ends_at = max(clock.now() + timedelta(seconds=grace_s), window.starts_at + timedelta(seconds=1))
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="maintenance.close",
        object_type="maintenance_window",
        object_id=window.id,
        before={"ends_at": before.isoformat() if before else None},
        after={"ends_at": window.ends_at.isoformat()},
    )
