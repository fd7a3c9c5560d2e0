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
from faultloop.transport import MESSAGE_MAX_BYTES, PER_MESSAGE, decode_events, decode_samples, pack

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EVENT = Event(source="syslog", device="r1", event_type="linkDown", severity="major", time=T0,
              managed_object="interface:Gi0/1", raw={"line": "x"})  # fmt: skip
SAMPLE = Sample(device="r1", metric="cpu", value=3.5, time=T0, labels={"cpu": "0"})


def test_round_trip_through_json():
    assert decode_events(json.dumps([event_to_wire(EVENT)]).encode()) == [EVENT]
    assert decode_samples(json.dumps([sample_to_wire(SAMPLE)]).encode()) == [SAMPLE]
    # one object: a message from a collector that did not pack
    assert decode_events(json.dumps(event_to_wire(EVENT)).encode()) == [EVENT]
    assert decode_samples(json.dumps(sample_to_wire(SAMPLE)).encode()) == [SAMPLE]
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
        decode_events(b"\xff\xfe")
    with pytest.raises(ValueError):
        decode_events(b"{")


def test_packing_keeps_order_and_bounds_each_message():
    events = [Event(source="trap", device=f"r{i}", event_type="linkDown", severity="major", time=T0,
                    raw={"seq": i}) for i in range(2 * PER_MESSAGE + 5)]  # fmt: skip
    messages = pack([event_to_wire(e) for e in events])
    assert [len(json.loads(m)) for m in messages] == [PER_MESSAGE, PER_MESSAGE, 5]
    assert [e for m in messages for e in decode_events(m)] == events
    big = [{**event_to_wire(EVENT), "description": "x" * (MESSAGE_MAX_BYTES // 3)} for _ in range(4)]
    sized = pack(big)
    assert all(len(m) <= MESSAGE_MAX_BYTES for m in sized) and len(sized) == 2
    huge = [{**event_to_wire(EVENT), "description": "y" * MESSAGE_MAX_BYTES}, event_to_wire(EVENT)]
    assert [len(json.loads(m)) for m in pack(huge)] == [1, 1]  # too big alone: it travels alone
    assert pack([]) == []


@pytest.mark.parametrize(
    "payload,expected",
    [
        (b"[]", "an empty array"),
        (b"[1, 2]", "item 0: expected a JSON object, got int"),
        (json.dumps([event_to_wire(EVENT), {**event_to_wire(EVENT), "severity": "apocalyptic"}]).encode(),
         "item 1: field 'severity'"),
        (b"7", "expected a JSON object, got int"),
    ],
)
def test_a_bad_message_names_the_item_and_field(payload, expected):
    with pytest.raises(ValueError, match=expected):
        decode_events(payload)
