"""A small in-process pub/sub for alarm changes, published only after their commit.

Subscribers (ticketing, notifications, the dashboard's live stream, metrics) are
registered in ``faultloop.cmd.app.build_pipeline``. The value they get, ``AlarmChange``, is
the kernel's (``faultloop.events``): a subscriber needs nothing of this package. A failing
subscriber is logged and never stops the others or the engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from faultloop.events import AlarmChange

log = logging.getLogger("faultloop.alarms.bus")

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
