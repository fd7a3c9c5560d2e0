"""Helpers for the trap and syslog receiver tests: a collecting sink, random loopback
addresses, raw UDP senders bound to a chosen source address, and metric deltas."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable, Sequence

from faultloop.events import Event, Sample
from faultloop.metrics import REGISTRY


class CollectingSink:
    """A real ``ObservationSink``: keeps what it is given, can refuse (``accept=False``)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.batches: list[int] = []  # the size of each batch taken
        self.accept = True
        self._changed = asyncio.Event()

    def submit_events(self, events: Sequence[Event]) -> bool:
        if not self.accept:
            return False
        self.events.extend(events)
        self.batches.append(len(events))
        self._changed.set()
        return True

    def submit_samples(self, samples: Sequence[Sample]) -> bool:
        return True

    async def wait_for(self, predicate: Callable[[list[Event]], bool], timeout: float = 10.0) -> list[Event]:
        async def _wait() -> None:
            while not predicate(self.events):
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"sink did not get the expected events; got {len(self.events)}") from None
        return self.events


def random_loopback(second_octet: int) -> str:
    return f"127.{second_octet}.{random.randint(0, 250)}.{random.randint(2, 250)}"


def udp_from(source: str) -> socket.socket:
    """A UDP socket bound to ``source`` (a 127.x address), so the receiver sees that address."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    return s


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0
