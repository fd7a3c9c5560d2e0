"""The process's Prometheus registry. Every package registers its metrics here (names
follow Prometheus conventions: snake_case, ``_total`` for counters, unit suffixes) and
``GET /metrics`` exposes it."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)

BUILD_INFO = Gauge("faultloop_build_info", "faultloop version", ["version"], registry=REGISTRY)
BUILD_INFO.labels(version="0.1.0").set(1)
