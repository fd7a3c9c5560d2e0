"""Background work: a worker thread (one round every few seconds, or at once when woken) and
``stop_task``, the one way an asyncio background task is stopped.

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

STOP_GRACE_S = 10.0


async def stop_task(task: asyncio.Task[Any] | None, *, what: str = "", grace_s: float = STOP_GRACE_S) -> None:
    """Cancel a background task and wait until it has ended. The cancel is repeated: nats-py
    swallows a CancelledError that lands inside some of its calls (and ``asyncio.wait_for`` can
    on Python 3.11), and a task that lost its one cancel loops on, leaving ``stop`` waiting for
    ever. A task still running after ``grace_s`` is logged and left behind; its failure, if it
    failed, is logged, not raised (the stop goes on)."""
    if task is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    while not task.done():
        if loop.time() >= deadline:
            logging.getLogger(__name__).error("%s did not stop within %g s", what or task.get_name(), grace_s)
            return
        task.cancel()
        await asyncio.wait({task}, timeout=0.2)
    if not task.cancelled() and (exc := task.exception()) is not None:
        logging.getLogger(__name__).error("%s ended with %s: %s", what or task.get_name(), type(exc).__name__, exc)


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
