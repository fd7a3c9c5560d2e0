"""A small in-process pub/sub for alarm changes, published only after their commit.

Subscribers (ticketing, notifications, the dashboard's live stream, metrics) are
registered in ``faultloop.cmd.app.build_pipeline``. A failing subscriber is logged and
never stops the others or the engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

log = logging.getLogger("faultloop.alarms.bus")

ChangeKind = Literal[
    "raised", "updated", "cleared", "root_cause", "correlated", "muted", "unmuted", "flapping", "escalated"
]


@dataclass(frozen=True, slots=True)
class AlarmChange:
    kind: ChangeKind
    alarm_id: int
    reduction_key: str
    alarm_type: str
    device: str
    managed_object: str
    severity: str
    state: str
    count: int
    muted: bool  # in maintenance, flapping or correlated under a root cause: no ticket, no notification
    suppression_reason: str | None
    parent_id: int | None
    root_cause: bool
    at: datetime
    actor: str = "engine"


Subscriber = Callable[[Sequence[AlarmChange]], None]


class AlarmBus:
    def __init__(self) -> None:
        self._subscribers: list[tuple[str, Subscriber]] = []

    def subscribe(self, name: str, subscriber: Subscriber) -> None:
        self._subscribers.append((name, subscriber))

    def publish(self, changes: Sequence[AlarmChange]) -> None:
        if not changes:
            return
        for name, subscriber in self._subscribers:
            try:
                subscriber(changes)
            except Exception as exc:  # one broken subscriber must not stop the others
                log.error("alarm subscriber %s failed: %s", name, type(exc).__name__)
