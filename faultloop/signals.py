"""In-process "this data changed" signals, told to subscribers after the transaction commits.

The domain that owns the data calls ``SIGNAL.notify(session)`` in its service (once per
transaction is enough, repeats are folded; nothing is told on rollback); whoever keeps a copy
of that data is subscribed by the composition root. Subscribers run in the committing thread,
right after the commit: they must only schedule work (e.g. ``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

from faultloop.events import after_commit

log = logging.getLogger("faultloop.signals")

_PENDING = "faultloop_signals_pending"


class ChangeSignal:
    def __init__(self, name: str) -> None:
        self.name = name
        self._subscribers: list[Callable[[], None]] = []

    def subscribe(self, fn: Callable[[], None]) -> None:
        self._subscribers.append(fn)

    def unsubscribe(self, fn: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(fn)

    def pending(self, session: Session) -> bool:
        """True when this transaction already notified this signal."""
        return self in session.info.get(_PENDING, ())

    def notify(self, session: Session) -> None:
        pending: list[ChangeSignal] = session.info.setdefault(_PENDING, [])
        if self not in pending:
            pending.append(self)
            after_commit(session, lambda: self._fired(session))

    def _fired(self, session: Session) -> None:
        pending: list[ChangeSignal] = session.info.get(_PENDING, [])
        if self in pending:
            pending.remove(self)
        self.fire()

    def fire(self) -> None:
        for fn in list(self._subscribers):
            try:
                fn()
            except Exception as exc:  # one failing subscriber never stops the others or undoes the commit
                log.error("%s change subscriber failed: %s", self.name, type(exc).__name__)


@event.listens_for(Session, "after_rollback")
def _forget_on_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


# devices, their addresses and interfaces: inventory.service notifies, the receivers' directory listens
INVENTORY_CHANGED = ChangeSignal("inventory")
