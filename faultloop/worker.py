"""A background worker thread: one round of work every few seconds, or at once when woken.

The alarm engine, the notifier and the ticketing service each own one. Their rounds are
blocking database work, so they run beside the event loop, not on it. A round that fails
(a database outage, anything) is logged by exception type and the next round tries again;
``stop`` lets the running round finish (bounded) and starts no other.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any


class WorkerThread:
    def __init__(
        self,
        name: str,
        work: Callable[[], Any],
        *,
        interval_s: Callable[[], float],
        log: logging.Logger,
        failure: str,
    ) -> None:
        self.name = name
        self._work = work
        self._interval_s = interval_s
        self._log = log
        self._failure = failure  # "<what> failed", logged with the exception's type
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """Run a round now instead of at the end of the interval (thread-safe)."""
        self._wake.set()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    async def stop(self, join_s: float = 30) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, join_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval_s())
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self._work()
            except Exception as exc:  # the worker survives anything; the next round retries
                self._log.error("%s: %s", self._failure, type(exc).__name__)
