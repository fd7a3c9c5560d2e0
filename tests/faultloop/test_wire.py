"""Events and samples on the wire (the NATS transport): round trip, and every bad field named."""

import json
from datetime import UTC, datetime

import pytest

from faultloop.events import (
    Event,
    Sample,
    WireError,
    event_from_wire,
    event_to_wire,
    sample_from_wire,
    sample_to_wire,
)
from faultloop.transport import decode_event, decode_sample

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EVENT = Event(source="syslog", device="r1", event_type="linkDown", severity="major", time=T0,
              managed_object="interface:Gi0/1", raw={"line": "x"})  # fmt: skip
SAMPLE = Sample(device="r1", metric="cpu", value=3.5, time=T0, labels={"cpu": "0"})


def test_round_trip_through_json():
    assert decode_event(json.dumps(event_to_wire(EVENT)).encode()) == EVENT
    assert decode_sample(json.dumps(sample_to_wire(SAMPLE)).encode()) == SAMPLE
    assert sample_from_wire({**sample_to_wire(SAMPLE), "value": 3}).value == 3.0


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"source": "carrier-pigeon"}, "field 'source': expected one of poll"),
        ({"severity": "apocalyptic"}, "field 'severity': expected one of critical"),
        ({"time": "yesterday"}, "field 'time': expected an ISO 8601 time"),
        ({"time": "2026-03-01T12:00:00"}, "field 'time': expected a time with a UTC offset"),
        ({"device": 7}, "field 'device': expected str, got int"),
        ({"raw": [1]}, "field 'raw': expected dict, got list"),
        ({"event_type": None}, "field 'event_type': expected str, got NoneType"),
    ],
)
def test_a_bad_event_names_the_field(change, expected):
    with pytest.raises(WireError, match=expected):
        event_from_wire({**event_to_wire(EVENT), **change})


def test_a_missing_field_and_a_non_object_are_named():
    doc = event_to_wire(EVENT)
    del doc["event_type"]
    with pytest.raises(WireError, match="missing field 'event_type'"):
        event_from_wire(doc)
    with pytest.raises(WireError, match="expected a JSON object, got list"):
        event_from_wire([1])


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"value": "high"}, "field 'value': expected float, got str"),
        ({"value": True}, "field 'value': expected float, got bool"),
        ({"labels": {"a": 1}}, "field 'labels': expected an object of strings"),
    ],
)
def test_a_bad_sample_names_the_field(change, expected):
    with pytest.raises(WireError, match=expected):
        sample_from_wire({**sample_to_wire(SAMPLE), **change})


def test_bytes_that_are_not_json_are_a_value_error():
    with pytest.raises(ValueError):
        decode_event(b"\xff\xfe")
    with pytest.raises(ValueError):
        decode_event(b"{")
