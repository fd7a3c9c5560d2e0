"""The OpenAPI document lists each operation's error answers as problem+json (issue 15, item 16)."""

from __future__ import annotations

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield method, path, op


def test_every_operation_documents_its_errors_as_problems(client):
    doc = client.get("/openapi.json").json()
    assert doc["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status", "detail"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    missing = []
    for method, path, op in _operations(doc):
        errors = {int(s): r for s, r in op["responses"].items() if int(s) >= 400}
        if path not in ("/healthz", "/readyz", "/openapi.json") and not errors:
            missing.append(f"{method} {path}")
        for status, response in errors.items():
            assert response["content"] == PROBLEM, (method, path, status)
    assert missing == []


def test_what_operations_really_return_is_documented(client):
    doc = client.get("/openapi.json").json()

    def statuses(method, path):
        return {int(s) for s in doc["paths"][path][method]["responses"]}

    assert statuses("get", "/api/v1/alarms/{alarm_id}") == {200, 401, 403, 404, 422}
    assert statuses("put", "/api/v1/alarms/{alarm_id}/severity") >= {200, 400, 401, 403, 404, 409, 413, 422, 503}
    assert 502 in statuses("post", "/api/v1/devices/{device_id}/poll")
    assert 401 in statuses("post", "/api/v1/auth/token")
    timeline = doc["paths"]["/api/v1/tickets/{ticket_id}/timeline"]["get"]["responses"]["200"]["content"]
    assert set(timeline) == {"application/json", "text/csv"}
    assert "text/plain" in doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


def test_a_real_error_matches_its_documented_shape(client, auth):
    r = client.get("/api/v1/alarms/999999", headers=auth("viewer"))
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert {"type", "title", "status", "detail"} <= set(r.json())


def test_the_schema_says_what_validation_checks(client):
    """Bodies generated from the document are mostly accepted (the fuzzer's mismatch warnings)."""
    from inventory.schemas import HOSTNAME_RE
    from ticketing.policy import ACTIONS

    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    order_body = doc["paths"]["/api/v1/orders"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert order_body == {"$ref": "#/components/schemas/OrderIn"} and "OrderTarget" in schemas
    assert schemas["OrderIn"]["required"] == ["service_type", "customer"]
    assert schemas["TransitionIn"]["properties"]["action"]["enum"] == list(ACTIONS)
    device = schemas["DeviceIn"]["properties"]
    assert device["hostname"]["pattern"] == HOSTNAME_RE.pattern
    assert {s["format"] for s in device["address"]["anyOf"]} == {"ipv4", "ipv6"}


def test_a_page_limit_documents_the_configured_maximum(client, runtime):
    doc = client.get("/openapi.json").json()
    limit = next(p for p in doc["paths"]["/api/v1/devices"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == runtime.settings.page_size_max == 500
