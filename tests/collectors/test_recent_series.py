"""collectors.service.recent_series: plain (metric, interface, time, value) rows for graphs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from collectors import service
from collectors.snmp_poll import PollResult
from faultloop.errors import InvalidInput, NotFound
from faultloop.events import Sample
from inventory import service as inventory
from inventory.schemas import DeviceIn

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
IN, OUT, CPU = "interface_in_bits_per_second", "interface_out_bits_per_second", "device_cpu_percent"


def device(session, vault, name: str):
    return inventory.create_device(session, vault, DeviceIn(hostname=name, address="192.0.2.9", role="core"), actor="t")


def test_rows_oldest_first_filtered_by_metric_and_time_and_capped(session, vault) -> None:
    dev = inventory.create_device(session, vault, DeviceIn(hostname="g1", address="192.0.2.9", role="core"), actor="t")
    other = inventory.create_device(
        session, vault, DeviceIn(hostname="g2", address="192.0.2.8", role="core"), actor="t"
    )
    samples = [
        Sample("g1", metric, float(m), T0 + timedelta(minutes=m), {"interface": "Gi0/1"} if metric != CPU else {})
        for m in range(10)
        for metric in (IN, OUT, CPU)
    ]
    service.add_samples(session, device_id=dev.id, result=PollResult("g1", True, T0, 0.0, samples=samples))
    service.add_samples(session, device_id=other.id, result=PollResult("g2", True, T0, 0.0, samples=samples[:3]))
    session.flush()

    rows = service.recent_series(session, device_id=dev.id, metrics=(IN, OUT), since=T0 + timedelta(minutes=5))
    assert [r[0] for r in rows] == [IN, OUT] * 5  # same time: in the order stored
    assert [r[2] for r in rows] == sorted(r[2] for r in rows)  # oldest first
    assert rows[0][2] == T0 + timedelta(minutes=5) and rows[-1][2] == T0 + timedelta(minutes=9)
    assert {(r[1], r[2].tzinfo is not None) for r in rows} == {("Gi0/1", True)}
    assert {r[3] for r in rows if r[0] == IN} == {5.0, 6.0, 7.0, 8.0, 9.0}

    capped = service.recent_series(session, device_id=dev.id, metrics=(IN,), since=T0, limit=3)
    assert [r[3] for r in capped] == [7.0, 8.0, 9.0]  # the newest three, oldest first
    assert [r[0] for r in service.recent_series(session, device_id=dev.id, metrics=(CPU,), since=T0)] == [CPU] * 10


def test_bad_input_names_the_field(session, vault) -> None:
    dev = device(session, vault, "g3")
    with pytest.raises(InvalidInput) as err:
        service.recent_series(session, device_id=dev.id, metrics=(IN, "bogus"), since=T0)
    assert err.value.field == "metric"
    with pytest.raises(InvalidInput) as err:
        service.recent_series(session, device_id=dev.id, metrics=(IN,), since=T0.replace(tzinfo=None))
    assert err.value.field == "since"
    with pytest.raises(NotFound):
        service.recent_series(session, device_id=987654, metrics=(IN,), since=T0)
