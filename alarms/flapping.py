"""Flapping as a first-class state: more than N state changes within W seconds.

Pure bookkeeping of transition times per reduction key; the engine decides what a
flapping alarm does (stays one active, muted alarm until stable for W).
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta


class FlapDetector:
    def __init__(self, *, threshold: int, window_s: float) -> None:
        self.threshold = threshold
        self.window = timedelta(seconds=window_s)
        self._history: dict[str, deque[datetime]] = {}

    def record(self, key: str, at: datetime) -> int:
        """Record a state change; the number of changes within the window, this one included."""
        history = self._history.setdefault(key, deque())
        history.append(at)
        self._prune(history, at)
        return len(history)

    def is_flapping(self, count: int) -> bool:
        return count > self.threshold

    def last_change(self, key: str) -> datetime | None:
        history = self._history.get(key)
        return history[-1] if history else None

    def stable(self, key: str, now: datetime) -> bool:
        last = self.last_change(key)
        return last is None or now - last >= self.window

    def forget_idle(self, now: datetime) -> None:
        for key in [k for k, h in self._history.items() if not h or now - h[-1] >= self.window]:
            del self._history[key]

    def _prune(self, history: deque[datetime], now: datetime) -> None:
        while history and now - history[0] > self.window:
            history.popleft()
