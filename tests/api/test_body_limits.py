"""Hostile clients: bounded request bodies and bounded event content (issue 15, item 9)."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from alarms.models import EventRecord
from alarms.schemas import ALERT_LABEL_VALUE_MAX, ALERT_LABELS_MAX, RAW_MAX_BYTES
from api.main import create_api

LIMIT = 4096


@pytest.fixture
def small_client(runtime):
    settings = runtime.settings.model_copy(update={"max_body_bytes": LIMIT})
    with TestClient(create_api(dataclasses.replace(runtime, settings=settings)), raise_server_exceptions=False) as c:
        yield c


def _events(n: int, text: str = "x" * 100) -> dict:
    return {"events": [{"event_type": "linkDown", "severity": "major", "device": "r1", "description": text}] * n}


def _stored(session) -> int:
    return session.scalar(select(func.count()).select_from(EventRecord)) or 0


def _is_413(r) -> None:
    assert r.status_code == 413, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["title"] == "Payload too large"
    assert f"expected at most {LIMIT} bytes (FAULTLOOP_MAX_BODY_BYTES)" in r.json()["detail"]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_a_declared_body_over_the_limit_is_413_and_nothing_is_written(small_client, auth, session):
    r = small_client.post("/api/v1/events", json=_events(40), headers=auth("noc"))
    _is_413(r)
    assert _stored(session) == 0


def test_a_streamed_body_without_length_is_cut_at_the_limit(small_client, auth, session):
    import json

    body = json.dumps(_events(40)).encode()

    def chunks():
        for i in range(0, len(body), 512):
            yield body[i : i + 512]

    r = small_client.post(
        "/api/v1/events", content=chunks(), headers={**auth("noc"), "content-type": "application/json"}
    )
    _is_413(r)
    assert _stored(session) == 0


def test_a_body_under_the_limit_is_served(small_client, auth, session):
    r = small_client.post("/api/v1/events", json=_events(2), headers=auth("noc"))
    assert r.status_code == 202, r.text
    assert _stored(session) == 2


def test_a_dashboard_form_over_the_limit_is_413(small_client):
    r = small_client.post("/login", data={"username": "u", "password": "p" * (LIMIT + 10)})
    assert r.status_code == 413


def test_a_bad_content_length_is_refused(small_client, auth):
    r = small_client.post(
        "/api/v1/events",
        content=b"{}",
        headers={**auth("noc"), "content-length": "abc", "content-type": "application/json"},
    )
    assert r.status_code == 413


def test_the_default_limit_is_10_mib(runtime):
    assert runtime.settings.max_body_bytes == 10 * 1024 * 1024


def _alert(**labels: str) -> dict:
    return {
        "version": "4",
        "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": "Up", **labels}}],
    }


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        (_alert(job="x" * (ALERT_LABEL_VALUE_MAX + 1)), "alerts.0.labels.job", "at most 1024 characters"),
        (_alert(**{f"l{i}": "v" for i in range(ALERT_LABELS_MAX)}), "alerts.0.labels", "at most 64 items"),
        (_alert(**{"x" * 129: "v"}), "alerts.0.labels.[key]", "at most 128 characters"),
    ],
)
def test_alertmanager_labels_are_bounded(client, auth, session, payload, field, message):
    r = client.post("/api/v1/alertmanager", json=payload, headers=auth("noc"))
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert any(e["field"] == field and message in e["message"] for e in errors), errors
    assert "x" * 129 not in r.text  # a refused key is not echoed
    assert _stored(session) == 0


def test_alertmanager_labels_and_annotations_together_are_bounded(client, auth, session):
    payload = _alert(**{f"l{i}": "v" * 1000 for i in range(40)})
    r = client.post("/api/v1/alertmanager", json=payload, headers=auth("noc"))
    assert r.status_code == 422, r.text
    assert "labels and annotations: expected at most 32768 bytes together" in r.json()["detail"]
    assert _stored(session) == 0


def test_event_raw_is_bounded(client, auth, session):
    event = {"event_type": "linkDown", "severity": "major", "raw": {"blob": "x" * RAW_MAX_BYTES}}
    r = client.post("/api/v1/events", json={"events": [event]}, headers=auth("noc"))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "events.0.raw"
    assert f"expected at most {RAW_MAX_BYTES} bytes as JSON" in r.json()["errors"][0]["message"]
    assert _stored(session) == 0
