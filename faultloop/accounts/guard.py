"""Password-login abuse limits, one per serving process.

Each attempt costs an argon2 hash (tens of milliseconds of CPU and a worker thread), so a
login is refused *before* any hash when:

- its client address tried more than ``login_rate_per_source`` logins (every attempt counts);
- its username failed more than ``login_rate_per_user`` times (a success resets it);
- ``login_concurrency`` password checks are already running: the caller gets 503 at once
  instead of queueing in the thread pool the rest of the API needs.

The windows are moving windows kept in memory by the ``limits`` library (its own wall clock,
not ``faultloop.clock``); a restart forgets them.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import Counter

from faultloop.errors import Busy, TooManyRequests
from faultloop.metrics import REGISTRY
from faultloop.settings import Settings

LOGIN_ATTEMPTS = Counter(
    "faultloop_login_attempts_total",
    "Password logins by result (ok, failed, rate_limited, busy)",
    ["result"],
    registry=REGISTRY,
)


class LoginGuard:
    def __init__(self, *, per_source: str, per_user: str, concurrency: int) -> None:
        self.per_source: RateLimitItem = parse(per_source)
        self.per_user: RateLimitItem = parse(per_user)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._hashing = threading.BoundedSemaphore(concurrency)

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginGuard:
        return cls(
            per_source=settings.login_rate_per_source,
            per_user=settings.login_rate_per_user,
            concurrency=settings.login_concurrency,
        )

    @staticmethod
    def _user_key(username: str) -> str:
        return username.casefold()

    def _retry_after(self, item: RateLimitItem, namespace: str, key: str) -> int:
        reset = self._limiter.get_window_stats(item, namespace, key).reset_time
        return max(1, math.ceil(reset - time.time()))

    def admit(self, *, source: str, username: str) -> None:
        """Count this attempt against its source; refuse it (429) over either limit."""
        user_key = self._user_key(username)
        if not self._limiter.test(self.per_user, "login-user", user_key):
            LOGIN_ATTEMPTS.labels("rate_limited").inc()
            raise TooManyRequests(
                "too many failed logins for this user; try again later",
                retry_after=self._retry_after(self.per_user, "login-user", user_key),
            )
        if not self._limiter.hit(self.per_source, "login", source):
            LOGIN_ATTEMPTS.labels("rate_limited").inc()
            raise TooManyRequests(
                "too many logins from this address; try again later",
                retry_after=self._retry_after(self.per_source, "login", source),
            )

    def failed(self, username: str) -> None:
        LOGIN_ATTEMPTS.labels("failed").inc()
        self._limiter.hit(self.per_user, "login-user", self._user_key(username))

    def succeeded(self, username: str) -> None:
        LOGIN_ATTEMPTS.labels("ok").inc()
        self._limiter.clear(self.per_user, "login-user", self._user_key(username))

    @contextmanager
    def password_check(self) -> Iterator[None]:
        """A slot for one argon2 check, or 503 at once when every slot is taken."""
        if not self._hashing.acquire(blocking=False):
            LOGIN_ATTEMPTS.labels("busy").inc()
            raise Busy("too many logins in progress; try again in a second", retry_after=1)
        try:
            yield
        finally:
            self._hashing.release()
