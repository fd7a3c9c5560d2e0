"""The process's Prometheus registry. Every package registers its metrics here (names
follow Prometheus conventions: snake_case, ``_total`` for counters, unit suffixes) and
``GET /metrics`` exposes it (``exposition``).

Series that come by the hundred thousand (the poller's per-device and per-interface state) do
not go through prometheus_client's object model, which costs about 7 us per series at every
scrape: their owner renders the text exposition itself, cached per device between polls, and
adds it here with ``add_text_source``."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

if TYPE_CHECKING:
    from faultloop.settings import Settings

REGISTRY = CollectorRegistry(auto_describe=True)

BUILD_INFO = Gauge("faultloop_build_info", "faultloop version", ["version"], registry=REGISTRY)
BUILD_INFO.labels(version="0.1.0").set(1)

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Callables returning ready exposition text (whole metric families, names never in REGISTRY).
_TEXT_SOURCES: list[Callable[[], str]] = []


def add_text_source(source: Callable[[], str]) -> None:
    if source not in _TEXT_SOURCES:
        _TEXT_SOURCES.append(source)


def exposition() -> bytes:
    """The text ``GET /metrics`` serves: the registry, then every text source. CPU-bound: call it
    from a worker thread, not on the event loop."""
    parts = [generate_latest(REGISTRY)]
    parts.extend(source().encode() for source in _TEXT_SOURCES)
    return b"".join(parts)


def metrics_token_ok(settings: Settings, authorization: str) -> bool:
    """Whether a request's Authorization header may read /metrics (FAULTLOOP_METRICS_TOKEN unset:
    open)."""
    expected = settings.metrics_token
    if expected is None or not expected.get_secret_value():
        return True
    given = authorization.removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())
