from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alarms.bus import AlarmBus
from alarms.runner import AlarmEngine
from faultloop import clock


@pytest.fixture
def frozen():
    c = clock.FrozenClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    with clock.use(c):
        yield c


@pytest.fixture
def published():
    return []


@pytest.fixture
def engine(runtime, frozen, published):
    bus = AlarmBus()
    bus.subscribe("test", published.extend)
    eng = AlarmEngine(runtime, bus)
    eng.load()
    return eng
