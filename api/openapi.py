"""The OpenAPI document says what each operation really answers, errors included.

FastAPI documents the success answer and a 422 in its own JSON shape; this API answers every
error as RFC 9457 problem+json (api/problems.py). Here every operation gets the error
statuses it can return, each with the ``Problem`` schema under ``application/problem+json``:

- 422 (a parameter or body refused), when it takes any;
- 401 and 403 (authentication, role) unless the route is public (api/rbac.py); 401 on a
  public operation with a body (the password login);
- 404 when a path names a row (or a body names other rows);
- 400 and 413 with a request body (unparsable; over FAULTLOOP_MAX_BODY_BYTES);
- 409 and 503 for writes (a conflict or an illegal transition; SQLite busy past its wait, or the
  PostgreSQL server unreachable: any route may answer 503 then, documented on the writes);
- 502 where the handler talks to a device (poll, config backup, order execution).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.params import MAX_PAGE
from api.rbac import PUBLIC, allowed_roles
from provisioning.schemas import OrderIn

PROBLEM_MEDIA = "application/problem+json"
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; validation problems list each refused field",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "field": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "allowed_actions": {"type": "array", "items": {"type": "string"}},
    },
}
# the TM Forum routes answer errors in the TMF630 Error shape (api/problems.py), a malformed request as 400
TMF_PREFIX = "/tmf-api/"
TMF_ERROR_SCHEMA: dict[str, Any] = {
    "title": "TmfError",
    "description": "TMF630 Error: code, reason, message, status (strings); the refused field and allowed actions",
    "type": "object",
    "required": ["code", "reason"],
    "properties": {
        "code": {"type": "string"},
        "reason": {"type": "string"},
        "message": {"type": "string"},
        "status": {"type": "string"},
        "field": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
        "allowed_actions": {"type": "array", "items": {"type": "string"}},
        "@type": {"type": "string"},
    },
}
DESCRIPTIONS = {
    400: "Bad request (a body that does not parse, or an action the object's state refuses)",
    401: "Missing, unknown, expired or revoked token",
    403: "The token's role may not do this (or a dashboard write without its CSRF token)",
    404: "A named row does not exist",
    409: "Conflict with the current state (stale version, illegal transition, duplicate)",
    413: "Request body over FAULTLOOP_MAX_BODY_BYTES",
    422: "A parameter or field refused; `errors` names each",
    502: "The device did not answer (SNMP/SSH)",
    503: "Database busy (SQLite) or unavailable (PostgreSQL down): nothing was written, retry after Retry-After",
}
DEVICE_TALK = ("/poll", "/config-backups", "/execute")
# Bodies a handler reads as a plain object to validate itself (the order's character gate runs
# before its shape): documented as the model they are validated against.
BODY_MODELS: dict[tuple[str, str], type[BaseModel]] = {("post", "/api/v1/orders"): OrderIn}
WRITES = frozenset({"post", "put", "patch", "delete"})


def _statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    has_body = "requestBody" in operation
    has_params = bool(operation.get("parameters")) or has_body
    statuses: set[int] = set()
    if has_params:
        statuses.add(422)
    if allowed_roles(method.upper(), path) is not PUBLIC:
        statuses |= {401, 403}
        if "{" in path or has_body:
            statuses.add(404)
    elif has_body:
        statuses.add(401)  # a public write is a login: refused credentials
    if has_body:
        statuses |= {400, 413}
    if method in WRITES:
        statuses |= {400, 409, 503}
    if method == "post" and path.endswith(DEVICE_TALK):
        statuses.add(502)
    return statuses


def _document_bodies(schema: dict[str, Any]) -> None:
    schemas = schema["components"]["schemas"]
    refs, top = models_json_schema(
        [(model, "validation") for model in BODY_MODELS.values()], ref_template="#/components/schemas/{model}"
    )
    schemas.update(top.get("$defs", {}))
    for (method, path), model in BODY_MODELS.items():
        operation = schema.get("paths", {}).get(path, {}).get(method)
        if operation is not None:
            body = operation.setdefault("requestBody", {"required": True, "content": {}})
            body["content"]["application/json"] = {"schema": refs[(model, "validation")]}


def _page_limits(schema: dict[str, Any], page_size_max: int) -> None:
    """A page's ``limit`` is bounded by FAULTLOOP_PAGE_SIZE_MAX at run time: say that bound."""
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            for param in operation.get("parameters", []) if isinstance(operation, dict) else []:
                bounds = param.get("schema", {})
                if param.get("in") == "query" and param.get("name") == "limit" and bounds.get("maximum") == MAX_PAGE:
                    bounds["maximum"] = page_size_max


def document_problems(schema: dict[str, Any], *, page_size_max: int = MAX_PAGE) -> dict[str, Any]:
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    _page_limits(schema, page_size_max)
    _document_bodies(schema)
    problem = {PROBLEM_MEDIA: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    tmf_error = {"application/json": {"schema": {"$ref": "#/components/schemas/TmfError"}}}
    schemas = schema["components"]["schemas"]
    if any(path.startswith(TMF_PREFIX) for path in schema.get("paths", {})):
        schemas["TmfError"] = TMF_ERROR_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)  # FastAPI's own 422 shape: never sent
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            tmf = path.startswith(TMF_PREFIX)
            content = tmf_error if tmf else problem
            if tmf:
                responses.pop("422", None)  # a malformed TMF request is a 400
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400 and "content" not in response:
                    response["content"] = content  # declared on the route, answered as a problem
            statuses = _statuses(method, path, operation)
            if tmf and 422 in statuses:
                statuses = (statuses - {422}) | {400}
            for status in sorted(statuses):
                responses[str(status)] = {"description": DESCRIPTIONS[status], "content": content}
    return schema


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(
                get_openapi(
                    title=app.title, version=app.version, description=app.description, routes=app.routes,
                    tags=app.openapi_tags,
                ),
                page_size_max=app.state.runtime.settings.page_size_max,
            )  # fmt: skip
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
