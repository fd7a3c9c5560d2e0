"""The OpenAPI document lists each operation's error answers as problem+json (issue 15, item 16)."""

from __future__ import annotations

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
TMF_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/TmfError"}}}  # the TMF630 Error shape


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
            expected = TMF_ERROR if path.startswith("/tmf-api/") else PROBLEM
            assert response["content"] == expected, (method, path, status)
            assert not (path.startswith("/tmf-api/") and status == 422), (method, path)  # a TMF 400
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


def test_the_schema_states_the_rules_the_fuzzer_found_unwritten(client):
    """Issue 15 item 16: each rule below was checked in code only, so most bodies the fuzzer built from
    the document were refused; the document now states it, and a body breaking it is still refused
    with the service's own message."""
    import re

    from faultloop.accounts.service import MIN_PASSWORD, USERNAME_RE
    from ticketing.desk import CHANNELS

    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    user = schemas["UserIn"]["properties"]
    assert user["username"]["pattern"] == USERNAME_RE.pattern and user["username"]["minLength"] == 1
    assert user["password"]["minLength"] == MIN_PASSWORD == schemas["PasswordIn"]["properties"]["password"]["minLength"]
    report = schemas["FaultReportIn"]["properties"]
    assert report["channel"]["enum"] == list(CHANNELS)
    for name in ("symptom", "contact"):
        patterns = [p["pattern"] for p in report[name]["allOf"]]
        assert re.search(patterns[0], "no dial tone") and not re.search(patterns[0], "   ")
        assert re.match(patterns[1], "line 1\nline 2\tok") and not re.match(patterns[1], "bell\x07")
    rules = schemas["MaintenanceIn"]["allOf"]
    assert {tuple(a["required"]) for a in rules[0]["anyOf"]} == {("devices",), ("sites",), ("tags",), ("interfaces",)}
    assert rules[2]["then"]["required"] == ["duration_s"] and rules[2]["else"]["required"] == ["ends_at"]
    order = schemas["OrderIn"]["allOf"]
    assert order[1]["else"] == {"required": ["targets"], "properties": {"targets": {"minItems": 1}}}
    if_match = next(
        p for p in doc["paths"]["/api/v1/tickets/{ticket_id}/transitions"]["post"]["parameters"]
        if p["name"] == "If-Match"
    )  # fmt: skip
    assert if_match["schema"]["type"] == "string" and "anyOf" not in if_match["schema"]  # a header is never null
    assert re.match(if_match["schema"]["pattern"], 'W/"12"') and not re.match(if_match["schema"]["pattern"], "null")
    assert all(schemas["LinkIn"]["properties"][end]["minLength"] == 1 for end in ("a_device", "b_interface"))
    needs = {tuple(r["if"]["properties"]["action"]["enum"]): r["then"] for r in schemas["TransitionIn"]["allOf"]}
    assert needs[("diagnose",)]["required"] == ["diagnosis", "fault_category"]
    assert needs[("wait", "reopen", "cancel")]["required"] == ["reason"]
    assert needs[("close",)]["properties"]["rating"] == {"type": "integer", "minimum": 1, "maximum": 5}


def test_bodies_the_document_now_refuses_are_refused_by_the_service_too(client, auth):
    """The document and validation agree at the edges: what the schema rules out, the service refuses,
    naming the field (the service's own checks stay the ones that run)."""
    admin = auth("admin")
    cases = [
        ("post", "/api/v1/users", {"username": "-starts-with-dash", "role": "viewer"}, "username"),
        ("post", "/api/v1/users", {"username": "short-pw", "role": "viewer", "password": "123456789"}, "password"),
        ("post", "/api/v1/fault-reports",
         {"customer": "ACME", "customer_ref": "x", "symptom": "s", "contact": "c", "channel": "fax"}, "channel"),
        ("post", "/api/v1/fault-reports",
         {"customer": "ACME", "customer_ref": "x", "symptom": "  ", "contact": "c", "channel": "web"}, "symptom"),
        ("post", "/api/v1/maintenance", {"name": "w", "starts_at": "2030-01-01T00:00:00Z",
                                          "ends_at": "2030-01-02T00:00:00Z"}, None),
        ("post", "/api/v1/maintenance", {"name": "w", "starts_at": "2030-01-01T00:00:00Z", "devices": ["r1"],
                                          "cron": "0 2 * * 0"}, None),
        ("post", "/api/v1/orders", {"service_type": "l2_vlan", "customer": "ACME"}, None),
    ]  # fmt: skip
    for method, path, body, field in cases:
        r = client.request(method, path, json=body, headers=admin)
        assert r.status_code == 422, (path, body, r.text)
        if field is not None:
            assert r.json()["field"] == field, (path, body, r.json())
